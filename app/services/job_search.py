"""The Jobs page's search (U2): every filter, keyset pages, and where each one is cheap.

Indexed filters narrow the rows through `job_executions` indexes: tenant + created_at
(ix_exec_tenant_created_id, ix_exec_created_id), tenant + status (ix_exec_tenant_status_created),
job class (ix_exec_job_class), an id prefix of at least four hex digits (the primary key range).
Tag, payload text and an id prefix holding other characters have no index: they are checked
on at most SCAN_WINDOW rows per page (the newest rows the indexed filters leave, from the
cursor on), so a search that matches nothing still reads a bounded number of rows; the page
then offers "search older jobs" (a cursor at the end of the window).
Payload search never looks inside encrypted payloads (the `encrypted` flag or a sealed envelope).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, false, func, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session

from app.crypto import ENVELOPE_KEY
from app.errors import ValidationError
from app.kernel.cursors import encode_position
from app.kernel.system_jobs import not_system, system_only
from app.models import LIVE_STATUSES, ExecutionStatus, JobExecution
from app.services.jobs import MAX_PAGE, decode_cursor

#: Rows a tag, payload or id-fragment search examines per page at most.
SCAN_WINDOW = 5000
#: Longest payload search text.
MAX_TEXT = 200
#: Shortest id prefix (shorter ones would match a sixteenth of the table or more).
MIN_ID_PREFIX = 4
#: Length of a Celery task id (a UUID).
FULL_ID_LENGTH = 36

#: Statuses "retry" applies to, and statuses "cancel" applies to.
RETRYABLE = (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)
CANCELLABLE = tuple(sorted(s.value for s in LIVE_STATUSES))

_HEX = re.compile(r"^[0-9a-f]+$")
#: The form fields the page and the bulk forms carry, in display order.
FIELDS = ("status", "queue", "job_class", "tenant", "tag", "from", "to", "id", "q", "fingerprint")
#: Most jobs a status count reads; beyond it the page shows "10,000+".
COUNT_CAP = 10_000


@dataclass(frozen=True)
class JobQuery:
    """What the operator asked for; None means "any". `tenant_id` None: every tenant."""

    tenant_id: str | None
    status: str | None = None
    queue: str | None = None
    job_class: str | None = None
    tag: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: A whole job id, or its first characters.
    job_id: str | None = None
    #: Text to find inside payloads.
    text: str | None = None
    #: A failure group (app.kernel.fingerprint), for "the jobs of this group".
    fingerprint: str | None = None
    #: False: leave out Celeriac's own maintenance tasks (app.kernel.system_jobs); None: keep them.
    system: bool | None = None

    @property
    def scans(self) -> bool:
        """Whether a filter without an index is set (the page search is windowed)."""
        return bool(self.tag or self.text or (self.job_id and not _indexed_id(self.job_id)))

    @property
    def is_empty(self) -> bool:
        """No filter at all but the tenant (and the system-jobs choice): "all matching" means every job."""
        return all(getattr(self, f.name) is None for f in fields(self) if f.name not in ("tenant_id", "system"))

    def with_status(self, status: str | None) -> JobQuery:
        return replace(self, status=status)


@dataclass(frozen=True)
class Page:
    rows: list[JobExecution]
    next_cursor: str | None
    #: The search reached the end of its scan window before the page filled up.
    window_ended: bool = False


class FilterErrors(Exception):
    """Raised when form values are invalid: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse_instant(raw: str, name: str) -> datetime:
    """A `datetime-local` value (or any ISO 8601 time); one without an offset is UTC.

    Raises:
        ValueError: with a message for the operator.
    """
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name} is not a date and time like 2026-11-23T14:30") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_query(args: Mapping[str, str], tenant_id: str | None, hide_system: bool = False) -> JobQuery:
    """The query of the form values `args`; `tenant_id` is the caller's (None: superadmin).

    Everyone but a superadmin is fixed to their own tenant, whatever `args` say. With
    `hide_system` (the console's list), Celeriac's own maintenance tasks are left out unless
    `system=1` is given or a job class, id or failure group names the jobs.

    Raises:
        FilterErrors: a value is invalid (the message names it).
    """
    errors: dict[str, str] = {}

    def text(name: str, longest: int = 200) -> str | None:
        value = (args.get(name) or "").strip()
        if len(value) > longest:
            errors[name] = f"at most {longest} characters"
        return value or None

    status = text("status")
    if status is not None and status not in {s.value for s in ExecutionStatus}:
        errors["status"] = f"unknown status {status!r}; choose one of {', '.join(s.value for s in ExecutionStatus)}"
    moments: dict[str, datetime | None] = {}
    for name, label in (("from", "Created from"), ("to", "Created to")):
        raw = text(name)
        moments[name] = None
        if raw is not None:
            try:
                moments[name] = parse_instant(raw, label)
            except ValueError as exc:
                errors[name] = str(exc)
    start, end = moments["from"], moments["to"]
    if start is not None and end is not None and start > end:
        errors["to"] = "Created to is before Created from"
    job_id = text("id", FULL_ID_LENGTH)
    if job_id is not None and len(job_id) < MIN_ID_PREFIX:
        errors["id"] = f"type at least {MIN_ID_PREFIX} characters of the job id"
    query = JobQuery(
        tenant_id=tenant_id if tenant_id is not None else text("tenant", 64),
        status=status,
        queue=text("queue", 100),
        job_class=text("job_class"),
        tag=text("tag", 100),
        created_from=start,
        created_to=end,
        job_id=job_id,
        text=text("q", MAX_TEXT),
        fingerprint=text("fingerprint", 32),
    )
    named = query.job_class or query.job_id or query.fingerprint
    if hide_system and args.get("system") != "1" and not named:
        query = replace(query, system=False)
    if errors:
        raise FilterErrors(errors)
    return query


