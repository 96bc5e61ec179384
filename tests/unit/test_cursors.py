"""Keyset cursors round-trip their sort keys and refuse anything they did not make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.errors import ValidationError
from app.kernel.cursors import decode_position, encode_position


def test_a_cursor_gives_back_its_timestamp_and_parts() -> None:
    at = datetime(2026, 11, 23, 12, 0, 1, 5, tzinfo=UTC)
    cursor = encode_position(at, "acme", "a|b")
    assert "|" not in cursor and "=" not in cursor
    assert decode_position(cursor, 3, "x") == (at, ["acme", "a|b"])


@pytest.mark.parametrize("cursor", ["not base64 at all!", encode_position(datetime(2026, 1, 1, tzinfo=UTC)), "Zm9v"])
def test_a_foreign_or_short_cursor_is_a_validation_error_with_the_hint(cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor is not valid; use the next link"):
        decode_position(cursor, 2, "use the next link")
