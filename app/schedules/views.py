"""Schedules as the API, console and CLI show them, and a cron expression previewed before saving."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.crypto import REDACTED
from app.errors import ValidationError
from app.models import JobExecution, JobSchedule, ScheduleEvent
from app.schedules.cron import CronSchedule
from app.schedules.firing import schedule_of

#: Run times a preview shows.
PREVIEW_RUNS = 5


@dataclass(frozen=True)
class Preview:
    description: str
    next_runs: list[datetime]


def preview(cron: object, timezone: object = "UTC", count: int = PREVIEW_RUNS, now: datetime | None = None) -> Preview:
    """Description and next run times (in the zone) of a cron expression, before saving.

    Raises:
        ValidationError: what is wrong with the expression or the zone.
    """
    schedule = CronSchedule.parse(cron, timezone)
    return Preview(schedule.describe(), schedule.next_runs(now or datetime.now(UTC), count))


def schedule_view(row: JobSchedule) -> dict[str, Any]:
    """The public shape of a schedule (API.md fields first, then extensions)."""
    try:
        schedule = schedule_of(row)
        description: str | None = schedule.describe()
    except ValidationError:
        description = None
    return {
        "id": row.id,
        "job_class": row.job_class,
        "cron": row.cron_expression,
        "timezone": row.timezone,
        "active": row.is_active,
        "description": description,
        "next_run_at": iso(row.next_run_at),
        "last_run_at": iso(row.last_run_at),
        "name": row.name,
        "payload": row.payload if row.payload is not None else {},
        "missed_fire_policy": row.missed_fire_policy,
        "options": dict(row.options or {}),
        "tenant_id": row.tenant_id,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def run_view(run: JobExecution) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "attempts": run.attempts,
        # An encrypted job's error is a sealed token: never shown as such (J9).
        "error_message": REDACTED if run.encrypted and run.error_message else run.error_message,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "failed_at": iso(run.failed_at),
    }


def event_view(event: ScheduleEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "tick_at": iso(event.tick_at),
        "last_tick_at": iso(event.last_tick_at),
        "count": event.count,
        "action": event.action,
        "job_id": event.job_id,
        "detail": event.detail,
        "created_at": iso(event.created_at),
    }
