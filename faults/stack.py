"""The stack under test: private Redis and SQL, then web, worker, beat and recorder run
with the Procfile's own commands, each supervised (faults.procs).

Each scenario gets a fresh stack: processes stopped, Redis emptied, the database dropped and
migrated again, new API tokens, a new ledger file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from faults.ledger import LEDGER_ENV
from faults.procs import Proc, Supervisor, wait_until
from faults.servers import PostgresCluster, RedisServer, SqliteLock, free_port

logger = logging.getLogger("faults")

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
#: The processes the suite runs, in start order (Flower is not part of what it measures).
APP_PROCESSES = ("recorder", "worker", "beat", "web")
#: Stop order: no new work first, the recorder last so it can write what it has.
STOP_ORDER = ["web", "beat", "worker", "recorder", "redis"]
#: Tenant of every dispatch and token of the suite.
TENANT = "faults"
#: Settings of every process of the stack (and of the dispatching harness), before --env:
#: delays over 2 s wait in Celeriac's scheduled set, so the delayed probes (3-20 s, faults.load)
#: are held there across the fault; a concurrency slot of a killed worker is freed after 5 s
#: (its lease), which needs heartbeats more often than that.
STACK_DEFAULTS = {
    "CELERIAC_SCHEDULED_AFTER_S": "2",
    "CELERIAC_REAP_AFTER_S": "5",
    "CELERIAC_WORKER_HEARTBEAT_S": "1",
}
#: Seconds the web and the worker get to come up.
READY_TIMEOUT_S = 90.0


def procfile_commands(path: Path = PROCFILE) -> dict[str, list[str]]:
    """`name: command` lines of the Procfile, split as a shell would (no shell is used)."""
    commands: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        name, command = line.split(":", 1)
        commands[name.strip()] = shlex.split(command)
    return commands


def _resolve(argv: list[str], bin_dir: Path) -> list[str]:
    """Run the virtualenv's programs: `python` is this interpreter, others come from its bin/."""
    head = argv[0]
    if head == "python":
        return [sys.executable, *argv[1:]]
    candidate = bin_dir / head
    return [str(candidate) if candidate.exists() else head, *argv[1:]]


