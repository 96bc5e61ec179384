"""`RateLimit` and the one Lua script that checks every limit of a job at once.

Algorithm: a sliding-window log per counter (a ZSET of admissions scored by time, in
microseconds of the Redis server's clock, so workers' clocks do not matter). A job that
is over a limit is not just told "later": the script reserves the earliest future slot
that every one of its limits admits and returns it. The job is re-queued for that moment
and, when it comes back, finds its reservation and runs. So each throttled job is checked
twice instead of waking with every other waiting job and re-queueing again (no thundering
herd), and waiting jobs run in the order they were throttled.

Scope of a limit (the Redis counter it uses):
- no key: the job class as a whole (`RateLimit(100, per=3600)`: 100 runs of this class);
- `key="user:{user_id}"`: per job class and per value filled from the payload;
- `key="global:user:{user_id}"`: a counter shared by every job class that names the same
  key (and the same `per`), e.g. one budget per user for all of that user's jobs.
Counters are also keyed by `per`, so two limits with different windows never trim each
other's admissions.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from app import redis_keys

#: Prefix of a key template whose counter is shared by every job class.
GLOBAL_PREFIX = "global:"
#: Request attribute carrying a limit the gate could not evaluate; the job fails with it.
REFUSAL_ATTR = "celeriac_refusal"
#: How late a job may come back for its reserved slot and still run on it. Later (a
#: backlog ahead of the re-queued message, a busy worker), it queues again: starts then
#: never bunch closer than `per` minus this, whatever the delivery delays.
LATE_TOLERANCE_US = 50_000
#: Longest filled-in key kept as is; longer ones would bloat Redis key names.
MAX_KEY_CHARS = 200


class RateLimitKeyError(ValueError):
    """Raised when a key template is malformed, or the payload lacks a field it names."""


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` runs in any window of `per` seconds, across every worker.

    Raises:
        ValueError: `limit` < 1, `per` not positive, or a key template that cannot work
            (positional `{}` fields, unbalanced braces) - at class definition, not at run time.
    """

    limit: int
    per: float
    key: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"RateLimit limit must be an integer >= 1, got {self.limit!r}")
        if isinstance(self.per, bool) or not isinstance(self.per, (int, float)) or self.per < 0.001:
            raise ValueError(f"RateLimit per must be a number of seconds >= 0.001, got {self.per!r}")
        if self.key is not None:
            _check_template(self.key)

    @property
    def per_us(self) -> int:
        return int(round(self.per * 1_000_000))

    @property
    def shared(self) -> bool:
        return self.key is not None and self.key.startswith(GLOBAL_PREFIX)

    @property
    def needs_payload(self) -> bool:
        return self.key is not None and bool(template_fields(self.key))

    def redis_key(self, job_class: str, payload: Mapping[str, Any]) -> str:
        """The counter this limit uses for one job of `job_class` with `payload`.

        Raises:
            RateLimitKeyError: the payload has no value for a field the template names.
        """
        if self.key is None:
            return redis_keys.rate_limit_job(job_class, None, self.per_us)
        filled = fill_key(self.key, payload, job_class)
        if self.shared:
            return redis_keys.rate_limit_shared(filled[len(GLOBAL_PREFIX) :], self.per_us)
        return redis_keys.rate_limit_job(job_class, filled, self.per_us)


def template_fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def _check_template(template: str) -> None:
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise RateLimitKeyError(f"RateLimit key {template!r} is not a valid template: {exc}") from None
    for field in fields:
        if not field or field.split(".")[0].split("[")[0].isdigit():
            raise RateLimitKeyError(
                f"RateLimit key {template!r}: name payload fields, as in 'user:{{user_id}}' (positional fields "
                "have nothing to fill them)"
            )


def fill_key(template: str, payload: Mapping[str, Any], job_class: str) -> str:
    """`template` filled from `payload`.

    Raises:
        RateLimitKeyError: a field the template names is missing from the payload.
    """
    try:
        filled = template.format_map(payload)
    except (KeyError, AttributeError, IndexError, TypeError) as exc:
        have = ", ".join(sorted(payload)) or "nothing"
        raise RateLimitKeyError(
            f"RateLimit key {template!r} of {job_class} cannot be filled from the payload "
            f"({type(exc).__name__}: {exc}); the payload has: {have}"
        ) from None
    if len(filled) > MAX_KEY_CHARS:
        filled = filled[:100] + ":sha1:" + hashlib.sha1(filled.encode(), usedforsecurity=False).hexdigest()
    return filled


# KEYS: one counter per limit. ARGV[1]: the member naming this attempt (job id and retry
# count); then limit and window (microseconds) for each key, in order; last: how late
# (microseconds) a job may come back and still run on its reservation.
# Returns {admitted (1/0), slot, now}: epoch microseconds on the Redis clock, as strings
# (Lua numbers are doubles; "%.0f" keeps every digit where tostring would round).
_SCRIPT = """
local function us(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
local late = tonumber(ARGV[#ARGV])
local reserved = nil
for i = 1, #KEYS do
  local s = redis.call('ZSCORE', KEYS[i], member)
  if s and (reserved == nil or tonumber(s) > reserved) then reserved = tonumber(s) end
end
if reserved ~= nil then
  if reserved > now then return {0, us(reserved), us(now)} end
  if now - reserved <= late then return {1, us(reserved), us(now)} end
  -- Back too late: running now would bunch with later slots; give the slot up, queue again.
  for i = 1, #KEYS do redis.call('ZREM', KEYS[i], member) end
end
local slot = now
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local per = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', us(now - per))
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local edge = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local free = tonumber(edge[2]) + per
    if free > slot then slot = free end
  end
end
for i = 1, #KEYS do
  local per = tonumber(ARGV[2 * i + 1])
  redis.call('ZADD', KEYS[i], us(slot), member)
  local ttl = math.ceil((slot - now + per) / 1000)
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
if slot <= now then return {1, us(slot), us(now)} end
return {0, us(slot), us(now)}
"""


@dataclass(frozen=True)
class Decision:
    """The limiter's answer: run now, or wait `wait_s` (until `until`, epoch seconds)."""

    admitted: bool
    until: float
    wait_s: float


class Limiter:
    """Checks and consumes several limits atomically (all admit, or none is consumed)."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)

    def acquire(
        self,
        member: str,
        limits: Sequence[tuple[str, int, int]],
    ) -> Decision:
        """Admit `member` under every `(redis key, limit, per microseconds)`, or reserve its slot.

        When not admitted, the earliest slot every limit allows is reserved for `member`:
        asking again with the same member at `until` (up to LATE_TOLERANCE_US later) admits
        it without consuming anything more (the reservation already counts).
        """
        keys = [key for key, _, _ in limits]
        args: list[Any] = [member]
        for _, limit, per_us in limits:
            args += [limit, per_us]
        args.append(LATE_TOLERANCE_US)
        admitted, slot, now = self._script(keys=keys, args=args)
        slot_us, now_us = int(slot), int(now)
        return Decision(bool(admitted), slot_us / 1_000_000, max(0.0, (slot_us - now_us) / 1_000_000))
