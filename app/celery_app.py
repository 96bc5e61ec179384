"""The Celery application (`celery -A app.celery_app ...`), configured from celeryconfig.

Every task, Celeriac job or plain `@celery_app.task`, uses `TrackedTask` as its base and
is recorded through the signal handlers connected here.
"""

from __future__ import annotations

from celery import Celery

from app.recording import signals as _signals

celery_app = Celery("celeriac", task_cls="app.tracked_task:TrackedTask")
celery_app.config_from_object("celeryconfig")
_signals.connect()
from app.ratelimit import gate as _rate_gate  # noqa: E402,F401  (registers the rate-limit gate, J10)

#: `celery -A app.celery_app` looks for `app` or `celery` in this module.
celery = celery_app
from app.monitoring import heartbeat as _heartbeat  # noqa: E402  (worker registry heartbeats, M2)
from app.schedules import beat as _schedules  # noqa: E402,F401  (fire task and beat reconcile, S1-S4)

_heartbeat.connect()
from app.control import worker_side as _queue_pauses  # noqa: E402  (paused queues enforced in workers, W2)

_queue_pauses.connect()
