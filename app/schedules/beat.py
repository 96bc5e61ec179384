"""Celery side of schedules: the fire task and the reconcile at beat start-up.

`celery -A app.celery_app beat -S redbeat.RedBeatScheduler` runs the stock RedBeat
scheduler; `connect` (called by app.celery_app.connect_worker) is all the wiring:

- `celeriac.schedules.fire` runs inside the beat process when beat applies it (Celery
  marks those calls with the `celery_beat_task` header): the due job is recorded and
  published at the tick, not after a hop through a queue that may be busy. Called any
  other way it is an ordinary task and a worker runs the same code.
- on `beat_init`, after RedBeat's own handler took the lock, the entries are reconciled
  with `job_schedules`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redbeat.schedulers  # noqa: F401  (connects RedBeat's lock handler before ours)
from celery import Celery, Task
from celery.signals import beat_init

from app.backends.current import backends
from app.broker import celery_app
from app.config import get_settings
from app.db import session_scope
from app.redis_client import get_redis
from app.schedules.entries import FIRE_TASK
from app.schedules.firing import Dispatcher, FireResult, fire
from app.schedules.reconcile import reconcile
from app.schedules.scheduler import HealingRedBeatScheduler

logger = logging.getLogger(__name__)


def fire_now(schedule_id: str, tick: int | None = None) -> FireResult:
    """Fire one entry with this process's backends (app.backends.current), SQL and Redis."""
    settings = get_settings()
    client = get_redis(settings.redis_url)
    used = backends()
    dispatcher = Dispatcher(used.registry, used.publisher, settings)
    when = datetime.fromtimestamp(tick, UTC) if tick is not None else None
    with session_scope() as session:
        return fire(session, used.schedules, client, schedule_id, when, dispatcher, used.clock.now())


class FireTask(Task):  # type: ignore[type-arg]
    """Runs in the beat process when beat applies it; queued like any task otherwise."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:  # type: ignore[override]
        headers = options.get("headers") or {}
        if not headers.get("celery_beat_task"):
            return super().apply_async(args, kwargs, **options)
        try:
            result = fire_now(**(kwargs or {}))
        except Exception:
            _retry_later(**(kwargs or {}))
            raise  # beat logs it ("Message Error")
        if result.job_id:
            logger.info("Schedule %s fired job %s", (kwargs or {}).get("schedule_id"), result.job_id)
        return None


def _retry_later(schedule_id: str, tick: int | None = None) -> None:
    when = datetime.fromtimestamp(tick, UTC) if tick is not None else None
    try:
        backends().schedules.retry_later(schedule_id, when)
    except Exception:  # Redis is down as well: RedBeat retries after its interval
        logger.exception("Schedule %s: could not postpone the retry of a failed fire", schedule_id)


@celery_app.task(name=FIRE_TASK, base=FireTask, ignore_result=True)
def fire_schedule(schedule_id: str, tick: int | None = None) -> str | None:
    """Fire a schedule's tick (normally run by beat itself, see FireTask)."""
    return fire_now(schedule_id, tick).job_id


def reconcile_at_start(sender: Any = None, **_: Any) -> None:
    """Repair drift before the first tick; only the beat holding RedBeat's lock does it."""
    scheduler = getattr(sender, "scheduler", None)
    if type(scheduler) is redbeat.schedulers.RedBeatScheduler:
        # Started as API.md says (`-S redbeat.RedBeatScheduler`): give it the healing ticks
        # of the subclass (methods only, same state) so an outage does not stop beat.

        scheduler.__class__ = HealingRedBeatScheduler
    if scheduler is None or (getattr(scheduler, "lock_key", None) and getattr(scheduler, "lock", None) is None):
        return
    used = backends()
    try:
        with session_scope() as session:
            report = reconcile(session, used.schedules, used.clock.now())
    except Exception:  # process boundary: beat still runs the entries it has
        logger.exception("Schedules: reconcile at beat start-up failed")
        return
    logger.info("Schedules reconciled: %s", report)


def connect(app: Celery) -> None:
    """Reconcile the entries when `app`'s beat starts (the fire task is defined above)."""
    assert app is celery_app, "schedules fire through the application they are defined on"
    beat_init.connect(reconcile_at_start, weak=False)
