"""Values every SQL backend can store: what PostgreSQL refuses, made readable instead.

PostgreSQL's text columns refuse the NUL character, and its JSON refuses NaN, the
infinities and the escape `\\u0000`. A job whose result or error holds one of them must
still reach its terminal state (R1), so such values are stored in a safe form: NUL shown
as U+FFFD, a non-finite number as its name ("inf", "nan"), nesting past a limit as a
preview string.
"""

from __future__ import annotations

import math
from typing import Any

#: What a NUL character is stored as.
NUL_MARK = "\ufffd"
#: Deeper values are stored as a preview string.
MAX_DEPTH = 64
PREVIEW_CHARS = 200


def storable(value: Any, depth: int = 0) -> Any:
    """`value` with what SQL cannot store replaced (a copy; `value` is not changed)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_MARK) if "\x00" in value else value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bool, int)) or value is None:
        return value
    if depth >= MAX_DEPTH:
        return storable(repr(value)[:PREVIEW_CHARS])
    if isinstance(value, dict):
        return {storable(str(key)): storable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item, depth + 1) for item in value]
    return storable(repr(value)[:PREVIEW_CHARS])


def is_storable_number(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
