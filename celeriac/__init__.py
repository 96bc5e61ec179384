"""Celeriac's worker side: what a Celery worker needs to record its tasks (celery and redis only).

A project with its own Celery app gets full tracking with one line (docs/adopting.md):

    import celeriac
    celeriac.instrument(celery_app)
"""

from celeriac.current import report_progress
from celeriac.instrument import instrument

__all__ = ["instrument", "report_progress"]
