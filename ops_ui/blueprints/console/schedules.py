"""Schedules: list, cron builder with live description and next runs, pause / resume / run now, history.

Roles as in API.md: viewers read and preview, operators also run a schedule now, admins
create, edit, pause, resume and delete. Another tenant's schedule is a 404.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from app.backends.current import backends
from app.errors import ValidationError
from app.schedules.cron import CronSchedule, parse_zone
from app.schedules.service import MAX_NAME, JobSchedulerService, default_service
from app.schedules.views import preview, schedule_view
from app.services import definitions as definitions_service
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import render_page, tenant
from ops_ui.blueprints.console.schedule_options import FORM_OPTIONS, option_fields, other_options, read_options
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.templating import when
from ops_ui.trail import record_action

#: The cron builder's fields, in expression order: (form field, label).
CRON_FIELDS = (
    ("minute", "Minute"),
    ("hour", "Hour"),
    ("day_of_month", "Day of month"),
    ("month", "Month"),
    ("day_of_week", "Day of week"),
)
POLICY_LABELS = {"skip": "skip missed ticks", "run_once": "run once to catch up"}


@bp.app_template_filter("when_iso")
def when_iso(value: str | None, empty: str = "—") -> Markup:
    """`|when` for the ISO strings of API-shaped views (schedules, batches, chains)."""
    return when(datetime.fromisoformat(value) if value else None, empty)


@cache
def timezones() -> list[str]:
    """Every IANA zone name, UTC first."""
    return ["UTC", *sorted(zone for zone in available_timezones() if zone != "UTC")]


class ScheduleForm(FlaskForm):  # type: ignore[misc]
    minute = StringField("Minute", default="0", validators=[Length(max=60)])
    hour = StringField("Hour", default="*", validators=[Length(max=60)])
    day_of_month = StringField("Day of month", default="*", validators=[Length(max=60)])
    month = StringField("Month", default="*", validators=[Length(max=60)])
    day_of_week = StringField("Day of week", default="*", validators=[Length(max=60)])
    cron = StringField("Cron expression", validators=[Length(max=200)])
    timezone = SelectField("Timezone", default="UTC")
    job_class = SelectField("Job class")
    payload = TextAreaField("Payload (JSON object)", default="{}")
    name = StringField("Name", validators=[Length(max=MAX_NAME)])
    active = BooleanField("Active: fire on schedule", default=True)
    missed_fire_policy = SelectField(
        "Ticks missed while beat was down",
        choices=[SelectChoice(k, v) for k, v in POLICY_LABELS.items()],
        default="skip",
    )
    tenant = StringField("Tenant", validators=[Length(max=64)])
    # Dispatch options for every fire (ops_ui/blueprints/console/schedule_options.py).
    queue = StringField("Queue", validators=[Length(max=100)])
    priority = StringField("Priority (0-9)", validators=[Length(max=10)])
    timeout = StringField("Timeout (seconds)", validators=[Length(max=20)])
    max_attempts = StringField("Max attempts", validators=[Length(max=10)])
    tags = StringField("Tags (comma-separated)", validators=[Length(max=2000)])


def _service() -> JobSchedulerService:
    return default_service(sql())


def cron_of(values: Any) -> str:
    """The expression a builder submitted: the raw field when filled, else the five fields."""
    raw = (values.get("cron") or "").strip()
    if raw:
        return raw
    return " ".join((values.get(name) or "").strip() or "*" for name, _ in CRON_FIELDS)


def _job_classes() -> list[tuple[str, str]]:
    rows = definitions_service.list_definitions(sql(), tenant())
    labels = {row.job_class: row.job_class + ("" if row.is_active else " (inactive)") for row in rows}
    names = getattr(backends().registry, "names", None)
    for name in names() if names is not None else []:
        labels.setdefault(name, name)
    return sorted(labels.items())


def _prepare(form: ScheduleForm) -> None:
    form.timezone.choices = [SelectChoice(zone) for zone in timezones()]
    form.job_class.choices = [SelectChoice(value, label) for value, label in _job_classes()]


def _fill_builder(form: ScheduleForm, expression: str) -> None:
    parts = expression.split()
    if len(parts) == len(CRON_FIELDS):
        for (name, _), part in zip(CRON_FIELDS, parts, strict=True):
            getattr(form, name).data = part


def _values(form: ScheduleForm, kept: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The form's schedule fields, or None with errors attached to the fields at fault.

    `kept`: the schedule's current options; those the form has no field for stay.
    """
    values: dict[str, Any] = {"options": read_options(form, kept)}
    cron = cron_of(request.form)
    form.cron.data = cron
    try:
        CronSchedule.parse(cron, "UTC")
        values["cron"] = cron
    except ValidationError as exc:
        form.cron.errors.append(str(exc))
    try:
        parse_zone(form.timezone.data)
        values["timezone"] = form.timezone.data
    except ValidationError as exc:
        form.timezone.errors.append(str(exc))
    if backends().registry.get(form.job_class.data or "") is None:
        form.job_class.errors.append(f"unknown job class {form.job_class.data!r}: no such task is registered")
    values["job_class"] = form.job_class.data
    try:
        payload = json.loads(form.payload.data or "{}")
    except ValueError as exc:
        form.payload.errors.append(f"payload is not valid JSON: {exc}")
    else:
        if isinstance(payload, dict):
            values["payload"] = payload
        else:
            form.payload.errors.append('payload must be a JSON object, like {"value": 1}')
    values["name"] = (form.name.data or "").strip() or None
    values["active"] = bool(form.active.data)
    values["missed_fire_policy"] = form.missed_fire_policy.data
    return None if form.errors else values