def query_args(query: JobQuery, fixed_tenant: bool) -> dict[str, str]:
    """The form values that give back `query` (for links, hidden fields and polling URLs)."""
    values = {
        "status": query.status,
        "queue": query.queue,
        "job_class": query.job_class,
        "tenant": None if fixed_tenant else query.tenant_id,
        "tag": query.tag,
        "from": _form_time(query.created_from),
        "to": _form_time(query.created_to),
        "id": query.job_id,
        "q": query.text,
        "fingerprint": query.fingerprint,
        "system": "1" if query.system is None else None,
    }
    return {k: v for k, v in values.items() if v}


def _form_time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value is not None else None


def _indexed_id(job_id: str) -> bool:
    return len(job_id) == FULL_ID_LENGTH or bool(_HEX.match(job_id))


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def indexed_conditions(query: JobQuery) -> list[ColumnElement[bool]]:
    """The filters an index serves."""
    j = JobExecution
    out: list[ColumnElement[bool]] = []
    if query.tenant_id is not None:
        out.append(j.tenant_id == query.tenant_id)
    if query.status is not None:
        out.append(j.status == query.status)
    if query.queue is not None:
        out.append(j.queue == query.queue)
    if query.job_class is not None:
        out.append(j.job_class == query.job_class)
    if query.fingerprint is not None:
        out.append(j.fingerprint == query.fingerprint)
    if query.created_from is not None:
        out.append(j.created_at >= query.created_from)
    if query.created_to is not None:
        out.append(j.created_at <= query.created_to)
    if query.system is False:
        out.append(not_system())
    if query.job_id is not None and _indexed_id(query.job_id):
        if len(query.job_id) == FULL_ID_LENGTH:
            out.append(j.id == query.job_id)
        else:  # hex digits sort the same in every collation: a primary-key range
            upper = query.job_id[:-1] + chr(ord(query.job_id[-1]) + 1)
            out += [j.id >= query.job_id, j.id < upper]
    return out


