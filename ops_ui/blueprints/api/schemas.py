"""Reading request bodies: the JSON object itself (size, depth, values no field may hold),
and the dispatch spec a validated dispatch body stands for. Shapes: models/."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g
from werkzeug.exceptions import BadRequest

from app.errors import ValidationError
from app.kernel.dispatching import DispatchSpec
from app.validation import check_json
from ops_ui.blueprints.api.models.jobs import DispatchBody, DispatchOptions
from ops_ui.bodies import read_limited

#: Options a dispatch takes (the model's fields): property tests draw option keys from it.
KNOWN_OPTIONS = DispatchOptions.KNOWN


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


def dispatch_spec(body: DispatchBody, tenant_id: str) -> DispatchSpec:
    """What the dispatch service takes, from a validated dispatch body (or a batch's job)."""
    options = body.options or DispatchOptions()
    return DispatchSpec(
        job_class=body.job_class,
        payload=body.payload or {},
        tenant_id=tenant_id,
        queue=options.queue,
        priority=options.priority,
        delay_s=options.delay,
        max_attempts=int(options.max_attempts) if options.max_attempts is not None else None,
        backoff=[int(v) for v in options.backoff] if options.backoff is not None else None,
        timeout_s=int(options.timeout) if options.timeout is not None else None,
        tags=options.tags,
        expires_s=options.expires,
        depends_on=options.depends_on,
        unique_for=options.unique_for,  # type: ignore[arg-type]  # seconds, as given
        unique_id=options.unique_id,
        encrypted=options.encrypted,
        concurrency_key=options.concurrency_key,
        concurrency_limit=options.concurrency_limit,
    )
