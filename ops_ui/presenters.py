"""Plain functions turning models into API / template data.

Encrypted jobs (J9): payload, result, error message, traceback and attempt errors are shown
as "[encrypted]" in every answer and page; only `reveal_errors`, for an admin's audited
reveal, opens a sealed error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.crypto import REDACTED, EncryptionError, is_sealed, open_error
from app.models import JobExecution

ENCRYPTED = REDACTED
#: Fields of a job row or attempt that hold an error's text.
ERROR_FIELDS = frozenset({"error_message", "exception_trace"})


def is_encrypted(row: JobExecution) -> bool:
    """Whether payload and result must be hidden (J9).

    The payload check also covers a row written before the recorder saw the job's header.
    """
    return bool(row.encrypted) or is_sealed(row.payload)


def _error_text(text: str | None, encrypted: bool) -> str | None:
    return ENCRYPTED if encrypted and text is not None else text


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_to_dict(row: JobExecution) -> dict[str, Any]:
    """The job representation of API.md `GET /api/jobs/{id}` (plus a few extras)."""
    encrypted = is_encrypted(row)
    return {
        "id": row.id,
        "job_class": row.job_class,
        "queue": row.queue,
        "priority": row.priority,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "payload": ENCRYPTED if encrypted else row.payload,
        "result": ENCRYPTED if encrypted and row.result is not None else row.result,
        "error_message": _error_text(row.error_message, encrypted),
        "exception_type": row.exception_type,
        "exception_trace": _error_text(row.exception_trace, encrypted),
        "worker_id": row.worker_id,
        "execution_time_ms": row.execution_time_ms,
        "memory_usage_mb": row.memory_usage_mb,
        "tags": row.tags or [],
        "tenant_id": row.tenant_id,
        "batch_id": row.batch_id,
        "chain_id": row.chain_id,
        "chain_step": row.chain_step,
        "group_id": row.group_id,
        # Celery's canvas links (docs/composition.md "Celery's own canvas and retries"); the schedule that fired it.
        "parent_id": row.parent_id,
        "root_id": row.root_id,
        "schedule_id": row.schedule_id,
        "depends_on": row.depends_on or [],
        "throttled_until": iso(row.throttled_until),
        "retry_of": row.retry_of,
        "eta": iso(row.eta),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "failed_at": iso(row.failed_at),
        "cancelled_at": iso(row.cancelled_at),
        "updated_at": iso(row.updated_at),
        "published_at": iso(row.published_at),
        "due_at": iso(row.due_at),  # waiting in the scheduled set (app.kernel.scheduled)
        # Reported by the job (Job.progress); a completed job shows 100 (docs/jobs.md).
        "progress": row.progress,
        "progress_message": row.progress_message,
        "progress_done": row.progress_done,
        "progress_total": row.progress_total,
        # What the recorder and the reconciler found: lost workers, recovered outcomes,
        # messages published again (docs/reliability.md).
        "notes": [{"at": note.get("at"), "text": note.get("text")} for note in row.notes or []],
    }


class _HiddenErrors:
    """A row (job or attempt) whose error fields read "[encrypted]"; everything else is the row's."""

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._row, name)
        return ENCRYPTED if name in ERROR_FIELDS and value is not None else value


def shown_job(row: JobExecution) -> Any:
    """The row as a page shows it: an encrypted job's error and traceback read "[encrypted]"."""
    return _HiddenErrors(row) if is_encrypted(row) else row


def shown_attempts(row: JobExecution, attempts: list[Any]) -> list[Any]:
    """`row`'s attempts as a page shows them: an encrypted job's attempt errors hidden."""
    return [_HiddenErrors(a) for a in attempts] if is_encrypted(row) else attempts


def failure_report_to_dict(report: dict[str, Any], row: JobExecution) -> dict[str, Any]:
    """A failure report (app.failures.groups.failure_report) of `row` as the API shows it:
    an encrypted job's exception message, traceback and attempt errors are "[encrypted]"
    (the exception type stays readable)."""
    if not is_encrypted(row):
        return report
    shown = dict(report)
    exception = dict(report.get("exception") or {})
    exception["message"] = _error_text(exception.get("message"), True)
    shown["exception"] = exception
    shown["traceback"] = _error_text(report.get("traceback"), True)
    shown["attempts"] = [{**a, "error": _error_text(a.get("error"), True)} for a in report.get("attempts") or []]
    group = report.get("group")
    if isinstance(group, dict):
        shown["group"] = {**group, "last_message": _error_text(group.get("last_message"), True)}
    return shown


@dataclass(frozen=True)
class RevealedError:
    """One error of an encrypted job, opened for an admin's reveal page (never stored)."""

    #: "Final error" or "Attempt n".
    label: str
    type: str | None
    message: str | None
    traceback: str | None
    #: Whether it was sealed (the job's own exception) rather than stored as it is (a worker
    #: loss, a key error: Celeriac's own words, which hold no payload).
    sealed: bool = True
    #: Why it could not be opened (a key rotated out), or None.
    problem: str | None = None


def _reveal(label: str, exc_type: str | None, message: str | None, trace: str | None) -> RevealedError:
    try:
        opened = open_error(message)
    except EncryptionError as exc:
        return RevealedError(label, exc_type, None, None, problem=str(exc))
    if opened is None:
        return RevealedError(label, exc_type, message, trace, sealed=False)
    return RevealedError(label, opened.type or exc_type, opened.message, opened.traceback or None)


def reveal_errors(row: JobExecution, attempts: list[Any]) -> list[RevealedError]:
    """The job's final error, then each attempt's that differs from it, opened with the keys."""
    revealed = []
    if row.error_message is not None or row.exception_trace is not None:
        revealed.append(_reveal("Final error", row.exception_type, row.error_message, row.exception_trace))
    for attempt in attempts:
        if attempt.error_message is not None and attempt.error_message != row.error_message:
            revealed.append(_reveal(f"Attempt {attempt.number}", None, attempt.error_message, None))
    return revealed
