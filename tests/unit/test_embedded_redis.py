"""app.embedded_redis: a real embedded Valkey server in a temporary directory."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from app.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    is_reachable,
    resolve_redis_url,
    start_embedded,
)

#: Seconds any wait in these tests may take before it counts as a failure.
DEADLINE_S = 15.0


def wait_until(condition: Callable[[], bool], timeout_s: float = DEADLINE_S) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(0.05)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound by us, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = start_embedded(tmp_path / "redis")
    try:
        yield embedded
    finally:
        embedded.stop()


def ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return bool(client.ping())
    finally:
        client.close()


def test_start_embedded_answers_ping_on_loopback(server: EmbeddedRedis) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert ping(server.url)
    assert is_reachable(server.url)


def test_start_embedded_is_configured_for_durability(server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        server_pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    # Its own session: a Ctrl-C in the terminal must not stop it before the workers.
    assert os.getsid(server_pid) != os.getsid(0)


def test_stop_makes_server_unreachable(server: EmbeddedRedis) -> None:
    server.stop()
    assert wait_until(lambda: not is_reachable(server.url, timeout_s=0.5))
    server.stop()  # idempotent


def test_is_reachable_is_false_for_a_closed_port(closed_port: int) -> None:
    assert not is_reachable(f"redis://127.0.0.1:{closed_port}/0", timeout_s=0.5)


def test_is_reachable_rejects_a_url_that_is_not_redis() -> None:
    with pytest.raises(ValueError):
        is_reachable("http://127.0.0.1:6379/0")


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with start_embedded(data_dir) as first:
        client = redis.Redis.from_url(first.url)
        try:
            client.set("celeriac:test:key", b"kept")
        finally:
            client.close()
    with start_embedded(data_dir) as second:
        client = redis.Redis.from_url(second.url)
        try:
            assert client.get("celeriac:test:key") == b"kept"
        finally:
            client.close()


def test_start_embedded_without_persist_writes_no_aof(tmp_path: Path) -> None:
    with start_embedded(tmp_path / "redis", persist=False) as embedded:
        assert ping(embedded.url)
    assert not (tmp_path / "redis" / "appendonlydir").exists()


def test_start_embedded_refuses_a_taken_port(server: EmbeddedRedis, tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError):
        start_embedded(tmp_path / "other", port=server.port)


def test_start_embedded_refuses_a_data_dir_in_use(server: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedRedisError, match="still uses"):
        start_embedded(server.data_dir)


def test_resolve_redis_url_keeps_a_reachable_url(server: EmbeddedRedis, tmp_path: Path) -> None:
    url, embedded = resolve_redis_url(server.url, tmp_path / "unused")
    assert (url, embedded) == (server.url, None)
    assert not (tmp_path / "unused").exists()


def test_resolve_redis_url_starts_embedded_when_unreachable(closed_port: int, tmp_path: Path) -> None:
    url, embedded = resolve_redis_url(f"redis://127.0.0.1:{closed_port}/0", tmp_path / "r")
    assert embedded is not None
    try:
        # The preferred port is taken (by the closed_port fixture), so another was chosen.
        assert embedded.port != closed_port
        assert url == embedded.url
        assert is_reachable(url)
    finally:
        embedded.stop()


def test_resolve_redis_url_takes_the_configured_loopback_port_when_free(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = int(sock.getsockname()[1])
    url, embedded = resolve_redis_url(f"redis://localhost:{free_port}/0", tmp_path / "r")
    assert embedded is not None
    try:
        assert url == f"redis://127.0.0.1:{free_port}/0"
    finally:
        embedded.stop()
