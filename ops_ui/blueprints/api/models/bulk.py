"""`POST /api/jobs/bulk`: a bulk retry / cancel / purge by filter, run as a tracked job."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, EmptyIsAbsent, Query


class BulkFilter(Body):
    """Which of the tenant's jobs; every key optional (none: every job the action applies to)."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(default=None, description="one the action applies to (retry: failed or cancelled)")
    queue: str | None = None
    job_class: str | None = None
    tag: str | None = None
    created_before: str | None = Field(default=None, description="ISO 8601 time")
    created_after: str | None = Field(default=None, description="ISO 8601 time")
    system: bool | None = Field(
        default=None, description="false: leave out Celeriac's own maintenance tasks (celeriac.maintenance.*)"
    )


class BulkBody(Body):
    action: Annotated[Literal["retry", "cancel", "purge"], SHAPE] = Field(
        description="purge deletes finished jobs and needs the admin role"
    )
    filter: BulkFilter | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None


class BulkQuery(Query):
    preview: Annotated[Literal["1", "true", "0", "false"] | None, EmptyIsAbsent] = Field(
        default=None, description="1: count what would be touched and show 5 ids; queue nothing"
    )


class BulkStarted(Answer):
    id: str = Field(description="the bulk job; its progress: GET /api/jobs/{id}")


class BulkPreview(Answer):
    count: int = Field(description="jobs the action would touch now")
    sample: list[str] = Field(description="up to 5 of their ids, newest first")
