"""A body over the size limit gets its 413 every time (issue 11, item 7), through real gunicorn.

Before the fix the answer went out unread body and all: gunicorn closed the connection
with bytes still unread, the kernel reset it, and the client, still sending, saw a
broken pipe or a reset instead of the 413.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, wait_for

MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


@pytest.fixture()
def gunicorn() -> Iterator[int]:
    """The web process as production runs it (gunicorn.conf.py), on a free port."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--no-control-socket",
            "wsgi:app",
        ],
        cwd=ROOT,
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _healthy(port) or process.poll() is not None, timeout=60, what="gunicorn answering")
        assert process.poll() is None, "gunicorn exited"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _send(port: int, body: bytes, headers: dict[str, str], chunked: bool) -> tuple[int, str, Any]:
    """POST the whole body as a client does, then read the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if chunked:
            pieces = (body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024))
            connection.request("POST", "/api/jobs/dispatch", body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", "/api/jobs/dispatch", body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", json.loads(answer.read())
    finally:
        connection.close()


def test_every_oversized_body_reads_its_413(gunicorn: int, make_token: Callable[..., str]) -> None:
    token = {"Authorization": f"Bearer {make_token('operator')}"}
    outcomes = []
    for n in range(20):
        size = (2 + n % 7) * MIB  # 2 to 8 MiB, over the 1 MiB limit
        body = b'{"job_class": "demo.echo", "payload": {"pad": "' + b"x" * size + b'"}}'
        chunked = n % 2 == 1  # no Content-Length: refused only once the limit was read
        headers = {"Content-Type": "application/json", **(token if chunked or n % 4 else {})}
        try:
            status, content_type, problem = _send(gunicorn, body, headers, chunked)
            outcomes.append((status, content_type, problem.get("status")))
        except OSError as exc:  # a reset or a broken pipe: the bug this test is about
            outcomes.append((0, type(exc).__name__, None))
    assert outcomes == [(413, "application/problem+json", 413)] * 20
    assert _healthy(gunicorn)
