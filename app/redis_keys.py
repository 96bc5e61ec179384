"""Every Redis key Celeriac owns, built from one prefix so operators can scan by it.

Key map (key -> type -> writer -> TTL):

    celeriac:events                 stream  task signals (any process)  trimmed by the recorder
    celeriac:events group "recorder" consumer group read by app.recorder
    celeriac:recorder:stats         hash    recorder                    none (overwritten)
    celeriac:recorder:heartbeat     string  recorder                    RECORDER_HEARTBEAT_TTL_S
    celeriac:cancelled:<job id>     string  services.jobs.cancel_job    CANCEL_MARK_TTL_S
    celeriac:cancelled:recent       zset    services.jobs.cancel_job    members older than CANCEL_MARK_TTL_S trimmed
    celeriac:cancelled:version      string  services.jobs.cancel_job    none (a counter)
    celeriac:redbeat:*              RedBeat schedule entries (redbeat_key_prefix)
    celeriac:schedules:claim:<schedule id>:<tick epoch>  string  app.schedules.claims  SCHEDULE_CLAIM_TTL_S
    celeriac:ratelimit:job:<class>:<key>:<per us>  zset  app.ratelimit gate  PEXPIRE past its last entry
    celeriac:ratelimit:shared:<key>:<per us>       zset  app.ratelimit gate  same (key="global:...")
    celeriac:ratelimit:queue:<queue>:<per us>      zset  app.ratelimit gate  same
    celeriac:ratelimit:queue-limits                hash  API (queue -> "limit/per")  none
    celeriac:escalation:<kind>:<tenant>:<subject>  string  app.failures.escalation  CELERIAC_ESCALATION_COOLDOWN_S
    celeriac:workers                zset    worker heartbeat thread     old members trimmed by readers
    celeriac:worker:<hostname>      string  worker heartbeat thread (JSON)     CELERIAC_WORKER_FORGET_AFTER_S
    celeriac:p95:<job class>        string  app.monitoring.slow         CELERIAC_P95_CACHE_S
    celeriac:queues:paused          hash    app.control.pauses (queue -> JSON state)  none
    celeriac:queues:weights         hash    app.control.queue_settings (queue -> weight; SQL is the truth)  none
    celeriac:control:worker:<hostname>  string  app.control.worker_side (JSON)  CONTROL_STATE_TTL_S
    celeriac:worker-losses:<job id>  string  worker main process / reconciler (a counter)  WORKER_LOSSES_TTL_S
    celeriac:reconcile:lock         string  app.recording.reconcile (SET NX EX)  RECONCILE_LOCK_TTL_S
    celeriac:epoch                  string  app.recording.reconcile (gone: Redis lost its data)  none
    celeriac:recovery:stats         hash    reconciler and worker_loss (counters)  none
    celeriac:login:failures:<address>  string  app.services.login_throttle (a counter)  LoginLimits.window_s
    celeriac:login:account-failures:<e-mail digest>  string  same  same
    celeriac:login:pair-failures:<e-mail digest>:<address>  string  same  same
    celeriac:events:dead            stream  recorder (events it could not apply)  none
    celeriac:held:<job id>          string  app.composition.hub (spec of a job not yet published)  none
    celeriac:deps:<job id>          set     app.composition.hub (dependencies still awaited)  none
    celeriac:dependants:<job id>    set     app.composition.hub (held jobs waiting for this one)  none
    celeriac:awaited                set     app.composition.hub (job ids that have dependants)  none
    celeriac:batch:<id>             hash    app.composition.hub (counters, callback ids)  BATCH_FINISHED_TTL_S once done
    celeriac:batch:<id>:done        set     app.composition.hub (jobs already counted)  same
    celeriac:chain:<id>             hash    app.composition.hub (catch: the catch job's id)  none
    celeriac:unique:<tenant>:<class>:<identity>  string  app.composition.hub (id of the lock holder)  unique_for
    celeriac:outbox                 list    app.composition.hub (released specs to publish)  none
    celeriac:outbox:inflight        list    app.composition.followups (taken, not yet published)  none
    celeriac:scheduled              zset    app.kernel.scheduled (job id -> due epoch)  none
    celeriac:dispatch-defaults      string  definition / queue setting edits (random token)  none

    celeriac:concurrency:limits     hash    dispatch / API / worker (scoped key -> limit)  none
    celeriac:concurrency:keys       set     celeriac.concurrency scripts (keys in use)  none
    celeriac:concurrency:holders:<tenant>:<key>  zset  same (job id -> lease expiry)  entries expire by score
    celeriac:concurrency:waiting:<tenant>:<key>  zset  same (job id -> arrival)  none
    celeriac:concurrency:parked:<tenant>:<key>   hash  same (job id -> message JSON)  none
    celeriac:concurrency:seq        string  same (arrival counter)  none

The composition keys are also built inside hub.py's Lua scripts, from PREFIX and the same
suffixes: change both together.
"""

