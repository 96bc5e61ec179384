"""`@operation(...)`: what a view takes and answers, for GET /api/openapi.json.

It only records: the view validates with the same models (validation.py), so the document
and the checks cannot drift. openapi.py adds what every API route shares (401, 503, 403
above the viewer role, 404 with a path parameter, 400/413/422 with a body, 422 with a query).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from ops_ui.blueprints.api.models.base import Body, Path, Query

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute a view's Operation is kept in (functools.wraps copies it to wrappers).
ATTRIBUTE = "openapi_operation"

#: A success answer: its model (None: no body) and what it means.
Success = tuple[type[BaseModel] | None, str]


@dataclass(frozen=True)
class Operation:
    """One route's part of the document."""

    summary: str
    answers: Mapping[int, Success]
    body: type[Body] | None = None
    #: False where an empty body means "no options" (pause, resume, worker commands).
    body_required: bool = True
    query: type[Query] | None = None
    path: type[Path] | None = None
    #: Error statuses beyond the ones every route of its kind has (409, ...).
    errors: tuple[int, ...] = ()
    #: Takes an Idempotency-Key header and may replay a stored answer (R2).
    idempotent: bool = False
    #: Media type of the success answers (text/plain for /metrics).
    media_type: str = "application/json"
    #: Needs no token (/healthz).
    public: bool = False


def operation(summary: str, *, answers: Mapping[int, Success], **details: Any) -> Callable[[F], F]:
    """Describe a view; `details` are Operation's other fields."""

    def describe(view: F) -> F:
        setattr(view, ATTRIBUTE, Operation(summary, answers, **details))
        return view

    return describe


def operation_of(view: Callable[..., Any]) -> Operation | None:
    """The Operation a view (or the view it wraps) was described with."""
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None
