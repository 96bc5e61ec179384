"""Failed jobs and the dead letter: fingerprint groups, retry a group or a queue, purge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, redirect, request, url_for

from app.errors import NotFound, ValidationError
from app.failures import dead_letter
from app.failures import groups as failures_service
from app.models import ExecutionStatus, FailureGroup
from app.services import bulk_actions, job_search
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import dispatching, render_page, tenant
from ops_ui.extensions import sql
from ops_ui.presenters import shown_job
from ops_ui.trail import record_action

#: Failure groups per page, and recent failed jobs shown.
GROUPS_PAGE = 25
RECENT_FAILED = 20


def _page(purge_errors: dict[str, str] | None = None, status: int = 200) -> Any:
    cursor = request.args.get("cursor") or None
    try:
        groups, next_cursor = failures_service.list_failure_groups(sql(), tenant(), limit=GROUPS_PAGE, cursor=cursor)
    except ValidationError:
        flash("That page link is no longer valid; showing the newest failure groups.", "error")
        cursor = None
        groups, next_cursor = failures_service.list_failure_groups(sql(), tenant(), limit=GROUPS_PAGE)
    recent = job_search.search(
        sql(), job_search.JobQuery(tenant_id=tenant(), status=ExecutionStatus.FAILED.value), limit=RECENT_FAILED
    )
    body = render_page(
        "console/failed.html",
        "console/failed_live.html",
        groups=groups,
        next_cursor=next_cursor,
        cursor=cursor,
        queues=dead_letter.failed_by_queue(sql(), tenant(), dead_letter.FAILED_COUNT_CAP),
        count_cap=dead_letter.FAILED_COUNT_CAP,
        recent=[shown_job(row) for row in recent.rows],
        purge_errors=purge_errors or {},
        form=request.form,
        all_tenants=tenant() is None,
    )
    return body, status


@bp.get("/failed")
@console_role("viewer")
def failed() -> Any:
    return _page()


def _group(tenant_id: str, fingerprint: str) -> FailureGroup:
    """Raises: NotFound for an unknown group or another tenant's."""
    mine = tenant()
    group = sql().get(FailureGroup, (tenant_id, fingerprint))
    if group is None or (mine is not None and group.tenant_id != mine):
        raise NotFound(f"no failure group {fingerprint}")
    return group


@bp.post("/failed/groups/<tenant_id>/<fingerprint>/retry")
@console_role("operator")
def failed_group_retry(tenant_id: str, fingerprint: str) -> Any:
    group = _group(tenant_id, fingerprint)
    outcome = bulk_actions.retry_failure_group(sql(), group.tenant_id, group.fingerprint, **dispatching())
    record_action(
        "failure_group.retry",
        "failure_group",
        f"{group.tenant_id}/{group.fingerprint}",
        before={"exception_type": group.exception_type, "count": group.count},
        after=outcome.as_dict(),
        outcome="ok" if outcome.error is None else "partial",
    )
    flash(outcome.message(), "success" if outcome.error is None else "error")
    return redirect(url_for("console.failed"))


def _queue_field() -> str:
    queue = (request.form.get("queue") or "").strip()
    if not queue:
        raise NotFound("no queue given")
    return queue


@bp.post("/failed/queue/retry")
@console_role("operator")
def failed_queue_retry() -> Any:
    queue = _queue_field()
    outcome = dead_letter.retry_queue(sql(), tenant(), queue, **dispatching())
    record_action("queue.retry_failed", "queue", queue, after={"retried": outcome.retried, "skipped": outcome.skipped})
    flash(f"Queue {queue}: retried {outcome.retried}, skipped {outcome.skipped}.", "success")
    return redirect(url_for("console.failed"))


@bp.post("/failed/queue/purge")
@console_role("admin")
def failed_queue_purge() -> Any:
    queue = _queue_field()
    dead_letter.ensure_queue_known(sql(), tenant(), queue)
    raw = (request.form.get("older_than") or "").strip()
    older_than: datetime | None = None
    if raw:
        try:
            older_than = job_search.parse_instant(raw, "Failed before")
        except ValueError as exc:
            return _page({queue: str(exc)}, 422)
    cleared = dead_letter.clear_queue(sql(), tenant(), queue, older_than)
    record_action(
        "queue.clear_failed",
        "queue",
        queue,
        before={"older_than": older_than and older_than.isoformat()},
        after={"cleared": cleared},
    )
    flash(f"Queue {queue}: purged {cleared} failed job{'' if cleared == 1 else 's'}.", "success")
    return redirect(url_for("console.failed"))