from __future__ import annotations

# The keys a worker process needs live in the worker-side package, under the same names.
from celeriac.keys import CANCEL_MARK_TTL_S as CANCEL_MARK_TTL_S
from celeriac.keys import CANCELLED_RECENT as CANCELLED_RECENT
from celeriac.keys import CANCELLED_VERSION as CANCELLED_VERSION
from celeriac.keys import EVENTS_STREAM as EVENTS_STREAM
from celeriac.keys import PREFIX as PREFIX
from celeriac.keys import cancelled as cancelled

#: Consumer group of the recorder processes on EVENTS_STREAM.
RECORDER_GROUP = "recorder"
#: Hash of recorder figures (lag percentiles, rows written, last batch time).
RECORDER_STATS = PREFIX + "recorder:stats"
#: Set while a recorder is alive; lets health checks tell "idle" from "down".
RECORDER_HEARTBEAT = PREFIX + "recorder:heartbeat"
#: Seconds a recorder heartbeat lives without renewal.
RECORDER_HEARTBEAT_TTL_S = 30
#: A random token replaced whenever job definitions or queue settings change: dispatch keeps
#: its copies while the token stays (app.kernel.dispatch_defaults).
DISPATCH_DEFAULTS_TOKEN = PREFIX + "dispatch-defaults"
#: RedBeat's key prefix (set as `redbeat_key_prefix`).
REDBEAT_PREFIX = PREFIX + "redbeat:"


def demo_flaky(key: str) -> str:
    """Counter of demo.flaky attempts for `key` (TTL: tasks.demo.FLAKY_TTL_S)."""
    return f"{PREFIX}demo:flaky:{key}"


#: How long a job's count of lost worker processes is kept (longer than any job is live).
WORKER_LOSSES_TTL_S = 7 * 24 * 3600


def worker_losses(job_id: str) -> str:
    """How many worker processes died under `job_id` (the worker-loss limit, R1)."""
    return f"{PREFIX}worker-losses:{job_id}"


#: One reconciler at a time, whatever the number of recorders.
RECONCILE_LOCK = PREFIX + "reconcile:lock"
RECONCILE_LOCK_TTL_S = 120
#: Written once by the reconciler; missing later means Redis restarted without its data.
EPOCH = PREFIX + "epoch"
#: Counters of what the reconciler and workers' main processes recovered (for /metrics).
RECOVERY_STATS = PREFIX + "recovery:stats"


def login_failures(client: str) -> str:
    """Failed console logins from one client address, across accounts (app.services.login_throttle)."""
    return f"{PREFIX}login:failures:{client}"


def login_account_failures(account: str) -> str:
    """Failed console logins for one account, from any address; `account` is the e-mail's digest."""
    return f"{PREFIX}login:account-failures:{account}"


def login_pair_failures(account: str, client: str) -> str:
    """Failed logins for one account from one address: forgiven on the address when that account gets in."""
    return f"{PREFIX}login:pair-failures:{account}:{client}"


#: Queue rate limits set through the API (field: queue, value: "limit/per seconds").
RATE_LIMIT_QUEUES = PREFIX + "ratelimit:queue-limits"


def rate_limit_job(job_class: str, key: str | None, per_us: int) -> str:
    """Sliding-window log of one job class's limit (`key` filled from the payload, or none)."""
    return f"{PREFIX}ratelimit:job:{job_class}:{key if key is not None else '*'}:{per_us}"


def rate_limit_shared(key: str, per_us: int) -> str:
    """Sliding-window log shared by every job class naming `global:<key>`."""
    return f"{PREFIX}ratelimit:shared:{key}:{per_us}"


def rate_limit_queue(queue: str, per_us: int) -> str:
    """Sliding-window log of a queue's limit (configured or set through the API)."""
    return f"{PREFIX}ratelimit:queue:{queue}:{per_us}"


