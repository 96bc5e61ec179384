"""The sample project's own package, named `app` as many Flask and Django projects name theirs.

Not Celeriac's `app`: this project only installs the `celeriac` package (docs/adopting.md).
Its Celery app is loaded the Django way, so `celery -A app worker` finds it.
"""

from app.celery import app as celery_app

__all__ = ["celery_app"]
