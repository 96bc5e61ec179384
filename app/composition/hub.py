"""Redis side of job composition: held jobs, dependencies, batch counters, unique locks.

Every decision that two processes could race on (the last two jobs of a batch finishing
on two workers; a dependency finishing while its dependant is being dispatched) is one
Lua script, so it happens exactly once. A released job is never published from inside
a script: its spec is pushed onto the outbox list in the same script, and
`app.composition.outbox` publishes it, so a crash between the decision and the publish
leaves the job in the outbox instead of losing it.

Keys (all under `celeriac:`; named in app.redis_keys, and built from the same prefix and
suffixes inside the scripts below):

    held:<job id>          string  spec of a job accepted but not yet published
    deps:<job id>          set     dependencies the held job still waits for
    dependants:<job id>    set     held jobs waiting for this job
    awaited                set     job ids that have dependants (one SMISMEMBER per batch)
    batch:<id>             hash    total, processed, failed, allow, cancelled, callback ids
    batch:<id>:done        set     jobs already counted (replays count nothing)
    chain:<id>             hash    catch: the catch job's id
    unique:<key>           string  id of the job holding the lock, with the unique_for TTL
    outbox                 list    specs of released jobs waiting to be published
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from app import redis_keys


def payload_identity(payload: dict[str, Any], keys: Sequence[str] = ()) -> str:
    """A stable hash of the payload (or of `keys` of it): "the same job" for uniqueness."""
    chosen = {k: payload.get(k) for k in keys} if keys else payload
    canonical = json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# -- scripts ----------------------------------------------------------------------------
# KEYS/ARGV are documented above each script; every key is derived from the prefix the
# caller passes, so operators can scan one namespace.

_HOLD = """
-- ARGV: prefix, job id, spec json, dep ids...
local p, job, spec = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', p .. 'held:' .. job, spec)
for i = 4, #ARGV do
  redis.call('SADD', p .. 'deps:' .. job, ARGV[i])
  redis.call('SADD', p .. 'dependants:' .. ARGV[i], job)
  redis.call('SADD', p .. 'awaited', ARGV[i])
end
return 1
"""

_RESOLVE = """
-- ARGV: prefix, dep id, outcome (completed|failed|cancelled), reason, ts
-- Releases (via the outbox) dependants whose last dependency completed, and cancels
-- (via a cancel event on the stream) those whose dependency did not. Returns
-- {released ids..., '|', cancelled ids...}.
local p, dep, outcome, reason, ts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local members = redis.call('SMEMBERS', p .. 'dependants:' .. dep)
local released, cancelled = {}, {}
for _, job in ipairs(members) do
  redis.call('SREM', p .. 'dependants:' .. dep, job)
  if redis.call('SREM', p .. 'deps:' .. job, dep) == 1 then
    if outcome == 'completed' then
      if redis.call('SCARD', p .. 'deps:' .. job) == 0 then
        local spec = redis.call('GET', p .. 'held:' .. job)
        if spec then
          redis.call('DEL', p .. 'held:' .. job)
          redis.call('RPUSH', p .. 'outbox', cjson.encode({spec = spec, dep = dep}))
          table.insert(released, job)
        end
      end
    else
      if redis.call('DEL', p .. 'held:' .. job) == 1 then
        redis.call('DEL', p .. 'deps:' .. job)
        local event = cjson.encode({t = 'cancel', id = job, ts = tonumber(ts),
          eid = job .. ':dep:' .. dep, reason = reason})
        redis.call('XADD', p .. 'events', '*', 'e', event)
        table.insert(cancelled, job)
      end
    end
  end
