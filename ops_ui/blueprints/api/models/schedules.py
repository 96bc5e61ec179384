"""Schedules (API.md "Schedules"): preview, create and change bodies, a schedule, its history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from app.schedules.options import NOT_RECURRING
from app.schedules.service import MAX_HISTORY, MAX_NAME
from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, Instant, Query, invalid, omittable
from ops_ui.blueprints.api.models.jobs import DispatchOptions, JobStatus, Payload

Cron = Annotated[
    str,
    SHAPE,
    Field(
        examples=["30 2 * * *"],
        description="5 fields (minute hour day-of-month month day-of-week), or 6 with a leading seconds "
        "field; @hourly, @daily, @weekly, @monthly, @yearly",
    ),
]
TimeZone = Annotated[str, SHAPE, Field(examples=["Europe/Berlin"], description="IANA time zone")]
#: Ticks missed while beat was down: skipped, or one catch-up run.
MissedFirePolicy = Annotated[Literal["skip", "run_once"], SHAPE]
ScheduleName = Annotated[str, Field(max_length=MAX_NAME)] | None


def _drop_not_recurring(schema: dict[str, Any]) -> None:
    for key in NOT_RECURRING:
        schema.get("properties", {}).pop(key, None)


class ScheduleOptions(DispatchOptions):
    """Dispatch options every fire uses: the dispatch's keys and checks, except those a
    recurring job cannot mean (depends_on, unique_for, unique_id: a 422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_not_recurring)

    @model_validator(mode="before")
    @classmethod
    def _recurring_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in NOT_RECURRING:
                if key in data:
                    raise invalid(f"{key} is not a schedule option: {NOT_RECURRING[key]}")
        return data


def _null_as_empty(value: object) -> object:
    """`"options": null` in a change clears them, as `{}` does."""
    return {} if value is None else value


#: A schedule's options in a body: an object, or null for none.
Options = Annotated[ScheduleOptions, SHAPE, BeforeValidator(_null_as_empty)]


class PreviewBody(Body):
    cron: Cron
    timezone: TimeZone = "UTC"


class Preview(Answer):
    description: str
    next_runs: list[Instant] = Field(description="the next 5 run times, with the zone's offset")


class ScheduleBody(Body):
    """`POST /api/schedules`: the schedule and its RedBeat entry. Unknown keys are ignored."""

    job_class: Annotated[str, SHAPE, Field(examples=["demo.echo"])]
    cron: Cron
    timezone: TimeZone = "UTC"
    payload: Annotated[Payload, SHAPE] = Field(default_factory=dict)
    active: Annotated[bool, SHAPE] = True
    name: ScheduleName = None
    missed_fire_policy: MissedFirePolicy = "skip"
    options: Options = Field(default_factory=ScheduleOptions, description="dispatch options for every fire")


class ScheduleChanges(Body):
    """`PATCH /api/schedules/{id}`: any of the fields; an unknown one is a 422."""

    model_config = ConfigDict(extra="forbid")

    # Not nullable: a field sent as null is a malformed body (only the name can be cleared).
    job_class: Annotated[str, SHAPE] = omittable()
    cron: Cron = omittable()
    timezone: TimeZone = omittable()
    payload: Annotated[Payload, SHAPE] = omittable()
    active: Annotated[bool, SHAPE] = omittable()
    name: ScheduleName = None
    missed_fire_policy: MissedFirePolicy = omittable()
    options: Options = Field(
        default_factory=ScheduleOptions, description="replaces the options as a whole; {} or null clears them"
    )


class Schedule(Answer):
    id: str
    job_class: str
    cron: str
    timezone: str
    active: bool
    description: str | None = Field(examples=["At 02:30"])
    next_run_at: Instant | None = Field(description="null while paused")
    last_run_at: Instant | None
    name: str | None
    payload: dict[str, Any]
    missed_fire_policy: str
    options: dict[str, Any] = Field(description="dispatch options every fire uses ({} for none)")
    tenant_id: str
    created_at: Instant
    updated_at: Instant


class Schedules(Answer):
    items: list[Schedule]


class ScheduleListQuery(Query):
    active: Literal["true", "false"] | None = None


class ScheduleRun(Answer):
    """The job a schedule dispatched now: `id` and `job_id` are the same."""

    id: str
    job_id: str
    schedule_id: str
    status: Literal["pending"]


class HistoryQuery(Query):
    limit: int = Field(50, ge=1, le=MAX_HISTORY)


class ScheduleRunSummary(Answer):
    id: str
    status: JobStatus
    attempts: int
    error_message: str | None
    created_at: Instant
    started_at: Instant | None
    completed_at: Instant | None
    failed_at: Instant | None


class ScheduleEvent(Answer):
    """A missed or refused fire."""

    kind: Literal["missed", "refused"]
    tick_at: Instant | None
    last_tick_at: Instant | None
    count: int
    action: Literal["skipped", "ran_once"] | None
    job_id: str | None
    detail: str | None
    created_at: Instant


class HistoryCounts(Answer):
    runs: int
    by_status: dict[str, int]
    failed: int
    missed: int
    refused: int


class ScheduleHistory(Answer):
    schedule_id: str
    counts: HistoryCounts
    runs: list[ScheduleRunSummary]
    events: list[ScheduleEvent]
