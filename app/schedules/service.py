"""Schedules from code, API and CLI (S1-S3): one service, the SQL row is the record.

Every change writes the row, then its RedBeat entry, then commits: if Redis is down the
change is refused (503) and nothing is saved; if the commit fails after the entry was
written, the fire and the reconcile at beat start-up see the row as it really is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.backends.current import backends
from app.composition.submit import submit
from app.config import get_settings
from app.errors import NotFound, ValidationError
from app.kernel.dispatching import DispatchSpec, find_definition
from app.kernel.ports import ScheduleStore
from app.models import JobExecution, JobSchedule, ScheduleEvent
from app.models.schedule_event import MISSED, REFUSED
from app.redis_client import get_redis
from app.schedules.cron import CronSchedule
from app.schedules.firing import POLICIES, SKIP, Dispatcher, FireResult, align, fire, schedule_of
from app.schedules.options import clean_options, spec_kwargs
from app.schedules.views import event_view, run_view

MAX_NAME = 200
MAX_CRON = 200
#: Largest page of a schedule's history.
MAX_HISTORY = 200
#: Fields `update_schedule` accepts.
EDITABLE = ("job_class", "cron", "timezone", "payload", "active", "name", "missed_fire_policy", "options")


class JobSchedulerService:
    """Create, change, pause, remove, run and read schedules; keeps RedBeat in step.

    `tenant_id=None` means every tenant (the CLI, a superadmin); otherwise another
    tenant's schedule is NotFound.
    """

    def __init__(self, session: Session, store: ScheduleStore, dispatcher: Dispatcher, redis_client: Any) -> None:
        self.session = session
        self.store = store
        self.dispatcher = dispatcher
        self.redis = redis_client

    # -- changes -------------------------------------------------------------------

    def schedule_job(
        self,
        job_class: str,
        cron: str,
        timezone: str = "UTC",
        payload: dict[str, Any] | None = None,
        *,
        tenant_id: str,
        name: str | None = None,
        active: bool = True,
        missed_fire_policy: str = SKIP,
        options: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> JobSchedule:
        """Save a new schedule and its entry; `options` are dispatch options for every fire.

        Raises:
            ValidationError: bad cron, zone, job class, payload, name, policy or option.
            BackendUnavailable: Redis is down; nothing was saved.
        """
        row = JobSchedule(tenant_id=tenant_id, is_active=True, missed_fire_policy=SKIP, payload={})
        self._apply(
            row,
            {
                "job_class": job_class,
                "cron": cron,
                "timezone": timezone,
                "payload": {} if payload is None else payload,
                "active": active,
                "name": name,
                "missed_fire_policy": missed_fire_policy,
                "options": options,
            },
        )
        self._reschedule(row, now)
        self.session.add(row)
        self._save(row)
        return row

    def update_schedule(
        self, schedule_id: str, tenant_id: str | None, changes: dict[str, Any], now: datetime | None = None
    ) -> JobSchedule:
        """Apply `changes` (keys of EDITABLE); a new cron, zone or resume moves the next run.

        Raises:
            NotFound: unknown id or another tenant's schedule.
            ValidationError: an unknown field or an invalid value.
            BackendUnavailable: Redis is down; nothing was saved.
        """
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise ValidationError(f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
        row = self.get_schedule(schedule_id, tenant_id)
        before = (row.cron_expression, row.timezone, row.is_active)
        self._apply(row, changes)
        if (row.cron_expression, row.timezone, row.is_active) != before:
            self._reschedule(row, now)
        self._save(row)
        return row

    def pause_schedule(self, schedule_id: str, tenant_id: str | None) -> JobSchedule:
        return self.update_schedule(schedule_id, tenant_id, {"active": False})

    def resume_schedule(self, schedule_id: str, tenant_id: str | None, now: datetime | None = None) -> JobSchedule:
        """Active again from the next tick after now; ticks while paused are not missed fires."""
        return self.update_schedule(schedule_id, tenant_id, {"active": True}, now)

    def remove_schedule(self, schedule_id: str, tenant_id: str | None) -> None:
        """Delete the row, its history events and its entry (its runs stay in history).

        Raises:
            NotFound: unknown id or another tenant's schedule.
            BackendUnavailable: Redis is down; nothing was removed.
        """
        row = self.get_schedule(schedule_id, tenant_id)
        self.session.execute(delete(ScheduleEvent).where(ScheduleEvent.schedule_id == row.id))
        self.session.delete(row)
        self.session.flush()
        try:
            self.store.delete(schedule_id)
        except Exception:
            self.session.rollback()
            raise
        self.session.commit()

    # -- running -------------------------------------------------------------------

    def run_now(self, schedule_id: str, tenant_id: str | None) -> str:
        """Dispatch the schedule's job at once (linked to it); its ticks are unchanged.

        Raises:
            NotFound: unknown id or another tenant's schedule.
            ValidationError: the job class is unknown or inactive.
            BackendUnavailable: the broker refused the job (recorded as failed).
        """
        row = self.get_schedule(schedule_id, tenant_id)
        done = submit(
            self.session,
            _spec(row),
            registry=self.dispatcher.registry,
            publisher=self.dispatcher.publisher,
            settings=self.dispatcher.settings,
        )
        row.last_run_at = datetime.now(UTC)
        self.session.commit()
        return done.row.id

    def run_scheduled_jobs(self, tenant_id: str | None = None, now: datetime | None = None) -> list[FireResult]:
        """Fire every active schedule whose next run is due, as beat would.

        Safe beside a running beat: the tick claims let only one of them run each tick.
        """
        now = now or datetime.now(UTC)
        query = select(JobSchedule.id, JobSchedule.next_run_at).where(
            JobSchedule.is_active.is_(True), JobSchedule.next_run_at <= now
        )
        if tenant_id is not None:
            query = query.where(JobSchedule.tenant_id == tenant_id)
        due = list(self.session.execute(query))
        self.session.commit()
        return [
            fire(self.session, self.store, self.redis, schedule_id, tick, self.dispatcher, now)
            for schedule_id, tick in due
        ]

    # -- reading -------------------------------------------------------------------

    def get_schedule(self, schedule_id: str, tenant_id: str | None) -> JobSchedule:
        """Raises: NotFound: unknown id, or another tenant's schedule."""
        row = self.session.get(JobSchedule, schedule_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise NotFound(f"no schedule {schedule_id}")
        return row

    def get_scheduled_jobs(self, tenant_id: str | None = None, active: bool | None = None) -> list[JobSchedule]:
        query = select(JobSchedule).order_by(JobSchedule.created_at, JobSchedule.id)
        if tenant_id is not None:
            query = query.where(JobSchedule.tenant_id == tenant_id)
        if active is not None:
            query = query.where(JobSchedule.is_active.is_(active))
        return list(self.session.scalars(query))

    def get_next_run_time(self, schedule_id: str, tenant_id: str | None) -> datetime | None:
        """When the schedule fires next (UTC); None while paused."""
        return self.get_schedule(schedule_id, tenant_id).next_run_at

    def history(self, schedule_id: str, tenant_id: str | None, limit: int = 50) -> dict[str, Any]:
        """Runs (newest first), missed and refused fires, and counts by outcome.

        Raises:
            NotFound: unknown id or another tenant's schedule.
            ValidationError: limit out of range.
        """
        if not 1 <= limit <= MAX_HISTORY:
            raise ValidationError(f"limit must be from 1 to {MAX_HISTORY}")
        row = self.get_schedule(schedule_id, tenant_id)
        runs = self.session.scalars(
            select(JobExecution)
            .where(JobExecution.schedule_id == row.id)
            .order_by(JobExecution.created_at.desc(), JobExecution.id.desc())
            .limit(limit)
        )
        by_status = dict(
            self.session.execute(
                select(JobExecution.status, func.count())
                .where(JobExecution.schedule_id == row.id)
                .group_by(JobExecution.status)
            ).all()
        )
        events = list(
            self.session.scalars(
                select(ScheduleEvent)
                .where(ScheduleEvent.schedule_id == row.id)
                .order_by(ScheduleEvent.created_at.desc(), ScheduleEvent.id.desc())
                .limit(limit)
            )
        )
        by_kind = dict(
            self.session.execute(
                select(ScheduleEvent.kind, func.sum(ScheduleEvent.count))
                .where(ScheduleEvent.schedule_id == row.id)
                .group_by(ScheduleEvent.kind)
            ).all()
        )
        return {
            "schedule_id": row.id,
            "counts": {
                "runs": sum(by_status.values()),
                "by_status": by_status,
                "failed": by_status.get("failed", 0),
                "missed": int(by_kind.get(MISSED) or 0),
                "refused": int(by_kind.get(REFUSED) or 0),
            },
            "runs": [run_view(run) for run in runs],
            "events": [event_view(event) for event in events],
        }

    # -- internals -----------------------------------------------------------------

    def _apply(self, row: JobSchedule, changes: dict[str, Any]) -> None:
        """Validate and copy changes onto the row (not yet saved)."""
        if "cron" in changes or "timezone" in changes:
            cron = changes.get("cron", row.cron_expression)
            timezone = changes.get("timezone", row.timezone)
            CronSchedule.parse(cron, timezone)
            if len(cron) > MAX_CRON:
                raise ValidationError(f"cron must be at most {MAX_CRON} characters")
            row.cron_expression = " ".join(cron.split())
            row.timezone = timezone
        if "job_class" in changes:
            self._apply_job_class(row, changes["job_class"])
        if "options" in changes:
            # Checked as a dispatch checks them (app.schedules.options); an empty set is stored as null.
            row.options = clean_options(changes["options"], self.dispatcher.settings) or None
        for key, value in changes.items():
            check = _FIELD_CHECKS.get(key)
            if check is not None:
                check(value)
                setattr(row, _COLUMNS[key], value)

    def _apply_job_class(self, row: JobSchedule, job_class: object) -> None:
        if not isinstance(job_class, str) or self.dispatcher.registry.get(job_class) is None:
            raise ValidationError(f"unknown job class {job_class!r}: no such task is registered")
        definition = find_definition(self.session, job_class)
        row.job_class = job_class
        row.job_definition_id = definition.id if definition else None

    def _reschedule(self, row: JobSchedule, now: datetime | None) -> None:
        row.next_run_at = schedule_of(row).next_after(now or datetime.now(UTC)) if row.is_active else None

    def _save(self, row: JobSchedule) -> None:
        """Row, then entry, then commit; then re-check against a concurrent change."""
        self.session.flush()
        try:
            self.store.write(row.id, row.next_run_at, enabled=row.is_active)
        except Exception:
            self.session.rollback()
            raise
        self.session.commit()
        align(self.session, self.store, row)


def _check_payload(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError("payload must be an object")


def _check_active(value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError("active must be true or false")


def _check_name(value: object) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME):
        raise ValidationError(f"name must be a string of at most {MAX_NAME} characters")


def _check_policy(value: object) -> None:
    if value not in POLICIES:
        raise ValidationError(f"missed_fire_policy must be one of {', '.join(POLICIES)}")


_FIELD_CHECKS: dict[str, Callable[[object], None]] = {
    "payload": _check_payload,
    "active": _check_active,
    "name": _check_name,
    "missed_fire_policy": _check_policy,
}
#: Row attribute of each simple field.
_COLUMNS = {"payload": "payload", "active": "is_active", "name": "name", "missed_fire_policy": "missed_fire_policy"}


def _spec(row: JobSchedule) -> Any:
    return DispatchSpec(
        job_class=row.job_class,
        payload=dict(row.payload or {}),
        tenant_id=row.tenant_id,
        schedule_id=row.id,
        **spec_kwargs(row.options),
    )


def default_service(session: Session) -> JobSchedulerService:
    """The service with this process's backends (app.backends.current) and the settings' Redis."""
    settings = get_settings()
    used = backends()
    dispatcher = Dispatcher(used.registry, used.publisher, settings)
    return JobSchedulerService(session, used.schedules, dispatcher, get_redis(settings.redis_url))
