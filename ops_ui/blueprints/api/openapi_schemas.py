"""components/schemas of /api/openapi.json: pydantic's JSON Schema of the API models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from ops_ui.blueprints.api.models.base import Answer

#: Where a model's schema lives in the document.
REF_TEMPLATE = "#/components/schemas/{model}"


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every property: the names say it."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _mode(model: type[BaseModel]) -> JsonSchemaMode:
    return "serialization" if issubclass(model, Answer) else "validation"


def component_schemas(
    models: Iterable[type[BaseModel]],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """({model: its {"$ref": ...}}, every schema by name, the models' nested ones included)."""
    keyed = [(model, _mode(model)) for model in dict.fromkeys(models)]
    refs, top = models_json_schema(keyed, ref_template=REF_TEMPLATE, schema_generator=_Generator)
    return {model: dict(refs[(model, mode)]) for model, mode in keyed}, dict(top.get("$defs", {}))


def inline_properties(model: type[BaseModel]) -> tuple[dict[str, Any], set[str]]:
    """The properties and required names of a query or path model (parameters are inline)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, schema_generator=_Generator)
    return dict(schema.get("properties", {})), set(schema.get("required", []))
