"""Queue settings in the console: shown on the Queues page, edited by admins (docs/queues.md).

The same service and audit as `PUT /api/queues/{name}` (ops_ui.queue_actions). The form
holds the values set here; an empty field clears one, so the code's or Celeriac's default
(shown as the placeholder) applies again. Settings are shared by every tenant, like pause.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField

from app.control import queue_settings
from app.errors import AppError
from app.kernel.queue_defaults import check_queue_name
from app.redis_client import get_redis
from ops_ui import queue_actions
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action

#: Form fields holding whole numbers (parsed here, judged by the service).
NUMBERS = ("max_attempts", "retry_after", "timeout", "weight", "max_pending")


#: The encryption choices of the form, as stored.
ENCRYPTED: dict[str, bool | None] = {"": None, "yes": True, "no": False}


class QueueSettingsForm(FlaskForm):  # type: ignore[misc]
    max_attempts = StringField("Max attempts (1–100)")
    retry_after = StringField("Retry after (seconds, when a job has no backoff)")
    timeout = StringField("Timeout (seconds)")
    #: "", "yes" or "no" (a select in the template; "" is the default).
    encrypted = StringField("Encrypt payloads")
    rate_limit = StringField("Rate limit (jobs/seconds, e.g. 100/60)")
    weight = StringField("Weight (1–100)")
    max_pending = StringField("Max pending jobs")


def settings_views(names: set[str]) -> list[dict[str, Any]]:
    """The Queues page's settings panel: every queue's settings in effect."""
    return queue_settings.list_queue_views(sql(), _redis(), app_settings(), names)


def _redis() -> Any:
    return get_redis(app_settings().redis_url)


def _number(raw: str | None) -> Any:
    text = (raw or "").strip()
    if not text:
        return None
    return int(text) if re.fullmatch(r"-?\d{1,12}", text) else text


def _set_here(view: dict[str, Any]) -> dict[str, Any]:
    """The values an admin set (the form's contents); None where the default applies."""
    values: dict[str, Any] = {}
    for name in (*NUMBERS, "encrypted"):
        values[name] = view[name] if view["sources"][name] == "api" else None
    limit = view["rate_limit"]
    values["rate_limit"] = f"{limit['limit']}/{limit['per']}" if view["sources"]["rate_limit"] == "api" else None
    return values


def _fill(form: QueueSettingsForm, current: dict[str, Any]) -> None:
    for name in NUMBERS:
        getattr(form, name).data = "" if current[name] is None else str(current[name])
    form.encrypted.data = {None: "", True: "yes", False: "no"}[current["encrypted"]]
    form.rate_limit.data = current["rate_limit"] or ""


def _submitted(form: QueueSettingsForm) -> dict[str, Any]:
    values: dict[str, Any] = {name: _number(getattr(form, name).data) for name in NUMBERS}
    values["encrypted"] = ENCRYPTED[form.encrypted.data or ""]
    values["rate_limit"] = (form.rate_limit.data or "").strip() or None
    return values


@bp.route("/queues/<name>/settings", methods=["GET", "POST"])
@console_role("admin")
def queue_settings_edit(name: str) -> Any:
    try:
        check_queue_name(name)
    except AppError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.queues"))
    view = queue_actions.queue_view(name)
    current = _set_here(view)
    form = QueueSettingsForm()
    if request.method == "GET":
        _fill(form, current)
        return _page(form, view, 200)
    if not form.validate():
        return _page(form, view, 422)
    if (form.encrypted.data or "") not in ENCRYPTED:
        form.encrypted.errors = ["encrypted must be yes, no or default"]
        return _page(form, view, 422)
    submitted = _submitted(form)
    changes = {key: value for key, value in submitted.items() if value != current[key]}
    problems = queue_settings.change_errors(changes, app_settings())
    if problems:
        for field, message in problems.items():
            getattr(form, field).errors = [message]
        return _page(form, view, 422)
    if not changes:
        flash(f"Nothing changed in {name}: the form held its current settings.", "success")
        return redirect(url_for("console.queues"))
    queue_actions.update_queue_settings(name, changes, g.principal.actor, record_action)
    flash(f"Saved the settings of {name}: every tenant's jobs on it use them from now on.", "success")
    return redirect(url_for("console.queues"))


def _page(form: QueueSettingsForm, view: dict[str, Any], status: int) -> Any:
    return render_template("console/queue_settings_form.html", form=form, queue=view), status
