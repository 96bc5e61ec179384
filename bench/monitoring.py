"""History at scale (issues 5 and 15): p50 / p95 of every monitoring endpoint and console page
at 10,000 executions and at ten million (PostgreSQL) or one million (SQLite).

Seeds executions (10 % failed), their per-minute aggregates and failure groups
(bench.seed_history), then times every monitoring endpoint, every console page, a job's
page and the first and a deep page of the jobs list (API and console) through the Flask app
in this process (no network, so the figures are the server's own work). Target: p95 under
150 ms, and under 1.5x the 10,000-row figure (differences under NOISE_MS aside).

Standalone: `python -m bench.monitoring [--rows 10000000] [--database sqlite|postgresql]
[--json-out FILE]`; `make bench` runs it once per database, each in its own process.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from sqlalchemy import func, select

from bench.seed_history import TENANT, seed

#: Timed requests per endpoint: enough that one scheduling hiccup on a shared box is not the p95.
REQUESTS = 100
#: p95 target (issue 15): under this, and under 1.5x the 10,000-row figure.
TARGET_MS = 150.0
#: A page of 2 ms measured at 3 ms is scheduling noise on a shared box, not growth: the 1.5x
#: rule is applied only to differences larger than this (the table prints every ratio).
NOISE_MS = 5.0
ENDPOINTS = (
    "/api/jobs/queue/default/stats",
    "/api/admin/queue/stats",
    "/api/admin/queue/health",
    "/api/admin/queue/metrics",
    "/metrics",
    "/api/monitoring/performance",
    "/api/monitoring/failures",
    "/api/monitoring/stuck",
    "/api/monitoring/slow",
    "/api/admin/queue/workers",
    "/api/jobs?limit=50",
)
#: Every console page a tenant admin opens (the job page and the deep list page are added).
CONSOLE_PAGES = (
    "/",
    "/jobs",
    "/jobs?status=failed",
    "/jobs?queue=emails",
    "/failed",
    "/retries",
    "/scheduled",
    "/queues",
    "/queues/default",
    "/queues/limits",
    "/performance",
    "/workers",
    "/definitions",
    "/schedules",
    "/batches",
    "/chains",
    "/audit",
)


def _deep_row(session: Any) -> Any:
    """The execution halfway down the tenant's jobs list."""
    from app.models import JobExecution

    total = session.scalar(select(func.count()).select_from(JobExecution))
    return session.scalars(
        select(JobExecution)
        .where(JobExecution.tenant_id == TENANT)
        .order_by(JobExecution.created_at.desc(), JobExecution.id.desc())
        .offset(int(total or 0) // 2)
        .limit(1)
    ).first()


def _time(client: Any, path: str, headers: dict[str, str] | None = None) -> tuple[float, float]:
    client.get(path, headers=headers)  # warm: caches and query plans
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _console_client(app: Any, email: str, password: str) -> Any:
    """A test client logged in to the console (the login form, with its CSRF token)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page) or re.search(
        r'name="csrf-token" content="([^"]+)"', page
    )
    if match is None:
        raise RuntimeError("no CSRF token on the login page")
    answer = client.post("/login", data={"email": email, "password": password, "csrf_token": match.group(1)})
    if answer.status_code != 302:
        raise RuntimeError(f"console login failed: {answer.status_code}")
    return client


def measure(rows: int) -> dict[str, tuple[float, float]]:
    """Seed `rows` executions and time every endpoint and page; returns path -> (p50 ms, p95 ms)."""
    from app.db import db
    from app.services.auth import create_token, create_user
    from app.services.jobs import encode_cursor
    from ops_ui import create_app

    seed(rows)
    app = create_app({"TESTING": True})
    email, password = f"bench-{rows}@example.com", "correct horse battery"
    with app.app_context():  # only to set up: each timed request has its own context, as in production
        token = create_token(db.session, TENANT, "admin", name="bench")
        create_user(db.session, email, password, "admin", TENANT)
        db.session.commit()
        deep = _deep_row(db.session)
        cursor, job_id = (encode_cursor(deep), deep.id) if deep is not None else (None, None)
        db.session.remove()
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token.raw}"}
    figures = {path: _time(api, path, headers) for path in ENDPOINTS}
    if cursor:
        figures["/api/jobs?limit=50&cursor=<deep>"] = _time(api, f"/api/jobs?limit=50&cursor={cursor}", headers)
    console = _console_client(app, email, password)
    pages = list(CONSOLE_PAGES)
    if cursor:
        pages += [f"/jobs?cursor={cursor}", f"/jobs/{job_id}"]
    for page in pages:
        name = page.replace(str(cursor), "<deep>").replace(str(job_id), "<id>")
        figures[f"console {name}"] = _time(console, page)
    return figures


def run_monitoring_bench(rows: int) -> dict[str, Any]:
    """Measure at 10,000 rows and at `rows`; print the table with the ratio per endpoint."""
    from app.config import get_settings

    kind = get_settings().database_url.split(":", 1)[0].split("+", 1)[0]
    small = measure(10_000)
    large = measure(rows)
    print(f"history on {kind} (p50 / p95 ms) at 10,000 and {rows:,} executions:", flush=True)
    result: dict[str, Any] = {"rows": rows, "database": kind, "target_ms": TARGET_MS, "endpoints": {}}
    for path, (p50, p95) in large.items():
        base = small.get(path, (0.0, 0.0))[1]
        ratio = p95 / base if base else None
        grew = ratio is not None and ratio >= 1.5 and p95 - base > NOISE_MS
        verdict = "ok" if p95 < TARGET_MS and not grew else "MISSED"
        result["endpoints"][path] = {
            "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "p95_at_10k_ms": round(base, 1), "verdict": verdict
        }  # fmt: skip
        print(f"  {path:50s} {p50:7.1f} / {p95:7.1f}   (10k: {base:6.1f}; x{ratio or 0:.2f}) {verdict}", flush=True)
    missed = [path for path, figures in result["endpoints"].items() if figures["verdict"] != "ok"]
    result["missed"] = missed
    print(f"  {len(result['endpoints']) - len(missed)} of {len(result['endpoints'])} within target", flush=True)
    return result


def main() -> int:
    from bench.scale import standalone

    return standalone("bench.monitoring", run_monitoring_bench)


if __name__ == "__main__":
    raise SystemExit(main())
