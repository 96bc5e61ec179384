"""U5: Flower beside the console, started as the Procfile starts it, is never open."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.fixture()
def flower() -> Iterator[tuple[str, str]]:
    port, credentials = _free_port(), "admin:s3cret-flower-pass"
    env = {**os.environ, "FLOWER_BASIC_AUTH": credentials, "FLOWER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "app.celery_app", "flower", "--address=127.0.0.1", f"--port={port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: _status(url) != 0 or process.poll() is not None, timeout=60, what="flower listening")
        assert process.poll() is None, "flower exited"
        yield url, credentials
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_flower_refuses_requests_without_the_password(flower: tuple[str, str]) -> None:
    url, credentials = flower
    assert _status(url) == 401
    assert _status(url, "admin:wrong") == 401
    assert _status(url + "api/workers") == 401
    assert _status(url, credentials) == 200
