"""RedBeat entries mirroring `job_schedules` rows, written in RedBeat's own format.

One entry per schedule, `celeriac:redbeat:job_schedule:<id>`: a hash with RedBeat's
`definition` and `meta` JSON, plus its score in RedBeat's sorted set. The stock
`redbeat.RedBeatScheduler` loads and fires it like any entry.

Why an interval entry aligned by hand: RedBeat's crontab has no time zone per entry
(redbeat #192), so the cron is computed here (app.schedules.cron) and the entry is told
the exact instant of the next tick. Its task, `celeriac.schedules.fire`, carries that tick;
its interval schedule is INTERVAL_S long with `last_run_at` set INTERVAL_S before the
tick, so RedBeat finds it due exactly at the tick (score = tick). After a fire, Celeriac
aligns the entry to the following tick.

INTERVAL_S is short on purpose: right after sending a due entry, beat sleeps for that
entry's interval (capped by beat_max_loop_interval) before it looks again, and a short
one lets it wake in time for a tick a few seconds away. A fire that fails (SQL down)
keeps its tick and is retried RETRY_S later (`retry_later`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery.schedules import schedule as interval
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from app import redis_keys
from app.backends.clock import SystemClock
from app.errors import BackendUnavailable
from app.kernel.ports import PAUSED_SCORE, RETRY_S, Clock, ScheduleEntry

#: The Celery task every schedule entry runs (app.schedules.beat).
FIRE_TASK = "celeriac.schedules.fire"
#: Entry names start with this; the rest is the schedule id.
ENTRY_PREFIX = "job_schedule:"
#: RedBeat's sorted set of entry keys by due time (RedBeatConfig: key_prefix + ":schedule").
SCHEDULE_ZSET = redis_keys.REDBEAT_PREFIX + ":schedule"
#: The entry's interval: how soon beat looks again after sending it (see above).
INTERVAL_S = 1


def entry_key(schedule_id: str) -> str:
    return redis_keys.REDBEAT_PREFIX + ENTRY_PREFIX + schedule_id


class EntryStore:
    """Writes, reads and deletes schedule entries in the RedBeat Redis (a ScheduleStore)."""

    def __init__(self, client: redis.Redis, clock: Clock | None = None) -> None:
        self.redis = client
        self.clock = clock or SystemClock()

    def write(self, schedule_id: str, tick: datetime | None, enabled: bool, due: datetime | None = None) -> None:
        """Point the entry at `tick` (None or paused: never due), due at `due` (default: the tick).

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        tick_epoch = int(tick.timestamp()) if tick is not None else None
        due = due or tick
        definition = {
            "name": ENTRY_PREFIX + schedule_id,
            "task": FIRE_TASK,
            "args": [],
            "kwargs": {"schedule_id": schedule_id, "tick": tick_epoch},
            "options": {},
            "schedule": interval(run_every=timedelta(seconds=INTERVAL_S)),
            "enabled": enabled and tick is not None,
        }
        last_run = (due or self.clock.now()) - timedelta(seconds=INTERVAL_S)
        meta = {"last_run_at": last_run.astimezone(UTC), "total_run_count": 0}
        score = int(due.timestamp()) if enabled and due is not None else PAUSED_SCORE
        key = entry_key(schedule_id)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
            pipe.hset(key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            pipe.zadd(SCHEDULE_ZSET, {key: score})
            pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis is unavailable; schedule {schedule_id} was not changed") from exc

    def retry_later(self, schedule_id: str, tick: datetime | None) -> None:
        """After a failed fire: the same tick again in RETRY_S (instead of beat's INTERVAL_S)."""
        self.write(schedule_id, tick, enabled=True, due=self.clock.now() + timedelta(seconds=RETRY_S))

    def delete(self, schedule_id: str) -> None:
        """Raises: BackendUnavailable: Redis cannot be reached."""
        key = entry_key(schedule_id)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(SCHEDULE_ZSET, key)
            pipe.delete(key)
            pipe.execute()
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis is unavailable; schedule {schedule_id} was not removed") from exc

    def read(self, schedule_id: str) -> ScheduleEntry | None:
        key = entry_key(schedule_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(key, "definition")
        pipe.zscore(SCHEDULE_ZSET, key)
        raw, score = pipe.execute()
        if raw is None:
            return None
        definition: dict[str, Any] = json.loads(raw, cls=RedBeatJSONDecoder)
        kwargs = definition.get("kwargs") or {}
        tick = kwargs.get("tick")
        return ScheduleEntry(
            schedule_id=schedule_id,
            tick=datetime.fromtimestamp(tick, UTC) if isinstance(tick, int) else None,
            enabled=bool(definition.get("enabled")),
            score=score,
        )

    def ids(self) -> set[str]:
        """Ids of every schedule with an entry or a score left in RedBeat's sorted set."""
        prefix = redis_keys.REDBEAT_PREFIX + ENTRY_PREFIX
        found: set[str] = set()
        for key in self.redis.scan_iter(match=prefix + "*", count=500):
            found.add(_text(key)[len(prefix) :])
        for member, _score in self.redis.zscan_iter(SCHEDULE_ZSET, match=prefix + "*", count=500):
            found.add(_text(member)[len(prefix) :])
        return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
