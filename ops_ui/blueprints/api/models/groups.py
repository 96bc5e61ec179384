"""Batches and chains (API.md "Batches and chains"): bodies and answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, Instant
from ops_ui.blueprints.api.models.jobs import DispatchBody

#: Largest allow_failures a batch row can store (a 32-bit integer column).
MAX_ALLOW_FAILURES = 2**31 - 1

#: A batch's or chain's jobs; an empty list is a 422 (nothing to run), not a malformed body.
Jobs = Annotated[list[DispatchBody], SHAPE, Field(min_length=1)]
#: A callback job (then, catch, finally), or none.
Callback = Annotated[DispatchBody | None, SHAPE]
#: The name of a batch or chain: it must fit its column, or the body is malformed.
GroupName = Annotated[str | None, SHAPE, Field(max_length=200)]


class BatchBody(Body):
    """`POST /api/batches`: all jobs are dispatched, or none."""

    jobs: Jobs
    name: GroupName = None
    allow_failures: Annotated[int, Field(ge=0, le=MAX_ALLOW_FAILURES)] | None = Field(
        default=None, description="failed jobs the batch tolerates before it counts as failed (default 0)"
    )
    then: Callback = Field(default=None, description="runs once when the batch finished within allow_failures")
    catch: Callback = Field(default=None, description="runs once when the batch failed")
    finally_: Callback = Field(default=None, alias="finally", description="runs once when the batch ended, either way")


class AddJobsBody(Body):
    """`POST /api/batches/{id}/jobs`: more jobs for a running batch."""

    jobs: Jobs


class ChainBody(Body):
    """`POST /api/chains`: each step gets the previous result as payload["previous_result"]."""

    jobs: Jobs
    name: GroupName = None
    catch: Callback = Field(default=None, description="runs once when a step failed")


class BatchCreated(Answer):
    id: str
    job_ids: list[str]
    total_jobs: int


GroupStatus = Literal["pending", "running", "finished", "failed", "cancelled"]


class Batch(Answer):
    id: str
    name: str | None
    status: GroupStatus
    total_jobs: int
    pending_jobs: int
    processed_jobs: int
    failed_jobs: int
    allow_failures: int
    progress: int = Field(ge=0, le=100)
    then_job_id: str | None
    catch_job_id: str | None
    finally_job_id: str | None
    created_at: Instant
    finished_at: Instant | None
    cancelled_at: Instant | None


class BatchCancelled(Answer):
    id: str
    status: Literal["cancelled"]
    cancelled_jobs: int


class ChainCreated(Answer):
    id: str
    job_ids: list[str]


class ChainStep(Answer):
    id: str
    status: str


class Chain(Answer):
    id: str
    name: str | None
    status: GroupStatus
    current_step: int = Field(description="counts from 1")
    total_steps: int
    progress: int = Field(ge=0, le=100)
    job_ids: list[str]
    steps: list[ChainStep]
    catch_job_id: str | None
    created_at: Instant


class ChainCancelled(Chain):
    cancelled_jobs: int