end
redis.call('DEL', p .. 'dependants:' .. dep)
redis.call('SREM', p .. 'awaited', dep)
table.insert(released, '|')
for _, job in ipairs(cancelled) do table.insert(released, job) end
return released
"""

_BATCH_ACCOUNT = """
-- ARGV: prefix, batch id, job id, failed (0|1), ttl
-- Counts one finished job once and claims the callbacks that are due, each at most once.
-- Returns {'?'} when the batch's counters are gone (Redis lost them, or they expired).
local p, batch, job, failed, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = p .. 'batch:' .. batch
if redis.call('EXISTS', key) == 0 then return {'?'} end
if redis.call('SADD', key .. ':done', job) == 0 then return {} end
local processed = redis.call('HINCRBY', key, 'processed', 1)
local nfailed = tonumber(redis.call('HGET', key, 'failed') or '0')
if failed == '1' then nfailed = redis.call('HINCRBY', key, 'failed', 1) end
local total = tonumber(redis.call('HGET', key, 'total'))
local allow = tonumber(redis.call('HGET', key, 'allow') or '0')
local cancelled = redis.call('HGET', key, 'cancelled') == '1'
local due = {}
local function claim(name)
  local id = redis.call('HGET', key, name)
  if id and redis.call('HSETNX', key, name .. '_claimed', '1') == 1 then
    local spec = redis.call('GET', p .. 'held:' .. id)
    if spec then
      redis.call('DEL', p .. 'held:' .. id)
      redis.call('RPUSH', p .. 'outbox', cjson.encode({spec = spec}))
      table.insert(due, name)
    end
  end
end
if not cancelled and nfailed > allow then claim('catch') end
if processed >= total then
  if not cancelled and nfailed <= allow then claim('then') end
  claim('finally')
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', key .. ':done', ttl)
end
return due
"""

_BATCH_ADD = """
-- ARGV: prefix, batch id, n. Grows a running batch; -1 if it finished or was cancelled.
local key = ARGV[1] .. 'batch:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return -1 end
if redis.call('HGET', key, 'cancelled') == '1' then return -1 end
local total = tonumber(redis.call('HGET', key, 'total'))
local processed = tonumber(redis.call('HGET', key, 'processed') or '0')
if processed >= total then return -1 end
return redis.call('HINCRBY', key, 'total', tonumber(ARGV[3]))
"""

_RELEASE_UNIQUE = """
-- KEYS[1]: lock; ARGV[1]: job id. Frees the lock only if this job still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_TAKE_HELD = """
-- KEYS[1]: held spec key; ARGV[1]: outbox entry json or ''. GETDEL, and queue it if asked.
local spec = redis.call('GET', KEYS[1])
if not spec then return nil end
redis.call('DEL', KEYS[1])
if ARGV[1] ~= '' then redis.call('RPUSH', ARGV[2], cjson.encode({spec = spec})) end
return spec
"""


