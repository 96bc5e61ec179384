"""Job definitions: defaults per job class, activate / deactivate, per tenant (J3, U6).

Everyone reads; admins edit. A tenant's admin edits the tenant's own override (created
from the global defaults on first edit) and may reset it; a superadmin edits the global
defaults. The same validation as PATCH /api/definitions; every change is audited.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField

from app.errors import Conflict
from app.services import definitions as service
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import tenant
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action

#: Form fields holding whole numbers (parsed here, judged by the service).
NUMBERS = ("priority", "max_attempts", "timeout", "retry_after")


class DefinitionForm(FlaskForm):  # type: ignore[misc]
    description = TextAreaField("Description")
    default_queue = StringField("Default queue")
    priority = StringField("Priority (0–9, 9 first)")
    max_attempts = StringField("Max attempts")
    timeout = StringField("Timeout (seconds)")
    retry_after = StringField("Retry after (seconds)")
    tags = StringField("Tags (comma-separated)")
    is_active = BooleanField("Active: may be dispatched")


def _limits() -> service.Limits:
    return service.Limits(max_timeout_s=app_settings().max_timeout_s)


def _number(raw: str | None) -> Any:
    text = (raw or "").strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _changes(form: DefinitionForm) -> dict[str, Any]:
    changes: dict[str, Any] = {name: _number(getattr(form, name).data) for name in NUMBERS}
    changes["description"] = (form.description.data or "").strip() or None
    changes["default_queue"] = (form.default_queue.data or "").strip()
    changes["tags"] = [tag.strip() for tag in (form.tags.data or "").split(",") if tag.strip()]
    changes["is_active"] = bool(form.is_active.data)
    return changes


def _fill(form: DefinitionForm, view: dict[str, Any]) -> None:
    for name in (*NUMBERS, "default_queue", "is_active"):
        getattr(form, name).data = view[name]
    form.description.data = view["description"] or ""
    form.tags.data = ", ".join(view["tags"])


@bp.get("/definitions")
@console_role("viewer")
def definitions() -> Any:
    rows = service.list_definitions(sql(), tenant())
    return render_template(
        "console/definitions.html",
        definitions=[service.definition_view(row, tenant()) for row in rows],
        superadmin=tenant() is None,
    )


@bp.route("/definitions/<job_class>/edit", methods=["GET", "POST"])
@console_role("admin")
def definition_edit(job_class: str) -> Any:
    before = service.definition_view(service.get_definition(sql(), job_class, tenant()), tenant())
    form = DefinitionForm()
    if request.method == "GET":
        _fill(form, before)
        return _edit_page(form, before, 200)
    if not form.validate():
        return _edit_page(form, before, 422)
    changes = _changes(form)
    problems = service.field_errors(changes, _limits())
    if problems:
        for name, message in problems.items():
            getattr(form, name).errors = [message]
        return _edit_page(form, before, 422)
    row = service.update_definition(sql(), job_class, tenant(), changes, _limits())
    after = service.definition_view(row, tenant())
    record_action("definition.update", "definition", job_class, before=before, after=after)
    flash(f"Saved the defaults of {job_class}.", "success")
    return redirect(url_for("console.definitions"))


def _edit_page(form: DefinitionForm, view: dict[str, Any], status: int) -> Any:
    page = render_template("console/definition_form.html", form=form, definition=view, superadmin=tenant() is None)
    return page, status


def _set_active(job_class: str, active: bool) -> Any:
    before = service.definition_view(service.get_definition(sql(), job_class, tenant()), tenant())
    row = service.update_definition(sql(), job_class, tenant(), {"is_active": active}, _limits())
    after = service.definition_view(row, tenant())
    action = "definition.activate" if active else "definition.deactivate"
    record_action(action, "definition", job_class, before=before, after=after)
    if active:
        flash(f"{job_class} is active: it can be dispatched again.", "success")
    else:
        flash(f"{job_class} is inactive: dispatching it is refused (422) until you activate it.", "success")
    return redirect(url_for("console.definitions"))


@bp.post("/definitions/<job_class>/activate")
@console_role("admin")
def definition_activate(job_class: str) -> Any:
    return _set_active(job_class, True)


@bp.post("/definitions/<job_class>/deactivate")
@console_role("admin")
def definition_deactivate(job_class: str) -> Any:
    return _set_active(job_class, False)


@bp.post("/definitions/<job_class>/reset")
@console_role("admin")
def definition_reset(job_class: str) -> Any:
    before = service.definition_view(service.get_definition(sql(), job_class, tenant()), tenant())
    try:
        row = service.reset_definition(sql(), job_class, tenant())
    except Conflict as exc:
        flash(f"Not reset: {exc}.", "error")
        return redirect(url_for("console.definitions"))
    after = service.definition_view(row, tenant())
    record_action("definition.reset", "definition", job_class, before=before, after=after)
    flash(f"{job_class} uses the global defaults again.", "success")
    return redirect(url_for("console.definitions"))
