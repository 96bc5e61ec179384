"""Latency of POST /api/jobs/dispatch, measured against gunicorn on a free local port.

Requests are sequential on one keep-alive connection, so each figure is one request's
full round trip (auth, a SQL insert and commit, a publish to Redis) without queueing.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from bench import procs
from bench.env import ROOT, mode_env

QUEUE = "bench-dispatch"


@dataclass
class DispatchResult:
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _operator_token() -> str:
    from app.db import db
    from app.services.auth import create_token
    from ops_ui import create_app

    app = create_app({"TESTING": True})
    with app.app_context():
        new = create_token(db.session(), "bench", "operator", name="bench")
        db.session.commit()
        return new.raw


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _post_many(port: int, token: str, count: int) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    timings: list[float] = []
    errors = 0
    try:
        for i in range(count):
            body = json.dumps({"job_class": "demo.echo", "payload": {"value": i}, "options": {"queue": QUEUE}})
            started = time.perf_counter()
            conn.request("POST", "/api/jobs/dispatch", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            timings.append((time.perf_counter() - started) * 1000)
            if response.status != 201:
                errors += 1
                if errors == 1:
                    print(f"  dispatch answered {response.status}", flush=True)
    finally:
        conn.close()
    return timings, errors


def run_dispatch(count: int, redis_url: str, log_dir: Path) -> DispatchResult:
    """Start gunicorn (and a recorder, as in production), POST `count` dispatches."""
    token = _operator_token()
    env = mode_env(tracking=True)
    port = _free_port()
    argv = procs.python(
        "-m", "gunicorn", "-c", str(ROOT / "bench" / "gunicorn_conf.py"), "-b", f"127.0.0.1:{port}",
        "-w", "2", "ops_ui:create_app()",
    )  # fmt: skip
    with (
        procs.running("recorder-dispatch", procs.python("-m", "bench.recorder"), env, log_dir),
        procs.running("gunicorn", argv, env, log_dir) as web,
    ):
        procs.wait_until(lambda: _healthy(port), 60, "gunicorn /healthz", 0.1, web)
        _post_many(port, token, 20)  # warm-up: both workers' first requests load lazily
        timings, errors = _post_many(port, token, count)
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE, *[f"{QUEUE}:{p}" for p in range(1, 10)])
    return DispatchResult(
        requests=count,
        p50_ms=round(percentile(timings, 0.50), 2),
        p99_ms=round(percentile(timings, 0.99), 2),
        mean_ms=round(sum(timings) / len(timings), 2) if timings else 0.0,
        errors=errors,
    )
