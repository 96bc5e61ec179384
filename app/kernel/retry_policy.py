"""Retry policy (F1): whether a failed attempt is retried, and after how long."""

from __future__ import annotations

import random
from collections.abc import Sequence

#: Backoff when a job names none: exponential from this many seconds...
DEFAULT_BACKOFF_BASE_S = 10
#: ...capped at this many seconds.
DEFAULT_BACKOFF_CAP_S = 600

Backoff = Sequence[int] | str | int | None


def calculate_retry_delay(
    backoff: Backoff,
    attempt: int,
    *,
    cap_s: int,
    rng: random.Random | None = None,
) -> int:
    """Seconds to wait before attempt `attempt + 1`, after attempt `attempt` failed.

    Args:
        backoff: a list of seconds (the last one repeats), a fixed number of seconds,
            "exponential" (jittered: uniform between half and all of base * 2**(attempt-1)),
            or None for "exponential".
        attempt: the attempt that just failed, counted from 1.
        cap_s: upper bound, the longest delay the broker can hold safely.
        rng: random source, for tests.

    Returns:
        The delay in whole seconds, between 0 and `cap_s`.
    """
    if attempt < 1:
        attempt = 1
    if isinstance(backoff, bool):
        raise ValueError("backoff must be a list of seconds, a number or 'exponential'")
    if isinstance(backoff, int):
        delay = backoff
    elif isinstance(backoff, Sequence) and not isinstance(backoff, str):
        if not backoff:
            delay = 0
        else:
            delay = int(backoff[min(attempt, len(backoff)) - 1])
    elif backoff is None or backoff == "exponential":
        ceiling = min(DEFAULT_BACKOFF_CAP_S, DEFAULT_BACKOFF_BASE_S * 2 ** (attempt - 1))
        delay = int((rng or random).uniform(ceiling / 2, ceiling))
    else:
        raise ValueError(f"unknown backoff {backoff!r}")
    return max(0, min(delay, cap_s))


def should_retry(
    exc: BaseException,
    attempt: int,
    max_attempts: int,
    retry_on: Sequence[type[BaseException]] = (),
    dont_retry_on: Sequence[type[BaseException]] = (),
) -> bool:
    """Whether attempt `attempt` (from 1), which raised `exc`, earns another attempt.

    `dont_retry_on` wins over `retry_on`; an empty `retry_on` means every exception.
    """
    if attempt >= max_attempts:
        return False
    if dont_retry_on and isinstance(exc, tuple(dont_retry_on)):
        return False
    if retry_on and not isinstance(exc, tuple(retry_on)):
        return False
    return True
