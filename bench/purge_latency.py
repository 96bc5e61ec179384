"""A retention run deleting a million rows beside a steady dispatcher (issue 15).

Seeds `rows` executions past their retention (and 100,000 recent ones that stay), then runs
`purge_history` in this process while a `bench.dispatch_probe` process dispatches
(`Job.dispatch`: the row committed, then the message published) one job after another. Prints
the worst and p99 dispatch latency during the purge beside the same probe's figures just
before it. Target: no dispatch blocked for more than 100 ms.

Standalone: `python -m bench.purge_latency [--rows 1000000] [--database sqlite|postgresql]
[--json-out FILE]`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.code_dispatch import Probe, summary
from bench.seed_history import analyse, clear, seed_executions

TARGET_MS = 100.0
#: Dispatches asked of the probe at a time; the purge is watched between two asks.
ROUND = 200


def _dispatch_while(probe: Probe, running: threading.Event, latencies: list[float]) -> None:
    while running.is_set():
        latencies.extend(probe.ask(f"dispatch {ROUND}"))


def run_purge_bench(rows: int, log_dir: Path | None = None) -> dict[str, Any]:
    from app.config import get_settings
    from app.db import session_scope
    from app.services.retention import purge_history

    settings = get_settings()
    kind = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    now = datetime.now(UTC)
    clear()
    old = now - timedelta(days=settings.failed_retention_days + 1)
    print(f"  seeding {rows:,} executions past retention and 100,000 recent ones ({kind})", flush=True)
    seed_executions(rows, old, span_s=20 * 86400, salt="old")
    seed_executions(100_000, now, span_s=86400, salt="new")
    analyse()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="celeriac-purge-bench-"))
    probe = Probe(f"purge-{kind}", "celeriac", os.environ.copy(), log_dir)
    try:
        before: list[float] = []
        while len(before) < 3000:
            before.extend(probe.ask(f"dispatch {ROUND}"))
        probe.ask("clear")
        during: list[float] = []
        running = threading.Event()
        running.set()
        dispatcher = threading.Thread(target=_dispatch_while, args=(probe, running, during), daemon=True)
        dispatcher.start()
        started = time.perf_counter()
        with session_scope() as session:
            report = purge_history(session, settings, now)
        purge_s = time.perf_counter() - started
        running.clear()
        dispatcher.join(timeout=60)
        probe.ask("clear")
    finally:
        probe.stop()
    result: dict[str, Any] = {
        "database": kind,
        "rows": rows,
        "purged": report.executions,
        "purge_s": round(purge_s, 2),
        "batch_size": settings.retention_batch_size,
        "before": {**summary(before), "max_ms": round(max(before), 3)},
        "during": {**summary(during), "max_ms": round(max(during, default=0.0), 3)},
        "target_ms": TARGET_MS,
    }
    worst = result["during"]["max_ms"]
    print(
        f"  purge of {report.executions:,} rows on {kind} in {purge_s:.1f} s (batches of up to "
        f"{result['batch_size']}, paced): "
        f"{len(during):,} dispatches beside it, p50 {result['during']['p50_ms']:.2f} ms, "
        f"p99 {result['during']['p99_ms']:.2f} ms, worst {worst:.1f} ms "
        f"(before: p99 {result['before']['p99_ms']:.2f} ms, worst {result['before']['max_ms']:.1f} ms) "
        f"{'ok' if worst <= TARGET_MS else 'MISSED'}",
        flush=True,
    )
    return result


def main() -> int:
    from bench.scale import standalone

    return standalone("bench.purge_latency", run_purge_bench)


if __name__ == "__main__":
    raise SystemExit(main())
