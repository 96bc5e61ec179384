"""Definitions section of API.md (J3): list, read and change job classes' defaults.

Roles: viewer reads; admin changes. A tenant's admin changes only that tenant's override
(U6); DELETE (an extension) drops the override so the global defaults apply again.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.services import definitions as service
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.jobs import _settings, _tenant
from ops_ui.blueprints.api.models.definitions import Definition, DefinitionChanges, Definitions
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.blueprints.api.validation import validated
from ops_ui.extensions import sql
from ops_ui.trail import record_action


def limits() -> service.Limits:
    return service.Limits(max_timeout_s=_settings().max_timeout_s)


@bp.get("/definitions")
@api_auth("viewer")
@operation("Every job class with the defaults in effect for the tenant", answers={200: (Definitions, "items")})
def list_definitions() -> Any:
    rows = service.list_definitions(sql(), _tenant())
    return jsonify(items=[service.definition_view(row, _tenant()) for row in rows])


@bp.get("/definitions/<job_class>")
@api_auth("viewer")
@operation("A job class's defaults in effect for the tenant", answers={200: (Definition, "the definition")})
def get_definition(job_class: str) -> Any:
    return jsonify(service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant()))


@bp.patch("/definitions/<job_class>")
@api_auth("admin")
@operation(
    "Change defaults or activate / deactivate; a tenant's admin changes only the tenant's override, "
    "created from the global values on first edit",
    body=DefinitionChanges,
    answers={200: (Definition, "the definition in effect")},
)
def update_definition(job_class: str) -> Any:
    raw = json_body()
    before = service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant())
    changes = validated(DefinitionChanges, raw).model_dump(exclude_unset=True)
    row = service.update_definition(sql(), job_class, _tenant(), changes, limits())
    after = service.definition_view(row, _tenant())
    record_action("definition.update", "definition", job_class, before=before, after=after)
    return jsonify(after)


@bp.delete("/definitions/<job_class>")
@api_auth("admin")
@operation(
    "Drop the tenant's override: the global defaults apply again",
    answers={200: (Definition, "the definition in effect")},
    errors=(409,),
)
def reset_definition(job_class: str) -> Any:
    before = service.definition_view(service.get_definition(sql(), job_class, _tenant()), _tenant())
    row = service.reset_definition(sql(), job_class, _tenant())
    after = service.definition_view(row, _tenant())
    record_action("definition.reset", "definition", job_class, before=before, after=after)
    return jsonify(after)
