"""A job's broker message, described from its dispatch or its publish, and rebuilt from its row.

The reconciler re-publishes a job whose message was lost (Redis restarted without its
data, a worker killed between taking a message and registering it). The row holds the
payload, queue, priority, ETA and deadline; its `message` column holds the rest, the
"shape": the `celeriac` header, Celery's time limits and retry count, and canvas links.

    {"h": {...celeriac header...} | None, "tl": [hard, soft] | None, "r": retries,
     "links": {"callbacks": [...], "errbacks": [...], "chain": [...], "chord": {...}}}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.broker import celery_app
from app.crypto import REDACTED
from celeriac import header
from celeriac.priority import to_broker_priority
from celeriac.publish import send

if TYPE_CHECKING:
    from app.kernel.dispatching import ResolvedJob
    from app.models import JobExecution

def shape_of_job(job: ResolvedJob) -> dict[str, Any]:
    """The shape of a job Celeriac dispatches (before it is published)."""
    shape: dict[str, Any] = {"h": job.celeriac_header(), "r": 0}
    if job.timeout_s:
        options = job.celery_options()
        shape["tl"] = [options["time_limit"], options["soft_time_limit"]]
    return shape


def split_payload(payload: Any) -> tuple[list[Any] | None, dict[str, Any]]:
    """(args, kwargs) of a recorded payload (see celeriac.events.payload_from_args)."""
    if isinstance(payload, dict) and set(payload) == {"args", "kwargs"} and isinstance(payload["args"], list):
        kwargs = payload["kwargs"]
        return payload["args"], dict(kwargs) if isinstance(kwargs, dict) else {}
    return None, dict(payload) if isinstance(payload, dict) else {}


def can_rebuild(row: JobExecution) -> bool:
    """Whether the row says enough to publish its job again (Celeriac's dispatches always do)."""
    return isinstance(row.message, dict) and row.payload != REDACTED


def republish(row: JobExecution, producer: Any = None) -> None:
    """Publish `row`'s job again under the same id, as its last message was.

    Raises:
        Exception: whatever the broker raised (the caller leaves the job to the next round).
    """

    shape: dict[str, Any] = row.message or {}
    args, kwargs = split_payload(row.payload)
    options: dict[str, Any] = {
        "task_id": row.id,
        "queue": row.queue,
        "priority": to_broker_priority(row.priority),
        "retries": int(shape.get("r") or 0),
    }
    celeriac = shape.get("h")
    if isinstance(celeriac, dict):
        options["headers"] = {header.NAME: celeriac}
    limits = shape.get("tl")
    if isinstance(limits, list) and len(limits) == 2:
        options["time_limit"], options["soft_time_limit"] = limits
    now = datetime.now(UTC)
    if row.eta is not None and row.eta > now:
        options["eta"] = row.eta
    if row.expires_at is not None:
        options["expires"] = row.expires_at
    links = shape.get("links") or {}
    if links.get("callbacks"):
        options["link"] = links["callbacks"]
    if links.get("errbacks"):
        options["link_error"] = links["errbacks"]
    if links.get("chain"):
        options["chain"] = links["chain"]
    if links.get("chord"):
        options["chord"] = links["chord"]
    send(celery_app, row.job_class, args=args, kwargs=kwargs, options=options, sealed=row.encrypted, producer=producer)
