"""The Celery application (`celery -A app.celery_app ...`), with every Celeriac hook connected.

Every task, Celeriac job or plain `@celery_app.task`, uses `TrackedTask` as its base and
is recorded through the signal handlers `connect_worker` connects. Web, recorder and beat
processes import this module too: their publishes are recorded by the same handlers.
"""

from __future__ import annotations

from celery import Celery

from app import task_modules
from app.backends import current
from app.backends.celery_canceller import CeleryCanceller
from app.backends.celery_control import CeleryWorkerControl
from app.backends.celery_publisher import CeleryPublisher
from app.backends.celery_registry import CeleryRegistry
from app.backends.clock import SystemClock
from app.broker import celery_app as celery_app
from app.config import Settings, get_settings
from app.control import worker_side
from app.monitoring import heartbeat
from app.ratelimit import gate
from app.redis_client import get_redis
from app.schedules import beat
from app.schedules.entries import EntryStore
from celeriac import signals
from celeriac.instrument import connect as connect_tracking


def recording_config(settings: Settings) -> signals.RecordingConfig:
    """The worker-side recording settings, from Celeriac's own."""
    url = settings.redis_url
    return signals.RecordingConfig(
        redis=lambda: get_redis(url),
        max_result_chars=settings.max_result_chars,
        event_buffer_size=settings.event_buffer_size,
        event_flush_ms=settings.event_flush_ms,
    )


def real_backends(app: Celery, settings: Settings) -> current.Backends:
    """Celery, Redis and RedBeat behind the ports; nothing connects before first use."""
    client = get_redis(settings.redis_url)
    clock = SystemClock()
    return current.Backends(
        publisher=CeleryPublisher(),
        registry=CeleryRegistry(),
        canceller=CeleryCanceller(client, app.control),
        workers=CeleryWorkerControl(app.control),
        schedules=EntryStore(client, clock),
        clock=clock,
    )


def connect_worker(app: Celery) -> None:
    """Connect every signal handler and hook Celeriac needs, here and nowhere else.

    - task recording: publish, start, success, failure, retry, revoke, reject (R1);
    - the rate-limit gate run before each job (J10);
    - the worker registry heartbeats (M2) and paused queues enforced in workers (W2);
    - the schedules' fire task and the reconcile when beat starts (S1-S4);
    - this process's backends (app.backends.current), unless the web app built them first.
    """
    settings = get_settings()
    current.start(lambda: real_backends(app, settings))
    # The path a project's own app takes with `celeriac.instrument` (heartbeats: ours, below);
    # tracking is off only for the benchmark's baseline.
    connect_tracking(app, recording_config(settings), record=settings.tracking_enabled)
    gate.connect()
    heartbeat.connect()
    worker_side.connect()
    beat.connect(app)
    task_modules.connect()  # a misspelt CELERIAC_TASK_MODULES entry: one line, not a traceback


connect_worker(celery_app)

#: `celery -A app.celery_app` looks for `app` or `celery` in this module.
celery = celery_app
