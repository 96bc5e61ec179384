"""The cron builder's dispatch options (queue, priority, timeout, max attempts, tags).

Each field is checked by the same rules as the API and the CLI (app.schedules.options), one
option at a time, so an error shows next to the field at fault. Options the form has no
field for (backoff, delay, ...: set through the API or CLI) are kept as they are on edit.
"""

from __future__ import annotations

from typing import Any

from wtforms import Field

from app.errors import ValidationError
from app.schedules.options import clean_options
from ops_ui.settings import app_settings

#: Option key -> form field name (the same), in the order the form shows them.
FORM_OPTIONS = ("queue", "priority", "timeout", "max_attempts", "tags")
_WHOLE = ("priority", "timeout", "max_attempts")


def _parse(key: str, text: str) -> Any:
    """The option's value from the field's text; None when left empty.

    Raises:
        ValidationError: a number field that does not hold a whole number.
    """
    text = text.strip()
    if not text:
        return None
    if key == "tags":
        return [tag.strip() for tag in text.split(",") if tag.strip()] or None
    if key in _WHOLE:
        try:
            return int(text)
        except ValueError as exc:
            raise ValidationError(f"{key} must be a whole number, got {text!r}") from exc
    return text


def read_options(form: Any, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options the form asks for, on top of `kept` (the other options of the schedule).

    A field whose value is refused gets the error; the caller checks `form.errors`.
    """
    options = {key: value for key, value in (kept or {}).items() if key not in FORM_OPTIONS}
    settings = app_settings()
    for key in FORM_OPTIONS:
        field: Field = form[key]
        try:
            value = _parse(key, field.data or "")
            if value is not None:
                options.update(clean_options({key: value}, settings))
        except ValidationError as exc:
            field.errors.append(str(exc))
    return options


def option_fields(options: dict[str, Any] | None) -> dict[str, str]:
    """Form field values showing stored options (edit page)."""
    values = {}
    for key in FORM_OPTIONS:
        value = (options or {}).get(key)
        if value is None:
            continue
        values[key] = ", ".join(value) if key == "tags" else str(value)
    return values


def other_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Options set elsewhere that the form shows as kept."""
    return {key: value for key, value in (options or {}).items() if key not in FORM_OPTIONS}
