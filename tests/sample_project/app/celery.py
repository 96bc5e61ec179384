"""The sample project's Celery app, configured as its own: JSON only, its own queue.

`SAMPLE_CELERIAC=instrument` turns on Celeriac's full tracking with the one line
docs/adopting.md describes; without it the project runs as it did before Celeriac.
"""

import os

from celery import Celery

BROKER_URL = os.environ.get("SAMPLE_BROKER_URL", "redis://127.0.0.1:6379/0")

app = Celery("sample", include=["app.tasks"])
app.conf.update(
    broker_url=BROKER_URL,
    result_backend=BROKER_URL,  # chords need one
    task_default_queue=os.environ.get("SAMPLE_QUEUE", "sample"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
)

if os.environ.get("SAMPLE_CELERIAC") == "instrument":
    import celeriac

    celeriac.instrument(app)
