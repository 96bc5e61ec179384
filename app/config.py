"""Settings: the only module that reads the environment (and `.env`).

`load_settings(environ)` is pure so tests call it with a dict; everything else asks
`get_settings()`, which reads `os.environ` plus a `.env` file once per process. Every
variable is named here; `app.config_parsing` turns one value into a typed one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

from app.config_attach import AttachConfig, attach_config
from app.config_parsing import ConfigError as ConfigError
from app.config_parsing import env_bool, env_csv, env_float, env_int
from app.config_stats import StatsRetention, stats_retention

#: Repository root; the default SQLite file and the embedded Redis data live under var/.
ROOT_DIR = Path(__file__).resolve().parent.parent
#: Where runtime files (SQLite database, embedded Redis data, logs) go by default.
VAR_DIR = ROOT_DIR / "var"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds between a task's soft time limit (SoftTimeLimitExceeded in the job, time to clean
#: up) and the hard kill of its process: for Job classes, dispatches with a `timeout` and
#: plain tasks under `task_soft_time_limit` alike. supervisor's stopwaitsecs budgets for it.
HARD_LIMIT_GRACE_S = 10


@dataclass(frozen=True)
class EscalationConfig:
    """Where and how often failures are escalated (F3); no channel configured: nothing is sent."""

    #: Slack-compatible incoming webhooks ({"text": ...} is POSTed to each).
    webhook_urls: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    email_from: str = "celeriac@localhost"
    email_to: tuple[str, ...] = ()
    #: One notification per fingerprint (or per failing class) per this many seconds.
    cooldown_s: int = 3600
    #: Notify on every permanent failure (de-duplicated per fingerprint).
    on_failure: bool = True
    #: A class whose failed share of finished jobs passes this (0-1; 0: off) is escalated,
    #: once at least `failure_rate_min_jobs` finished in the last `failure_rate_window_s`.
    failure_rate_threshold: float = 0.5
    failure_rate_window_s: int = 300
    failure_rate_min_jobs: int = 20

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_urls) or bool(self.smtp_host and self.email_to)


def _escalation(environ: Mapping[str, str]) -> EscalationConfig:
    return EscalationConfig(
        webhook_urls=env_csv(environ, "CELERIAC_ESCALATION_WEBHOOK_URLS"),
        smtp_host=environ.get("CELERIAC_ESCALATION_SMTP_HOST") or None,
        smtp_port=env_int(environ, "CELERIAC_ESCALATION_SMTP_PORT", 25, 1),
        smtp_user=environ.get("CELERIAC_ESCALATION_SMTP_USER") or None,
        smtp_password=environ.get("CELERIAC_ESCALATION_SMTP_PASSWORD") or None,
        smtp_starttls=env_bool(environ, "CELERIAC_ESCALATION_SMTP_STARTTLS", False),
        email_from=environ.get("CELERIAC_ESCALATION_EMAIL_FROM") or "celeriac@localhost",
        email_to=env_csv(environ, "CELERIAC_ESCALATION_EMAIL_TO"),
        cooldown_s=env_int(environ, "CELERIAC_ESCALATION_COOLDOWN_S", 3600, 1),
        on_failure=env_bool(environ, "CELERIAC_ESCALATE_ON_FAILURE", True),
        failure_rate_threshold=env_float(environ, "CELERIAC_FAILURE_RATE_THRESHOLD", 0.5, 0.0, 1.0),
        failure_rate_window_s=env_int(environ, "CELERIAC_FAILURE_RATE_WINDOW_S", 300, 10),
        failure_rate_min_jobs=env_int(environ, "CELERIAC_FAILURE_RATE_MIN_JOBS", 20, 1),
    )


@dataclass(frozen=True)
class MonitoringConfig:
    """Worker registry, stuck / slow detection and the orphan reaper (M2, M3)."""

    #: Seconds between a worker's heartbeats (0: the worker writes none).
    heartbeat_interval_s: int = 5
    #: A worker whose last heartbeat is older than this is offline.
    offline_after_s: int = 30
    #: An offline worker stays listed this long (the TTL of its registry entry).
    forget_after_s: int = 3600
    #: A processing job is stuck once it ran its class's timeout plus this.
    stuck_grace_s: int = 60
    #: Slow: runtime past this multiple of the class's p95 ...
    slow_p95_factor: float = 3.0
    #: ... or a running job past this share of its timeout.
    slow_timeout_ratio: float = 0.8
    #: p95 needs this many recent completed executions of the class, and reads at most
    #: `p95_sample` of them (newest first); the result is cached `p95_cache_s`.
    p95_min_samples: int = 20
    p95_sample: int = 500
    p95_cache_s: int = 300
    #: Finished jobs are checked for slowness over this window.
    slow_window_s: int = 3600
    #: A worker silent this long is dead: the reconciler puts the jobs it held back in their
    #: queue (or fails them, see `reap_policy`), not waiting for the visibility timeout.
    reap_after_s: int = 60
    #: What happens to the running job of a worker that died: "requeue" (run it again, up
    #: to the worker-loss limit) or "fail". A Job class may say otherwise (`on_worker_lost`).
    reap_policy: str = "requeue"


def _monitoring(environ: Mapping[str, str]) -> MonitoringConfig:
    policy = (environ.get("CELERIAC_REAP_POLICY") or "requeue").strip().lower()
    if policy not in {"fail", "requeue"}:
        raise ConfigError(f"CELERIAC_REAP_POLICY must be fail or requeue, got {policy!r}")
    return MonitoringConfig(
        heartbeat_interval_s=env_int(environ, "CELERIAC_WORKER_HEARTBEAT_S", 5, 0),
        offline_after_s=env_int(environ, "CELERIAC_WORKER_OFFLINE_AFTER_S", 30, 1),
        forget_after_s=env_int(environ, "CELERIAC_WORKER_FORGET_AFTER_S", 3600, 1),
        stuck_grace_s=env_int(environ, "CELERIAC_STUCK_GRACE_S", 60, 0),
        slow_p95_factor=env_float(environ, "CELERIAC_SLOW_P95_FACTOR", 3.0, 1.0, 1000.0),
        slow_timeout_ratio=env_float(environ, "CELERIAC_SLOW_TIMEOUT_RATIO", 0.8, 0.01, 1.0),
        p95_min_samples=env_int(environ, "CELERIAC_P95_MIN_SAMPLES", 20, 1),
        p95_sample=env_int(environ, "CELERIAC_P95_SAMPLE", 500, 1),
        p95_cache_s=env_int(environ, "CELERIAC_P95_CACHE_S", 300, 0),
        slow_window_s=env_int(environ, "CELERIAC_SLOW_WINDOW_S", 3600, 1),
        reap_after_s=env_int(environ, "CELERIAC_REAP_AFTER_S", 60, 1),
        reap_policy=policy,
    )


@dataclass(frozen=True)
class ReliabilityConfig:
    """How history stays true under crashes and outages (R1, R2; docs/reliability.md)."""

    #: Seconds between two runs of the reconciler in the recorder (0: never).
    reconcile_interval_s: int = 15
    #: A job or message younger than this is never judged lost or stale: time for events
    #: still in a worker's buffer and for a message between two Redis commands.
    reconcile_grace_s: int = 60
    #: Most the clocks of two hosts may disagree, in seconds.
    clock_skew_s: int = 30
    #: The reconciler waits while the recorder has more events than this to write.
    reconcile_backlog_limit: int = 1000
    #: A job whose worker process died under it this many times is failed, not re-run.
    worker_loss_limit: int = 3
    #: Longest a dispatch waits on one broker round trip (connect, send, one reconnect):
    #: with Redis frozen or gone a dispatch answers 503 within about three times this.
    publish_timeout_s: float = 1.5


def _reliability(environ: Mapping[str, str]) -> ReliabilityConfig:
    return ReliabilityConfig(
        reconcile_interval_s=env_int(environ, "CELERIAC_RECONCILE_INTERVAL_S", 15, 0),
        reconcile_grace_s=env_int(environ, "CELERIAC_RECONCILE_GRACE_S", 60, 1),
        clock_skew_s=env_int(environ, "CELERIAC_CLOCK_SKEW_S", 30, 0),
        reconcile_backlog_limit=env_int(environ, "CELERIAC_RECONCILE_BACKLOG_LIMIT", 1000, 1),
        worker_loss_limit=env_int(environ, "CELERIAC_WORKER_LOSS_LIMIT", 3, 1),
        publish_timeout_s=env_float(environ, "CELERIAC_PUBLISH_TIMEOUT_S", 1.5, 0.1, 60.0),
    )


@dataclass(frozen=True)
class HealthThresholds:
    """When queue health (M4, app.monitoring.health) warns; defaults are SPEC.md's."""

    pending_warning: int = 1000
    #: Failed jobs in a queue in the last hour.
    failed_warning: int = 100
    #: SPEC.md: the p95 queue wait (start minus max(created, eta)) over the recent window, ms.
    wait_warning_ms: int = 500
    #: The recent window the wait p95 and the retry rate are read from, seconds.
    recent_window_s: int = 600
    #: A queue whose oldest ready pending job has waited longer than this (s): nothing starts.
    oldest_pending_warning_s: int = 60
    #: Share of the attempts that ended in the recent window and ended in a retry; the
    #: performance page flags classes past the same share.
    retry_rate_warning: float = 0.2
    #: Fewer waits or ended attempts than this in the window are too few to judge.
    min_samples: int = 10
    #: Events waiting for the recorder.
    recorder_backlog_warning: int = 10_000



