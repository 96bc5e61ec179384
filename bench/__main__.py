"""`python -m bench` (`make bench`): drain N no-op jobs without and with tracking.

Usage: python -m bench [--n 20000] [--repeat 5] [--database sqlite|postgresql]
       [--concurrency 2] [--batch-n 10000] [--no-ratelimit]
       [--databases sqlite,postgresql] [--code-dispatch 3000] [--code-rounds 6] [--bulk-n 10000]
       [--api-rate 200] [--api-seconds 15] [--api-clients 8]
       [--monitoring-rows 1000000] [--monitoring-rows-pg 10000000] [--purge-rows 1000000]
       [--reconcile-rows 1000000] [--stats-series 300] [--keep-logs]
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType
from typing import Any

from bench import env, scale, speed


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Celeriac tracking overhead benchmark")
    parser.add_argument("--n", type=int, default=20_000, help="no-op jobs per drain (default 20000); 0 skips")
    parser.add_argument("--repeat", type=int, default=5, help="runs per mode; the median is reported (default 5)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c (default 2)")
    parser.add_argument("--dispatch-requests", type=int, default=1, help="0 skips the API dispatch run")
    parser.add_argument("--batch-n", type=int, default=10_000, help="jobs of the batch-vs-single run; 0 skips it")
    parser.add_argument("--no-ratelimit", action="store_true", help="skip the rate-limited throughput run")
    parser.add_argument(
        "--reconcile-rows", type=int, default=1_000_000, help="live jobs seeded for the reconciler run; 0 skips it"
    )
    parser.add_argument(
        "--stats-series", type=int, default=300, help="minute rows a minute in the /metrics-after-a-year run; 0 skips"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the subprocess logs (path printed)")
    speed.add_arguments(parser)
    scale.add_arguments(parser)
    return parser.parse_args()


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every cleanup, like a Ctrl-C


def main() -> int:
    args = _parse()
    signal.signal(signal.SIGTERM, _sigterm)
    with contextlib.ExitStack() as stack:
        backends = env.prepare(args.database, stack)
        # Imported only now: app modules read the environment prepare() exported.
        from bench.drain import run_drain
        from bench.report import render, summarise, write_json

        log_dir = backends.tmp / "logs"
        log_dir.mkdir()
        if args.keep_logs:
            log_dir = env.ROOT / "var" / "bench" / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
        print(f"Redis {backends.redis_url}, database {args.database}; logs in {log_dir}", flush=True)
        plain, tracked = [], []
        for run in range(1, args.repeat + 1 if args.n > 0 else 1):
            print(f"run {run}/{args.repeat}", flush=True)
            plain.append(run_drain("plain", False, args.n, args.concurrency, backends.redis_url, log_dir))
            print(f"  plain:   {plain[-1].jobs_per_s:.0f} jobs/s", flush=True)
            tracked.append(run_drain("tracked", True, args.n, args.concurrency, backends.redis_url, log_dir))
            print(f"  tracked: {tracked[-1].jobs_per_s:.0f} jobs/s", flush=True)
        extras: dict[str, Any] = {}
        dispatch, extras["speed"] = speed.run_speed(args, backends, stack, log_dir)
        if args.batch_n > 0:
            from bench.batches import run_batch_vs_single

            print(f"{args.batch_n} jobs as one batch, then one by one", flush=True)
            extras["batch"] = [
                r.as_dict() for r in run_batch_vs_single(args.batch_n, args.concurrency, backends.redis_url, log_dir)
            ]
        if not args.no_ratelimit:
            from bench.env import flush_redis_db
            from bench.ratelimit import run_ratelimit_bench

            print("rate-limited throughput", flush=True)
            flush_redis_db(backends.redis_url)
            extras["ratelimit"] = run_ratelimit_bench(backends.redis_url, log_dir)
        extras["scale"] = scale.run_scale(args)
        if args.reconcile_rows > 0:
            from bench.reconcile import run_reconcile_bench

            print(f"reconciler at {args.reconcile_rows:,} live jobs", flush=True)
            extras["reconcile"] = run_reconcile_bench(args.reconcile_rows, 20_000)
        if args.stats_series > 0:
            from bench.stats_year import run_stats_year_bench

            print(f"/metrics on day 1 and after a year of job stats ({args.stats_series} series)", flush=True)
            extras["stats_year"] = run_stats_year_bench(args.stats_series)
        summary = summarise(args.n, args.database, args.concurrency, plain, tracked, dispatch)
        summary.update(extras)
        print()
        print(render(summary))
        print(f"\n(written to {write_json(summary)})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; subprocesses stopped and backends cleaned up", file=sys.stderr)
        sys.exit(130)