class Hub:
    """The composition scripts, bound to one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._hold = client.register_script(_HOLD)
        self._resolve = client.register_script(_RESOLVE)
        self._batch_account = client.register_script(_BATCH_ACCOUNT)
        self._batch_add = client.register_script(_BATCH_ADD)
        self._release_unique = client.register_script(_RELEASE_UNIQUE)
        self._take_held = client.register_script(_TAKE_HELD)

    # -- held jobs and dependencies -------------------------------------------------
    def hold(self, job_id: str, spec: dict[str, Any], depends_on: Iterable[str]) -> None:
        """Keep `spec` until every job of `depends_on` completed (none: until taken)."""
        self._hold(args=[redis_keys.PREFIX, job_id, json.dumps(spec), *depends_on])

    def resolve(self, dep_id: str, outcome: str, reason: str) -> tuple[list[str], list[str]]:
        """`dep_id` finished with `outcome`: release or cancel its dependants, once.

        Returns (released ids, cancelled ids).
        """
        raw = cast(list[bytes], self._resolve(args=[redis_keys.PREFIX, dep_id, outcome, reason, repr(time.time())]))
        ids = [item.decode() for item in raw]
        split = ids.index("|")
        return ids[:split], ids[split + 1 :]

    def awaited(self, job_ids: Sequence[str]) -> list[str]:
        """Which of `job_ids` have dependants (one round trip for a whole recorder batch)."""
        if not job_ids:
            return []
        flags = cast(list[int], self.redis.smismember(redis_keys.AWAITED, list(job_ids)))
        return [job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag]

    def take_held(self, job_id: str, to_outbox: bool = False) -> dict[str, Any] | None:
        """Remove a held job's spec (a cancel), or move it to the outbox (a release)."""
        raw = self._take_held(keys=[redis_keys.held_job(job_id)], args=["1" if to_outbox else "", redis_keys.OUTBOX])
        return json.loads(cast(bytes, raw)) if raw else None

    # -- batches and chains -------------------------------------------------------------
    def open_batch(self, batch_id: str, total: int, allow_failures: int, callbacks: dict[str, str]) -> None:
        """Create the counters before any job is published (increment before publish)."""
        counters = {"total": total, "processed": 0, "failed": 0, "allow": allow_failures}
        self.redis.hset(redis_keys.batch(batch_id), mapping=cast(Any, {**counters, **callbacks}))

    def account_batch_job(self, batch_id: str, job_id: str, failed: bool) -> list[str] | None:
        """Count a finished job of a batch; returns the callbacks this call released, or None
        when the batch's counters are gone (see app.composition.resync)."""
        raw = cast(
            list[bytes],
            self._batch_account(
                args=[redis_keys.PREFIX, batch_id, job_id, "1" if failed else "0", redis_keys.BATCH_FINISHED_TTL_S]
            ),
        )
        released = [item.decode() for item in raw]
        return None if released == ["?"] else released

    def has_batch(self, batch_id: str) -> bool:
        return bool(self.redis.exists(redis_keys.batch(batch_id)))

    def has_chain(self, chain_id: str) -> bool:
        return bool(self.redis.exists(redis_keys.chain(chain_id)))

    def held(self, job_ids: Sequence[str]) -> list[bool]:
        """Whether each of `job_ids` is held (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(redis_keys.held_job(job_id))
        return [bool(found) for found in pipe.execute()]

    def restore_batch(self, batch_id: str, counters: dict[str, Any], claimed: Iterable[str]) -> None:
        """Counters of a batch whose hash Redis lost (processed counts start at 0: the caller
        accounts its finished jobs again); `claimed`: callbacks that already ran."""
        key = redis_keys.batch(batch_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key, redis_keys.batch_done(batch_id))
        pipe.hset(key, mapping=cast(Any, {**counters, **{f"{name}_claimed": "1" for name in claimed}}))
        pipe.execute()

    def grow_batch(self, batch_id: str, n: int) -> int:
        """Add `n` to a running batch's total; -1 when it already finished or was cancelled."""
        return int(cast(int, self._batch_add(args=[redis_keys.PREFIX, batch_id, n])))

    def cancel_batch(self, batch_id: str) -> None:
        self.redis.hset(redis_keys.batch(batch_id), "cancelled", "1")

    def batch_counters(self, batch_id: str) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(redis_keys.batch(batch_id)))
        numbers = ("total", "processed", "failed", "allow", "cancelled")
        return {k.decode(): int(v) for k, v in raw.items() if k.decode() in numbers}

    def open_chain(self, chain_id: str, catch_id: str | None) -> None:
        if catch_id:
            self.redis.hset(redis_keys.chain(chain_id), "catch", catch_id)

    def release_chain_catch(self, chain_id: str) -> bool:
        """A step failed: queue the chain's catch job, once."""
        catch_id = self.redis.hget(redis_keys.chain(chain_id), "catch")
        if catch_id is None:
            return False
        return self.take_held(cast(bytes, catch_id).decode(), to_outbox=True) is not None

    # -- uniqueness ------------------------------------------------------------------------
    def acquire_unique(self, key: str, job_id: str, ttl_s: int) -> str | None:
        """Take the lock for `job_id`; returns the holder's id when another job has it."""
        for _ in range(3):
            if self.redis.set(key, job_id, nx=True, ex=ttl_s):
                return None
            holder = self.redis.get(key)
            if holder is not None:
                return cast(bytes, holder).decode()
            # Expired between SET and GET: try again.
        raise redis.RedisError(f"could not take or read the unique lock {key}")

    def release_unique(self, key: str, job_id: str) -> None:
        self._release_unique(keys=[key], args=[job_id])


def new_id() -> str:
    return str(uuid.uuid4())
