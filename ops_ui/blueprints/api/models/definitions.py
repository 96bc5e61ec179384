"""Job definitions (API.md "Definitions"): a class's defaults, and the changes an admin makes.

Ranges are checked by app/services/definitions.py, which the console shares; the model
gives the JSON types and says the ranges in words.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from app.services.definitions import MAX_ATTEMPTS, MAX_DESCRIPTION, MAX_RETRY_AFTER_S
from ops_ui.blueprints.api.models.base import Answer, Body, Instant, omittable


class DefinitionChanges(Body):
    """`PATCH /api/definitions/{job_class}`: at least one field; an unknown one is a 422."""

    model_config = ConfigDict(extra="forbid")

    # Only the description can be cleared with null.
    description: str | None = Field(default=None, description=f"at most {MAX_DESCRIPTION} characters")
    default_queue: str = omittable(description="1-100 letters, digits, '.', '_' or '-'")
    priority: int = omittable(description="0-9")
    max_attempts: int = omittable(description=f"1-{MAX_ATTEMPTS}")
    timeout: int = omittable(description="seconds, 1-CELERIAC_MAX_TIMEOUT_S")
    retry_after: int = omittable(description=f"seconds between attempts, 0-{MAX_RETRY_AFTER_S}")
    is_active: bool = omittable(description="false: dispatching the class answers 422")
    tags: list[str] = omittable(description="added to every job of the class")
    metadata: dict[str, Any] = omittable()


class Definition(Answer):
    """The defaults in effect for the token's tenant."""

    job_class: str
    name: str
    description: str | None
    default_queue: str
    priority: int
    max_attempts: int
    timeout: int
    retry_after: int
    is_active: bool
    tags: list[str]
    metadata: dict[str, Any]
    overridden: bool = Field(description="true: the values are the tenant's own override")
    updated_at: Instant | None


class Definitions(Answer):
    items: list[Definition]
