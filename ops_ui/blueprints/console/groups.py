"""A Celery group or chord: its members with their status, progress counts and the chord callback;
and the links a job's canvas relations (parent, root) follow."""

from __future__ import annotations

from typing import Any

from flask import redirect, url_for

from app.errors import NotFound
from app.services import celery_groups
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import render_page, tenant
from ops_ui.extensions import sql


@bp.get("/groups/<group_id>")
@console_role("viewer")
def group_detail(group_id: str) -> Any:
    view = celery_groups.get_group(sql(), group_id, tenant())  # NotFound: a 404 page
    return render_page("console/group.html", "console/group_live.html", group=view, all_tenants=tenant() is None)


@bp.get("/canvas/<ref>")
@console_role("viewer")
def canvas_link(ref: str) -> Any:
    """A parent or root id: a job's page, or a group's (a chord callback's parent is its header)."""
    kind = celery_groups.kind_of(sql(), ref, tenant())
    if kind == "job":
        return redirect(url_for("console.job_detail", job_id=ref))
    if kind == "group":
        return redirect(url_for("console.group_detail", group_id=ref))
    raise NotFound(f"no job or group {ref}")