def _form_page(form: ScheduleForm, schedule: Any, status: int, error: str | None = None) -> Any:
    shown = _preview_context(form.cron.data or cron_of({n: getattr(form, n).data for n, _ in CRON_FIELDS}),
                             form.timezone.data or "UTC")  # fmt: skip
    page = render_template(
        "console/schedule_form.html",
        form=form,
        schedule=schedule,
        cron_fields=CRON_FIELDS,
        error=error,
        superadmin=tenant() is None,
        option_names=FORM_OPTIONS,
        kept_options=other_options(schedule["options"]) if schedule else {},
        **shown,
    )
    return page, status


@bp.get("/schedules")
@console_role("viewer")
def schedules() -> Any:
    rows = _service().get_scheduled_jobs(tenant())
    return render_page(
        "console/schedules.html", "console/schedules_table.html", schedules=[schedule_view(row) for row in rows]
    )


@bp.route("/schedules/new", methods=["GET", "POST"])
@console_role("admin")
def schedule_new() -> Any:
    form = ScheduleForm()
    _prepare(form)
    if request.method == "GET":
        form.cron.data = cron_of({n: getattr(form, n).data for n, _ in CRON_FIELDS})
        form.tenant.data = app_settings().default_tenant
        return _form_page(form, None, 200)
    values = _values(form) if form.validate() else None
    if values is None:
        return _form_page(form, None, 422)
    owner = tenant() or (form.tenant.data or "").strip() or app_settings().default_tenant
    try:
        row = _service().schedule_job(
            values.pop("job_class"), values.pop("cron"), values.pop("timezone"), values.pop("payload"),
            tenant_id=owner, **values,
        )  # fmt: skip
    except ValidationError as exc:
        sql().rollback()
        return _form_page(form, None, 422, str(exc))
    record_action("schedule.create", "schedule", row.id, after=schedule_view(row))
    flash(f"Schedule created: {schedule_view(row)['description']} ({row.timezone}).", "success")
    return redirect(url_for("console.schedule_detail", schedule_id=row.id))


