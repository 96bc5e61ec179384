"""Queues and workers (API.md "Monitoring, queues, workers"): pause / resume, rate limits and
Celery remote control of one worker."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from app.control.workers import ACTIONS, MAX_POOL_STEP
from app.ratelimit.queue_limits import MAX_LIMIT, MAX_PER_S
from ops_ui.blueprints.api.models.base import Answer, Body, Instant, Path
from ops_ui.trail import MAX_REASON_CHARS

#: A queue's name as a path parameter.
QueueName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$", description="1-100 letters, digits, '.', '_' or '-'")
]


class QueuePath(Path):
    name: QueueName


class WorkerPath(Path):
    hostname: str = Field(description="as GET /api/admin/queue/workers lists it")
    action: Literal[ACTIONS] = Field(  # type: ignore[valid-type]
        description="restart (an extension) goes through supervisord and answers 409 without it"
    )


def _text_or_nothing(value: Any) -> Any:
    """A reason that is not text was always ignored, never refused."""
    return value if isinstance(value, str) else None


#: Why an admin acts; the audit log keeps it.
Reason = Annotated[
    str | None, BeforeValidator(_text_or_nothing), Field(description=f"at most {MAX_REASON_CHARS} characters are kept")
]


class ControlBody(Body):
    """An optional body of a control action; an unknown key makes it malformed (400)."""

    model_config = ConfigDict(extra="forbid")
    unknown_field_status: ClassVar[int] = 400


class QueueActionBody(ControlBody):
    reason: Reason = None


class WorkerCommandBody(ControlBody):
    n: int | str | None = Field(
        default=None, description=f"pool-grow / pool-shrink: 1-{MAX_POOL_STEP} (default 1), digits in a string too"
    )
    queue: str | None = Field(default=None, description="add-consumer / cancel-consumer: the queue")
    reason: Reason = None


class PauseState(Answer):
    """A queue's last pause or resume (nulls: never paused)."""

    queue: str
    paused: bool
    by: str | None
    at: Instant | None
    reason: str | None


class RateLimitBody(Body):
    """`PUT /api/queues/{name}/rate-limit`: at most `limit` jobs start in any `per` seconds."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)]
    per: Annotated[int, Field(ge=1, le=MAX_PER_S, description="seconds")]


class RateLimit(Answer):
    """A queue's global rate limit; nulls: none."""

    queue: str
    limit: int | None
    per: int | None
    source: Literal["code", "config", "api"] | None = Field(
        description="api (set here) wins over config (environment), which wins over code (define_queue)"
    )


class WorkerCommandResult(Answer):
    hostname: str
    action: str
    status: Literal["done", "accepted"] = Field(description="done: the worker answered; accepted: it acts after")
    detail: str
