"""How a sealed (encrypted) payload looks, without the keys to open it.

Workers, events and the console only need to recognise a sealed payload and show
`[encrypted]` in its place; opening one needs `app.crypto` and the keys.
"""

from __future__ import annotations

from typing import Any

#: What is shown, logged and stored in place of an encrypted value.
REDACTED = "[encrypted]"
#: The one key of a sealed payload's kwargs: {ENVELOPE_KEY: "<Fernet token>"}.
ENVELOPE_KEY = "__celeriac_encrypted__"


def is_sealed(kwargs: Any) -> bool:
    """Whether `kwargs` is a sealed payload (an envelope holding one Fernet token)."""
    return isinstance(kwargs, dict) and len(kwargs) == 1 and isinstance(kwargs.get(ENVELOPE_KEY), str)
