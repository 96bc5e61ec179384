"""What the stack says happened: job rows in SQL, messages in Redis; and the wait for the
rows to settle after a fault (polled with a deadline, never a fixed sleep).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from faults.ledger import LedgerReader
from faults.verdict import Accepted, RowState, Verdict, affected_by, judge

logger = logging.getLogger("faults")

#: Seconds between two looks at SQL and the ledger while rows settle.
POLL_INTERVAL_S = 1.0
#: Seconds between two progress lines while rows settle.
PROGRESS_EVERY_S = 15.0
#: The queue the probes use, and kombu's priority lists of it (sep ":", steps 0-9).
PROBE_QUEUE = "default"
BROKER_LISTS = [PROBE_QUEUE] + [f"{PROBE_QUEUE}:{step}" for step in range(1, 10)]
#: kombu's hash of delivered, unacknowledged messages.
UNACKED_KEY = "unacked"


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url[len("postgresql://") :] if url.startswith("postgresql://") else url


class Observer:
    """Reads job_executions and schedule history with an engine of its own."""

    def __init__(self, database_url: str) -> None:
        args: dict[str, Any] = {"connect_timeout": 3} if database_url.startswith("postgresql") else {"timeout": 10}
        self.engine = create_engine(sqlalchemy_url(database_url), pool_pre_ping=True, connect_args=args)

    def rows(self) -> dict[str, RowState]:
        from app.models import JobExecution

        with Session(self.engine) as session:
            found = session.execute(select(JobExecution.id, JobExecution.status, JobExecution.error_message))
            return {job_id: RowState(status, error) for job_id, status, error in found}

    def schedule_runs(self) -> list[tuple[str, str, datetime]]:
        """(job id, schedule id, created at) of every job a schedule fired."""
        from app.models import JobExecution

        with Session(self.engine) as session:
            found = session.execute(
                select(JobExecution.id, JobExecution.schedule_id, JobExecution.created_at).where(
                    JobExecution.schedule_id.is_not(None)
                )
            )
            return [(job_id, str(schedule_id), created) for job_id, schedule_id, created in found]

    def schedule_events(self) -> list[dict[str, Any]]:
        from app.models import ScheduleEvent

        with Session(self.engine) as session:
            return [
                {
                    "schedule_id": e.schedule_id, "kind": e.kind, "tick_at": e.tick_at, "last_tick_at": e.last_tick_at,
                    "count": e.count, "action": e.action, "job_id": e.job_id, "detail": e.detail,
                }
                for e in session.scalars(select(ScheduleEvent))
            ]  # fmt: skip

    def dispose(self) -> None:
        self.engine.dispose()


def broker_backlog(redis_url: str) -> dict[str, int | None]:
    """Messages waiting in the probe queue and delivered-but-unacknowledged ones (None: Redis down)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for key in BROKER_LISTS:
            pipe.llen(key)
        pipe.hlen(UNACKED_KEY)
        *lengths, unacked = pipe.execute()
        return {"queued": int(sum(lengths)), "unacked": int(unacked)}
    except redis.RedisError:
        return {"queued": None, "unacked": None}
    finally:
        client.close()


def concurrency_state(redis_url: str, key: str) -> dict[str, int | None]:
    """A concurrency key's slots now: holders whose lease runs, expired ones not yet tidied,
    waiters and parked messages (None: Redis down)."""
    import redis

    from celeriac.concurrency import holders_key, parked_key, waiting_key

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        seconds, micros = client.time()
        now = seconds + micros / 1_000_000
        pipe = client.pipeline(transaction=False)
        pipe.zcount(holders_key(key), f"({now}", "+inf")
        pipe.zcard(holders_key(key))
        pipe.zcard(waiting_key(key))
        pipe.hlen(parked_key(key))
        live, every, waiting, parked = pipe.execute()
        return {"holders": int(live), "expired": int(every) - int(live), "waiting": int(waiting), "parked": int(parked)}
    except redis.RedisError:
        return {"holders": None, "expired": None, "waiting": None, "parked": None}
    finally:
        client.close()


@dataclass
class Watch:
    """What settling looks at, read again at every poll (the load may still be dispatching)."""

    accepted: Callable[[], list[Accepted]]
    refused: Callable[[], set[str]]
    #: True once no more dispatches are coming.
    finished: Callable[[], bool]
    fault_end: float | None


@dataclass
class Settled:
    verdict: Verdict
    all_right_at: float | None
    timed_out: bool
    finished_at: float
    sql_errors: int


def settle(watch: Watch, reader: LedgerReader, observer: Observer, deadline_at: float) -> Settled:
    """Poll (from the end of the fault) until the load is over and every accepted row is terminal,
    or the deadline passes.

    Records the first moment every job dispatched before the fault ended had a terminal, right
    row ("recover s"): later dispatches are judged in the other columns but do not delay it.
    """
    all_right_at = None
    sql_errors = 0
    verdict = Verdict()
    next_log = time.monotonic()
    while True:
        ledger = reader.refresh()
        try:
            rows = observer.rows()
        except SQLAlchemyError as exc:
            sql_errors += 1
            logger.info("SQL not readable yet (%s)", type(exc).__name__)
            rows = None
        now = time.monotonic()
        if rows is not None:
            accepted, refused = watch.accepted(), watch.refused()
            verdict = judge(accepted, rows, ledger, refused)
            affected = judge(affected_by(accepted, watch.fault_end), rows, ledger, refused)
            if all_right_at is None and affected.all_right:
                all_right_at = now
            if not affected.all_right:
                all_right_at = None  # only a state that lasts counts
            if watch.finished() and verdict.all_terminal:
                return Settled(verdict, all_right_at, False, now, sql_errors)
            if now >= next_log:
                next_log = now + PROGRESS_EVERY_S
                logger.info(
                    "settling: %d accepted, %d ran, %d live, %d right, %d wrong; %.0f s to the deadline",
                    verdict.accepted, verdict.ran, verdict.live, verdict.right, verdict.wrong, deadline_at - now,
                )  # fmt: skip
        if now > deadline_at:
            return Settled(verdict, all_right_at, True, now, sql_errors)
        time.sleep(POLL_INTERVAL_S)