def scan_conditions(query: JobQuery) -> list[ColumnElement[bool]]:
    """The filters checked row by row (LIKE on JSON text)."""
    j = JobExecution
    out: list[ColumnElement[bool]] = []
    if query.tag is not None:
        # tags is a JSON list of strings; its text holds each tag JSON-quoted.
        out.append(cast(j.tags, String).like(f"%{_like(json.dumps(query.tag))}%", escape="\\"))
    if query.text is not None:
        payload = cast(j.payload, String)
        forms = {query.text, json.dumps(query.text)[1:-1]}  # as typed, and as JSON escapes it
        out += [
            j.encrypted == false(),
            ~payload.like(f"%{_like(json.dumps(ENVELOPE_KEY))}%", escape="\\"),
            or_(*(payload.ilike(f"%{_like(form)}%", escape="\\") for form in sorted(forms))),
        ]
    if query.job_id is not None and not _indexed_id(query.job_id):
        out.append(j.id.like(f"{_like(query.job_id)}%", escape="\\"))
    return out


def conditions(query: JobQuery) -> list[ColumnElement[bool]]:
    """Every filter of `query` (for counts and bulk actions, which are bounded elsewhere)."""
    return indexed_conditions(query) + scan_conditions(query)


def _newest_first(query: Any) -> Any:
    return query.order_by(JobExecution.created_at.desc(), JobExecution.id.desc())


def search(session: Session, query: JobQuery, limit: int = 50, cursor: str | None = None) -> Page:
    """One page of matching jobs, newest first.

    Raises:
        ValidationError: the cursor was not made by this search, or limit out of range.
    """

    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
    j = JobExecution
    where = indexed_conditions(query)
    if cursor:
        # Row-value comparison: both databases seek the (tenant, created_at, id) index with it.
        where.append(tuple_(j.created_at, j.id) < tuple_(*decode_cursor(cursor)))
    edge = None
    if query.scans:
        # The window's oldest row, if rows older than it remain (else the window is the rest).
        tail = session.execute(
            _newest_first(select(j.created_at, j.id).where(*where)).offset(SCAN_WINDOW - 1).limit(2)
        ).all()
        edge = tail[0] if len(tail) == 2 else None
        if edge is not None:
            where.append(tuple_(j.created_at, j.id) >= tuple_(edge[0], edge[1]))
    rows = list(session.scalars(_newest_first(select(j).where(*where, *scan_conditions(query))).limit(limit + 1)))
    if len(rows) > limit:
        last = rows[limit - 1]
        return Page(rows[:limit], encode_position(last.created_at, last.id))
    if edge is not None:
        return Page(rows, encode_position(edge[0], edge[1]), window_ended=True)
    return Page(rows, None)


def status_counts(session: Session, tenant_id: str | None, system: bool | None = None) -> dict[str, int]:
    """Jobs per status (each counted up to COUNT_CAP + 1), for the list's status tabs.

    Each count walks at most COUNT_CAP + 1 entries of the (tenant, status, created_at) index,
    or of (status, updated_at) for every tenant, and reads nothing else (an index-only count).
    Celeriac's own jobs, hidden by default, are few: counted apart through the job_class index
    and taken off, so hiding them never costs a table read per counted row.
    """
    j = JobExecution
    hidden = _system_counts(session, tenant_id) if system is False else {}
    counts: dict[str, int] = {}
    for status in ExecutionStatus:
        ones: Select[Any] = select(literal_column("1")).where(j.status == status.value)
        if tenant_id is not None:
            ones = ones.where(j.tenant_id == tenant_id)
        # Counting `hidden` more keeps the cap right: reaching it leaves > COUNT_CAP of the rest.
        skip = hidden.get(status.value, 0)
        capped = ones.limit(COUNT_CAP + 1 + skip).subquery()
        counts[status.value] = int(session.scalar(select(func.count()).select_from(capped)) or 0) - skip
    return counts


def _system_counts(session: Session, tenant_id: str | None) -> dict[str, int]:
    """Celeriac's own jobs per status (hourly maintenance: hundreds of rows, not millions)."""
    j = JobExecution
    query = select(j.status, func.count()).where(system_only())
    if tenant_id is not None:
        query = query.where(j.tenant_id == tenant_id)
    return {str(status): int(n) for status, n in session.execute(query.group_by(j.status)).all()}