@bp.route("/schedules/<schedule_id>/edit", methods=["GET", "POST"])
@console_role("admin")
def schedule_edit(schedule_id: str) -> Any:
    service = _service()
    row = service.get_schedule(schedule_id, tenant())
    if request.method == "GET":
        view = schedule_view(row)
        form = ScheduleForm(
            cron=view["cron"], timezone=view["timezone"], job_class=view["job_class"],
            payload=json.dumps(view["payload"], indent=2), name=view["name"] or "", active=view["active"],
            missed_fire_policy=view["missed_fire_policy"], **option_fields(view["options"]),
        )  # fmt: skip
        _prepare(form)
        _fill_builder(form, view["cron"])
        return _form_page(form, view, 200)
    form = ScheduleForm()
    _prepare(form)
    before = schedule_view(row)
    values = _values(form, before["options"]) if form.validate() else None
    if values is None:
        return _form_page(form, before, 422)
    try:
        row = service.update_schedule(schedule_id, tenant(), values)
    except ValidationError as exc:
        sql().rollback()
        return _form_page(form, before, 422, str(exc))
    record_action("schedule.update", "schedule", schedule_id, before=before, after=schedule_view(row))
    flash("Schedule saved.", "success")
    return redirect(url_for("console.schedule_detail", schedule_id=schedule_id))


def _preview_context(cron: str, timezone: str) -> dict[str, Any]:
    try:
        shown = preview(cron, timezone)
    except ValidationError as exc:
        return {"preview_error": str(exc), "preview": None, "preview_zone": timezone}
    return {"preview_error": None, "preview": shown, "preview_zone": timezone}


@bp.get("/schedules/preview")
@console_role("viewer")
def schedule_preview() -> Any:
    """The builder's live part: description and next runs of what is typed, nothing saved."""
    context = _preview_context(cron_of(request.args), request.args.get("timezone") or "UTC")
    return render_template("console/schedule_preview.html", **context)


@bp.get("/schedules/<schedule_id>")
@console_role("viewer")
def schedule_detail(schedule_id: str) -> Any:
    service = _service()
    view = schedule_view(service.get_schedule(schedule_id, tenant()))
    history = service.history(schedule_id, tenant(), limit=50)
    return render_page(
        "console/schedule.html",
        "console/schedule_history.html",
        schedule=view,
        history=history,
        policy_labels=POLICY_LABELS,
    )


def _back(schedule_id: str) -> Any:
    return redirect(url_for("console.schedule_detail", schedule_id=schedule_id))


@bp.post("/schedules/<schedule_id>/pause")
@console_role("admin")
def schedule_pause(schedule_id: str) -> Any:
    view = schedule_view(_service().pause_schedule(schedule_id, tenant()))
    record_action("schedule.pause", "schedule", schedule_id, after={"active": view["active"]})
    flash("Schedule paused: it does not fire until you resume it.", "success")
    return _back(schedule_id)


@bp.post("/schedules/<schedule_id>/resume")
@console_role("admin")
def schedule_resume(schedule_id: str) -> Any:
    view = schedule_view(_service().resume_schedule(schedule_id, tenant()))
    record_action("schedule.resume", "schedule", schedule_id, after={"active": view["active"]})
    flash("Schedule resumed from its next tick.", "success")
    return _back(schedule_id)


@bp.post("/schedules/<schedule_id>/run")
@console_role("operator")
def schedule_run(schedule_id: str) -> Any:
    service = _service()
    service.get_schedule(schedule_id, tenant())
    try:
        job_id = service.run_now(schedule_id, tenant())
    except ValidationError as exc:
        sql().rollback()
        record_action("schedule.run", "schedule", schedule_id, outcome="refused", after={"error": str(exc)})
        flash(f"Not run: {exc}", "error")
        return _back(schedule_id)
    record_action("schedule.run", "schedule", schedule_id, after={"job_id": job_id})
    flash("Job dispatched now; the schedule's own ticks are unchanged.", "success")
    return redirect(url_for("console.job_detail", job_id=job_id))


@bp.post("/schedules/<schedule_id>/delete")
@console_role("admin")
def schedule_delete(schedule_id: str) -> Any:
    service = _service()
    before = schedule_view(service.get_schedule(schedule_id, tenant()))
    service.remove_schedule(schedule_id, tenant())
    record_action("schedule.delete", "schedule", schedule_id, before=before)
    flash("Schedule deleted; the jobs it ran stay in the job history.", "success")
    return redirect(url_for("console.schedules"))
