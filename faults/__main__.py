"""`python -m faults` (`make faults`): run the fault scenarios and print one table.

The top-level process never imports `app`: it starts one child process per database kind
(`--db`), each with its own private servers and settings, then prints and saves the table.
Exit code 0 whatever the figures; non-zero only when the harness itself failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from faults import report
from faults.run import Options
from faults.scenarios import SCENARIOS, run_scenario

logger = logging.getLogger("faults")

#: Exit code after Ctrl-C.
INTERRUPTED = 130
#: Scenario run on both databases by default (on SQLite it is emulated; see sql_outage).
BOTH_DATABASES = "sql-outage"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m faults",
        description="Start a private Celeriac stack, inject faults under load, and measure what was recorded.",
    )
    parser.add_argument("--db", choices=("postgresql", "sqlite"), help="only this database (default: PostgreSQL, "
                        "plus the SQL-outage scenario on SQLite)")  # fmt: skip
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these (repeat or comma-separate): {', '.join(SCENARIOS)}")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=3000, help="jobs dispatched per scenario (default 3000)")
    parser.add_argument("--seed", type=int, default=11, help="seed of the job mix and kill choices (default 11)")
    parser.add_argument("--deadline", type=float, default=300.0, metavar="S",
                        help="seconds after the load and the fault for rows to settle (default 300)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the stack, e.g. CELERIAC_REAP_AFTER_S=30")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, help="where logs, ledgers and results go (default: a new /tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the Redis and PostgreSQL data directories")
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.names = names or list(SCENARIOS)
    for item in args.env:
        if "=" not in item:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _stop_on_sigterm()
    if args.child_out is not None:
        return run_child(args)
    return run_parent(args)


def _stop_on_sigterm() -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


# -- the top-level process -------------------------------------------------------------------


def plan_runs(db: str | None, names: list[str]) -> list[tuple[str, list[str]]]:
    if db is not None:
        return [(db, names)]
    runs = [("postgresql", names)]
    if BOTH_DATABASES in names:
        runs.append(("sqlite", [BOTH_DATABASES]))
    return runs


def run_parent(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or Path(f"/tmp/celeriac-faults-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[faults] run directory: {run_dir}", flush=True)
    info = report.machine()
    outcomes: list[dict[str, Any]] = []
    versions: dict[str, str] = {}
    failed = False
    code = 0
    for db, names in plan_runs(args.db, args.names):
        out = run_dir / db / "outcomes.json"
        command = [sys.executable, "-m", "faults", "--db", db, "--only", ",".join(names), "--child-out", str(out),
                   "--jobs", str(args.jobs), "--seed", str(args.seed), "--deadline", str(args.deadline),
                   "--run-dir", str(run_dir / db)]  # fmt: skip
        command += [f"--env={item}" for item in args.env] + (["--keep"] if args.keep else [])
        print(f"[faults] {db}: {', '.join(names)}", flush=True)
        code = _run_child(command)
        data = json.loads(out.read_text()) if out.exists() else {}
        outcomes += data.get("outcomes", [])
        versions.update({k: v for k, v in data.get("versions", {}).items() if v})
        if code == INTERRUPTED:
            print("[faults] interrupted: the table below has the scenarios that finished", file=sys.stderr)
            break
        if code != 0 or not data or any(o.get("error") for o in data.get("outcomes", [])):
            failed = True
            print(f"[faults] the {db} run reported a harness failure (exit code {code})", file=sys.stderr)
    publish(run_dir, info, versions, outcomes)
    return INTERRUPTED if code == INTERRUPTED else 1 if failed else 0


def _run_child(command: list[str]) -> int:
    """Run one database kind; on Ctrl-C (which the child gets too) wait while it stops its stack."""
    child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Killing the child now would leave its stack running: let it finish stopping (bounded).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("[faults] interrupted: stopping the stack", file=sys.stderr, flush=True)
        child.wait()
        return INTERRUPTED


def publish(run_dir: Path, info: dict[str, Any], versions: dict[str, str], outcomes: list[dict[str, Any]]) -> None:
    rows = [report.cells(o) for o in outcomes]
    head = report.header(info, versions)
    notes = report.notes(outcomes)
    text = "\n".join([*head, "", report.render_text(rows), "", *notes])
    print("\n" + text, flush=True)
    markdown = "\n".join([*(f"{line}  " for line in head), "", report.render_markdown(rows), "", "```", *notes, "```"])
    (run_dir / "results.md").write_text(markdown + "\n")
    (run_dir / "results.txt").write_text(text + "\n")
    payload = {"machine": info, "versions": versions, "outcomes": outcomes}
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\n[faults] written: {run_dir / 'results.md'}, {run_dir / 'results.json'}", flush=True)


# -- one database kind, in a process of its own -----------------------------------------------


def run_child(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    _log_to(run_dir / "harness.log")
    from faults.stack import Stack

    extra = dict(item.split("=", 1) for item in args.env)
    stack = Stack(run_dir, args.db, extra)
    stack.export_to_harness()
    options = Options(jobs=args.jobs, seed=args.seed, deadline_s=args.deadline)
    outcomes: list[dict[str, Any]] = []
    versions = {"redis": stack.redis.version(), "postgresql": stack.pg.version() if stack.pg else ""}
    code = 0
    try:
        stack.start_servers()
        for name in args.names:
            logger.info("=== scenario %s on %s", name, args.db)
            outcome = run_scenario(stack, options, name)
            outcomes.append(outcome.as_dict())
            _save(args.child_out, versions, outcomes)
            logger.info("=== %s done in %.0f s", name, outcome.seconds)
    except KeyboardInterrupt:
        logger.warning("interrupted: stopping the stack")
        code = INTERRUPTED
    except Exception:
        logger.exception("harness failure")
        code = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # cleanup is bounded; a second Ctrl-C must not cut it short
        stack.close(keep=args.keep)
        _save(args.child_out, versions, outcomes)
    return code


def _save(path: Path, versions: dict[str, str], outcomes: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"versions": versions, "outcomes": outcomes}, indent=2, default=str))


def _log_to(path: Path) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[faults %(asctime)s] %(message)s", "%H:%M:%S"))
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.addHandler(file_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Celeriac's own logs in this process (dispatch retries, broker errors during outages) go to
    # a file: they are evidence, not progress, and would bury the table.
    app_handler = logging.FileHandler(path.with_name("dispatcher.log"))
    app_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(app_handler)
    logging.getLogger().setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
