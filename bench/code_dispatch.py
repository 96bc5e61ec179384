"""Dispatch from code against Celery's own `apply_async` (issue 15), side by side in one run.

Three long-lived probes (bench.dispatch_probe) on the same Redis: a plain Celery app
(`apply_async`, nothing of Celeriac loaded), Celeriac on SQLite and Celeriac on PostgreSQL
(`Job.dispatch`, each row committed durably before its message is published). Rounds of each
are interleaved, so that whatever else the machine does weighs on all three alike; the
percentiles are over every round. Beside them, the machine's fsync floor (the least a durable
commit can cost), and the 10,000-job bulks (`dispatch_many`, `batch`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.env import POSTGRES_ADMIN_URL, ROOT

KINDS = ("sqlite", "postgresql")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
        "mean_ms": round(sum(values) / len(values), 3) if values else 0.0,
    }


class Probe:
    """One `bench.dispatch_probe` subprocess, asked one command at a time."""

    def __init__(self, name: str, mode: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self._log = open(log_dir / f"probe-{name.replace('/', '-')}.log", "ab")
        self.proc = subprocess.Popen(
            procs.python("-m", "bench.dispatch_probe", mode),
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        line = self._line()
        if line != "ready":
            raise RuntimeError(f"probe {name} did not start: {line!r} (see {self._log.name})")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@dataclass
class Database:
    kind: str
    url: str
    directory: Path | None


def create_databases(kinds: tuple[str, ...], tmp: Path, stack: contextlib.ExitStack, log_dir: Path) -> list[Database]:
    """A database of each kind for the probes (migrated; dropped when the run ends)."""
    made = []
    for kind in kinds:
        if kind == "sqlite":
            directory = tmp / "dispatch-sqlite"
            directory.mkdir(exist_ok=True)
            url = f"sqlite:///{directory / 'bench.db'}"
            made.append(Database(kind, url, directory))
        else:
            created = _create_postgres(stack)
            if created is None:
                print("  PostgreSQL unreachable: its figures are left out", flush=True)
                continue
            made.append(Database(kind, created, None))
        _migrate(made[-1].url, log_dir)
    return made


def _create_postgres(stack: contextlib.ExitStack) -> str | None:
    import psycopg

    name = f"celeriac_bench_dispatch_{os.getpid()}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _migrate(url: str, log_dir: Path) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    procs.run_to_end("migrate", procs.python("-c", "from bench.env import _migrate; _migrate()"), env, log_dir, 120)


def fsync_floor(directory: Path, count: int = 500) -> dict[str, float]:
    """What a 512-byte write plus fsync costs in `directory` (a durable commit's least)."""
    path = directory / "fsync-probe.bin"
    timings = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.pwrite(fd, b"x" * 512, 0)
            os.fsync(fd)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"p50_ms": round(percentile(timings, 0.5), 3), "p99_ms": round(percentile(timings, 0.99), 3)}


def pg_fsync(tmp: Path) -> dict[str, Any]:
    """PostgreSQL's own view: `pg_test_fsync` (fdatasync, one 8 kB write) and its settings."""
    found: dict[str, Any] = {}
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_test_fsync"))
    binary = shutil.which("pg_test_fsync") or (installed[-1] if installed else None)
    if binary:
        out = subprocess.run([binary, "-s", "1", "-f", str(tmp / "pg-test-fsync")], capture_output=True, text=True)
        match = re.search(r"^\s+fdatasync\s+[\d.]+ ops/sec\s+(\d+) usecs/op", out.stdout, re.MULTILINE)
        if match:
            found["pg_test_fsync_fdatasync_ms"] = int(match.group(1)) / 1000
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3) as conn:
            for setting in ("fsync", "synchronous_commit", "wal_sync_method"):
                found[setting] = conn.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
    return found


def run_code_dispatch(
    n: int, rounds: int, bulk_n: int, redis_url: str, databases: list[Database], tmp: Path, log_dir: Path
) -> dict[str, Any]:
    """`n` dispatches per probe in `rounds` interleaved rounds, then the bulks."""
    base = {**os.environ, "REDIS_URL": redis_url, "CELERIAC_TRACKING": "true"}
    probes = [Probe("apply_async", "plain", base, log_dir)]
    try:
        for database in databases:
            env = {**base, "DATABASE_URL": database.url}
            probes.append(Probe(f"Job.dispatch/{database.kind}", "celeriac", env, log_dir))
        timings: dict[str, list[float]] = {probe.name: [] for probe in probes}
        per_round = max(1, n // rounds)
        for _ in range(rounds):
            for probe in probes:
                timings[probe.name].extend(probe.ask(f"dispatch {per_round}"))
                probe.ask("clear")
        result: dict[str, Any] = {"dispatch": {name: summary(values) for name, values in timings.items()}}
        result["fsync"] = {d.kind: fsync_floor(d.directory) for d in databases if d.directory is not None}
        result["fsync"]["postgresql"] = pg_fsync(tmp)
        if bulk_n > 0:
            result["bulk"] = {}
            for probe in probes[1:]:
                result["bulk"][probe.name.split("/")[1]] = probe.ask(f"bulk {bulk_n}")
                probe.ask("clear")
        return result
    finally:
        for probe in probes:
            probe.stop()
