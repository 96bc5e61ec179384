"""Bulk retry / cancel / purge by filter as a tracked job (issue 13 item 6): any size.

The web request only previews (`preview`) and dispatches the `celeriac.bulk` job
(tasks/bulk.py); that job calls `run`, which works through the filter CHUNK jobs at a time,
reports progress after each chunk and stops between chunks when asked. What it did is
committed chunk by chunk, so a stop keeps what was done, and the outcome says how much.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.composition.submit import submit_job
from app.config import Settings
from app.errors import ValidationError as ValidationError
from app.failures.dead_letter import delete_executions
from app.kernel.dispatching import DispatchSpec, TaskInfo
from app.kernel.ports import Canceller, Publisher, Registry
from app.models import TERMINAL_STATUSES, JobExecution
from app.services import bulk_actions, job_search
from app.services.bulk_actions import BulkOutcome

#: What a bulk job can do, and the role each needs (purge deletes history: admin).
ROLES = {"retry": "operator", "cancel": "operator", "purge": "admin"}
#: The filter keys `POST /api/jobs/bulk` takes.
FILTER_KEYS = ("status", "queue", "job_class", "tag", "created_before", "created_after", "system")
#: Ids shown by a preview.
SAMPLE_SIZE = 5
#: Statuses a purge deletes: finished jobs only, never live ones.
PURGEABLE = tuple(sorted(s.value for s in TERMINAL_STATUSES))
#: The job that runs a bulk action (tasks/bulk.py).
BULK_JOB = "celeriac.bulk"


def _statuses(action: str) -> tuple[str, ...]:
    return PURGEABLE if action == "purge" else bulk_actions.statuses_for(action)


@dataclass(frozen=True)
class BulkRequest:
    """One bulk action on every job of `tenant_id` matching the filter (None: any)."""

    action: str
    tenant_id: str | None
    status: str | None = None
    queue: str | None = None
    job_class: str | None = None
    tag: str | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    #: False: leave out Celeriac's own maintenance tasks (as the console's list does by default).
    system: bool | None = None

    def query(self) -> job_search.JobQuery:
        return job_search.JobQuery(
            tenant_id=self.tenant_id,
            status=self.status,
            queue=self.queue,
            job_class=self.job_class,
            tag=self.tag,
            created_from=self.created_after,
            created_to=self.created_before,
            system=self.system,
        )

    def filter_dict(self) -> dict[str, Any]:
        """The filter as JSON (the bulk job's payload, the audit entry)."""
        values = asdict(self)
        out = {k: values[k] for k in FILTER_KEYS if values[k] is not None}
        for key in ("created_before", "created_after"):
            if key in out:
                out[key] = out[key].isoformat()
        return out


def _text(raw: Mapping[str, Any], key: str, longest: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > longest or "\x00" in value:
        raise ValidationError(f"filter.{key} must be a non-empty string of at most {longest} characters")
    return value.strip()


def _flag(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"filter.{key} must be true or false")
    return value


def _instant(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = _text(raw, key, 64)
    if value is None:
        return None
    try:
        return job_search.parse_instant(value, f"filter.{key}")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def bulk_request(action: Any, raw_filter: Any, tenant_id: str | None) -> BulkRequest:
    """Check an action and its filter, as the API, console and CLI receive them.

    Raises:
        ValidationError: unknown action or filter key, a value of the wrong kind, a status
            the action never applies to, created_after later than created_before.
    """
    if action not in ROLES:
        raise ValidationError(f"action must be one of {', '.join(ROLES)}")
    raw = raw_filter if raw_filter is not None else {}
    if not isinstance(raw, Mapping):
        raise ValidationError("filter must be an object")
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise ValidationError(f"unknown filter keys: {', '.join(map(str, unknown))}; known: {', '.join(FILTER_KEYS)}")
    status = _text(raw, "status", 20)
    if status is not None and status not in _statuses(action):
        raise ValidationError(f"{action} applies to jobs that are {' or '.join(_statuses(action))}, not {status!r}")
    request = BulkRequest(
        action=action,
        tenant_id=tenant_id,
        status=status,
        queue=_text(raw, "queue", 100),
        job_class=_text(raw, "job_class", 200),
        tag=_text(raw, "tag", 100),
        created_before=_instant(raw, "created_before"),
        created_after=_instant(raw, "created_after"),
        system=_flag(raw, "system"),
    )
    if request.created_before and request.created_after and request.created_after > request.created_before:
        raise ValidationError("filter.created_after is later than filter.created_before")
    return request


def from_search(query: job_search.JobQuery, action: str) -> BulkRequest | None:
    """The bulk job for the console's "all matching" on `query`, or None when the search uses
    a filter a bulk job does not take (id, payload text, failure group) or spans tenants."""
    if query.tenant_id is None or query.job_id or query.text or query.fingerprint:
        return None
    return BulkRequest(
        action=action,
        tenant_id=query.tenant_id,
        status=query.status,
        queue=query.queue,
        job_class=query.job_class,
        tag=query.tag,
        created_before=query.created_to,
        created_after=query.created_from,
        system=query.system,
    )


def _where(request: BulkRequest) -> list[ColumnElement[bool]]:
    if request.action == "purge":
        where = job_search.conditions(request.query())
        where.append(JobExecution.status.in_(PURGEABLE))
        return where
    return bulk_actions.scope(request.query(), request.action)


@dataclass(frozen=True)
class BulkPreview:
    count: int
    sample: list[str]


def preview(session: Session, request: BulkRequest) -> BulkPreview:
    """How many jobs the action would touch now (all of them, no cap) and the newest few ids."""
    where = _where(request)
    count = int(session.scalar(select(func.count()).select_from(JobExecution).where(*where)) or 0)
    newest = select(JobExecution.id).where(*where).order_by(JobExecution.created_at.desc(), JobExecution.id.desc())
    return BulkPreview(count, list(session.scalars(newest.limit(SAMPLE_SIZE))))


@dataclass(frozen=True)
class Backends:
    registry: Registry
    publisher: Publisher
    canceller: Canceller
    settings: Settings


#: `report(processed, total)` after each chunk; `should_stop()` is asked between chunks.
Report = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


def _purge_chunk(session: Session, ids: list[str], outcome: BulkOutcome) -> None:
    deleted = delete_executions(session, ids)
    session.commit()
    outcome.done += deleted
    outcome.skipped += len(ids) - deleted


def run(
    session: Session,
    request: BulkRequest,
    backends: Backends,
    report: Report,
    should_stop: ShouldStop,
    outcome: BulkOutcome | None = None,
) -> BulkOutcome:
    """Do the action on every matching job, a chunk at a time, counting into `outcome`;
    `outcome.error` says why it stopped early ("cancelled" when `should_stop` said so)."""
    outcome = outcome if outcome is not None else BulkOutcome(request.action)
    total = preview(session, request).count
    report(0, total)
    unbounded = bulk_actions.Budget(float(sys.maxsize))
    for ids in bulk_actions.chunks_of(session, _where(request), sys.maxsize, outcome):
        if request.action == "retry":
            bulk_actions.retry_each(
                session,
                [ids],
                request.tenant_id,
                outcome,
                unbounded,
                registry=backends.registry,
                publisher=backends.publisher,
                settings=backends.settings,
            )
        elif request.action == "cancel":
            bulk_actions.cancel_each(session, [ids], request.tenant_id, outcome, unbounded, backends.canceller)
        else:
            _purge_chunk(session, ids, outcome)
        processed = outcome.done + outcome.skipped
        total = max(total, processed)
        report(processed, total)
        if outcome.error is not None:
            return outcome
        if should_stop():
            outcome.error = "cancelled"
            return outcome
    return outcome


def _signature(secret: str, body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


class _WithBulkJob:
    """The registry, plus the bulk job: Celeriac's own (celeriac.*) tasks are hidden from
    dispatch, and the web process does not import tasks/ (the worker runs it)."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.info = TaskInfo(
            name=BULK_JOB,
            queue=settings.attach.system_queue,  # never the project's queues in attach mode
            max_attempts=1,
            timeout_s=settings.max_timeout_s,
            declared=frozenset({"max_attempts", "timeout"}),
        )

    def get(self, job_class: str) -> TaskInfo | None:
        return self.info if job_class == BULK_JOB else self.registry.get(job_class)


def dispatch_bulk(session: Session, request: BulkRequest, *, actor: str, reason: str | None, backends: Backends) -> str:
    """Queue the `celeriac.bulk` job for `request`; returns its id.

    The payload is signed with SECRET_KEY: only the API, console and CLI, which checked the
    caller's role, can start one (a `POST /api/jobs/dispatch` of celeriac.bulk fails).

    Raises:
        ValidationError: no tenant (a bulk job acts within one tenant).
        BackendUnavailable: the broker is unreachable.
    """
    if request.tenant_id is None:
        raise ValidationError("a bulk job acts within one tenant: pick a tenant first")
    body = {"action": request.action, "filter": request.filter_dict(), "actor": actor, "reason": reason}
    payload = {**body, "signature": _signature(backends.settings.secret_key, {**body, "tenant": request.tenant_id})}
    spec = DispatchSpec(job_class=BULK_JOB, payload=payload, tenant_id=request.tenant_id, tags=["bulk"])
    row = submit_job(
        session,
        spec,
        registry=_WithBulkJob(backends.registry, backends.settings),
        publisher=backends.publisher,
        settings=backends.settings,
    )
    return row.id


def signed_request(payload: Mapping[str, Any], tenant_id: str, secret: str) -> BulkRequest:
    """The request a bulk job's payload carries, once its signature checks out.

    Raises:
        ValidationError: unsigned or tampered payload, or an invalid action or filter.
    """
    body = {k: payload.get(k) for k in ("action", "filter", "actor", "reason")}
    expected = _signature(secret, {**body, "tenant": tenant_id})
    if not hmac.compare_digest(str(payload.get("signature") or ""), expected):
        raise ValidationError("celeriac.bulk runs only when started by POST /api/jobs/bulk, the console or the CLI")
    return bulk_request(body["action"], body["filter"], tenant_id)
