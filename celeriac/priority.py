"""Celeriac priorities (0 lowest .. 9 highest) and Redis's (0 highest .. 9 lowest).

kombu's Redis transport serves priority step 0 first, so the scale is flipped at the
broker boundary and nowhere else.
"""

from __future__ import annotations

#: Lowest and highest Celeriac priority.
MIN_PRIORITY = 0
MAX_PRIORITY = 9
#: Priority of a job that names none: the middle, so jobs can be ranked above and below it.
DEFAULT_PRIORITY = 5


def to_broker_priority(priority: int) -> int:
    """Celeriac priority -> the `priority` argument Celery sends to Redis."""
    return MAX_PRIORITY - priority


def from_broker_priority(broker_priority: int | None) -> int:
    """A message's Redis priority -> Celeriac priority (default when absent)."""
    if broker_priority is None:
        return DEFAULT_PRIORITY
    return MAX_PRIORITY - max(MIN_PRIORITY, min(MAX_PRIORITY, int(broker_priority)))


def is_valid_priority(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9
