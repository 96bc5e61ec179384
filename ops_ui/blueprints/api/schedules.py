"""Schedules section of API.md (S1-S3), plus pause, resume and history (extensions).

Roles: viewer reads and previews; operator also runs a schedule now (a dispatch);
admin creates, changes, pauses, resumes and deletes.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.schedules.service import default_service
from app.schedules.views import preview, schedule_view
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.jobs import _settings, _tenant
from ops_ui.blueprints.api.models.schedules import (
    HistoryQuery,
    Preview,
    PreviewBody,
    Schedule,
    ScheduleBody,
    ScheduleChanges,
    ScheduleHistory,
    ScheduleListQuery,
    ScheduleRun,
    Schedules,
)
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.blueprints.api.validation import read_body, read_query, validated
from ops_ui.extensions import sql
from ops_ui.trail import record_action


@bp.post("/schedules/preview")
@api_auth("viewer")
@operation(
    "Describe a cron expression and list its next 5 run times in the zone",
    body=PreviewBody,
    answers={200: (Preview, "description and next runs")},
)
def preview_schedule() -> Any:
    body = read_body(PreviewBody)
    shown = preview(body.cron, body.timezone)
    return jsonify(description=shown.description, next_runs=[run.isoformat() for run in shown.next_runs])


@bp.get("/schedules")
@api_auth("viewer")
@operation("The tenant's schedules; ?active= filters", query=ScheduleListQuery, answers={200: (Schedules, "items")})
def list_schedules() -> Any:
    active = read_query(ScheduleListQuery).active
    rows = default_service(sql()).get_scheduled_jobs(_tenant(), None if active is None else active == "true")
    return jsonify(items=[schedule_view(row) for row in rows])


@bp.post("/schedules")
@api_auth("admin")
@operation("Create a schedule and its RedBeat entry", body=ScheduleBody, answers={201: (Schedule, "the schedule")})
def create_schedule() -> Any:
    body = read_body(ScheduleBody)
    row = default_service(sql()).schedule_job(
        body.job_class,
        body.cron,
        body.timezone,
        body.payload,
        tenant_id=_tenant() or _settings().default_tenant,
        name=body.name,
        active=body.active,
        missed_fire_policy=body.missed_fire_policy,
        options=body.options.model_dump(exclude_none=True),
    )
    view = schedule_view(row)
    record_action("schedule.create", "schedule", row.id, after=view)
    return jsonify(view), 201


@bp.get("/schedules/<schedule_id>")
@api_auth("viewer")
@operation("A schedule", answers={200: (Schedule, "the schedule")})
def get_schedule(schedule_id: str) -> Any:
    return jsonify(schedule_view(default_service(sql()).get_schedule(schedule_id, _tenant())))


@bp.patch("/schedules/<schedule_id>")
@api_auth("admin")
@operation(
    "Change any of the fields; takes effect without restarting beat",
    body=ScheduleChanges,
    answers={200: (Schedule, "the schedule")},
)
def update_schedule(schedule_id: str) -> Any:
    service = default_service(sql())
    before = schedule_view(service.get_schedule(schedule_id, _tenant()))
    changes = validated(ScheduleChanges, json_body()).model_dump(exclude_unset=True)
    row = service.update_schedule(schedule_id, _tenant(), changes)
    view = schedule_view(row)
    record_action("schedule.update", "schedule", row.id, before=before, after=view)
    return jsonify(view)


@bp.delete("/schedules/<schedule_id>")
@api_auth("admin")
@operation("Delete the schedule and its entry; its runs stay in job history", answers={204: (None, "deleted")})
def delete_schedule(schedule_id: str) -> Any:
    service = default_service(sql())
    before = schedule_view(service.get_schedule(schedule_id, _tenant()))
    service.remove_schedule(schedule_id, _tenant())
    record_action("schedule.delete", "schedule", schedule_id, before=before)
    return "", 204


@bp.post("/schedules/<schedule_id>/pause")
@api_auth("admin")
@operation("Pause: no fires until resumed; next_run_at null", answers={200: (Schedule, "the schedule")})
def pause_schedule(schedule_id: str) -> Any:
    view = schedule_view(default_service(sql()).pause_schedule(schedule_id, _tenant()))
    record_action("schedule.pause", "schedule", schedule_id)
    return jsonify(view)


@bp.post("/schedules/<schedule_id>/resume")
@api_auth("admin")
@operation("Resume from the next tick; paused ticks are not missed fires", answers={200: (Schedule, "the schedule")})
def resume_schedule(schedule_id: str) -> Any:
    view = schedule_view(default_service(sql()).resume_schedule(schedule_id, _tenant()))
    record_action("schedule.resume", "schedule", schedule_id)
    return jsonify(view)


@bp.post("/schedules/<schedule_id>/run")
@api_auth("operator")
@operation(
    "Dispatch the schedule's job now; its ticks are unchanged",
    answers={201: (ScheduleRun, "the job")},
    errors=(422,),
)
def run_schedule(schedule_id: str) -> Any:
    job_id = default_service(sql()).run_now(schedule_id, _tenant())
    record_action("schedule.run", "schedule", schedule_id, after={"job_id": job_id})
    return jsonify(id=job_id, job_id=job_id, schedule_id=schedule_id, status="pending"), 201


@bp.get("/schedules/<schedule_id>/history")
@api_auth("viewer")
@operation(
    "Runs (newest first), missed and refused fires, counts by outcome",
    query=HistoryQuery,
    answers={200: (ScheduleHistory, "the history")},
)
def schedule_history(schedule_id: str) -> Any:
    limit = read_query(HistoryQuery).limit
    return jsonify(default_service(sql()).history(schedule_id, _tenant(), limit))
