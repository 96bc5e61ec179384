"""Keep `failure_groups` in step with the recorder's writes (F4).

Called by the applier in the transaction that marks jobs failed, with only the rows a
batch made failed (a row becomes failed once), so a replayed batch changes nothing. The
skeleton insert ignores conflicts, so two recorders creating one group do not collide.
An encrypted job's failure never becomes a group's sample text: its message is "[encrypted]".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from app.crypto import REDACTED
from app.kernel.fingerprint import Fingerprint
from app.models import FailureGroup
from app.models.failure_group import MAX_GROUP_CLASSES, MAX_GROUP_SAMPLES

_GROUPS: Table = FailureGroup.__table__


@dataclass(frozen=True)
class NewFailure:
    """A job that failed for good in a committed batch: what reports and escalation need."""

    id: str
    tenant_id: str
    job_class: str
    queue: str
    fingerprint: Fingerprint
    message: str | None
    failed_at: datetime
    #: The group's count after this batch (filled in by `record_failures`).
    group_count: int = 0

    def __post_init__(self) -> None:
        if self.fingerprint.sealed:
            # An encrypted job's message is a token: groups, reports and notifications
            # (escalation) show "[encrypted]" instead.
            object.__setattr__(self, "message", REDACTED)


def _insert_missing(conn: Connection, skeletons: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(_GROUPS).on_conflict_do_nothing(), skeletons)
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(_GROUPS).on_conflict_do_nothing(), skeletons)
    else:  # pragma: no cover - other databases: insert what is not there yet
        keys = [(s["tenant_id"], s["fingerprint"]) for s in skeletons]
        have = set(conn.execute(select(_GROUPS.c.tenant_id, _GROUPS.c.fingerprint).where(_in(keys))).tuples())
        missing = [s for s in skeletons if (s["tenant_id"], s["fingerprint"]) not in have]
        if missing:
            conn.execute(_GROUPS.insert(), missing)


def _in(keys: Sequence[tuple[str, str]]) -> Any:
    return tuple_(_GROUPS.c.tenant_id, _GROUPS.c.fingerprint).in_(keys)


def _merge(row: dict[str, Any], failures: list[NewFailure]) -> dict[str, Any]:
    latest = failures[-1]
    classes = list(row["job_classes"] or [])
    for failure in failures:
        if failure.job_class not in classes and len(classes) < MAX_GROUP_CLASSES:
            classes.append(failure.job_class)
    samples = [f.id for f in reversed(failures)] + [i for i in row["sample_job_ids"] or [] if i]
    return {
        "_tenant": row["tenant_id"],
        "_fp": row["fingerprint"],
        "count": row["count"] + len(failures),
        "first_seen_at": min(row["first_seen_at"], failures[0].failed_at),
        "last_seen_at": max(row["last_seen_at"], latest.failed_at),
        "job_classes": classes,
        "sample_job_ids": list(dict.fromkeys(samples))[:MAX_GROUP_SAMPLES],
        "last_message": latest.message,
    }


def record_failures(conn: Connection, failures: Sequence[NewFailure], lock: bool) -> list[NewFailure]:
    """Add `failures` to their groups; returns them with each group's new count."""
    by_group: dict[tuple[str, str], list[NewFailure]] = {}
    for failure in sorted(failures, key=lambda f: f.failed_at):
        by_group.setdefault((failure.tenant_id, failure.fingerprint.key), []).append(failure)
    skeletons = [
        {
            "tenant_id": tenant,
            "fingerprint": key,
            "exception_type": group[0].fingerprint.exception_type[:200],
            "message": group[0].fingerprint.message,
            "frames": list(group[0].fingerprint.frames),
            "job_classes": [],
            "sample_job_ids": [],
            "count": 0,
            "first_seen_at": group[0].failed_at,
            "last_seen_at": group[0].failed_at,
        }
        for (tenant, key), group in sorted(by_group.items())
    ]
    _insert_missing(conn, skeletons)
    # Sorted, so recorders locking overlapping groups always lock them in one order.
    query = select(_GROUPS).where(_in(list(by_group))).order_by(_GROUPS.c.tenant_id, _GROUPS.c.fingerprint)
    if lock:
        query = query.with_for_update()
    changes = [
        _merge(dict(row), by_group[(row["tenant_id"], row["fingerprint"])]) for row in conn.execute(query).mappings()
    ]
    # Every change sets the same columns: one executemany.
    statement = update(_GROUPS).where(
        _GROUPS.c.tenant_id == bindparam("_tenant"), _GROUPS.c.fingerprint == bindparam("_fp")
    )
    conn.execute(statement, changes)
    counts = {(c["_tenant"], c["_fp"]): c["count"] for c in changes}
    return [replace(f, group_count=counts.get((f.tenant_id, f.fingerprint.key), 0)) for f in failures]
