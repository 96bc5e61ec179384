"""Concurrency limits: at most N jobs with the same key run at once, across every worker.

Kept in Redis, changed only by the Lua scripts below, so every worker sees the same slots.
Per key ("<tenant>:<key>", see `scoped_key`):

    celeriac:concurrency:limits             hash  key -> the key's current limit (the latest set wins)
    celeriac:concurrency:keys               set   keys with holders or waiters (sweeps, usage, reconciler)
    celeriac:concurrency:holders:<key>      zset  job id -> lease expiry (Redis clock, epoch seconds)
    celeriac:concurrency:waiting:<key>      zset  job id -> arrival number (FIFO)
    celeriac:concurrency:parked:<key>       hash  job id -> the job's message (JSON), to publish it again
    celeriac:concurrency:seq                string  arrival counter

A job over the limit is parked (its message kept here; the worker acks it and skips the
run: no attempt is counted, nothing polls). A freed slot goes to the oldest waiter at once:
it becomes a holder *before* its message is published again, so a newcomer can never take
the slot in between, and the waiter finds its slot taken for it when it arrives. A holder's
lease is refreshed while it runs; an expired one (a dead worker) is removed by the next
script that touches the key and by the recorder's sweep, which then promote waiters.
No TTLs: every entry is removed by a release or an expiry, never by Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from celeriac.keys import PREFIX
from celeriac.publish import send

#: Hash of every key's current limit.
LIMITS = PREFIX + "concurrency:limits"
#: Set of keys that have holders or waiters now.
ACTIVE_KEYS = PREFIX + "concurrency:keys"
#: Arrival counter that orders each key's waiters.
SEQ = PREFIX + "concurrency:seq"
#: Longest key a dispatch may name (the column is 200 characters; the tenant is apart).
MAX_KEY_CHARS = 200
#: Largest limit accepted: more concurrent jobs than any deployment runs.
MAX_LIMIT = 100_000


def holders_key(key: str) -> str:
    return f"{PREFIX}concurrency:holders:{key}"


def waiting_key(key: str) -> str:
    return f"{PREFIX}concurrency:waiting:{key}"


def parked_key(key: str) -> str:
    return f"{PREFIX}concurrency:parked:{key}"


def scoped_key(tenant_id: str, key: str) -> str:
    """The Redis-side key: a concurrency key belongs to one tenant (tenant ids hold no ':')."""
    return f"{tenant_id}:{key}"


def split_key(scoped: str) -> tuple[str, str]:
    """(tenant, key) of a scoped key."""
    tenant, _, key = scoped.partition(":")
    return tenant, key


# Shared by the scripts. KEYS: limits, active, holders, waiting, parked. ARGV[1] key,
# ARGV[2] lease for promoted waiters (s). Expires dead holders, then gives free slots to
# the oldest waiters; returns the messages to publish again.
_FILL = """
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local promoted = {}
local function fill(limit, now, lease)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local out = {}
  while redis.call('ZCARD', KEYS[3]) < limit do
    local first = redis.call('ZRANGE', KEYS[4], 0, 0)
    if #first == 0 then break end
    local id = first[1]
    redis.call('ZREM', KEYS[4], id)
    local msg = redis.call('HGET', KEYS[5], id)
    redis.call('HDEL', KEYS[5], id)
    if msg then
      redis.call('ZADD', KEYS[3], now + lease, id)
      promoted[id] = msg
      table.insert(out, msg)
    end
  end
  return out
end
local function tidy()
  if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('ZCARD', KEYS[4]) == 0 then
    redis.call('SREM', KEYS[2], ARGV[1])
  else
    redis.call('SADD', KEYS[2], ARGV[1])
  end
end
local function current_limit(fallback)
  local limit = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
  if limit then return limit end
  -- The limit is gone (Redis lost its data) or was never set: the message's own applies.
  redis.call('HSET', KEYS[1], ARGV[1], fallback)
  return fallback
