"""Request bodies of the API: shape errors are 400, invalid values 422 (API.md)."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g
from werkzeug.exceptions import BadRequest

from app.errors import ValidationError
from app.services.dispatching import DispatchSpec
from app.validation import check_json
from ops_ui.bodies import read_limited

#: Options of API.md's dispatch body, plus `expires` and `unique_id` (extensions).
KNOWN_OPTIONS = {
    "expires",
    "unique_id",
    "queue",
    "priority",
    "delay",
    "max_attempts",
    "backoff",
    "timeout",
    "tags",
    "depends_on",
    "unique_for",
    "encrypted",
}


#: Levels of a body around a payload: body -> jobs[] -> job -> payload (a batch); the body's
#: depth limit is the payload's (Settings.max_payload_depth) plus these.
ENVELOPE_DEPTH = 3


def _settings() -> Any:
    return current_app.extensions["celeriac_settings"]


def json_body() -> dict[str, Any]:
    """The request's JSON object, checked for what no field may hold (app/validation.py).

    Raises:
        BadRequest: not JSON, or not an object.
        RequestEntityTooLarge: over the size limit (also for chunked bodies).
        ValidationError: a number that is not finite, a string with NUL, nested too deep.
    """
    max_depth = _settings().max_payload_depth
    raw = read_limited(current_app.config["MAX_CONTENT_LENGTH"])
    try:
        body = json.loads(raw)
    except RecursionError as exc:  # deeper than Python's stack: far past any limit
        raise ValidationError(f"body: nested deeper than {max_depth} levels") from exc
    except ValueError as exc:  # UnicodeDecodeError is one
        if "integer string conversion" in str(exc):
            raise ValidationError("body: a number has too many digits") from exc
        raise BadRequest("the body must be valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    check_json(body, "", max_depth + ENVELOPE_DEPTH)
    g.json_body = body  # the stream is read now: the audit trail takes its "reason" from here
    return body


def check_payload(payload: dict[str, Any], where: str) -> None:
    """A payload nests at most Settings.max_payload_depth levels, as in Job.dispatch.

    Raises:
        ValidationError: nested too deep (or anything else check_json refuses).
    """
    check_json(payload, where, _settings().max_payload_depth)


def _int_or_none(options: dict[str, Any], key: str) -> Any:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"options.{key} must be a number")
    return value


def _composition_options(options: dict[str, Any]) -> dict[str, Any]:
    """Dependencies, uniqueness, encryption and deadline (issue 3 options).

    Raises:
        ValidationError: a value of the wrong kind.
    """
    depends_on = options.get("depends_on")
    if depends_on is not None and (not isinstance(depends_on, list) or not all(isinstance(i, str) for i in depends_on)):
        raise ValidationError("options.depends_on must be a list of job ids")
    encrypted = options.get("encrypted")
    if encrypted is not None and not isinstance(encrypted, bool):
        raise ValidationError("options.encrypted must be true or false")
    unique_id = options.get("unique_id")
    if unique_id is not None and (not isinstance(unique_id, str) or not 0 < len(unique_id) <= 200):
        raise ValidationError("options.unique_id must be a string of 1-200 characters")
    unique_for = _int_or_none(options, "unique_for")
    if unique_id is not None and unique_for is None:
        raise ValidationError("options.unique_id needs options.unique_for")
    return {
        "expires_s": _int_or_none(options, "expires"),
        "depends_on": depends_on,
        "unique_for": unique_for,
        "unique_id": unique_id,
        "encrypted": encrypted,
    }


def parse_dispatch(body: dict[str, Any], tenant_id: str, where: str = "") -> DispatchSpec:
    """Turn a dispatch body into a `DispatchSpec`; `where` prefixes field names ("jobs[2].").

    Raises:
        BadRequest: wrong shape (job_class missing, payload or options not objects).
        ValidationError: an option with an invalid value or an unknown option, or a
            payload nested deeper than Settings.max_payload_depth.
    """
    job_class = body.get("job_class")
    if not isinstance(job_class, str) or not job_class:
        raise BadRequest("job_class must be a non-empty string")
    payload = body.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest("payload must be a JSON object")
    check_payload(payload, f"{where}payload")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be a JSON object")
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ValidationError(f"unknown options: {', '.join(sorted(unknown))}")
    queue = options.get("queue")
    if queue is not None and not isinstance(queue, str):
        raise ValidationError("options.queue must be a string")
    priority = options.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValidationError(f"priority must be an integer from 0 to 9, got {priority!r}")
    tags = options.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ValidationError("options.tags must be a list of strings")
    backoff = options.get("backoff")
    if backoff is not None and (
        not isinstance(backoff, list)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in backoff)
    ):
        raise ValidationError("options.backoff must be a list of seconds")
    max_attempts = _int_or_none(options, "max_attempts")
    timeout = _int_or_none(options, "timeout")
    return DispatchSpec(
        job_class=job_class,
        payload=payload,
        tenant_id=tenant_id,
        queue=queue,
        priority=priority,
        delay_s=_int_or_none(options, "delay"),
        max_attempts=int(max_attempts) if max_attempts is not None else None,
        backoff=[int(v) for v in backoff] if backoff is not None else None,
        timeout_s=int(timeout) if timeout is not None else None,
        tags=tags,
        **_composition_options(options),
    )
