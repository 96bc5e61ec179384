"""Request bodies and query strings checked against the API models (models/).

A body of the wrong shape (a field marked SHAPE missing or of the wrong JSON type, an
unknown key where the model says 400) is a 400; any other problem is a 422 (API.md).
Details name the field the way app/validation.py does: `jobs[1].options.priority must be ...`.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pydantic
from flask import current_app, request
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from werkzeug.exceptions import BadRequest

from app.errors import ValidationError
from ops_ui.blueprints.api.models.base import Body, BodyShape, Query
from ops_ui.blueprints.api.schemas import json_body

B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=Query)

#: Errors that say a value has the wrong JSON type, or is missing: a malformed body where
#: the field is marked SHAPE. String lengths count too: a batch name longer than the
#: column always was a 400.
_SHAPE_ERRORS = {
    "missing",
    "string_type",
    "string_too_short",
    "string_too_long",
    "int_type",
    "float_type",
    "bool_type",
    "dict_type",
    "list_type",
    "model_type",
    "model_attributes_type",
}
_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a list",
}
#: What a list holds, for "tags must be a list of strings".
_ITEMS = {"string_type": "strings", "int_type": "integers", "float_type": "numbers", "model_type": "objects"}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def read_body(model: type[B]) -> B:
    """The request's JSON body as `model`.

    Raises:
        BadRequest: not JSON, not an object, or of the wrong shape.
        RequestEntityTooLarge: over the size limit.
        ValidationError: well-formed but invalid.
    """
    return validated(model, json_body())


def validated(model: type[B], raw: dict[str, Any]) -> B:
    """`raw` (a body already read) as `model`; raises as `read_body` does."""
    depth = current_app.extensions["celeriac_settings"].max_payload_depth
    try:
        return model.model_validate(raw, context={"max_payload_depth": depth})
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        malformed = [error for error in errors if _is_shape(model, error)]
        detail = _detail(model, malformed or errors)
        raise (BadRequest(detail) if malformed else ValidationError(detail)) from None


def read_query(model: type[Q]) -> Q:
    """The query string as `model` (the first value of a repeated parameter).

    Raises:
        ValidationError: a parameter with an invalid value.
    """
    try:
        return model.model_validate(request.args.to_dict())
    except pydantic.ValidationError as exc:
        raise ValidationError(_detail(model, exc.errors(include_url=False))) from None


def _is_shape(model: type[pydantic.BaseModel], error: ErrorDetails) -> bool:
    if error["type"] == "extra_forbidden":
        *_, parent, _key = _walk(model, error["loc"])
        return isinstance(parent, type) and getattr(parent, "unknown_field_status", 422) == 400
    wrong_kind = error["type"] == "literal_error" and not isinstance(error["input"], str)
    if error["type"] not in _SHAPE_ERRORS and not wrong_kind:
        return False
    field = _field(model, error["loc"])
    return field is not None and any(isinstance(mark, BodyShape) for mark in field.metadata)


def _field(model: type[pydantic.BaseModel], loc: Sequence[str | int]) -> FieldInfo | None:
    """The innermost model field on the error's path (list indexes and union tags skipped)."""
    found: FieldInfo | None = None
    current: type[pydantic.BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None:
            break
        found = _fields(current).get(part)
        if found is None:
            return None
        current = _model_in(found.annotation)
    return found


def _walk(model: type[pydantic.BaseModel], loc: Sequence[str | int]) -> tuple[str, Any, str | int]:
    """(path of the parent, the parent's model or None, last part) of an error's location."""
    path = ""
    current: type[pydantic.BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif current is not None and part in _fields(current):
            path = _join(path, part)
            current = _model_in(_fields(current)[part].annotation)
        else:  # a union member's tag ("int", "float"): not a field
            current = None
    return path, current, loc[-1] if loc else ""


def _fields(model: type[pydantic.BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a body uses (`finally`, not `finally_`)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.match(key):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The model a field holds, itself or in a list or an optional."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _detail(model: type[pydantic.BaseModel], errors: Sequence[ErrorDetails]) -> str:
    """One clause per field, in the order of the errors: `a must be ...; b is required`."""
    return "; ".join(dict.fromkeys(_clauses(model, errors)))


def _clauses(model: type[pydantic.BaseModel], errors: Sequence[ErrorDetails]) -> Iterator[str]:
    unknown: dict[str, list[str]] = {}
    by_field: dict[str, list[ErrorDetails]] = {}
    for error in errors:
        parent_path, _parent, last = _walk(model, error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.setdefault(parent_path, []).append(str(last))
        else:
            by_field.setdefault(_field_path(model, error["loc"]), []).append(error)
    for path, same_field in by_field.items():
        yield _clause(model, path, same_field)
    for path, keys in unknown.items():
        names = ", ".join(keys)
        yield f"{path}: unknown field(s) {names}" if path else f"unknown field(s) {names}"


def _field_path(model: type[pydantic.BaseModel], loc: Sequence[str | int]) -> str:
    """The error's path without union tags: `options.delay`, `jobs[2].payload`."""
    parent_path, parent, last = _walk(model, loc)
    if isinstance(last, int) or (parent is not None and isinstance(last, str)):
        return _join(parent_path, last)
    return parent_path


def _clause(model: type[pydantic.BaseModel], path: str, errors: Sequence[ErrorDetails]) -> str:
    first = errors[0]
    kinds = {error["type"] for error in errors}
    if first["type"] == "invalid_value":  # a model's own check: its message names the field
        parent_path = _walk(model, first["loc"])[0]
        message = str((first.get("ctx") or {}).get("message", first["msg"]))
        return f"{parent_path}.{message}" if parent_path else message
    if {"int_type", "float_type"} <= kinds:
        return f"{path} must be a number"
    if first["loc"] and isinstance(first["loc"][-1], int) and first["type"] in _ITEMS:
        return f"{path.rsplit('[', 1)[0]} must be a list of {_ITEMS[first['type']]} ({path} is not)"
    return f"{path} {_phrase(model, first)}"


def _phrase(model: type[pydantic.BaseModel], error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind in _PHRASES:
        return _PHRASES[kind]
    if kind == "literal_error":
        field = _field(model, error["loc"])
        choices = _literal_values(field.annotation if field else None)
        return f"must be one of: {', '.join(choices)}" if choices else f"must be {ctx.get('expected')}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must be a non-empty string"
    if kind == "string_too_long":
        return f"must be a string of at most {ctx.get('max_length')} characters"
    return f"is invalid: {error['msg']}"


def _literal_values(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            values = _literal_values(arg)
            if values:
                return values
    return []