end
"""

# ARGV[3] job id, ARGV[4] its lease (s), ARGV[5] limit from the message, ARGV[6] its
# message ('' when the caller has not built it: then a full key answers 'need').
# Returns {status, messages...}: status 'run', 'parked' or 'need'.
_ACQUIRE = (
    _FILL
    + """
local now = now_s()
local limit = current_limit(tonumber(ARGV[5]))
local out = fill(limit, now, tonumber(ARGV[2]))
local id = ARGV[3]
local status
if promoted[id] then
  -- Delivered again while it waited, and promoted just now: it runs on this delivery,
  -- so its parked copy must not go out as well.
  local kept = {}
  for _, msg in ipairs(out) do
    if msg ~= promoted[id] then table.insert(kept, msg) end
  end
  out = kept
end
if redis.call('ZSCORE', KEYS[3], id) then
  status = 'run'  -- its slot was given to it when it was promoted, or it is delivered again
elseif redis.call('ZSCORE', KEYS[4], id) then
  status = 'parked'  -- delivered again while it waits: it keeps its place
elseif redis.call('ZCARD', KEYS[3]) < limit then
  status = 'run'
elseif ARGV[6] == '' then
  status = 'need'  -- the promoted waiters above go out all the same
else
  redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[6]), id)
  redis.call('HSET', KEYS[5], id, ARGV[6])
  status = 'parked'
end
if status == 'run' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), id)
end
tidy()
table.insert(out, 1, status)
return out
"""
)

# ARGV[3] job id (of the holder that finished). Returns the messages to publish again.
_RELEASE = (
    _FILL
    + """
