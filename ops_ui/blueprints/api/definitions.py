"""Definitions section of API.md (J3): list, read and change job classes' defaults.

Roles: viewer reads; admin changes. A tenant's admin changes only that tenant's override
(U6); DELETE (an extension) drops the override so the global defaults apply again.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.services import definitions as service
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.jobs import _settings, _tenant
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.extensions import sql
from ops_ui.trail import record_action


def limits() -> service.Limits:
    return service.Limits(max_timeout_s=_settings().max_timeout_s)


@bp.get("/definitions")
@api_auth("viewer")
def list_definitions() -> Any:
    rows = service.list_definitions(sql(), _tenant())
    return jsonify(items=[service.definition_view(row, _tenant()) for row in rows])


@bp.get("/definitions/<job_class>")
@api_auth("viewer")
def get_definition(job_class: str) -> Any:
    return jsonify(service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant()))


@bp.patch("/definitions/<job_class>")
@api_auth("admin")
def update_definition(job_class: str) -> Any:
    changes = json_body()
    before = service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant())
    row = service.update_definition(sql(), job_class, _tenant(), changes, limits())
    after = service.definition_view(row, _tenant())
    record_action("definition.update", "definition", job_class, before=before, after=after)
    return jsonify(after)


@bp.delete("/definitions/<job_class>")
@api_auth("admin")
def reset_definition(job_class: str) -> Any:
    before = service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant())
    row = service.reset_definition(sql(), job_class, _tenant())
    after = service.definition_view(row, _tenant())
    record_action("definition.reset", "definition", job_class, before=before, after=after)
    return jsonify(after)


def openapi_paths() -> dict[str, Any]:
    """This module's part of GET /api/openapi.json."""
    problem = {"$ref": "#/components/responses/Problem"}
    fields: dict[str, Any] = {
        "description": {"type": "string", "nullable": True, "maxLength": service.MAX_DESCRIPTION},
        "default_queue": {"type": "string", "example": "default"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": service.MAX_ATTEMPTS},
        "timeout": {"type": "integer", "minimum": 1, "description": "seconds; at most CELERIAC_MAX_TIMEOUT_S"},
        "retry_after": {"type": "integer", "minimum": 0, "maximum": service.MAX_RETRY_AFTER_S},
        "is_active": {"type": "boolean", "description": "false: dispatching the class answers 422"},
        "tags": {"type": "array", "items": {"type": "string"}, "description": "added to every job of the class"},
        "metadata": {"type": "object"},
    }
    definition = {
        "type": "object",
        "properties": {
            "job_class": {"type": "string", "example": "demo.echo"},
            "name": {"type": "string"},
            **fields,
            "overridden": {"type": "boolean", "description": "true: the values are the tenant's own override"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }
    listing = {"type": "object", "properties": {"items": {"type": "array", "items": definition}}}
    one = {"description": "the effective definition", "content": {"application/json": {"schema": definition}}}
    job_class = {"name": "job_class", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/definitions": {
            "get": {
                "summary": "Every job class with the defaults in effect for the tenant (viewer)",
                "responses": {
                    "200": {"description": "items", "content": {"application/json": {"schema": listing}}},
                    "401": problem,
                },
            }
        },
        "/api/definitions/{job_class}": {
            "parameters": [job_class],
            "get": {"responses": {"200": one, "401": problem, "404": problem}},
            "patch": {
                "summary": "Change defaults or activate / deactivate (admin); a tenant's admin changes only "
                "the tenant's override, created from the global values on first edit",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": fields}}}},
                "responses": {"200": one, **{str(c): problem for c in (400, 401, 403, 404, 413, 422)}},
            },
            "delete": {
                "summary": "Drop the tenant's override (admin): the global defaults apply again",
                "responses": {"200": one, **{str(c): problem for c in (401, 403, 404, 409)}},
            },
        },
    }
