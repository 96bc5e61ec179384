"""History at scale, once per database, each run in a process of its own (issue 15 item 5):
every page and endpoint at ten million executions on PostgreSQL and a million on SQLite
(bench.monitoring), and a million-row purge beside a steady dispatcher (bench.purge_latency).

Own processes, because app settings (the database) are read once per process, and a fresh
database per run keeps one run's rows from weighing on the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs
from bench.env import ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--monitoring-rows", type=int, default=1_000_000, help="executions of the SQLite history run; 0 skips it"
    )
    parser.add_argument(
        "--monitoring-rows-pg", type=int, default=10_000_000, help="executions of the PostgreSQL history run; 0 skips"
    )
    parser.add_argument("--purge-rows", type=int, default=1_000_000, help="rows the purge run deletes; 0 skips it")


def _run(module: str, database: str, rows: int) -> dict[str, Any] | None:
    """`python -m module --database D --rows N`, its output shown live; its JSON figures."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    try:
        argv = procs.python("-m", module, "--database", database, "--rows", str(rows), "--json-out", str(path))
        # The parent's Redis and database stay its own: the child claims and creates its own.
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        completed = subprocess.run(argv, cwd=ROOT, env=env, check=False, timeout=4 * 3600)
        if completed.returncode != 0:
            print(f"  {module} on {database} failed (exit {completed.returncode})", flush=True)
            return None
        figures: dict[str, Any] = json.loads(path.read_text())
        return figures
    finally:
        path.unlink(missing_ok=True)


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [kind for kind in args.databases.split(",") if kind]
    figures: dict[str, Any] = {"history": {}, "purge": {}}
    for kind in kinds:
        rows = args.monitoring_rows_pg if kind == "postgresql" else args.monitoring_rows
        if rows > 0:
            print(f"every page and endpoint at 10,000 and {rows:,} executions ({kind})", flush=True)
            figures["history"][kind] = _run("bench.monitoring", kind, rows)
    for kind in kinds:
        if args.purge_rows > 0:
            print(f"a purge of {args.purge_rows:,} rows beside a steady dispatcher ({kind})", flush=True)
            figures["purge"][kind] = _run("bench.purge_latency", kind, args.purge_rows)
    return figures


def standalone(prog: str, run: Callable[[int], dict[str, Any]]) -> int:
    """`python -m prog [--rows N] [--database D] [--json-out FILE]`: `run(rows)` on backends of its own."""
    from bench import env

    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json-out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        env.prepare(args.database, stack)
        result = run(args.rows)
        if args.json_out:
            args.json_out.write_text(json.dumps(result))
    return 0
