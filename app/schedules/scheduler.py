"""RedBeat that heals instead of exiting (R1): Redis outages, a lost lock, lost entries.

Stock RedBeat stops beat at the first Redis error of a tick (measured: 0.5 s after Redis
went away, on a 20 s outage as well as on a restart without data), and a beat whose
lock expired during an outage exits by design. A stopped beat fires nothing until
someone restarts it. This scheduler instead:

- waits out an outage, retrying with a growing pause (at most `MAX_PAUSE_S`);
- takes the lock again when Redis is back, or waits as a standby while another beat
  holds it, so two beats never fire at once;
- then puts back the static entries (`beat_schedule`) and every schedule's entry from
  `job_schedules` (Redis may have come back without its data): the same repair beat
  does when it starts.

`beat_scheduler` in celeryconfig names it; a beat started with `-S redbeat.RedBeatScheduler`
(API.md's command) is upgraded to it when it starts (app.schedules.beat).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis
from redis.exceptions import LockError
from sqlalchemy.exc import SQLAlchemyError

from app.backends.current import backends
from app.db import session_scope
from app.schedules.reconcile import reconcile

logger = logging.getLogger(__name__)

#: Longest pause between two attempts while Redis is unreachable, in seconds.
MAX_PAUSE_S = 5.0
#: Errors a tick survives: Redis unreachable, the lock gone (expired, or lost with the data).
RECOVERABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, LockError)


class HealingRedBeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    _healthy = True
    _pause_s = 0.0
    #: Schedules' entries still to restore (SQL was down when Redis came back).
    _repair_pending = False

    def tick(self, min: Any = min, **kwargs: Any) -> float:  # noqa: A002  (RedBeat's signature)
        try:
            if not self._healthy and not self._recover():
                return self._pause()
            if self._repair_pending:
                self._repair()
            interval: float = super().tick(min=min, **kwargs)
        except RECOVERABLE as exc:
            if self._healthy:
                logger.warning("beat: Redis unavailable or lock lost (%s); beat waits and recovers", exc)
            self._healthy = False
            return self._pause()
        except AttributeError:
            if self.lock_key and getattr(self, "lock", None) is None:  # never taken: Redis was down at start
                self._healthy = False
                return self._pause()
            raise
        self._pause_s = 0.0
        return interval

    def _pause(self) -> float:
        self._pause_s = float(min(MAX_PAUSE_S, max(0.5, self._pause_s * 2)))
        return self._pause_s

    def _recover(self) -> bool:
        """Redis answers again: hold the lock (or stand by), then repair the entries."""
        client = get_redis(self.app)
        client.ping()
        if self.lock_key and not self._take_lock(client):
            return False
        self.setup_schedule()
        self._healthy = True
        self._repair()
        logger.warning("beat: recovered; static entries restored")
        return True

    def _repair(self) -> None:
        try:
            repair_entries()
            self._repair_pending = False
        except SQLAlchemyError as exc:  # SQL is down too: static entries tick, schedules wait
            logger.warning("beat: schedules not restored yet, SQL unavailable (%s)", exc)
            self._repair_pending = True

    def _take_lock(self, client: Any) -> bool:
        current: Any = getattr(self, "lock", None)
        if current is not None:
            try:
                if current.owned():
                    current.extend(int(self.lock_timeout))
                    return True
            except LockError:
                pass
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if not lock.acquire(blocking=False):
            logger.info("beat: another beat holds the lock; standing by")
            return False
        self.lock = lock
        logger.info("beat: lock taken again")
        return True


def repair_entries() -> None:
    """Every schedule's entry from `job_schedules` (app.schedules.reconcile)."""

    with session_scope() as session:
        used = backends()
        report = reconcile(session, used.schedules, used.clock.now())
    logger.info("Schedules reconciled: %s", report)
