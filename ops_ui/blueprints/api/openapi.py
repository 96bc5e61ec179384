"""GET /api/openapi.json: the OpenAPI 3.1 document, generated from the routes and their models.

Nothing here is written by hand but what all routes share (security, error responses, the
Idempotency-Key header); a unit test checks every rule under /api is in it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify

from app import __version__
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.base import Problem
from ops_ui.blueprints.api.models.service import ApiDocument, Health
from ops_ui.blueprints.api.openapi_paths import described_routes, models_of, path_items
from ops_ui.blueprints.api.openapi_schemas import component_schemas
from ops_ui.blueprints.api.operation import Operation, operation

#: Routes outside this blueprint that belong to the contract (API.md), by endpoint.
ELSEWHERE = {
    "health.healthz": Operation("The web process is up (touches no backend)", {200: (Health, "up")}, public=True),
    "metrics.prometheus": Operation(
        "Prometheus text exposition: jobs finished, runtimes, live jobs, queue depth, recorder; series carry "
        "a tenant label. An API token reads its tenant's series, a metrics token every tenant's",
        {200: (None, "text/plain; version=0.0.4")},
        media_type="text/plain",
    ),
}


def document() -> dict[str, Any]:
    """The whole document: every described rule of the app's URL map, with its models."""
    routes = described_routes(current_app, ELSEWHERE)
    refs, schemas = component_schemas([Problem, *models_of(routes)])
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Celeriac API",
            "version": __version__,
            "description": "Generated from the routes and their models (ops_ui/blueprints/api/models).",
        },
        "security": [{"bearer": []}],
        "paths": path_items(routes, refs),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {"IdempotencyKey": _IDEMPOTENCY_KEY},
            "headers": {
                "IdempotentReplayed": {
                    "description": "true when this is the stored answer to an earlier request with the same key",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
            "responses": {
                "Problem": {"description": "application/problem+json (RFC 9457)", "content": problem},
                "Unauthorized": {
                    "description": "no token, or an unknown or revoked one",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": problem,
                },
                "Unavailable": {
                    "description": "SQL, Redis or the broker is unreachable; try again after Retry-After seconds",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": problem,
                },
            },
        },
    }


#: Idempotency-Key on dispatch, batches and chains (API.md 2026-12; docs/api.md).
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key and body within 24 h returns the first answer and queues "
    "nothing; another body answers 422; a repeat while the first runs answers 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
}


@bp.get("/openapi.json")
@api_auth("viewer")
@operation("This document: OpenAPI 3.1, generated from the routes", answers={200: (ApiDocument, "the document")})
def openapi() -> Response:
    return jsonify(document())