class Stack:
    """Everything one harness process runs, for one database kind."""

    def __init__(self, run_dir: Path, db: str, extra_env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.db = db
        self.extra_env = extra_env
        self.redis = RedisServer(run_dir / "redis", free_port())
        self.pg = PostgresCluster(run_dir / "pg", free_port()) if db == "postgresql" else None
        self.sqlite_path = run_dir / "celeriac.db"
        self.port = free_port()
        self.supervisor = Supervisor()
        self.commands = procfile_commands()
        self.bin_dir = Path(sys.executable).parent
        self.env = self._environment()
        self.operator_token = ""
        self.admin_token = ""
        self.ledger_path = run_dir / "ledger.txt"
        self.scenario_dir = run_dir

    @property
    def database_url(self) -> str:
        if self.pg is not None:
            return self.pg.url()
        return f"sqlite:///{self.sqlite_path}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            REDIS_URL=self.redis.url,
            DATABASE_URL=self.database_url,
            SECRET_KEY=secrets.token_hex(32),
            CELERIAC_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            CELERIAC_TASK_MODULES="faults.jobs",
            PORT=str(self.port),
            FLASK_APP="ops_ui",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            PATH=os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", os.defpath)]),
            VIRTUAL_ENV=str(self.bin_dir.parent),
        )
        env.pop("CELERIAC_TRACKING", None)
        env.update(STACK_DEFAULTS)
        env.update(self.extra_env)
        return env

    def export_to_harness(self) -> None:
        """This process dispatches too: point its settings at the private servers (before any
        `app` import reads them, as tests/conftest.py does)."""
        for key in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "CELERIAC_ENCRYPTION_KEYS", "CELERIAC_TASK_MODULES"):
            os.environ[key] = self.env[key]
        os.environ.update(STACK_DEFAULTS)
        os.environ.pop("CELERIAC_TRACKING", None)
        os.environ.update(self.extra_env)

    # -- servers -----------------------------------------------------------------------
    def start_servers(self) -> None:
        self.run_dir.chmod(0o755)  # the postgres user must reach its data directory
        if self.pg is not None:
            self.pg.init()
            self.pg.start()
            self.pg.wait_ready()

    def start_redis(self) -> None:
        proc = self.supervisor.add(self.redis.proc(self.env, self.scenario_dir))
        proc.argv = self.redis.argv()
        self.supervisor.start("redis")
        self.redis.wait_ready()

    def restart_redis(self, keep_data: bool) -> float:
        """Start the held Redis again on its port; without data its directory is emptied first."""
        if not keep_data:
            self.redis.wipe()
        at = self.supervisor.restart("redis")
        self.redis.wait_ready()
        return at

    def reset_database(self) -> None:
        if self.pg is not None:
            if not self.pg.running():
                self.pg.start()
            self.pg.wait_ready()
            self.pg.reset_database()
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            from app.db import get_engine

            get_engine().dispose()

    def sqlite_lock(self) -> SqliteLock:
        return SqliteLock(self.sqlite_path)

    # -- the application -----------------------------------------------------------------
    def fresh(self, scenario_dir: Path, redis_persist: bool = True) -> None:
        """Stop everything, empty Redis and SQL, migrate, create tokens, start the processes."""
        self.teardown()
        self.scenario_dir = scenario_dir
        scenario_dir.mkdir(parents=True, exist_ok=True)
        self.ledger_path = scenario_dir / "ledger.txt"
        self.ledger_path.touch()
        self.env[LEDGER_ENV] = str(self.ledger_path)
        self.redis.persist = redis_persist
        self.redis.wipe()
        self.start_redis()
        self.reset_database()
        self._run_step(["flask", "db", "upgrade"], "migrate")
        self.operator_token = self._create_token("operator")
        self.admin_token = self._create_token("admin")
        for name in APP_PROCESSES:
            argv = _resolve(self.commands[name], self.bin_dir)
            if name == "web":
                argv.append("--no-control-socket")  # not the checkout's var/gunicorn.ctl
            self.supervisor.add(Proc(name, argv, self.env, ROOT, scenario_dir / f"{name}.log"))
            self.supervisor.start(name)
        self.wait_worker_ready()
        wait_until(self.web_healthy, READY_TIMEOUT_S, "the web process (/healthz)")
        self.supervisor.watch()

    def wait_worker_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        worker = self.supervisor.procs["worker"]
        wait_until(lambda: " ready." in worker.output_since_start(), timeout, "the worker to be ready")

    def web_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _run_step(self, argv: list[str], name: str) -> str:
        log = self.scenario_dir / f"{name}.log"
        command = _resolve(argv, self.bin_dir)
        result = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed ({result.returncode}); see {log}:\n{result.stderr[-2000:]}")
        return result.stdout

    def _create_token(self, role: str) -> str:
        out = self._run_step(["flask", "tokens", "create", "--tenant", TENANT, "--role", role], f"token-{role}")
        return out.strip().splitlines()[-1].strip()

    def worker_children(self) -> list[int]:
        import psutil

        worker = self.supervisor.procs["worker"]
        if worker.pid is None:
            return []
        try:
            return [child.pid for child in psutil.Process(worker.pid).children()]
        except psutil.Error:
            return []

    def api(self, method: str, path: str, body: Any = None, token: str | None = None, timeout: float = 10) -> Any:
        """One API call; returns the decoded JSON answer, raises urllib's HTTPError otherwise."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.web_url}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.operator_token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"null")

    def teardown(self) -> None:
        self.supervisor.stop_all(order=STOP_ORDER)
        self.supervisor = Supervisor()

    def close(self, keep: bool = False) -> None:
        """Stop every process and server; remove server data unless `keep`."""
        try:
            self.teardown()
        finally:
            if self.pg is not None:
                if keep:
                    self.pg.stop("fast")
                else:
                    self.pg.remove()
            if not keep:
                import shutil

                shutil.rmtree(self.redis.directory, ignore_errors=True)


def wait_seconds(seconds: float) -> None:
    """A planned pause of the scenario's timeline (not a wait for an effect)."""
    time.sleep(max(0.0, seconds))
