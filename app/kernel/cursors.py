"""Keyset-pagination cursors: an opaque, URL-safe token for a position in a sorted list.

Every list (jobs, batches, audit log, failure groups) sorts by a timestamp and a tie-breaker
and hands out "the last row seen" this way; each module turns the parts back into its types.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from app.errors import ValidationError


def encode_position(*parts: datetime | str | int) -> str:
    """The cursor of a position given by its sort keys (datetimes in ISO 8601)."""
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_position(cursor: str, count: int, hint: str) -> tuple[datetime, list[str]]:
    """The leading timestamp and the `count - 1` other parts of a cursor.

    Raises:
        ValidationError: "cursor is not valid; <hint>" when it was not made by encode_position.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split("|", count - 1)
        if len(parts) != count:
            raise ValueError(raw)
        return datetime.fromisoformat(parts[0]), parts[1:]
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError(f"cursor is not valid; {hint}") from exc
