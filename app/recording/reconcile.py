"""The reconciler (R1): live job rows checked against the broker, the workers and the results.

The SQL row written at dispatch is the durable record of an accepted job. Events can be
lost (a pool process SIGKILLed before its buffer left it), and so can messages (Redis
restarted without its data; a worker killed between taking a message off its list and
registering it as unacknowledged). The recorder runs this every
`CELERIAC_RECONCILE_INTERVAL_S` (one recorder at a time, by a Redis lock) and only once
it has written what the stream holds. Each run:

1. Orphans. A message in kombu's `unacked` hash that no live worker holds (workers list
   what they hold in their heartbeats) belonged to a worker that died: it goes back to
   its queue now, not after the visibility timeout, and the job's timeline says "worker
   lost". Past the worker-loss limit the job fails instead (app.recording.worker_loss).
2. Suspects. A live row none of whose messages can still exist:
   - `processing`, on no live worker, its message not unacknowledged, started more than
     the grace ago; or
   - `pending` / `retrying`, not held by a worker, not unacknowledged, and published
     before the oldest message still in its queue's lists (kombu pushes on one end and
     pops from the other, so everything published before that message has been taken;
     an empty queue has taken everything). `published_at` is never earlier than the
     message it describes, and hosts' clocks may differ by `CELERIAC_CLOCK_SKEW_S`.
   Rows recorded from Celery's task events (CELERIAC_ATTACH) are never suspects, and with
   attach mode only Celeriac's own queues' messages are orphans (app.recording.suspects).
3. Each suspect's outcome is looked up in Celery's result backend, which the job's own
   process writes before its message is acknowledged: a stored success or failure is
   recorded ("recovered from the result backend"). With no outcome stored, the message
   is lost: the job is published again, once per loss, and its timeline says why. A
   job whose outcome was lost with Redis's data runs again: a duplicate, shown, not hidden.
4. Jobs whose dispatch answered an error (their publish failed, maybe after the broker
   got the message) carry a cancel mark, so a worker skips them; if Redis was down when
   they failed, the mark is set here.

Cost: one query per (status, queue) of live rows (an index seek each), a handful of
Redis commands, and one MGET for the suspects; nothing per healthy queued job.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import states
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import redis_keys
from app.composition.hub import Hub
from app.composition.resync import rehold_lost
from app.config import Settings
from app.kernel import message
from app.kernel.writer import NOT_QUEUED, add_announcement, add_cancel_mark, not_queued_event
from app.models import ExecutionStatus, JobExecution
from app.monitoring.workers import list_workers
from app.recording.broker_view import Broker, Unacked
from app.recording.concurrency_waits import slot_holders
from app.recording.recoveries import ReconcileReport, count_recoveries
from app.recording.suspects import MAX_SUSPECTS, find_suspects, own_unacked
from app.recording.worker_loss import (
    RESULT_BACKEND,
    WorkerLossLimit,
    loss_failure_message,
    outcome_event,
    worker_lost_policy,
)
from celeriac import events as ev

logger = logging.getLogger(__name__)

#: Longest a run keeps starting new rounds, in seconds (the rest waits for the next run).
RUN_BUDGET_S = 20.0
#: The note a job gets when the result backend says a retry of it was published.
RETRY_SEEN = "a retry of it was published; its report was lost"
VOIDED = "not run: it was cancelled, or its dispatch answered an error, before its message was lost"
UNREBUILDABLE = (
    "its message was lost (Redis lost it, or a worker died taking it) and it was published without "
    "Celeriac, so it cannot be published again; dispatch it again"
)
_PROCESSING = ExecutionStatus.PROCESSING.value


class Reconciler:
    """One reconciliation run at a time; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        redis: Any,
        session_factory: Callable[[], Any],
        write: Callable[[list[dict[str, Any]]], None],
        *,
        backend: Any,
        broker: Broker,
        publish: Callable[[JobExecution], None] = message.republish,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.session_factory = session_factory
        self.write = write
        self.backend = backend
        self.broker = broker
        self.publish = publish
        self.clock = clock
        self._epoch: bytes | None = None

    # -- the run -----------------------------------------------------------------------
    def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        now = self.clock()
        report.redis_data_lost = self._check_epoch()
        # A worker silent for CELERIAC_REAP_AFTER_S is dead for this purpose: its jobs go back.
        silent_after = self.settings.monitoring.reap_after_s
        registered = [w.heartbeat for w in list_workers(self.redis, self.settings.monitoring, now)]
        workers = [w for w in registered if w.stopped_at is None and now - w.last_heartbeat <= silent_after]
        held = {job_id for beat in workers for job_id in beat.held}
        unacked = self.broker.unacked()
        if self.settings.monitoring.heartbeat_interval_s > 0:
            newest_beat = min((beat.last_heartbeat for beat in workers), default=now)
            # Attach mode: only messages of queues that workers with heartbeats consume.
            watched = own_unacked(unacked, self.settings, {queue for beat in registered for queue in beat.queues})
            tags = {entry.tag for entry in watched}
            others = [entry for entry in unacked if entry.tag not in tags]
            unacked = others + self._recover_orphans(watched, held, newest_beat, now, report)
        in_flight = held | {entry.job_id for entry in unacked if entry.job_id} | slot_holders(self.redis, self.settings)
        deadline = time.monotonic() + RUN_BUDGET_S
        with self.session_factory() as session:
            # In rounds of MAX_SUSPECTS, so that after a Redis data loss a million queued jobs
            # go back at the broker's pace, not a thousand per interval.
            while True:
                suspects = self._suspects(session, in_flight, now)
                judged = report.judged
                self._judge(suspects, now, report)
                session.expire_all()
                stalled = report.judged == judged  # the broker refused every publish: try later
                if len(suspects) < MAX_SUSPECTS or stalled or time.monotonic() > deadline:
                    break
            report.marks_set = self._mark_unqueued(session, now)
            report.reheld = len(self._rehold_lost(session, now))
        if report.changed_anything:
            logger.warning("Reconciler: %s", report.as_dict())
        count_recoveries(self.redis, report.counters(), last_run=now)
        return report

    def _check_epoch(self) -> bool:
        """Whether Redis lost its data since the last run of this process."""
        token = uuid.uuid4().hex.encode()
        if self.redis.set(redis_keys.EPOCH, token, nx=True):
            lost = self._epoch is not None
            self._epoch = token
            if lost:
                logger.error("Reconciler: Redis lost its data (restarted without persistence?); resyncing")
            return lost
        if self._epoch is None:
            self._epoch = self.redis.get(redis_keys.EPOCH)
        return False

    # -- 1. orphaned messages ----------------------------------------------------------------
    def _recover_orphans(
        self, unacked: list[Unacked], held: set[str], newest_beat: float, now: float, report: ReconcileReport
    ) -> list[Unacked]:
        """Put back what no live worker holds; returns the entries still unacknowledged."""
        grace = self.settings.reliability.reconcile_grace_s
        # Delivered before every live worker's latest heartbeat: each has reported it since.
        cutoff = min(now - grace, newest_beat - 1)
        kept, orphans = [], []
        for entry in unacked:
            if entry.job_id in held or entry.delivered_at > cutoff or entry.job_id is None:
                kept.append(entry)
            else:
                orphans.append(entry)
        if not orphans:
            return kept
        # A job may have finished before its worker died, unacknowledged: its outcome is the
        # truth, and it must not run again (nor be failed for the loss).
        ids = [entry.job_id for entry in orphans if entry.job_id]
        outcomes = self._stored_outcomes(ids)
        running = self._running(ids)
        events: list[dict[str, Any]] = []
        moves: list[tuple[str, bool]] = []  # (tag, put back?) once the rows say why
        for entry in orphans:
            assert entry.job_id is not None
            meta = outcomes.get(entry.job_id)
            if meta and meta.get("status") in (states.SUCCESS, states.FAILURE, states.REVOKED):
                events.append(ev.recovered(outcome_event(entry.job_id, meta, self.settings), RESULT_BACKEND))
                moves.append((entry.tag, False))
                report.recovered += 1
            elif entry.job_id in running:
                back = self._lost_under(entry.job_id, running[entry.job_id], events)
                moves.append((entry.tag, back))
                report.orphans_requeued += back
                report.orphans_failed += not back
            else:
                # Held for its ETA or waiting for a pool process: it never started, so the loss
                # is not counted against it.
                events.append(ev.lost(entry.job_id, reason="its worker went offline before running it", losses=0))
                moves.append((entry.tag, True))
                report.orphans_requeued += 1
        self.write(events)
        for tag, back in moves:
            if back:
                self.broker.restore(tag)
            else:
                self.broker.drop(tag)
        return kept

    def _lost_under(self, job_id: str, job_class: str, events: list[dict[str, Any]]) -> bool:
        """A job whose worker died while running it: back in its queue (True), or failed past
        the worker-loss limit or by its class's `on_worker_lost = "fail"` (False)."""
        limit = self.settings.reliability.worker_loss_limit
        losses = self._count_loss(job_id)
        policy = worker_lost_policy(job_class, self.settings)
        if policy == "fail" or losses >= limit:
            text = loss_failure_message(losses, limit, policy, "its worker went offline")
            fail = ev.failed(job_id, None, None, None, None, None)
            fail.update(err=text, exc="WorkerLost")
            events.append(fail)
            self._store_failure(job_id, text)
            return False
        events.append(ev.lost(job_id, reason="its worker went offline while running it", losses=losses))
        return True

    def _running(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Of `job_ids`, those SQL says were running: id -> job class."""
        if not job_ids:
            return {}
        with self.session_factory() as session:
            return dict(
                session.execute(
                    select(JobExecution.id, JobExecution.job_class).where(
                        JobExecution.id.in_(list(job_ids)), JobExecution.status == _PROCESSING
                    )
                ).all()
            )

    def _count_loss(self, job_id: str) -> int:
        key = redis_keys.worker_losses(job_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, redis_keys.WORKER_LOSSES_TTL_S)
        losses, _ = pipe.execute()
        return int(losses)

    def _store_failure(self, job_id: str, text: str) -> None:
        try:
            self.backend.mark_as_failure(job_id, WorkerLossLimit(text))
        except Exception as exc:  # the row says it; clients reading results may wait
            logger.warning("Job %s: failure not stored in the result backend (%s)", job_id, exc)

    # -- 2. suspects (app.recording.suspects) ------------------------------------------------
    def _suspects(self, session: Session, in_flight: set[str], now: float) -> list[JobExecution]:
        return find_suspects(session, self.broker, self.settings, in_flight, now)

    # -- 3. judgement ----------------------------------------------------------------------
    def _judge(self, suspects: Sequence[JobExecution], now: float, report: ReconcileReport) -> None:
        if not suspects:
            return
        outcomes = self._stored_outcomes([row.id for row in suspects])
        events: list[dict[str, Any]] = []
        lost: list[JobExecution] = []
        for row in suspects:
            meta = outcomes.get(row.id)
            status = meta.get("status") if meta else None
            if status in (states.SUCCESS, states.FAILURE, states.REVOKED):
                events.append(ev.recovered(outcome_event(row.id, meta or {}, self.settings), RESULT_BACKEND))
                report.recovered += 1
            elif status == states.RETRY and not _rechecked(row):
                # A retry was published; its own events were lost. It waits like any queued job
                # from now on; judged lost if its queue moves past this moment without it.
                if row.status == _PROCESSING:
                    events.append(ev.retried(row.id, None, None, None, None, "retried (its report was lost)", None))
                events.append(ev.recheck(row.id, reason=RETRY_SEEN))
                report.rechecked += 1
            elif message.can_rebuild(row):
                lost.append(row)
            else:
                # Never silently gone: it says what happened and how to run it.
                fail = ev.failed(row.id, None, None, None, None, None)
                fail.update(err=UNREBUILDABLE, exc="MessageLost")
                events.append(fail)
                report.unrebuildable += 1
        voided = self._marked_cancelled([row.id for row in lost])
        for row in [row for row in lost if row.id in voided]:
            # Cancelled, or its dispatch answered an error after its row was written: never run.
            events.append(ev.cancelled(row.id, reason=VOIDED))
            report.voided += 1
        lost = [row for row in lost if row.id not in voided]
        ts = self.clock()
        events.extend(ev.republished(row.id, reason=lost_reason(row), ts=ts) for row in lost)
        if events:
            self.write(events)  # first: a crash before the publish leaves it for the next run
        for row in lost:
            try:
                self.publish(row)
            except Exception as exc:  # broker down: the next run tries again
                logger.warning("Job %s: not published again yet (%s)", row.id, exc)
                continue
            report.republished += 1

    def _marked_cancelled(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.zscore(redis_keys.CANCELLED_RECENT, job_id)
        return {job_id for job_id, score in zip(job_ids, pipe.execute(), strict=True) if score is not None}

    def _stored_outcomes(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = [self.backend.get_key_for_task(job_id) for job_id in job_ids]
        found: dict[str, dict[str, Any]] = {}
        for job_id, raw in zip(job_ids, self.backend.mget(keys), strict=True):
            if raw is None:
                continue
            try:
                meta = self.backend.decode_result(raw)
            except Exception:  # unreadable: treat as no outcome
                logger.warning("Job %s: unreadable result backend entry", job_id)
                continue
            if isinstance(meta, dict):
                found[job_id] = meta
        return found

    def _rehold_lost(self, session: Session, now: float) -> list[str]:
        """5. Jobs waiting for dependencies whose held copy Redis lost (app.composition.resync)."""

        grace = timedelta(seconds=self.settings.reliability.reconcile_grace_s)
        return rehold_lost(session, Hub(self.redis), datetime.fromtimestamp(now, UTC), grace)

    # -- 4. jobs whose dispatch failed ---------------------------------------------------------
    def _mark_unqueued(self, session: Session, now: float) -> int:
        """Cancel marks for jobs that failed as not queued in the last day (idempotent)."""
        since = datetime.fromtimestamp(now - 24 * 3600, UTC)
        ids = list(
            session.scalars(
                select(JobExecution.id).where(
                    # (status, updated_at) is indexed: only the last day's failures are read.
                    JobExecution.status == ExecutionStatus.FAILED.value,
                    JobExecution.updated_at > since,
                    JobExecution.exception_type == NOT_QUEUED,
                )
            )
        )
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.zscore(redis_keys.CANCELLED_RECENT, job_id)
        missing = [job_id for job_id, score in zip(ids, pipe.execute(), strict=True) if score is None]
        if missing:

            # Redis was down when their dispatch failed: mark them now, and announce the
            # failure so batches, chains and unique locks hear of it.
            pipe = self.redis.pipeline(transaction=True)
            for job_id in missing:
                add_cancel_mark(pipe, job_id)
                add_announcement(pipe, not_queued_event(job_id, "not queued (announced late: Redis was down)"))
            pipe.execute()
        return len(missing)


def _rechecked(row: JobExecution) -> bool:
    """Whether a retry of `row` was already waited for once (then it is lost: publish it)."""
    return any(note.get("text") == RETRY_SEEN for note in row.notes or [])


def lost_reason(row: JobExecution) -> str:
    if row.status == _PROCESSING:
        return "its worker's report of it was lost and its message is in no queue"
    return "its message is in no queue, unacknowledged set or worker (Redis lost it, or a worker died taking it)"
