"""Switch CELERIAC_ENCRYPTION_KEYS for the test process (and workers started meanwhile)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from app.config import get_settings

VARIABLE = "CELERIAC_ENCRYPTION_KEYS"


@contextmanager
def use_keys(*keys: str) -> Iterator[None]:
    """Configure `keys` (none: unset) until the block ends, then restore the previous value."""
    previous = os.environ.get(VARIABLE)
    if keys:
        os.environ[VARIABLE] = ",".join(keys)
    else:
        os.environ.pop(VARIABLE, None)
    get_settings.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = previous
        get_settings.cache_clear()
