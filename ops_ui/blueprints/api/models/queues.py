"""Queue settings (API.md "Additions": `GET /api/queues`, `GET|PUT /api/queues/{name}`).

Types are checked here (a wrong JSON type or an unknown key is a malformed body, 400);
ranges by app.control.queue_settings, which the console and CLI share (422).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from app.kernel.queue_defaults import MAX_ATTEMPTS, MAX_PENDING, MAX_RETRY_AFTER_S, MAX_WEIGHT
from app.ratelimit.queue_limits import MAX_LIMIT, MAX_PER_S
from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, Instant
from ops_ui.blueprints.api.models.control import PauseState, RateLimit


class QueueRateLimitBody(Body):
    """A queue's rate limit inside its settings: as `PUT /api/queues/{name}/rate-limit` takes it."""

    model_config = ConfigDict(extra="forbid")
    unknown_field_status: ClassVar[int] = 400

    limit: Annotated[int, SHAPE, Field(description=f"1-{MAX_LIMIT} jobs")]
    per: Annotated[int, SHAPE, Field(description=f"1-{MAX_PER_S} seconds")]


class QueueSettingsBody(Body):
    """`PUT /api/queues/{name}`: a field left out stays as it is; null clears it."""

    model_config = ConfigDict(extra="forbid")
    unknown_field_status: ClassVar[int] = 400

    max_attempts: Annotated[int | None, SHAPE] = Field(None, description=f"1-{MAX_ATTEMPTS}")
    retry_after: Annotated[int | None, SHAPE] = Field(
        None, description=f"seconds before a retry when the job has no backoff of its own, 0-{MAX_RETRY_AFTER_S}"
    )
    timeout: Annotated[int | None, SHAPE] = Field(
        None, description="seconds (soft time limit), 1-CELERIAC_MAX_TIMEOUT_S"
    )
    encrypted: Annotated[bool | None, SHAPE] = Field(None, description="seal payloads and results of the queue's jobs")
    rate_limit: Annotated[QueueRateLimitBody | None, SHAPE] = Field(
        None, description="the same limit as /api/queues/{name}/rate-limit; null removes the one set here"
    )
    weight: Annotated[int | None, SHAPE] = Field(
        None, description=f"1-{MAX_WEIGHT}: share of takes of a worker consuming several queues"
    )
    max_pending: Annotated[int | None, SHAPE] = Field(
        None, description=f"1-{MAX_PENDING}: a dispatch beyond it answers 429"
    )


Source = Literal["api", "code", "config", "default"]


class QueueSettingsView(Answer):
    """A queue's settings in effect; a queue never configured answers Celeriac's defaults."""

    queue: str
    max_attempts: int
    retry_after: int | None = Field(description="null: exponential backoff (10 s doubling, at most 600 s)")
    timeout: int
    encrypted: bool
    rate_limit: RateLimit
    weight: int
    max_pending: int | None = Field(description="null: no bound")
    sources: dict[str, Source] = Field(
        description="per setting: api (set through the API, CLI or console), code (define_queue), "
        "config (environment, rate_limit only) or default"
    )
    updated_at: Instant | None
    updated_by: str | None


class QueueEntry(PauseState, QueueSettingsView):
    """One queue of `GET /api/queues`: its pause state and its settings."""


class QueueList(Answer):
    queues: list[QueueEntry]


class QueueCleared(Answer):
    """What a clear took: the caller's tenant's messages and held jobs of the queue."""

    cleared: int = Field(description="messages removed from the broker plus held jobs cancelled")
    cancelled: int = Field(description="job rows ended cancelled")
    truncated: bool = Field(description="true: more was waiting than one call clears; clear again")
