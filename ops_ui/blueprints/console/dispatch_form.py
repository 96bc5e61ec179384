"""Dispatch a job from the console (operator): class, payload JSON and options.

The form becomes the body `POST /api/jobs/dispatch` takes, checked by the same model
(DispatchBody) and dispatched by the same service (app.composition.submit); a bad value
is a form error beside its field (422), never a 500.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from app.composition import submit as submission
from app.errors import AppError
from app.services.definitions import list_definitions
from ops_ui.auth import console_role
from ops_ui.blueprints.api.models.jobs import DispatchBody
from ops_ui.blueprints.api.schemas import dispatch_spec
from ops_ui.blueprints.api.validation import validated
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import dispatching, tenant
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action

#: Option fields holding numbers, as the API names them.
NUMBERS = ("priority", "delay", "max_attempts", "timeout", "unique_for")
#: Fields the form keeps when it is shown again with errors.
FIELDS = ("job_class", "payload", "queue", *NUMBERS, "tags", "encrypted", "reason")
_NUMBER = re.compile(r"-?\d{1,15}(\.\d{1,15})?\Z")


@dataclass
class Parsed:
    body: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


def _number(raw: str) -> int | float:
    return int(raw) if raw.lstrip("-").isdigit() else float(raw)


def parse_form(form: MultiDict[str, str]) -> Parsed:
    """The dispatch body the form stands for, and the errors of fields that are not even
    of the right kind (payload not a JSON object, a number that is not one)."""
    errors: dict[str, str] = {}
    text = form.get("payload", "").strip() or "{}"
    payload: Any = None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        errors["payload"] = f"not valid JSON: {exc}"
    if "payload" not in errors and not isinstance(payload, dict):
        errors["payload"] = "must be a JSON object, like {\"key\": \"value\"}"
    options: dict[str, Any] = {}
    queue = form.get("queue", "").strip()
    if queue:
        options["queue"] = queue
    for name in NUMBERS:
        raw = form.get(name, "").strip()
        if not raw:
            continue
        if not _NUMBER.match(raw):
            errors[name] = "must be a number"
            continue
        options[name] = _number(raw)
    tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    if tags:
        options["tags"] = tags
    if form.get("encrypted"):
        options["encrypted"] = True
    body = {"job_class": form.get("job_class", "").strip(), "payload": payload, "options": options}
    if not body["job_class"]:
        errors["job_class"] = "choose a job class"
    return Parsed(body, errors)


def _field_of(detail: str) -> str:
    """Which form field a validation message is about ("options.priority must be ..." -> priority)."""
    head = re.split(r"[ :;\[]", detail, maxsplit=1)[0]
    name = head.removeprefix("options.").split(".", 1)[0]
    return name if name in FIELDS else "form"


def _classes() -> list[str]:
    """Active job definitions of the viewer's tenant (the recorder writes one per registered task)."""
    return [d.job_class for d in list_definitions(sql(), tenant()) if d.is_active]


def _render(values: MultiDict[str, str], errors: dict[str, str], status: int = 200) -> Any:
    body = render_template("console/dispatch.html", classes=_classes(), values=values, errors=errors)
    return body, status


@bp.get("/dispatch")
@console_role("operator")
def dispatch_form() -> Any:
    return _render(MultiDict({"job_class": request.args.get("job_class", ""), "payload": "{}"}), {})


@bp.post("/dispatch")
@console_role("operator")
def dispatch_submit() -> Any:
    parsed = parse_form(request.form)
    if parsed.errors:
        return _render(request.form, parsed.errors, 422)
    tenant_id = tenant() or app_settings().default_tenant
    try:
        spec = dispatch_spec(validated(DispatchBody, parsed.body), tenant_id=tenant_id)
        done = submission.submit(sql(), spec, **dispatching())
    except (AppError, BadRequest) as exc:
        sql().rollback()
        detail = str(getattr(exc, "description", None) or exc)
        return _render(request.form, {_field_of(detail): detail}, 422)
    options = {k: v for k, v in parsed.body["options"].items()}
    record_action(
        "job.dispatch",
        "job",
        done.id,
        after={"job_class": done.job_class, "queue": done.queue, "options": options, "created": done.created},
    )
    if done.created:
        flash(f"Dispatched {done.job_class} as job {done.id[:8]}.", "success")
    else:
        flash(f"Nothing queued: a unique twin of this job is {done.status} (job {done.id[:8]}).", "success")
    return redirect(url_for("console.job_detail", job_id=done.id))
