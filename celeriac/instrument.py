"""Full tracking for a project's own Celery app, in one line:

    import celeriac
    celeriac.instrument(celery_app)

Call it where the app is built and configured (the module `celery -A` names), so that the
worker, beat and every process that publishes tasks (the web app) load it. It connects
what Celeriac's own workers run (`celeriac.signals`: publish, start, outcome and progress
events, cancel marks, concurrency slots), gives the app's plain tasks the check that keeps
a cancelled job from running (`celeriac.skip_aware`), and starts the worker heartbeats the
console and the reconciler read (`celeriac.heartbeat`). It changes nothing in the app's
configuration: serializers, queues and acknowledgement stay the project's.

Celeriac's own app (`app.celery_app`) takes the same path, `connect`, with its settings.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery

from celeriac import heartbeat, signals, skip_aware

logger = logging.getLogger(__name__)

#: URL schemes of a Redis server (redis-py's `from_url`).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Seconds between a worker's heartbeats when CELERIAC_WORKER_HEARTBEAT_S is not set.
DEFAULT_HEARTBEAT_S = 5.0
#: Longest result kept, in characters, when CELERIAC_MAX_RESULT_CHARS is not set.
DEFAULT_MAX_RESULT_CHARS = 10_000


def is_redis_url(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(REDIS_SCHEMES)


def _broker_url(app: Celery) -> str | None:
    url = app.conf.broker_url
    if isinstance(url, (list, tuple)):
        url = url[0] if url else None
    if isinstance(url, str):
        url = url.split(";")[0].strip()  # "redis://a;redis://b": failover, the first is primary
    return url if isinstance(url, str) and url else None


def checked(source: str, url: str) -> str:
    """`url`, if it names a Redis server.

    Raises:
        ValueError: it does not; the message names `source`.
    """
    if not is_redis_url(url):
        raise ValueError(f"celeriac.instrument: {source} must be a redis://, rediss:// or unix:// URL, got {url!r}")
    return url


def stream_url(app: Celery, explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The Redis of Celeriac's event stream: `redis_url=`, else CELERIAC_REDIS_URL, else the
    app's broker when it is Redis, else REDIS_URL.

    Raises:
        ValueError: the chosen URL is not a Redis URL, or there is none.
    """
    environ = os.environ if environ is None else environ
    broker = _broker_url(app)
    candidates = (
        ("redis_url=", explicit),
        ("CELERIAC_REDIS_URL", environ.get("CELERIAC_REDIS_URL")),
        ("the app's broker_url", broker if is_redis_url(broker) else None),
        ("REDIS_URL", environ.get("REDIS_URL")),
    )
    for source, url in candidates:
        if url:
            return checked(source, url)
    raise ValueError(
        f"celeriac.instrument: no Redis for Celeriac's event stream (the broker is {broker!r});"
        " pass redis_url= or set CELERIAC_REDIS_URL"
    )


class StreamRedis:
    """The event stream's Redis client, built on first use: the app may be configured after
    `instrument` is called (Django's `config_from_object`), so its broker is read then."""

    def __init__(self, app: Celery, explicit: str | None) -> None:
        self.app = app
        self.explicit = explicit
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def url(self) -> str:
        return stream_url(self.app, self.explicit)

    def __call__(self) -> redis.Redis:
        # redis-py rebuilds its connections in a forked child by itself.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    url = self.url()
                    if _same_redis(url) != _same_redis(_broker_url(self.app)):
                        logger.warning(
                            "Celeriac records to %s, not to this app's broker: Celeriac's reconciler"
                            " must read the same Redis as your workers (docs/adopting.md)",
                            _redacted(url),
                        )
                    self._client = redis.Redis.from_url(url)
        return self._client


def _same_redis(url: str | None) -> str | None:
    """`url` without what does not change the server and database it names."""
    if url is None:
        return None
    url = url.rstrip("/")
    return url[: -len("/0")] if url.endswith("/0") else url


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def _number(name: str, given: float | None, environ: Mapping[str, str], default: float, least: float) -> float:
    raw: Any = given if given is not None else environ.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"celeriac.instrument: {name} must be a number, got {raw!r}") from None
    if not value >= least:
        raise ValueError(f"celeriac.instrument: {name} must be at least {least:g}, got {raw!r}")
    return value


def instrument(
    app: Celery,
    *,
    redis_url: str | None = None,
    max_result_chars: int | None = None,
    heartbeat_s: float | None = None,
) -> None:
    """Record every task of `app` in Celeriac: payloads, attempts, memory, results, tenants.

    `redis_url`: Celeriac's Redis (see `stream_url` for the default). `max_result_chars`
    (CELERIAC_MAX_RESULT_CHARS, 10000): longest result kept. `heartbeat_s`
    (CELERIAC_WORKER_HEARTBEAT_S, 5; 0: none): seconds between worker heartbeats.

    Raises:
        ValueError: a bad `redis_url`, CELERIAC_REDIS_URL or number (checked now, not at the
        first task; the broker is read at the first task or publish).
    """
    environ = os.environ
    if redis_url is not None:
        checked("redis_url=", redis_url)
    if environ.get("CELERIAC_REDIS_URL"):
        checked("CELERIAC_REDIS_URL", environ["CELERIAC_REDIS_URL"])
    config = signals.RecordingConfig(
        redis=StreamRedis(app, redis_url),
        max_result_chars=int(
            _number("CELERIAC_MAX_RESULT_CHARS", max_result_chars, environ, DEFAULT_MAX_RESULT_CHARS, 100)
        ),
    )
    beat_s = _number("CELERIAC_WORKER_HEARTBEAT_S", heartbeat_s, environ, DEFAULT_HEARTBEAT_S, 0)
    connect(app, config, heartbeat_s=beat_s)


def connect(app: Celery, config: signals.RecordingConfig, *, record: bool = True, heartbeat_s: float = 0) -> None:
    """The one path every process with Celeriac's tracking takes: configure the handlers and,
    unless `record` is off (the benchmark's baseline), connect them; beat every
    `heartbeat_s` seconds in a worker (0: the caller has heartbeats of its own, or none)."""
    signals.configure(config)
    if record:
        signals.connect()
        skip_aware.patch_app(app)
    if heartbeat_s > 0:
        heartbeat.connect(config.redis, heartbeat_s)
