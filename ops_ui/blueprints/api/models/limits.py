"""Limits (API.md Additions): `GET /api/limits` and `PUT /api/limits/concurrency/{key}`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from celeriac.concurrency import MAX_KEY_CHARS, MAX_LIMIT
from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, Path


class ConcurrencyKeyPath(Path):
    key: str = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="a concurrency key of your tenant, as dispatches name it"
    )


class ConcurrencyLimitBody(Body):
    """An unknown key makes the body malformed (400), as the shape is fixed."""

    model_config = ConfigDict(extra="forbid")
    unknown_field_status: ClassVar[int] = 400

    limit: Annotated[int, SHAPE, Field(ge=1, le=MAX_LIMIT)] = Field(
        description=f"at most this many jobs with the key run at once (1-{MAX_LIMIT})"
    )


class ConcurrencyLimit(Answer):
    key: str
    tenant: str = Field(description="the tenant the key belongs to (keys are per tenant)")
    limit: int = Field(description="the key's current limit (the most recent one set wins)")
    running: int = Field(description="jobs holding a slot now (their lease runs)")
    waiting: int = Field(description="jobs parked until a slot frees, oldest first")


class RateLimitUsage(Answer):
    scope: Literal["queue", "job_class"]
    name: str = Field(description="the queue or the job class")
    key: str | None = Field(description="a job class limit's key template (one counter per filled-in value)")
    limit: int
    per: float = Field(description="seconds")
    source: str = Field(description="config, api (set through PUT /api/queues/{name}/rate-limit) or code")
    used: int | None = Field(description="starts in the current window (null: a keyed limit, one counter per key)")


class Limits(Answer):
    rate_limits: list[RateLimitUsage] = Field(description="shared by every tenant, like the queues")
    concurrency_limits: list[ConcurrencyLimit] = Field(description="your tenant's keys in use or with a limit")
