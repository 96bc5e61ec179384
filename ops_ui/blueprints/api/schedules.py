"""Schedules section of API.md (S1-S3), plus pause, resume and history (extensions).

Roles: viewer reads and previews; operator also runs a schedule now (a dispatch);
admin creates, changes, pauses, resumes and deletes.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.exceptions import BadRequest

from app.errors import ValidationError
from app.services.schedules import EDITABLE, default_service, preview, schedule_view
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.jobs import _settings, _tenant
from ops_ui.blueprints.api.schemas import check_payload, json_body
from ops_ui.extensions import sql
from ops_ui.trail import record_action

#: Body keys of API.md mapped to the service's field names.
_API_FIELDS = {"job_class", "cron", "timezone", "payload", "active", "name", "missed_fire_policy"}
_TYPES: dict[str, tuple[type, ...]] = {
    "job_class": (str,),
    "cron": (str,),
    "timezone": (str,),
    "payload": (dict,),
    "active": (bool,),
    "missed_fire_policy": (str,),
}


def _shape(body: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Raises: BadRequest for a missing field or a value of the wrong JSON type;
    ValidationError for a payload nested deeper than Settings.max_payload_depth."""
    for key in required:
        if key not in body:
            raise BadRequest(f"{key} is required")
    fields = {key: value for key, value in body.items() if key in _API_FIELDS}
    for key, value in fields.items():
        kinds = _TYPES.get(key)
        if kinds is not None and not isinstance(value, kinds):
            raise BadRequest(f"{key} must be a JSON {_kind(kinds[0])}")
    if isinstance(fields.get("payload"), dict):
        check_payload(fields["payload"], "payload")
    return fields


def _kind(kind: type) -> str:
    return {str: "string", dict: "object", bool: "boolean"}.get(kind, kind.__name__)


@bp.post("/schedules/preview")
@api_auth("viewer")
def preview_schedule() -> Any:
    body = _shape(json_body(), required=("cron",))
    shown = preview(body["cron"], body.get("timezone", "UTC"))
    return jsonify(description=shown.description, next_runs=[run.isoformat() for run in shown.next_runs])


@bp.get("/schedules")
@api_auth("viewer")
def list_schedules() -> Any:
    active = request.args.get("active")
    if active not in (None, "true", "false"):
        raise ValidationError("active must be true or false")
    rows = default_service(sql()).get_scheduled_jobs(_tenant(), None if active is None else active == "true")
    return jsonify(items=[schedule_view(row) for row in rows])


@bp.post("/schedules")
@api_auth("admin")
def create_schedule() -> Any:
    body = _shape(json_body(), required=("job_class", "cron"))
    row = default_service(sql()).schedule_job(
        body["job_class"],
        body["cron"],
        body.get("timezone", "UTC"),
        body.get("payload") or {},
        tenant_id=_tenant() or _settings().default_tenant,
        name=body.get("name"),
        active=body.get("active", True),
        missed_fire_policy=body.get("missed_fire_policy", "skip"),
    )
    view = schedule_view(row)
    record_action("schedule.create", "schedule", row.id, after=view)
    return jsonify(view), 201


@bp.get("/schedules/<schedule_id>")
@api_auth("viewer")
def get_schedule(schedule_id: str) -> Any:
    return jsonify(schedule_view(default_service(sql()).get_schedule(schedule_id, _tenant())))


@bp.patch("/schedules/<schedule_id>")
@api_auth("admin")
def update_schedule(schedule_id: str) -> Any:
    service = default_service(sql())
    before = schedule_view(service.get_schedule(schedule_id, _tenant()))
    raw = json_body()
    unknown = sorted(set(raw) - set(EDITABLE))
    if unknown:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
    row = service.update_schedule(schedule_id, _tenant(), _shape(raw))
    view = schedule_view(row)
    record_action("schedule.update", "schedule", row.id, before=before, after=view)
    return jsonify(view)


@bp.delete("/schedules/<schedule_id>")
@api_auth("admin")
def delete_schedule(schedule_id: str) -> Any:
    service = default_service(sql())
    before = schedule_view(service.get_schedule(schedule_id, _tenant()))
    service.remove_schedule(schedule_id, _tenant())
    record_action("schedule.delete", "schedule", schedule_id, before=before)
    return "", 204


@bp.post("/schedules/<schedule_id>/pause")
@api_auth("admin")
def pause_schedule(schedule_id: str) -> Any:
    view = schedule_view(default_service(sql()).pause_schedule(schedule_id, _tenant()))
    record_action("schedule.pause", "schedule", schedule_id)
    return jsonify(view)


@bp.post("/schedules/<schedule_id>/resume")
@api_auth("admin")
def resume_schedule(schedule_id: str) -> Any:
    view = schedule_view(default_service(sql()).resume_schedule(schedule_id, _tenant()))
    record_action("schedule.resume", "schedule", schedule_id)
    return jsonify(view)


@bp.post("/schedules/<schedule_id>/run")
@api_auth("operator")
def run_schedule(schedule_id: str) -> Any:
    job_id = default_service(sql()).run_now(schedule_id, _tenant())
    record_action("schedule.run", "schedule", schedule_id, after={"job_id": job_id})
    return jsonify(id=job_id, job_id=job_id, schedule_id=schedule_id, status="pending"), 201


@bp.get("/schedules/<schedule_id>/history")
@api_auth("viewer")
def schedule_history(schedule_id: str) -> Any:
    raw = request.args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError as exc:
        raise ValidationError(f"limit must be an integer, got {raw!r}") from exc
    return jsonify(default_service(sql()).history(schedule_id, _tenant(), limit))
