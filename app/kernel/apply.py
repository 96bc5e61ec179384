"""Apply a batch of execution events to SQL, idempotently and forward-only.

Events arrive duplicated and out of order (buffers in different processes flush at
different moments), so:
- static facts (tenant, payload, queue...) come from the `pub` event whenever it arrives;
- a status changes only if the row is not terminal and the event is not older than the
  change that set the current status;
- attempts are keyed by the start event's attempt key, so a replay never adds one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.kernel import canvas_relations, progress
from app.kernel.event_values import add_note
from app.kernel.event_values import cut as _cut
from app.kernel.event_values import later as _later
from app.kernel.event_values import moment as _dt
from app.kernel.event_values import parse_iso as _parse_iso
from app.kernel.failure_groups import NewFailure, record_failures
from app.kernel.row_batch import (
    FINAL_KINDS,
    AttemptRow,
    BatchState,
    ExecutionRow,
    Finished,
    aggregate,
    fingerprint_failed,
    load_rows,
    save_rows,
)
from app.models import ExecutionStatus, may_change_status
from celeriac.shape import with_header

#: Error given to an attempt closed by a re-publish before its own outcome arrived.
LOST_OR_RETRIED = "worker lost or retried"
#: Status of an attempt whose worker process died under it (the job ran again).
ATTEMPT_LOST = "lost"
_RETRYING = ExecutionStatus.RETRYING.value


class EventApplier:
    """Folds events into `JobExecution` / `JobAttempt` rows."""

    def __init__(self, definition_ids: dict[str, str] | None = None, default_tenant: str = "default") -> None:
        #: Tenant of jobs published without Celeriac's header (plain `.delay()` elsewhere).
        self.default_tenant = default_tenant
        #: job_class -> job_definitions.id, for tasks dispatched without Celeriac's header.
        self.definition_ids = definition_ids or {}
        #: Jobs the last `apply` left terminal after a final event (for the follow-ups).
        self.finished: list[Finished] = []
        #: Jobs the last `apply` made failed, with their group counts (for escalation).
        self.failures: list[NewFailure] = []
        #: Jobs whose status the last `apply` changed.
        self.changed: set[str] = set()

    def apply(self, session: Session, events: Iterable[dict[str, Any]], lock: bool = False) -> int:
        """Apply `events` in `session` (the caller commits). Returns events applied."""
        ordered = sorted(events, key=lambda e: e.get("ts", 0.0))
        ids = list(dict.fromkeys(e["id"] for e in ordered))
        self.changed = set()
        conn = session.connection()
        state = load_rows(conn, ids, lock)
        for event in ordered:
            if event["id"] not in state.executions:
                row = self._new_row(event)
                state.executions[row.id] = row
        for event in ordered:
            row = state.executions[event["id"]]
            handler = getattr(self, "_on_" + event["t"], None)
            if handler is not None:
                handler(session, state, row, event)
        aggregate(state, conn)
        save_rows(conn, state)
        self.failures = record_failures(conn, state.failures, lock) if state.failures else []
        self.finished = [
            Finished(
                row.id,
                row.status,
                row.batch_id,
                row.chain_id,
                row.chain_step,
                row.unique_key,
                row.tenant_id,
                row.job_class,
            )
            for row in (state.executions[i] for i in dict.fromkeys(e["id"] for e in ordered if e["t"] in FINAL_KINDS))
            if ExecutionStatus(row.status).is_terminal
        ]
        return len(ordered)

    def _new_row(self, event: dict[str, Any]) -> ExecutionRow:
        ts = event.get("ts", 0.0)
        task = _cut(event.get("task") or "unknown", 200)
        return ExecutionRow(
            dict(
                id=event["id"],
                tenant_id=self.default_tenant,
                job_class=task,
                job_definition_id=self.definition_ids.get(task),
                queue=_cut(event.get("q") or "default", 100),
                priority=5,
                status=ExecutionStatus.PENDING.value,
                status_ts=0.0,
                attempts=0,
                max_attempts=1,
                payload=event.get("pl"),
                created_at=_dt(ts),
                updated_at=_dt(ts),
            )
        )

    def _set_status(self, row: ExecutionRow, status: ExecutionStatus, ts: float) -> bool:
        if not may_change_status(ExecutionStatus(row.status), row.status_ts, ts, status):
            return False
        if row.status != status.value:
            self.changed.add(row.id)
        row.status = status.value
        row.status_ts = ts
        row.updated_at = _dt(ts) or row.updated_at
        return True

    # -- event kinds ---------------------------------------------------------------
    def _on_pub(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        header = e.get("c") or {}
        row.job_class = _cut(e.get("task") or row.job_class, 200)
        row.queue = _cut(e.get("q") or row.queue, 100)
        row.priority = int(e.get("pr", row.priority))
        row.payload = e.get("pl", row.payload)
        row.tenant_id = _cut(header.get("tenant") or row.tenant_id, 64)
        row.tags = header.get("tags", row.tags)
        row.retry_of = header.get("retry_of", row.retry_of)
        row.batch_id = header.get("batch", row.batch_id)
        row.chain_id = header.get("chain", row.chain_id)
        row.schedule_id = header.get("schedule", row.schedule_id)
        row.encrypted = bool(header.get("encrypted", row.encrypted))
        row.job_definition_id = (
            header.get("definition") or row.job_definition_id or (self.definition_ids.get(row.job_class))
        )
        row.depends_on = header.get("depends_on", row.depends_on)
        row.chain_step = header.get("chain_step", row.chain_step)
        row.unique_key = header.get("unique", row.unique_key)
        canvas_relations.apply_publish(row, e)  # parent, root, group; max_attempts
        row.eta = _parse_iso(e.get("eta")) or row.eta
        row.expires_at = _parse_iso(e.get("exp")) or row.expires_at
        created = _dt(e.get("ts"))
        if created is not None and (row.created_at is None or created < row.created_at):
            row.created_at = created
        if not header.get("in_process") and not header.get("mark"):
            # in_process: run in the dispatching process (dispatch_now), no message ever sat
            # in a queue; mark: an attached job's start tagging its row (celery_events).
            row.published_at = _later(row.published_at, e["ts"])
            if isinstance(e.get("m"), dict):
                row.message = with_header(e["m"], e.get("c"))
        if int(e.get("r") or 0) > 0 and not header.get("throttled"):
            # A re-publish of a running job: a retry, or a worker that died mid-task.
            self._close_open(state, row, e["ts"], "retrying", LOST_OR_RETRIED)
            if not header.get("events"):  # from Celery's events, a start may still be on its way
                self._ensure_attempts(session, state, row, int(e["r"]), e["ts"], "retrying")
            self._set_status(row, ExecutionStatus.RETRYING, e["ts"])
        # r == 0: the row is pending already (new rows start so, with status_ts 0, which
        # lets any worker event replace it whatever the clocks say).

    def _on_start(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        key = e.get("ak")
        if not key or key in state.attempts:
            return  # replayed start: the attempt is already counted
        if e.get("pl") is not None and row.payload is None:
            row.payload = e["pl"]
        if e.get("q") and row.queue == "default":
            row.queue = _cut(e["q"], 100)
        canvas_relations.apply_start(row, e)
        started = _dt(e["ts"])
        row.throttled_until = None
        progress.start_attempt(row)
        attempt = self._add_attempt(session, state, row, key, ExecutionStatus.PROCESSING.value, started)
        attempt.worker_id = _cut(e.get("w"), 200)
        state.open_attempts.setdefault(row.id, []).append(attempt)
        if row.started_at is None:
            row.started_at = started
        moved = self._set_status(row, ExecutionStatus.PROCESSING, e["ts"])
        if moved or row.worker_id is None:
            row.worker_id = _cut(e.get("w"), 200)
        if moved:
            row.due_at = None  # a redelivered run started: a held copy of it is dropped when due
        if ExecutionStatus(row.status).is_terminal and row.status_ts >= e["ts"]:
            # The outcome arrived before this start (buffers flush independently).
            outcome = {"ak": key, "ts": row.status_ts, "rt": row.execution_time_ms, "err": row.error_message}
            self._close(state, row, outcome, row.status)

    @staticmethod
    def _add_attempt(
        session: Session, state: BatchState, row: ExecutionRow, key: str, status: str, started: datetime | None
    ) -> AttemptRow:
        """Count a new attempt of `row`; `_save` inserts it after the row."""
        row.attempts += 1
        attempt = AttemptRow(
            dict(execution_id=row.id, attempt_key=key, number=row.attempts, status=status, started_at=started)
        )
        state.attempts[key] = attempt
        return attempt

    def _close(self, state: BatchState, row: ExecutionRow, e: dict[str, Any], status: str) -> None:
        attempt = state.attempts.get(e.get("ak") or "")
        if attempt is None:
            opened = state.open_attempts.get(row.id) or []
            attempt = opened[-1] if opened else None
        if attempt is None:
            return
        if attempt.finished_at is not None:
            # Closed early by the retry's re-publish: the attempt's own event knows more.
            if attempt.error_message == LOST_OR_RETRIED and e.get("err"):
                attempt.error_message = e.get("err")
                attempt.runtime_ms = e.get("rt", attempt.runtime_ms)
            return
        attempt.finished_at = _dt(e["ts"])
        attempt.status = status
        attempt.runtime_ms = e.get("rt")
        attempt.error_message = e.get("err")
        opened = state.open_attempts.get(row.id) or []
        if attempt in opened:
            opened.remove(attempt)

    def _ensure_attempts(
        self, session: Session, state: BatchState, row: ExecutionRow, count: int, ts: float, status: str
    ) -> None:
        """Account for attempts whose start event was lost with a SIGKILLed process.

        Keyed by execution and number, so a replay adds nothing.
        """
        while row.attempts < count:
            key = f"{row.id}:lost:{row.attempts + 1}"
            if key in state.attempts:
                return
            attempt = self._add_attempt(session, state, row, key, status, _dt(ts))
            attempt.finished_at = _dt(ts)
            attempt.error_message = "the worker process died; its start was not recorded"

    def _close_open(self, state: BatchState, row: ExecutionRow, ts: float, status: str, err: str) -> None:
        for attempt in list(state.open_attempts.get(row.id) or []):
            if attempt.started_at.timestamp() <= ts:
                self._close(state, row, {"ak": attempt.attempt_key, "ts": ts, "err": err}, status)

    def _on_ok(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        self._close(state, row, e, ExecutionStatus.COMPLETED.value)
        if self._set_status(row, ExecutionStatus.COMPLETED, e["ts"]):
            row.completed_at = _dt(e["ts"])
            row.execution_time_ms = e.get("rt")
            row.memory_usage_mb = e.get("mem")
            row.result = e.get("res")  # an encrypted job's worker already sealed it (J9)
            row.error_message = None
            row.exception_type = None
            row.exception_trace = None
            progress.complete(row)
            self._note_recovery(row, e)

    def _set_error(self, row: ExecutionRow, e: dict[str, Any]) -> None:
        row.error_message = e.get("err") or row.error_message
        row.exception_type = _cut(e.get("exc"), 200) or row.exception_type
        row.exception_trace = e.get("tb") or row.exception_trace
        if e.get("rt") is not None:
            row.execution_time_ms = e.get("rt")
        if e.get("mem") is not None:
            row.memory_usage_mb = e.get("mem")

    def _on_fail(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        if "r" in e and not e.get("ak") and not state.open_attempts.get(row.id):
            # Failed in the worker's main process (lost worker, hard time limit) and the
            # attempt's own start never reached us.
            self._ensure_attempts(session, state, row, int(e.get("r") or 0) + 1, e["ts"], "failed")
        self._close(state, row, e, ExecutionStatus.FAILED.value)
        if self._set_status(row, ExecutionStatus.FAILED, e["ts"]):
            row.failed_at = _dt(e["ts"])
            canvas_relations.apply_spent(row, e)
            self._set_error(row, e)
            fingerprint_failed(state, row)
            self._note_recovery(row, e)

    def _on_retry(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        self._close(state, row, e, ExecutionStatus.RETRYING.value)
        if self._set_status(row, ExecutionStatus.RETRYING, e["ts"]):
            self._set_error(row, e)

    def _on_cancel(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        self._close(state, row, {**e, "err": e.get("reason")}, ExecutionStatus.CANCELLED.value)
        if self._set_status(row, ExecutionStatus.CANCELLED, e["ts"]):
            row.cancelled_at = _dt(e["ts"])
            row.error_message = e.get("reason")
            self._note_recovery(row, e)
        if e.get("task") and row.job_class == "unknown":
            row.job_class = _cut(e["task"], 200)

    def _on_reject(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        if e.get("raw") is not None and row.payload is None:
            row.payload = {"raw": e["raw"]}
        if self._set_status(row, ExecutionStatus.FAILED, e["ts"]):
            row.failed_at = _dt(e["ts"])
            row.error_message = e.get("err")
            row.exception_type = "Rejected"
            fingerprint_failed(state, row)

    def _on_hold(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        """A retry held in the scheduled set (app.kernel.held_retry): no message until `due`."""
        if ExecutionStatus(row.status).is_terminal or row.status_ts > e["ts"]:
            return
        row.due_at = row.eta = _dt(e.get("due"))
        row.published_at = None
        row.message = {**(row.message or {}), "r": int(e.get("r") or 0)}

    def _on_throttle(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        """A global rate limit re-queued the job without running it (J10)."""
        if not ExecutionStatus(row.status).is_terminal:
            row.throttled_until = _dt(e.get("until"))

    @staticmethod
    def _note_recovery(row: ExecutionRow, e: dict[str, Any]) -> None:
        if e.get("via"):
            add_note(row, e, f"Outcome recovered from {e['via']}: its worker's own report of it was lost")

    def _back_in_queue(self, state: BatchState, row: ExecutionRow, ts: float, why: str) -> None:
        """The job will run again from a fresh message: close what ran, count from now."""
        self._close_open(state, row, ts, ATTEMPT_LOST, why)
        status = ExecutionStatus.RETRYING if row.attempts else ExecutionStatus.PENDING
        self._set_status(row, status, ts)
        row.published_at = _later(row.published_at, ts)

    def _on_lost(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        """The worker process died under the job; its message is back in the queue (R1)."""
        if ExecutionStatus(row.status).is_terminal:
            return  # finished after all (its outcome reached us first)
        reason = str(e.get("reason") or "worker process lost")
        self._back_in_queue(state, row, e["ts"], f"worker lost: {reason}")
        counted = f" (loss {e['n']})" if e.get("n") else ""
        add_note(row, e, f"Worker lost ({reason}); put back in its queue{counted}")

    def _on_republish(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        """The reconciler published the job again: its message was in no queue (R1)."""
        if ExecutionStatus(row.status).is_terminal:
            return
        reason = str(e.get("reason") or "its message was lost")
        self._back_in_queue(state, row, e["ts"], f"lost: {reason}")
        add_note(row, e, f"Published again by the reconciler: {reason}")

    def _on_recheck(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        if ExecutionStatus(row.status).is_terminal:
            return
        row.published_at = _later(row.published_at, e["ts"])
        if e.get("reason"):
            add_note(row, e, str(e["reason"]))

    def _on_progress(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        progress.apply_progress(state, row, e)

    def _on_note(self, session: Session, state: BatchState, row: ExecutionRow, e: dict[str, Any]) -> None:
        add_note(row, e, str(e.get("text") or ""))