#: How long a schedule's claim on one of its ticks lives: the claim only keeps two fires
#: of the same tick apart while they run; the tick's job row (its id is derived from the
#: tick) says for good that it fired. A claim of a beat that died mid-fire frees its tick
#: after this.
SCHEDULE_CLAIM_TTL_S = 120


def schedule_claim(schedule_id: str, tick_epoch: int) -> str:
    """SET NX claim: whoever sets it fires this tick of the schedule (S4, app.schedules.claims)."""
    return f"{PREFIX}schedules:claim:{schedule_id}:{tick_epoch}"


#: Escalation de-duplication (F3): one notification per key per cooldown (SET NX EX).
ESCALATION_PREFIX = PREFIX + "escalation:"


def escalation(tenant_id: str, kind: str, subject: str) -> str:
    """Set when `subject` (a fingerprint, or a job class for rates) was escalated (TTL: the cooldown)."""
    return f"{ESCALATION_PREFIX}{kind}:{tenant_id}:{subject}"


#: Sorted set of worker hostnames (score: last heartbeat, epoch seconds): the registry index.
WORKERS = PREFIX + "workers"


def worker(hostname: str) -> str:
    """JSON of a worker's last heartbeat (M2, app.monitoring.workers)."""
    return f"{PREFIX}worker:{hostname}"


def p95_cache(job_class: str) -> str:
    """Cached p95 runtime of a job class, "<ms>:<samples>" (M3, app.monitoring.slow)."""
    return f"{PREFIX}p95:{job_class}"


#: Pause state of queues (field: queue, value: JSON {paused, by, at, reason}); W2, app.control.pauses.
QUEUE_PAUSES = PREFIX + "queues:paused"
#: Hash queue -> weight: a mirror of the `queues` table's weights, read by every worker's
#: queue cycle (app.control.weighted_cycle) so it never queries SQL while consuming.
QUEUE_WEIGHTS = PREFIX + "queues:weights"
#: Seconds a worker's control state outlives its last reconcile tick.
CONTROL_STATE_TTL_S = 60


def worker_control(hostname: str) -> str:
    """JSON of what a worker wants to consume and how it runs (W2, app.control.worker_side)."""
    return f"{PREFIX}control:worker:{hostname}"


#: Events the recorder could not apply, with the error (kept for inspection, never retried).
DEAD_EVENTS_STREAM = PREFIX + "events:dead"

#: Celeriac's scheduled set: job id -> due epoch of jobs whose delay or backoff is too long
#: for a broker ETA (app.kernel.scheduled; rebuilt from job_executions.due_at).
SCHEDULED = PREFIX + "scheduled"

# -- composition (app.composition.hub): held jobs, dependencies, batches, chains, unique locks.
#: Specs of released jobs waiting to be published (pushed by the hub's scripts).
OUTBOX = PREFIX + "outbox"
#: Released jobs a drainer took but has not published yet (recovered at start-up).
OUTBOX_INFLIGHT = OUTBOX + ":inflight"
#: Job ids that have dependants (one SMISMEMBER per batch of finished jobs).
AWAITED = PREFIX + "awaited"
#: Counters of a finished batch are kept this long for late replays, then expire.
BATCH_FINISHED_TTL_S = 7 * 24 * 3600


def held_job(job_id: str) -> str:
    """Spec of a job accepted but not yet published (a dependant, a later chain step, a callback)."""
    return f"{PREFIX}held:{job_id}"


def job_dependencies(job_id: str) -> str:
    """Dependencies the held job `job_id` still waits for."""
    return f"{PREFIX}deps:{job_id}"


def job_dependants(job_id: str) -> str:
    """Held jobs waiting for `job_id` to finish."""
    return f"{PREFIX}dependants:{job_id}"


def batch(batch_id: str) -> str:
    """A batch's counters (total, processed, failed, allow, cancelled) and callback ids."""
    return f"{PREFIX}batch:{batch_id}"


def batch_done(batch_id: str) -> str:
    """Jobs of the batch already counted, so a replayed finish counts nothing."""
    return batch(batch_id) + ":done"


def chain(chain_id: str) -> str:
    """A chain's state (catch: the catch job's id)."""
    return f"{PREFIX}chain:{chain_id}"


def unique_lock(tenant_id: str, job_class: str, identity: str) -> str:
    """Id of the job holding this unique lock (TTL: the class's unique_for)."""
    return f"{PREFIX}unique:{tenant_id}:{job_class}:{identity}"
