"""How progress events change a job row (`self.progress(done, total, message)`), forward only.

Rules (docs/jobs.md "Progress"):
- a completed job shows 100 % (done = total when a total was reported), whatever it reported;
- a failed or cancelled job keeps the last report made before it ended (how far it got);
- a report of an earlier attempt than the row's latest is stale and ignored;
- within an attempt the bar never moves back: a report below the shown percentage is
  ignored (reports can reach the recorder late and out of order);
- a new attempt starts again from nothing.
"""

from __future__ import annotations

from typing import Any

from app.kernel.row_batch import BatchState
from app.models import ExecutionStatus

_COMPLETED = ExecutionStatus.COMPLETED.value


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _is_stale(state: BatchState, row: Any, e: dict[str, Any]) -> bool:
    """Whether `e` comes from an attempt older than the row's latest (a late report)."""
    attempt = state.attempts.get(e.get("ak") or "")
    return attempt is not None and attempt.number < (row.attempts or 0)


def apply_progress(state: BatchState, row: Any, e: dict[str, Any]) -> bool:
    """Fold progress event `e` into `row`; returns whether it changed it."""
    percent = _as_int(e.get("p"))
    if percent is None or not 0 <= percent <= 100:
        return False
    status = ExecutionStatus(row.status)
    if status.value == _COMPLETED or _is_stale(state, row, e):
        return False
    if status.is_terminal and e.get("ts", 0.0) > (row.status_ts or 0.0):
        return False  # said after the end: cannot be
    if row.progress is not None and percent < row.progress:
        return False  # the bar never moves back within an attempt
    row.progress = percent
    row.progress_done = _as_int(e.get("d"))
    row.progress_total = _as_int(e.get("n"))
    message = e.get("msg")
    row.progress_message = message if isinstance(message, str) else None
    return True


def start_attempt(row: Any) -> None:
    """A new attempt began on a live job: its progress starts from nothing."""
    if not ExecutionStatus(row.status).is_terminal and row.progress is not None:
        row.progress = row.progress_done = row.progress_total = row.progress_message = None


def complete(row: Any) -> None:
    """The job completed: 100 %, every reported step done."""
    row.progress = 100
    if row.progress_total is not None:
        row.progress_done = row.progress_total