def _health(environ: Mapping[str, str]) -> HealthThresholds:
    return HealthThresholds(
        pending_warning=env_int(environ, "CELERIAC_HEALTH_PENDING_WARNING", 1000, 0),
        failed_warning=env_int(environ, "CELERIAC_HEALTH_FAILED_WARNING", 100, 0),
        wait_warning_ms=env_int(environ, "CELERIAC_HEALTH_WAIT_WARNING_MS", 500, 0),
        recent_window_s=env_int(environ, "CELERIAC_HEALTH_RECENT_WINDOW_S", 600, 60),
        oldest_pending_warning_s=env_int(environ, "CELERIAC_HEALTH_OLDEST_PENDING_WARNING_S", 60, 0),
        retry_rate_warning=env_float(environ, "CELERIAC_HEALTH_RETRY_RATE_WARNING", 0.2, 0.0, 1.0),
        min_samples=env_int(environ, "CELERIAC_HEALTH_MIN_SAMPLES", 10, 1),
        recorder_backlog_warning=env_int(environ, "CELERIAC_HEALTH_RECORDER_BACKLOG_WARNING", 10_000, 0),
    )


def _queue_rate_limits(raw: str) -> tuple[tuple[str, int, int], ...]:
    """Parse `emails=100/60,reports=10/3600` (queue=limit/per-seconds).

    Raises:
        ValueError: an entry not of that form, so a typo stops start-up instead of being ignored.
    """
    limits: list[tuple[str, int, int]] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            queue, rate = entry.split("=", 1)
            limit, per = rate.split("/", 1)
            parsed = (queue.strip(), int(limit), int(per))
        except ValueError as exc:
            raise ValueError(f"CELERIAC_QUEUE_RATE_LIMITS: {entry!r} is not queue=limit/seconds") from exc
        if not parsed[0] or parsed[1] < 1 or parsed[2] < 1:
            raise ValueError(f"CELERIAC_QUEUE_RATE_LIMITS: {entry!r} needs a queue, limit >= 1 and seconds >= 1")
        limits.append(parsed)
    return tuple(limits)


