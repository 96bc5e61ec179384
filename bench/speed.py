"""Issue 15's figures in one run: dispatch from code against `apply_async`, the API under a
steady load, and 10,000-job bulks, on SQLite and PostgreSQL side by side (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
from typing import Any

from bench import env, procs
from bench.code_dispatch import create_databases, run_code_dispatch
from bench.dispatch import DispatchResult, run_dispatch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="databases of the side-by-side runs (default both)"
    )
    parser.add_argument("--code-dispatch", type=int, default=3000, help="dispatches per probe; 0 skips the run")
    parser.add_argument("--code-rounds", type=int, default=6, help="interleaved rounds of the code dispatch run")
    parser.add_argument("--bulk-n", type=int, default=10_000, help="jobs of each bulk (dispatch_many, batch, API)")
    parser.add_argument("--api-rate", type=float, default=200.0, help="POST /api/jobs/dispatch a second")
    parser.add_argument("--api-seconds", type=float, default=15.0, help="length of the API run; 0 skips it")
    parser.add_argument("--api-clients", type=int, default=8, help="clients sharing the API rate")


def _token(database_url: str, log_dir: Any) -> str:
    out = subprocess.run(
        procs.python("-c", "from bench.dispatch import _operator_token; print(_operator_token())"),
        cwd=env.ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def run_speed(
    args: argparse.Namespace, backends: env.Backends, stack: contextlib.ExitStack, log_dir: Any
) -> tuple[DispatchResult | None, dict[str, Any]]:
    """The runs the arguments ask for; (the API run on --database, every figure)."""
    kinds = tuple(kind for kind in args.databases.split(",") if kind)
    wants_api = args.api_seconds > 0 and getattr(args, "dispatch_requests", 1) > 0
    if not (args.code_dispatch > 0 or wants_api):
        return None, {}
    databases = create_databases(kinds, backends.tmp, stack, log_dir)
    figures: dict[str, Any] = {}
    if args.code_dispatch > 0:
        print(
            f"dispatch from code: apply_async vs Job.dispatch on {', '.join(d.kind for d in databases)}, "
            f"{args.code_dispatch} each in {args.code_rounds} interleaved rounds; bulks of {args.bulk_n:,}",
            flush=True,
        )
        figures.update(
            run_code_dispatch(
                args.code_dispatch, args.code_rounds, args.bulk_n, backends.redis_url, databases, backends.tmp, log_dir
            )
        )
    main_result = None
    if wants_api:
        figures["api"] = {}
        for database in databases:
            print(
                f"POST /api/jobs/dispatch at {args.api_rate:.0f}/s from {args.api_clients} clients for "
                f"{args.api_seconds:.0f} s, then POST /api/batches of {args.bulk_n:,} ({database.kind})",
                flush=True,
            )
            result = run_dispatch(
                args.api_rate,
                args.api_seconds,
                args.api_clients,
                backends.redis_url,
                log_dir,
                database=database.kind,
                database_url=database.url,
                token=_token(database.url, log_dir),
                batch_jobs=args.bulk_n,
            )
            figures["api"][database.kind] = result.as_dict()
            if database.kind == args.database:
                main_result = result
    return main_result, figures
