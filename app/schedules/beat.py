"""Celery side of schedules: the fire task and the reconcile at beat start-up.

`celery -A app.celery_app beat -S redbeat.RedBeatScheduler` runs the stock RedBeat
scheduler; importing this module (app.celery_app does) is all the wiring:

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
from celery import Task
from celery.signals import beat_init

from app.celery_app import celery_app
from app.config import get_settings
from app.db import session_scope
from app.redis_client import get_redis
from app.schedules.entries import FIRE_TASK, EntryStore
from app.schedules.firing import Dispatcher, FireResult, fire
from app.schedules.reconcile import reconcile

logger = logging.getLogger(__name__)


def fire_now(schedule_id: str, tick: int | None = None) -> FireResult:
    """Fire one entry with production dependencies (SQL, Redis, Celery)."""
    from app.jobs.dispatch import get_publisher, get_registry

    settings = get_settings()
    client = get_redis(settings.redis_url)
    dispatcher = Dispatcher(get_registry(), get_publisher(), settings)
    when = datetime.fromtimestamp(tick, UTC) if tick is not None else None
    with session_scope() as session:
        return fire(session, EntryStore(client), client, schedule_id, when, dispatcher)


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
    client = get_redis(get_settings().redis_url)
    when = datetime.fromtimestamp(tick, UTC) if tick is not None else None
    try:
        EntryStore(client).retry_later(schedule_id, when)
    except Exception:  # Redis is down as well: RedBeat retries after its interval
        logger.exception("Schedule %s: could not postpone the retry of a failed fire", schedule_id)


@celery_app.task(name=FIRE_TASK, base=FireTask, ignore_result=True)
def fire_schedule(schedule_id: str, tick: int | None = None) -> str | None:
    """Fire a schedule's tick (normally run by beat itself, see FireTask)."""
    return fire_now(schedule_id, tick).job_id


@beat_init.connect
def reconcile_at_start(sender: Any = None, **_: Any) -> None:
    """Repair drift before the first tick; only the beat holding RedBeat's lock does it."""
    scheduler = getattr(sender, "scheduler", None)
    if type(scheduler) is redbeat.schedulers.RedBeatScheduler:
        # Started as API.md says (`-S redbeat.RedBeatScheduler`): give it the healing ticks
        # of the subclass (methods only, same state) so an outage does not stop beat.
        from app.schedules.scheduler import HealingRedBeatScheduler

        scheduler.__class__ = HealingRedBeatScheduler
    if scheduler is None or (getattr(scheduler, "lock_key", None) and getattr(scheduler, "lock", None) is None):
        return
    settings = get_settings()
    try:
        with session_scope() as session:
            report = reconcile(session, EntryStore(get_redis(settings.redis_url)))
    except Exception:  # process boundary: beat still runs the entries it has
        logger.exception("Schedules: reconcile at beat start-up failed")
        return
    logger.info("Schedules reconciled: %s", report)
