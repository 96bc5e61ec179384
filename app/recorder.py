"""The execution recorder process (`python -m app.recorder`, Procfile `recorder`).

Reads the event stream through a consumer group, writes each batch to SQL in one
transaction, and only then acknowledges and deletes the events. If SQL is down the
events stay in the stream (pending for this consumer) and are written when it returns.
An event that SQL rejects on its own (not an outage) is moved to a dead-letter stream
so it cannot block the ones behind it.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app import redis_keys
from app.celery_app import celery_app
from app.composition.recorder_hook import CompositionStep
from app.config import Settings, get_settings
from app.db import session_scope
from app.failures.escalation import Escalator
from app.jobs.celery_backend import sync_registry_definitions
from app.kernel.apply import EventApplier
from app.kernel.failure_groups import NewFailure
from app.kernel.row_batch import Finished
from app.models import JobDefinition
from app.recording.attach import AttachedRecording
from app.recording.broker_view import Broker
from app.recording.reconcile import Reconciler
from app.recording.scheduled import Releaser
from app.recording.stream import Entry, decode_entries
from app.recording.stream_reader import CLAIM_IDLE_MS, StreamReader
from app.redis_client import get_redis
from celeriac.storable import storable

logger = logging.getLogger("app.recorder")

#: Longest pause between attempts while SQL is unreachable, in seconds.
MAX_BACKOFF_S = 5.0
#: How often the definition-id cache is refreshed, in seconds.
DEFINITIONS_REFRESH_S = 60.0


class Recorder(StreamReader):
    """One consumer of the event stream (reading it: app.recording.stream_reader)."""

    def __init__(self, settings: Settings, client: redis.Redis, name: str | None = None) -> None:
        super().__init__(settings, client, name)
        self.applier = EventApplier(default_tenant=settings.default_tenant)
        #: Batch callbacks, chain steps, dependants and unique locks of finished jobs.
        self.composition = CompositionStep(settings, client)
        #: Failure notifications (F3), delivered from a thread of their own.
        self.escalation = Escalator(settings.escalation, client)
        #: Jobs the writes since the last follow-up finished.
        self._finished: list[Finished] = []
        #: Jobs the writes since the last follow-up made failed (each handed over once).
        self._failures: list[NewFailure] = []
        self._definitions_loaded_at = 0.0
        self._stopping = False
        self._backoff_s = 0.0
        self._reconciler: Any = None
        self._last_reconcile = 0.0
        #: Jobs held in Celeriac's scheduled set (long delays), released here when due.
        self.scheduled = Releaser(settings, client, lambda: session_scope(settings.database_url))

    def stop(self, *_: Any) -> None:
        self._stopping = True

    def _refresh_definitions(self) -> None:
        if time.monotonic() - self._definitions_loaded_at < DEFINITIONS_REFRESH_S:
            return
        with session_scope(self.settings.database_url) as session:
            rows = session.execute(
                select(JobDefinition.job_class, JobDefinition.id).where(JobDefinition.tenant_id.is_(None))
            ).all()
        self.applier.definition_ids = {job_class: def_id for job_class, def_id in rows}
        self._definitions_loaded_at = time.monotonic()

    def _write(self, events: list[dict[str, Any]]) -> None:
        sqlite = self.settings.is_sqlite
        with session_scope(self.settings.database_url) as session:
            if sqlite:
                # Take the write lock before reading, so a cancel committed by the web
                # process between our read and our write cannot be overwritten.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            self.applier.apply(session, events, lock=not sqlite)
        self.scheduled.after_write(events)  # held retries join the set once their rows say so
        self._finished.extend(self.applier.finished)
        self._failures.extend(self.applier.failures)

    def _follow_up(self) -> None:
        failures, self._failures = self._failures, []
        # Before composition, which may raise: these rows are committed and a replay
        # would not report them again. Only queues work; never raises. (Jobs replayed after
        # a composition error are counted twice in the failure rates: a rare, harmless skew.)
        self.escalation.after_commit(self._finished, failures)
        finished, self._finished = self._finished, []
        try:
            self.composition.after_commit(finished)
        except BaseException:
            self._finished = finished + self._finished  # replayed, with the batch, next time
            raise

    def _write_one_by_one(self, events: list[dict[str, Any]]) -> None:
        """SQL is up but refused the batch: find the bad events and set them aside.

        An entry is acknowledged after its last event, so an outage part-way through an
        entry leaves it (and its unwritten events) in the stream; replays change nothing.
        """
        last = {event["_sid"]: index for index, event in enumerate(events)}
        for index, event in enumerate(events):
            try:
                self._write_storable(event)
            except OperationalError:
                raise  # an outage after all: keep the events and retry later
            except Exception as exc:  # refused on its own (a malformed event)
                dead = redis_keys.DEAD_EVENTS_STREAM
                logger.error("Recorder: event %s of job %s moved to %s: %s", event["t"], event["id"], dead, exc)
                clean = {k: v for k, v in event.items() if k != "_sid"}
                self.redis.xadd(dead, {"e": json.dumps(clean, default=str), "error": str(exc)[:1000]})
                self.stats.dead += 1
            if last[event["_sid"]] == index:
                self._ack([event["_sid"]])

    def _write_storable(self, event: dict[str, Any]) -> None:
        """Write one event; if SQL refuses a value in it (a NUL, an infinity), write it again
        with such values in a safe form, so the job still reaches its state."""
        try:
            self._write([event])
        except OperationalError:
            raise
        except Exception as exc:
            safe = {**storable({k: v for k, v in event.items() if k != "_sid"}), "_sid": event.get("_sid")}
            if {**safe, "_sid": None} == {**event, "_sid": None}:
                raise
            logger.warning("Recorder: event %s of job %s stored in a safe form (%s)", event["t"], event["id"], exc)
            self._write([safe])

    def process(self, entries: list[Entry]) -> int:
        """Write `entries` to SQL and acknowledge them. Returns events written."""
        if not entries:
            return 0
        events, junk = decode_entries(entries)
        if junk:
            logger.error("Recorder: %d stream entries were not events; dropped", len(junk))
            self._ack(junk)
        if not events:
            return 0
        try:
            self._refresh_definitions()
            self._write(events)
        except OperationalError:
            # Connection lost, lock or statement timeout, disk full: all worth retrying.
            self.stats.failures += 1
            raise
        except Exception:  # IntegrityError, DataError, or an event the applier cannot read
            logger.exception("Recorder: batch of %d events refused; writing them one by one", len(events))
            self.stats.failures += 1
            self._write_one_by_one(events)
            self._follow_up()
        else:
            # Before the ack: if Redis fails here, the batch is replayed (all idempotent).
            self._follow_up()
            self._ack(list(dict.fromkeys(e["_sid"] for e in events)))
        now = time.time()
        self.stats.lags_ms.extend((now - e.get("ts", now)) * 1000 for e in events)
        self.stats.events += len(events)
        self.stats.batches += 1
        return len(events)

    def run_once(self) -> int:
        """Read and write one batch; on an outage, wait (with backoff) and return 0."""
        try:
            written = self.process(self.read())
            self._backoff_s = 0.0
            return written
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            # Redis lost the stream and its group (restarted without its data, or flushed
            # while this read was blocked): make them again and go on; the reconciler deals
            # with what was lost with them.
            logger.error("Recorder: the event stream or its group is gone (%s); recreating it", exc)
            self.ensure_group()
            self._read_pending = True
            return 0
        except (SQLAlchemyError, redis.RedisError) as exc:
            self._read_pending = True
            self._backoff_s = min(MAX_BACKOFF_S, max(0.2, self._backoff_s * 2))
            logger.warning("Recorder: backend unavailable (%s); retrying in %.1fs", exc, self._backoff_s)
            time.sleep(self._backoff_s)
            return 0

    def run(self) -> None:
        self.ensure_group()
        self.composition.start()
        logger.info("Recorder %s reading %s", self.name, redis_keys.EVENTS_STREAM)
        last_stats = last_claim = 0.0
        while not self._stopping:
            self.run_once()
            self.composition.safe_drain()
            now = time.monotonic()
            try:
                if now - last_claim > CLAIM_IDLE_MS / 1000:
                    self.claim_stale()
                    last_claim = now
                if now - last_stats > 1.0:
                    self.publish_stats()
                    last_stats = now
            except redis.RedisError as exc:
                logger.warning("Recorder: could not publish stats: %s", exc)
            self.maybe_reconcile()
            self.scheduled.maybe_release()
        self.escalation.stop()
        logger.info("Recorder %s stopped", self.name)


    # -- the reconciler (app.recording.reconcile) -------------------------------------------
    def write_and_follow_up(self, events: list[dict[str, Any]]) -> None:
        """Write events the reconciler made, exactly as the stream's are written."""
        self._refresh_definitions()
        self._write(events)
        self._follow_up()

    def maybe_reconcile(self, force: bool = False) -> Any:
        """Run the reconciler when it is due, the stream is written and no other recorder runs it.

        Returns its report, or None when it did not run.
        """
        interval = self.settings.reliability.reconcile_interval_s
        now = time.monotonic()
        if not force and (interval <= 0 or now - self._last_reconcile < interval):
            return None
        self._last_reconcile = now
        if self.backlog > self.settings.reliability.reconcile_backlog_limit:
            logger.info("Recorder: %d events to write first; reconciling later", self.backlog)
            return None
        try:
            if not self.redis.set(
                redis_keys.RECONCILE_LOCK, self.name, nx=True, ex=redis_keys.RECONCILE_LOCK_TTL_S
            ):
                return None
            try:
                report = self.reconciler().run_once()
                self.scheduled.after_reconcile(report)
                return report
            finally:
                self.redis.delete(redis_keys.RECONCILE_LOCK)
        except (SQLAlchemyError, redis.RedisError) as exc:
            self._reconciler = None  # a fresh broker connection next time
            logger.warning("Recorder: reconcile skipped, a backend is unavailable (%s)", exc)
        except Exception:  # a bug must not stop recording
            logger.exception("Recorder: reconcile failed")
        return None

    def reconciler(self) -> Any:
        if self._reconciler is None:
            connection = celery_app.connection_for_write()
            self._reconciler = Reconciler(
                self.settings,
                self.redis,
                lambda: session_scope(self.settings.database_url),
                self.write_and_follow_up,
                backend=celery_app.backend,
                broker=Broker(connection.default_channel),
            )
        return self._reconciler


def reconcile_once(settings: Settings, client: redis.Redis, name: str) -> Any:
    """One reconciliation pass now (CLI, maintenance task); None if a recorder is running one."""
    recorder = Recorder(settings, client, name=name)
    recorder.publish_stats_quietly()
    return recorder.maybe_reconcile(force=True)


def _sync_definitions() -> None:
    """Definitions are synced at start-up by every long-running process that has SQL."""
    try:
        added = sync_registry_definitions()
        if added:
            logger.info("Added %d job definitions from code", added)
    except SQLAlchemyError as exc:
        logger.warning("Job definitions not synced (%s); run `flask db upgrade`", exc.__class__.__name__)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    _sync_definitions()
    recorder = Recorder(settings, get_redis(settings.redis_url))
    signal.signal(signal.SIGTERM, recorder.stop)
    signal.signal(signal.SIGINT, recorder.stop)
    # CELERIAC_ATTACH: the project's own workers, recorded from Celery's task events.
    attached = AttachedRecording(settings, recorder.redis, celery_app).start() if settings.attach.enabled else None
    try:
        recorder.run()
    finally:
        if attached is not None:
            attached.stop()


if __name__ == "__main__":
    main()
