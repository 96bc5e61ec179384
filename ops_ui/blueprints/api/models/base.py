"""Building blocks of the API models: strict request bodies, query strings, documented answers.

Request bodies are checked with exact JSON types (no "3" for 3, no 1 for true), as the API
always did. Which problems make a body malformed (400) rather than invalid (422) is
declared on the fields with `SHAPE` (API.md: 400 for a body of the wrong shape).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


class BodyShape:
    """Marks a field whose absence or wrong JSON type makes the whole body malformed (400).

    Any other problem with the field, or a field without the mark, is a 422.
    """


#: The mark itself: `job_class: Annotated[str, SHAPE]`.
SHAPE = BodyShape()


class Body(BaseModel):
    """A JSON request body. Unknown keys are ignored unless a model forbids them."""

    model_config = ConfigDict(strict=True, extra="ignore")

    #: Status of an unknown key in a model that forbids them (400 where the shape is fixed).
    unknown_field_status: ClassVar[int] = 422


class Query(BaseModel):
    """Query-string parameters: text parsed into numbers; any problem is a 422 (a bad filter)."""

    model_config = ConfigDict(extra="ignore")


class Path(BaseModel):
    """Path parameters worth more than "a string" in the document (enums, descriptions)."""


class Answer(BaseModel):
    """A response body as clients see it. Documents the answer; views still build plain dicts."""


def omittable(**details: Any) -> Any:
    """The default of a field a client may leave out but not send as null (a malformed body)."""
    return Field(None, **details)


def invalid(message: str) -> PydanticCustomError:
    """A 422 from a model's own check; `message` starts with the field's name ("payload.a: ...")."""
    return PydanticCustomError("invalid_value", "{message}", {"message": message})


def _empty_as_absent(value: Any) -> Any:
    return value or None


#: A query parameter where an empty value means "no filter" (`?status=`).
EmptyIsAbsent = BeforeValidator(_empty_as_absent)

#: A string naming an instant, ISO 8601 with a UTC offset (API.md).
Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

#: Any JSON value (a job's payload, result, or a configured figure).
JsonValue = Any


class Problem(Answer):
    """An error, `application/problem+json` (RFC 9457): every 4xx and 5xx of the API."""

    type: str = Field(examples=["https://celeriac.dev/problems/unprocessable-entity"])
    title: str
    status: int
    detail: str