def _database_url(environ: Mapping[str, str]) -> str:
    url = environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'celeriac.db'}"
    # Heroku-style URLs and plain "postgresql://" both mean psycopg 3 here.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults of API.md "Environment"."""

    database_url: str
    redis_url: str
    secret_key: str
    port: int = 8000
    flower_port: int = 5555
    #: Where the console's navigation links to Flower (FLOWER_URL; default: this host's FLOWER_PORT).
    flower_url: str = ""
    #: Longest `delay` (and each `backoff` value) a dispatch may ask for, in seconds (422 past it).
    max_delay_s: int = 30 * 24 * 3600
    #: A delay or retry backoff longer than this waits in Celeriac's scheduled set, not as a
    #: broker ETA (which would outlive the visibility timeout); see docs/jobs.md "Delays".
    scheduled_after_s: int = 60
    #: Longest per-job `timeout` (hard time limit) in seconds.
    max_timeout_s: int = 900
    #: Default soft time limit for jobs that set none, in seconds.
    default_timeout_s: int = 300
    #: Largest accepted API body, in bytes (413 past it).
    max_body_bytes: int = 1024 * 1024
    #: Deepest nesting of arrays and objects in an API body (422 past it).
    max_payload_depth: int = 64
    #: Proxy hops in front of gunicorn whose X-Forwarded-* headers are trusted (ProxyFix).
    trusted_proxies: int = 0
    #: Largest stored result, in characters of JSON; longer results are truncated.
    max_result_chars: int = 10_000
    #: Prefork children are replaced after this many tasks / this much RSS (KiB).
    worker_max_tasks_per_child: int = 1000
    worker_max_memory_per_child_kb: int = 512_000
    #: Delay before a job whose worker process died is tried again, in seconds.
    worker_lost_retry_delay_s: int = 5
    #: When false, no task signals are recorded (used only by the benchmark's baseline).
    tracking_enabled: bool = True
    #: Recorder batching: largest batch and longest wait for new events.
    recorder_batch_size: int = 500
    recorder_block_ms: int = 200
    #: Once events arrive, wait this long for more before writing (bigger, cheaper batches).
    recorder_linger_ms: int = 100
    #: Worker-side event buffer: flush after this many events or this many milliseconds.
    event_buffer_size: int = 64
    event_flush_ms: int = 20
    encryption_keys: tuple[str, ...] = field(default_factory=tuple)
    #: Most jobs in one batch (J5), initial jobs and added ones together.
    max_batch_jobs: int = 10_000
    #: Global per-queue rate limits from configuration (J10): queue -> (limit, per seconds).
    queue_rate_limits: tuple[tuple[str, int, int], ...] = field(default_factory=tuple)
    #: A throttled job whose slot is this close waits for it in the worker (J10).
    rate_limit_hold_ms: int = 1000
    #: Extra task modules every worker imports (CELERIAC_TASK_MODULES, comma-separated).
    task_modules: tuple[str, ...] = field(default_factory=tuple)
    default_tenant: str = "default"
    #: Send session cookies over HTTPS only; turn on behind TLS.
    secure_cookies: bool = False
    #: Failure escalation channels and limits (F3).
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    #: Finished executions are purged this many days after their last change (E3);
    #: failed ones are kept `failed_retention_days`.
    retention_days: int = 30
    failed_retention_days: int = 90
    #: Rows deleted per purge transaction, so no lock is held for long.
    retention_batch_size: int = 1000
    #: Ages at which job stats become hourly, daily, and are deleted (app.config_stats).
    stats_retention: StatsRetention = field(default_factory=StatsRetention)
    #: Worker registry, stuck and slow jobs, orphan reaper (M2, M3).
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    #: Worker and queue control (W2): supervisord's XML-RPC URL (restart needs it; empty: no
    #: restart), how often a worker re-checks the paused queues, how long a command waits for replies.
    supervisor_url: str = ""
    queue_pause_check_s: int = 2
    control_reply_timeout_s: int = 3
    #: Reconciler, worker-loss limit and publish bound (R1, R2).
    reliability: ReliabilityConfig = field(default_factory=ReliabilityConfig)
    #: Queue health thresholds (M4), also the performance page's retry-rate flag.
    health: HealthThresholds = field(default_factory=HealthThresholds)
    #: The program supervisord runs this process as: supervisord sets SUPERVISOR_PROCESS_NAME
    #: and SUPERVISOR_GROUP_NAME (default: the process name) in its environment; empty
    #: outside supervisord. A worker publishes them so restarts can find its program (W2).
    supervisor_process_name: str = ""
    supervisor_group_name: str = ""
    #: Attach mode (CELERIAC_ATTACH): a project's unchanged workers recorded from their events.
    attach: AttachConfig = field(default_factory=AttachConfig)

    @property
    def visibility_timeout_s(self) -> int:
        """Broker visibility timeout, derived so no broker ETA or allowed runtime outlives it.

        A message is unacked from delivery (ETA jobs are delivered at once and held by the
        worker) until its task finishes, so it covers the longest broker ETA (longer waits
        are held in the scheduled set) plus the longest hard time limit, doubled for queue
        wait and safety (CELERY-NOTES.md). It no longer grows with CELERIAC_MAX_DELAY_S.
        """
        return 2 * (self.scheduled_after_s + self.max_timeout_s + HARD_LIMIT_GRACE_S + 30)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build `Settings` from an environment mapping, failing fast on bad values.

    Raises:
        ConfigError: a variable is present but unusable.
    """
    keys = env_csv(environ, "CELERIAC_ENCRYPTION_KEYS")
    return Settings(
        database_url=_database_url(environ),
        redis_url=environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        secret_key=environ.get("SECRET_KEY") or "dev-insecure-change-me",
        port=env_int(environ, "PORT", 8000, 1),
        flower_port=env_int(environ, "FLOWER_PORT", 5555, 1),
        flower_url=environ.get("FLOWER_URL", ""),
        max_delay_s=env_int(environ, "CELERIAC_MAX_DELAY_S", 30 * 24 * 3600, 0),
        scheduled_after_s=env_int(environ, "CELERIAC_SCHEDULED_AFTER_S", 60, 1),
        max_timeout_s=env_int(environ, "CELERIAC_MAX_TIMEOUT_S", 900, 1),
        default_timeout_s=env_int(environ, "CELERIAC_DEFAULT_TIMEOUT_S", 300, 1),
        max_body_bytes=env_int(environ, "CELERIAC_MAX_BODY_BYTES", 1024 * 1024, 1024),
        max_payload_depth=env_int(environ, "CELERIAC_MAX_PAYLOAD_DEPTH", 64, 2),
        trusted_proxies=env_int(environ, "CELERIAC_TRUSTED_PROXIES", 0, 0),
        max_result_chars=env_int(environ, "CELERIAC_MAX_RESULT_CHARS", 10_000, 100),
        worker_max_tasks_per_child=env_int(environ, "CELERIAC_WORKER_MAX_TASKS_PER_CHILD", 1000, 1),
        worker_max_memory_per_child_kb=env_int(environ, "CELERIAC_WORKER_MAX_MEMORY_PER_CHILD_KB", 512_000, 1024),
        worker_lost_retry_delay_s=env_int(environ, "CELERIAC_WORKER_LOST_RETRY_DELAY_S", 5, 0),
        tracking_enabled=env_bool(environ, "CELERIAC_TRACKING", True),
        recorder_batch_size=env_int(environ, "CELERIAC_RECORDER_BATCH_SIZE", 500, 1),
        recorder_block_ms=env_int(environ, "CELERIAC_RECORDER_BLOCK_MS", 200, 1),
        recorder_linger_ms=env_int(environ, "CELERIAC_RECORDER_LINGER_MS", 100, 0),
        event_buffer_size=env_int(environ, "CELERIAC_EVENT_BUFFER_SIZE", 64, 1),
        event_flush_ms=env_int(environ, "CELERIAC_EVENT_FLUSH_MS", 20, 1),
        encryption_keys=keys,
        max_batch_jobs=env_int(environ, "CELERIAC_MAX_BATCH_JOBS", 10_000, 1),
        queue_rate_limits=_queue_rate_limits(environ.get("CELERIAC_QUEUE_RATE_LIMITS", "")),
        rate_limit_hold_ms=env_int(environ, "CELERIAC_RATE_LIMIT_HOLD_MS", 1000, 0),
        task_modules=env_csv(environ, "CELERIAC_TASK_MODULES"),
        default_tenant=environ.get("CELERIAC_DEFAULT_TENANT") or "default",
        secure_cookies=env_bool(environ, "CELERIAC_SECURE_COOKIES", False),
        escalation=_escalation(environ),
        retention_days=env_int(environ, "CELERIAC_RETENTION_DAYS", 30, 1),
        failed_retention_days=env_int(environ, "CELERIAC_FAILED_RETENTION_DAYS", 90, 1),
        retention_batch_size=env_int(environ, "CELERIAC_RETENTION_BATCH_SIZE", 1000, 1),
        stats_retention=stats_retention(environ),
        monitoring=_monitoring(environ),
        supervisor_url=environ.get("CELERIAC_SUPERVISOR_URL", "").strip(),
        queue_pause_check_s=env_int(environ, "CELERIAC_QUEUE_PAUSE_CHECK_S", 2, 1),
        control_reply_timeout_s=env_int(environ, "CELERIAC_CONTROL_REPLY_TIMEOUT_S", 3, 1),
        reliability=_reliability(environ),
        health=_health(environ),
        supervisor_process_name=environ.get("SUPERVISOR_PROCESS_NAME", ""),
        supervisor_group_name=environ.get("SUPERVISOR_GROUP_NAME") or environ.get("SUPERVISOR_PROCESS_NAME", ""),
        attach=attach_config(environ),
    )


def read_environment(env_file: Path | None = None) -> dict[str, str]:
    """Return `.env` values overlaid by the real environment (the environment wins)."""
    path = env_file if env_file is not None else ROOT_DIR / ".env"
    merged: dict[str, str] = {}
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ)
    return merged


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings(read_environment())
