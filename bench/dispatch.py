"""POST /api/jobs/dispatch at a steady rate from several clients, and POST /api/batches of
10,000 jobs, against gunicorn (bench/gunicorn_conf.py) on a free local port, with a recorder
running beside it as in production.

Each client has its own keep-alive connection and sends on a fixed schedule (rate / clients
requests a second each, staggered), so the server sees `rate` requests a second whatever
the answers' latency; a request is timed from its scheduled moment, so a server that falls
behind shows as latency (no coordinated omission).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.code_dispatch import percentile
from bench.env import ROOT, mode_env
from celeriac.keys import EVENTS_STREAM

QUEUE = "bench-dispatch"


@dataclass
class DispatchResult:
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    rate: float = 0.0
    achieved_rate: float = 0.0
    clients: int = 1
    max_ms: float = 0.0
    database: str = ""
    #: POST /api/batches of `batch_jobs` jobs: seconds until its 201.
    batch_jobs: int = 0
    batch_s: float | None = None
    batch_status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
        new = create_token(db.session, "bench", "operator", name="bench")
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


def _body(i: int) -> str:
    return json.dumps({"job_class": "demo.echo", "payload": {"value": i}, "options": {"queue": QUEUE}})


class _Client(threading.Thread):
    """Sends `count` dispatches, one every `interval` seconds from `first`."""

    def __init__(self, port: int, token: str, first: float, interval: float, count: int) -> None:
        super().__init__(daemon=True)
        self.port, self.first, self.interval, self.count = port, first, interval, count
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.timings: list[float] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(self.count):
                due = self.first + i * self.interval
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                try:
                    conn.request("POST", "/api/jobs/dispatch", body=_body(i), headers=self.headers)
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 201
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    ok = False
                self.timings.append((time.perf_counter() - due) * 1000)
                self.errors += 0 if ok else 1
        finally:
            conn.close()


def paced(port: int, token: str, rate: float, seconds: float, clients: int) -> tuple[list[float], int, float]:
    """(latencies in ms, errors, achieved requests/s) of `rate` requests/s for `seconds`."""
    per_client = max(1, int(rate * seconds / clients))
    interval = clients / rate
    start = time.perf_counter() + 0.2
    threads = [_Client(port, token, start + k * interval / clients, interval, per_client) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    timings = [t for thread in threads for t in thread.timings]
    return timings, sum(thread.errors for thread in threads), len(timings) / elapsed


def post_batch(port: int, token: str, jobs: int) -> tuple[float, int]:
    """Seconds until POST /api/batches of `jobs` jobs answered, and its status."""
    members = [{"job_class": "demo.echo", "payload": {"value": i}, "options": {"queue": QUEUE}} for i in range(jobs)]
    body = json.dumps({"name": "bench", "jobs": members})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        started = time.perf_counter()
        conn.request("POST", "/api/batches", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - started, response.status
    finally:
        conn.close()


def run_dispatch(
    rate: float,
    seconds: float,
    clients: int,
    redis_url: str,
    log_dir: Path,
    *,
    database: str = "",
    database_url: str | None = None,
    token: str | None = None,
    batch_jobs: int = 0,
) -> DispatchResult:
    """Start gunicorn (and a recorder) on `database_url` (default: the benchmark's), send
    `rate` dispatches a second for `seconds`, then one batch of `batch_jobs` jobs."""
    import redis

    env = mode_env(tracking=True)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    token = token or _operator_token()
    port = _free_port()
    argv = procs.python(
        "-m", "gunicorn", "-c", str(ROOT / "bench" / "gunicorn_conf.py"), "-b", f"127.0.0.1:{port}",
        "ops_ui:create_app()",
    )  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    # Events of earlier runs (other databases' jobs) are not this run's recorder's to write.
    client.delete(EVENTS_STREAM)
    with (
        procs.running(f"recorder-api-{database}", procs.python("-m", "bench.recorder"), env, log_dir),
        procs.running(f"gunicorn-{database}", argv, env, log_dir) as web,
    ):
        procs.wait_until(lambda: _healthy(port), 60, "gunicorn /healthz", 0.1, web)
        paced(port, token, rate, 2.0, clients)  # warm-up: every worker thread's first requests load lazily
        timings, errors, achieved = paced(port, token, rate, seconds, clients)
        batch_s, batch_status = post_batch(port, token, batch_jobs) if batch_jobs else (None, None)
    client.delete(QUEUE, *[f"{QUEUE}:{p}" for p in range(1, 10)])
    return DispatchResult(
        requests=len(timings),
        p50_ms=round(percentile(timings, 0.50), 2),
        p99_ms=round(percentile(timings, 0.99), 2),
        mean_ms=round(sum(timings) / len(timings), 2) if timings else 0.0,
        errors=errors,
        rate=rate,
        achieved_rate=round(achieved, 1),
        clients=clients,
        max_ms=round(max(timings), 2) if timings else 0.0,
        database=database,
        batch_jobs=batch_jobs,
        batch_s=round(batch_s, 3) if batch_s is not None else None,
        batch_status=batch_status,
    )
