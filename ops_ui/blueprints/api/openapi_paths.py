"""paths of /api/openapi.json: one operation per method of each described rule of the URL map.

What every route of a kind shares is added here, so views declare only their own: 401 and
503 everywhere but on public routes, 403 above the viewer role, 404 with a path parameter,
400 / 413 / 422 with a body, 422 with a query, 409 and 422 with an Idempotency-Key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from pydantic import BaseModel

from ops_ui.blueprints.api.openapi_schemas import inline_properties
from ops_ui.blueprints.api.operation import Operation, operation_of

#: A rule's placeholder, `<job_id>` or `<int:n>`.
_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
#: Error statuses with a response of their own in components/responses; others are "Problem".
_ERROR_RESPONSES = {401: "Unauthorized", 503: "Unavailable"}
#: API.md: "Ids are UUID strings"; a path parameter named `..._id` is one.
_ID_SCHEMA = {"type": "string", "format": "uuid"}


def openapi_path(rule: str) -> str:
    """`/api/jobs/<job_id>` as OpenAPI writes it: `/api/jobs/{job_id}`."""
    return _PLACEHOLDER.sub(r"{\1}", rule)


@dataclass(frozen=True)
class Route:
    """One method of one rule, with what the document needs to know about it."""

    path: str
    method: str
    endpoint: str
    #: The role `api_auth` asks for (None: no token needed or not an API view).
    role: str | None
    #: Path parameter names, in the order of the rule.
    parameters: tuple[str, ...]
    operation: Operation


def described_routes(app: Flask, elsewhere: Mapping[str, Operation]) -> list[Route]:
    """Every rule whose view was described, and the endpoints of `elsewhere` (by name)."""
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        described = operation_of(view) or elsewhere.get(rule.endpoint)
        if described is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append(
                Route(
                    path=openapi_path(rule.rule),
                    method=method.lower(),
                    endpoint=rule.endpoint,
                    role=getattr(view, "required_role", None),
                    parameters=tuple(_PLACEHOLDER.findall(rule.rule)),
                    operation=described,
                )
            )
    return sorted(routes, key=lambda route: (route.path, route.method))


def models_of(routes: list[Route]) -> list[type[BaseModel]]:
    """Every body and answer model the routes name (query and path models are inline)."""
    found: list[type[BaseModel]] = []
    for route in routes:
        if route.operation.body is not None:
            found.append(route.operation.body)
        found.extend(model for model, _ in route.operation.answers.values() if model is not None)
    return found


def path_items(routes: list[Route], refs: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for route in routes:
        items.setdefault(route.path, {})[route.method] = _operation(route, refs)
    return items


def _operation(route: Route, refs: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    described = route.operation
    found: dict[str, Any] = {"operationId": route.endpoint.rsplit(".", 1)[-1], "summary": described.summary}
    if route.role is not None:
        found["description"] = f"Needs a token with the {route.role} role or above."
    parameters = [_path_parameter(name, described) for name in route.parameters] + _query_parameters(described)
    if described.idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if parameters:
        found["parameters"] = parameters
    if described.body is not None:
        found["requestBody"] = {
            "required": described.body_required,
            "content": {"application/json": {"schema": refs[described.body]}},
        }
    found["responses"] = _answers(route, refs) | {
        str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES.get(status, 'Problem')}"}
        for status in sorted(_error_statuses(route))
    }
    if described.public:
        found["security"] = []
    return found


def _path_parameter(name: str, described: Operation) -> dict[str, Any]:
    properties = inline_properties(described.path)[0] if described.path is not None else {}
    schema = properties.get(name) or (_ID_SCHEMA if name.endswith("_id") else {"type": "string"})
    parameter = {"name": name, "in": "path", "required": True, "schema": schema}
    if "description" in schema:
        parameter["description"] = schema["description"]
    return parameter


def _query_parameters(described: Operation) -> list[dict[str, Any]]:
    if described.query is None:
        return []
    properties, required = inline_properties(described.query)
    return [
        {"name": name, "in": "query", "required": name in required, "schema": schema}
        | ({"description": schema["description"]} if "description" in schema else {})
        for name, schema in properties.items()
    ]


def _answers(route: Route, refs: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    described = route.operation
    found: dict[str, Any] = {}
    for status, (model, description) in sorted(described.answers.items()):
        answer: dict[str, Any] = {"description": description}
        if model is not None:
            answer["content"] = {described.media_type: {"schema": refs[model]}}
        elif described.media_type != "application/json":
            answer["content"] = {described.media_type: {"schema": {"type": "string"}}}
        if described.idempotent:
            answer["headers"] = {"Idempotent-Replayed": {"$ref": "#/components/headers/IdempotentReplayed"}}
        found[str(status)] = answer
    return found


def _error_statuses(route: Route) -> set[int]:
    described = route.operation
    found = set(described.errors)
    if not described.public:
        found |= {401, 503}
    if route.role not in (None, "viewer"):
        found.add(403)
    if route.parameters:
        found.add(404)
    if described.body is not None:
        found |= {400, 413, 422}
    if described.query is not None:
        found.add(422)
    if described.idempotent:
        found |= {409, 422}
    return found
