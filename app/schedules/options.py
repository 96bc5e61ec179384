"""A schedule's dispatch options: what every fire dispatches with (issue 13, item 8).

The keys and checks are those of a dispatch (`POST /api/jobs/dispatch` options and
`Job.dispatch`): a schedule's options are turned into a `DispatchSpec` and checked by
`app.kernel.dispatching.check_options`, so the API, the console and the CLI refuse the same
values. They are stored as given (the API's names: `timeout`, not `timeout_s`) in
`job_schedules.options`; each fire reads the row, so an edit applies from the next fire.

Not schedule options, because a recurring job cannot mean them: `depends_on` (job ids
fixed at creation would hold every later fire on the same, long finished jobs) and
`unique_for` / `unique_id` (each fire is already once per tick: its job id derives from the
tick, app.schedules.firing).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from app.config import Settings
from app.crypto import require_keys
from app.errors import ValidationError
from app.kernel.dispatching import DispatchSpec, check_options

#: Option key -> DispatchSpec field, for every option a schedule takes.
FIELDS = {
    "queue": "queue",
    "priority": "priority",
    "delay": "delay_s",
    "max_attempts": "max_attempts",
    "backoff": "backoff",
    "timeout": "timeout_s",
    "tags": "tags",
    "expires": "expires_s",
    "encrypted": "encrypted",
    "concurrency_key": "concurrency_key",
    "concurrency_limit": "concurrency_limit",
}
#: Dispatch options a schedule refuses, with why (see the module docstring).
NOT_RECURRING = {
    "depends_on": "a recurring job cannot wait for fixed job ids",
    "unique_for": "each fire already runs once per tick",
    "unique_id": "each fire already runs once per tick",
}
#: Options that are whole numbers once stored (a dispatch cuts a fraction off).
_WHOLE = ("max_attempts", "timeout", "concurrency_limit")
MAX_TAGS = 50
MAX_TAG = 100


def _spec_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(DispatchSpec)}


def known_options() -> tuple[str, ...]:
    """The option keys schedules accept (those the dispatch spec of this version has)."""
    fields = _spec_fields()
    return tuple(key for key, name in FIELDS.items() if name in fields)


def clean_options(options: object, settings: Settings) -> dict[str, Any]:
    """Check `options` as a dispatch would; the dict to store (nulls dropped).

    Raises:
        ValidationError: not an object, an unknown or non-recurring key, or a value out of range.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValidationError("options must be an object")
    kept = {key: value for key, value in options.items() if value is not None}
    known = known_options()
    for key in kept:
        if key in NOT_RECURRING:
            raise ValidationError(f"options: {key} is not a schedule option: {NOT_RECURRING[key]}")
        if key not in known:
            raise ValidationError(f"options: unknown option {key!r}; schedules take {', '.join(known)}")
    _check_types(kept)
    for key in _WHOLE:
        if isinstance(kept.get(key), float) and kept[key].is_integer():
            kept[key] = int(kept[key])
    check_options(DispatchSpec(job_class="", **spec_kwargs(kept)), settings)
    if kept.get("encrypted"):
        require_keys()  # as a dispatch refuses it: no fire could be sealed
    return kept


def _check_types(options: dict[str, Any]) -> None:
    """What `check_options` takes for granted (the API's models check the same)."""
    for key, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{key} must be a finite number")
    for key in ("queue", "concurrency_key"):
        if key in options and not isinstance(options[key], str):
            raise ValidationError(f"{key} must be a string")
    if "priority" in options and (isinstance(options["priority"], bool) or not isinstance(options["priority"], int)):
        raise ValidationError(f"priority must be an integer from 0 to 9, got {options['priority']!r}")
    if "encrypted" in options and not isinstance(options["encrypted"], bool):
        raise ValidationError("encrypted must be true or false")
    tags = options.get("tags")
    if tags is not None and (
        not isinstance(tags, list)
        or len(tags) > MAX_TAGS
        or not all(isinstance(tag, str) and 0 < len(tag) <= MAX_TAG for tag in tags)
    ):
        raise ValidationError(f"tags must be a list of at most {MAX_TAGS} strings of 1-{MAX_TAG} characters")
    if "backoff" in options and not isinstance(options["backoff"], list):
        raise ValidationError("backoff must be a list of seconds")


def spec_kwargs(options: dict[str, Any] | None) -> dict[str, Any]:
    """DispatchSpec keyword arguments for stored options (whole numbers where a dispatch cuts)."""
    fields = _spec_fields()
    kwargs: dict[str, Any] = {}
    for key, value in (options or {}).items():
        name = FIELDS.get(key)
        if name is None or name not in fields or value is None:
            continue  # an option this version no longer knows is ignored, not a failed fire
        if key in _WHOLE and isinstance(value, float):
            value = int(value)
        if key == "backoff" and isinstance(value, list):
            value = [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        kwargs[name] = value
    return kwargs
