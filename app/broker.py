"""The Celery application object, configured from celeryconfig, with nothing connected.

Feature packages that need the object itself (to publish, to inspect queues, to define a
task) import it from here. `app.celery_app` is the same object with every Celeriac hook
connected (`connect_worker`): processes and the code API start from that one.
"""

from __future__ import annotations

from celery import Celery

celery_app = Celery("celeriac", task_cls="app.tracked_task:TrackedTask")
celery_app.config_from_object("celeryconfig")
