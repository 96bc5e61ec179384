"""Tell SQLite's query planner that a condition on live statuses is rare.

Live executions (pending, retrying, processing) are a sliver of a history of millions, but
SQLite's `ANALYZE` statistics hold only an average per index prefix: to it, `status =
'pending'` matches half the table, so it scans the whole `(queue, status)` index to avoid a
sort (400 ms at 1,000,000 rows). Wrapped in `likelihood(..., 0.001)` the same condition lets
it skip-scan that index instead (0.1 ms). PostgreSQL keeps per-value statistics and needs no
hint, so the condition is left as it is there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column

#: The share of rows SQLite is told a live-status condition matches.
LIVE_SHARE = 0.001


def rare(condition: Any, dialect_name: str) -> Any:
    """`condition`, marked as matching few rows for SQLite's planner."""
    if dialect_name != "sqlite":
        return condition
    # A literal, not a bound parameter: SQLite wants a constant; untyped, so no "= 1" is added.
    return func.likelihood(condition, literal_column(repr(LIVE_SHARE)))


def dialect_of(session_or_conn: Any) -> str:
    """The dialect name of a Session or a Connection."""
    bind = session_or_conn.get_bind() if hasattr(session_or_conn, "get_bind") else session_or_conn
    return str(bind.dialect.name)
