"""The service itself: /healthz and the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from ops_ui.blueprints.api.models.base import Answer


class Health(Answer):
    status: Literal["ok"]


class ApiDocument(Answer):
    """An OpenAPI 3.1 document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
