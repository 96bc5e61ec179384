"""Reading event values into row values: times, bounded text, timeline notes.

Shared by the event handlers (app.kernel.apply) and the rules they use
(app.kernel.canvas_relations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: Most timeline notes kept on one job (the oldest go first).
MAX_NOTES = 50


def moment(ts: float | None) -> datetime | None:
    """An event's epoch seconds as an aware datetime."""
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def parse_iso(value: Any) -> datetime | None:
    """An ISO 8601 text (Celery's `eta` / `expires`) as an aware datetime; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cut(value: Any, limit: int) -> Any:
    """`value` cut to fit a column of `limit` characters (non-text as it is)."""
    return value[:limit] if isinstance(value, str) else value


def later(current: datetime | None, ts: float) -> datetime | None:
    """The later of `current` and `ts`: a publish time only moves forward."""
    when = moment(ts)
    if current is None or (when is not None and when > current):
        return when
    return current


def add_note(row: Any, e: dict[str, Any], text: str) -> None:
    """Append a line for event `e` to the row's timeline notes: once per event (a replay
    adds nothing), at most MAX_NOTES kept."""
    notes = list(row.notes or [])
    if any(note.get("eid") == e.get("eid") for note in notes):
        return
    at = moment(e["ts"])
    notes.append({"at": at.isoformat() if at else None, "text": text[:1000], "eid": e.get("eid")})
    row.notes = notes[-MAX_NOTES:]
