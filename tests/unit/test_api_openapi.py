"""GET /api/openapi.json is generated from the routes and their models, and it is complete.

The URL map is the truth: every rule under /api, with each of its methods, is an operation of
the document, and every success answer with a body has a schema from components/schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.schedules.service import EDITABLE
from ops_ui.blueprints.api.models.definitions import DefinitionChanges
from ops_ui.blueprints.api.models.schedules import ScheduleChanges
from ops_ui.blueprints.api.openapi_paths import openapi_path
from tests.conftest import assert_problem

#: Methods every Flask rule answers on its own; the document leaves them out.
IMPLICIT = {"HEAD", "OPTIONS"}


@pytest.fixture()
def document(client: Any, auth: Any) -> dict[str, Any]:
    response = client.get("/api/openapi.json", headers=auth("viewer"))
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_rule_under_api_is_in_the_document_with_its_methods(app: Any, document: dict[str, Any]) -> None:
    routes = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in (rule.methods or set()) - IMPLICIT
    }
    documented = {(path, method) for path, method, _ in operations(document) if path.startswith("/api/")}
    assert routes - documented == set(), "routes missing from /api/openapi.json"
    assert documented - routes == set(), "operations in /api/openapi.json that no route serves"
    assert len(routes) >= 45


def test_every_success_answer_with_a_body_has_a_schema(document: dict[str, Any]) -> None:
    unschemed = []
    for path, method, operation in operations(document):
        for status, answer in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = answer.get("content", {})
            if not any("schema" in media for media in content.values()):
                unschemed.append(f"{method.upper()} {path} {status}")
    assert unschemed == []


def test_errors_are_problem_json_and_every_ref_resolves(document: dict[str, Any]) -> None:
    text = repr(document)
    for ref in set(re.findall(r"'#/components/(\w+)/([\w-]+)'", text)):
        kind, name = ref
        assert name in document["components"][kind], ref
    problem = document["components"]["responses"]["Problem"]["content"]
    assert list(problem) == ["application/problem+json"]
    dispatch = document["paths"]["/api/jobs/dispatch"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "413", "422", "503"} <= set(dispatch)


def _nullable(schema: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in schema.get("anyOf", []))


@pytest.mark.parametrize(
    ("model", "field", "nullable"),
    [
        ("Job", "completed_at", True),
        ("Job", "error_message", True),
        ("Job", "id", False),
        ("Schedule", "name", True),
        ("Schedule", "next_run_at", True),
        ("Schedule", "description", True),
        ("JobList", "next_cursor", True),
        ("Batch", "finished_at", True),
    ],
)
def test_nullable_fields_are_marked(document: dict[str, Any], model: str, field: str, nullable: bool) -> None:
    schema = document["components"]["schemas"][model]
    assert field in schema["required"]
    assert _nullable(schema["properties"][field]) is nullable


def test_parameters_are_typed(document: dict[str, Any]) -> None:
    jobs = {p["name"]: p for p in document["paths"]["/api/jobs"]["get"]["parameters"]}
    assert jobs["limit"]["schema"]["type"] == "integer"
    assert jobs["limit"]["schema"]["maximum"] == 200
    assert "retrying" in str(jobs["status"]["schema"])
    job = document["paths"]["/api/jobs/{job_id}"]["get"]["parameters"][0]
    assert job == {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    worker = document["paths"]["/api/workers/{hostname}/{action}"]["post"]
    assert "restart" in worker["parameters"][1]["schema"]["enum"]
    assert worker["requestBody"]["required"] is False


def test_roles_and_public_routes(document: dict[str, Any]) -> None:
    assert "403" not in document["paths"]["/api/jobs"]["get"]["responses"]
    assert "admin" in document["paths"]["/api/schedules"]["post"]["description"]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_the_document_needs_a_token(client: Any) -> None:
    assert_problem(client.get("/api/openapi.json"), 401)


def test_patch_models_take_exactly_the_fields_the_services_edit() -> None:
    from app.services.definitions import EDITABLE as DEFINITION_FIELDS

    assert set(ScheduleChanges.model_fields) == set(EDITABLE)
    assert set(DefinitionChanges.model_fields) == set(DEFINITION_FIELDS)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert [error.message for error in OPENAPI_31_VALIDATOR.iter_errors(document)] == []