redis.call('ZREM', KEYS[3], ARGV[3])
local limit = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 1
local out = fill(limit, now_s(), tonumber(ARGV[2]))
tidy()
return out
"""
)

# ARGV[3] the new limit, or '' to only expire and fill (the sweep). Returns messages.
_SET_LIMIT = (
    _FILL
    + """
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
local limit = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 1
local out = fill(limit, now_s(), tonumber(ARGV[2]))
tidy()
return out
"""
)

# ARGV: lease (s), then job id / key pairs. Pushes the leases of running holders on.
_REFRESH = """
local t = redis.call('TIME')
local until_s = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1] .. ARGV[i + 1], 'XX', until_s, ARGV[i])
end
return 1
"""


@dataclass(frozen=True)
class Usage:
    """A key's limit and what uses it now."""

    key: str
    limit: int | None
    running: int
    waiting: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Slots:
    """The scripts above over one Redis client. Messages are JSON text (see `parked_message`)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._set_limit = client.register_script(_SET_LIMIT)
        self._refresh = client.register_script(_REFRESH)

    @staticmethod
    def _keys(key: str) -> list[str]:
        return [LIMITS, ACTIVE_KEYS, holders_key(key), waiting_key(key), parked_key(key), SEQ]

    def acquire(
        self, key: str, job_id: str, *, limit: int, lease_s: float, message: str | None
    ) -> tuple[str, list[str]]:
        """Take a slot of `key` for `job_id`, or park it: ("run" | "parked" | "need", messages).

        "need": the key is full and no `message` was given; call again with it. The
        messages are waiters promoted on the way (expired holders, a raised limit): the
        caller publishes them.
        """
        args: list[Any] = [key, lease_s, job_id, lease_s, limit, message or ""]
        status, *messages = self._acquire(keys=self._keys(key), args=args)
        return _text(status), [_text(m) for m in messages]

    def release(self, key: str, job_id: str, *, lease_s: float) -> list[str]:
        """Give `job_id`'s slot back (a no-op if it holds none); returns waiters to publish."""
        return [_text(m) for m in self._release(keys=self._keys(key), args=[key, lease_s, job_id])]

    def set_limit(self, key: str, limit: int | None, *, lease_s: float) -> list[str]:
        """Make `limit` the key's limit (None: keep it; expire and fill only); returns waiters to publish."""
        new = "" if limit is None else str(int(limit))
        return [_text(m) for m in self._set_limit(keys=self._keys(key), args=[key, lease_s, new])]

    def set_limit_if_unset(self, key: str, limit: int) -> None:
        """A default (a job class's `concurrency`): a limit set since (API, dispatch) wins."""
        self.redis.hsetnx(LIMITS, key, int(limit))

    def refresh(self, held: Iterable[tuple[str, str]], *, lease_s: float) -> None:
        """Push the leases of running (job id, key) holders `lease_s` past now."""
        args: list[Any] = [lease_s]
        for job_id, key in held:
            args.extend([job_id, key])
        if len(args) > 1:
            self._refresh(keys=[PREFIX + "concurrency:holders:"], args=args)

    def sweep(self, *, lease_s: float) -> list[str]:
        """Expire dead holders of every active key and promote waiters; returns messages."""
        messages: list[str] = []
        for key in sorted(_text(k) for k in self.redis.smembers(ACTIVE_KEYS)):
            messages.extend(self.set_limit(key, None, lease_s=lease_s))
        return messages

    def limit(self, key: str) -> int | None:
        raw = self.redis.hget(LIMITS, key)
        return int(raw) if raw is not None else None

    def usage(self, keys: Iterable[str]) -> list[Usage]:
        """Live figures of `keys`: unexpired holders and waiters."""
        keys = list(keys)
        pipe = self.redis.pipeline(transaction=False)
        now = self.redis.time()
        now_s = now[0] + now[1] / 1_000_000
        for key in keys:
            pipe.hget(LIMITS, key)
            pipe.zcount(holders_key(key), f"({now_s}", "+inf")
            pipe.zcard(waiting_key(key))
        found = pipe.execute()
        usage = []
        for i, key in enumerate(keys):
            limit, running, waiting = found[i * 3 : i * 3 + 3]
            usage.append(Usage(key, int(limit) if limit is not None else None, int(running), int(waiting)))
        return usage

    def known_keys(self) -> list[str]:
        """Keys with a limit, holders or waiters."""
        keys = {_text(k) for k in self.redis.hkeys(LIMITS)}
        keys |= {_text(k) for k in self.redis.smembers(ACTIVE_KEYS)}
        return sorted(keys)

    def waiting_ids(self) -> set[str]:
        """Ids of every parked job, and of holders whose lease runs: their messages are
        held here or their run is under way, so the reconciler must not call them lost."""
        keys = [_text(k) for k in self.redis.smembers(ACTIVE_KEYS)]
        if not keys:
            return set()
        now = self.redis.time()
        now_s = now[0] + now[1] / 1_000_000
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(waiting_key(key), 0, -1)
            pipe.zrangebyscore(holders_key(key), f"({now_s}", "+inf")
        return {_text(job_id) for ids in pipe.execute() for job_id in ids}


def parked_message(task: Any, request: Any) -> str:
    """The message of the job `request` runs, as JSON, to publish it again unchanged.

    Same id, retry count, queue, priority, headers (the `celeriac` one included), time
    limits and links: a parked job comes back as it left.
    """
    signature = task.signature_from_request(request)
    options = {k: v for k, v in dict(signature.options).items() if v is not None}
    message = {
        "task": signature.task,
        "args": list(signature.args or ()),
        "kwargs": dict(signature.kwargs or {}),
        "options": options,
    }
    return json.dumps(message, default=str)


def publish_parked(app: Celery, messages: Iterable[str]) -> int:
    """Publish parked messages again (promoted waiters); returns how many went out.

    Raises:
        Exception: whatever the broker raised; the waiter holds its slot until its lease
            ends, and the reconciler finds its row pending in no queue and publishes it.
    """
    sent = 0
    for raw in messages:
        message = json.loads(raw)
        options = dict(message.get("options") or {})
        celeriac = (options.get("headers") or {}).get("celeriac") or {}
        send(
            app,
            message["task"],
            args=message.get("args") or None,
            kwargs=message.get("kwargs") or {},
            options=options,
            sealed=bool(celeriac.get("encrypted")),
        )
        sent += 1
    return sent
