"""Celery settings (lowercase, Celery's names), all values from app.config.

No logic and no task imports here: task modules are listed in `imports`.
"""

from __future__ import annotations

from app import redis_keys
from app.config import HARD_LIMIT_GRACE_S, get_settings
from celeriac.priority import DEFAULT_PRIORITY, to_broker_priority

_settings = get_settings()

broker_url = _settings.redis_url
#: Redis, through a backend that does not subscribe to every sent task's result (see
#: app/jobs/result_backend.py): "<class>+<url>" is Celery's own way to name a backend class.
result_backend = "app.jobs.result_backend:QuietRedisBackend+" + _settings.redis_url
redbeat_redis_url = _settings.redis_url
redbeat_key_prefix = redis_keys.REDBEAT_PREFIX
redbeat_lock_key = redis_keys.REDBEAT_PREFIX + "lock"
redbeat_lock_timeout = 25
#: RedBeat, healing after Redis outages and data loss instead of exiting (R1).
beat_scheduler = "app.schedules.scheduler:HealingRedBeatScheduler"
beat_max_loop_interval = 5

#: Task modules every worker loads. Users add theirs with CELERIAC_TASK_MODULES.
imports = ("tasks.demo", "tasks.maintenance", "tasks.bulk", *_settings.task_modules)

# JSON only: a pickle message from the network would be code execution.
accept_content = ["json"]
result_accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"

# Crash safety: a job is acknowledged only after it ran. A job whose worker process dies is
# put back in its queue by TrackedTask's request (app.recording.worker_loss: up to
# CELERIAC_WORKER_LOSS_LIMIT times, whatever its own retry budget); Celery's own handling
# below is the fallback if that cannot run.
task_acks_late = True
task_reject_on_worker_lost = True
task_retry_on_worker_lost = True
worker_prefetch_multiplier = 1
# A message delivered again after its job succeeded (its acknowledgement was lost; the
# reconciler or the visibility timeout put it back) is skipped, not run twice: the worker
# asks the result backend, for redelivered messages only.
worker_deduplicate_successful_tasks = True

#: See Settings.visibility_timeout_s: longer than the longest broker ETA plus runtime (longer
#: delays and backoffs wait in Celeriac's scheduled set, not in the broker).
_visibility = _settings.visibility_timeout_s
if _settings.attach.enabled:
    # Attach mode shares the project's broker: kombu puts back any unacknowledged message
    # older than the timeout, the project's too, so ours must not be the shorter one.
    _visibility = max(_visibility, _settings.attach.project_visibility_timeout_s)
broker_transport_options = {
    "visibility_timeout": _visibility,
    # Priorities 0-9 within a queue: ten Redis lists per queue ("emails", "emails:1", ...).
    "priority_steps": list(range(10)),
    # Attach mode keeps kombu's separator: it also separates the fields of the broker's
    # binding tables, which the project's workers read (replies, retries) and would choke on.
    **({} if _settings.attach.enabled else {"sep": ":"}),
    # A worker started with -Q critical,default,low drains them in that order, unless a queue
    # it consumes has a weight: then it takes from each in proportion (docs/queues.md).
    "queue_order_strategy": "app.control.weighted_cycle:WeightedCycle",
}
result_backend_transport_options = {"visibility_timeout": _visibility}
# A job's outcome is stored before its message is acknowledged, and it is what the
# reconciler trusts: a worker keeps trying through a Redis outage of several minutes
# (by default Celery gives up at once and records the job failed although it ran).
result_backend_always_retry = True
result_backend_max_retries = 60
result_backend_max_sleep_between_retries_ms = 10_000
#: Unprioritised messages would otherwise land in Redis's top bucket.
task_default_priority = to_broker_priority(DEFAULT_PRIORITY)
task_default_queue = "default"
task_create_missing_queues = True

# Time limits for tasks that set none; Job classes set their own from `timeout`, with the
# same grace before the hard kill.
task_soft_time_limit = _settings.default_timeout_s
task_time_limit = _settings.default_timeout_s + HARD_LIMIT_GRACE_S
result_expires = 24 * 3600
result_extended = False

worker_max_tasks_per_child = _settings.worker_max_tasks_per_child
worker_max_memory_per_child = _settings.worker_max_memory_per_child_kb
worker_send_task_events = False
task_send_sent_event = False
worker_soft_shutdown_timeout = 10.0
worker_consumer = "app.recording.consumer:RecordingConsumer"

broker_connection_retry_on_startup = True
broker_connection_max_retries = None
broker_pool_limit = 10
timezone = "UTC"
enable_utc = True

#: Static beat entries (RedBeat stores them under redbeat_key_prefix; schedule reconcile
#: leaves them alone). Retention (E3) hourly: each run deletes in short batches. (Orphaned
#: and lost jobs are the recorder's reconciler's business, not beat's: it needs no worker.)
beat_schedule = {
    "celeriac-purge-history": {
        "task": "celeriac.maintenance.purge_history",
        "schedule": 3600.0,
        "options": {"queue": _settings.attach.system_queue},
    },
}
#: Celeriac's own tasks go to its own queue (in attach mode, the only one its worker consumes).
task_routes = {"celeriac.maintenance.*": {"queue": _settings.attach.system_queue}}
