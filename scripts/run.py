"""`make run`: Celeriac on this machine (web, worker, beat, recorder, Flower) from the Procfile.

Creates var/ and a private .env on first run, uses REDIS_URL when it answers and an
embedded server otherwise, migrates the database, creates the first admin, then runs the
Procfile (scripts/procfile_runner.py: honcho's runner, restarting a process that exits)
until Ctrl-C or SIGTERM and stops everything in order.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/run.py`: make `app` importable
    sys.path.insert(0, str(ROOT))

VENV_BIN = ROOT / ".venv" / "bin"
VAR_DIR = ROOT / "var"
ENV_FILE = ROOT / ".env"
PROCFILE = ROOT / "Procfile"
#: The embedded server's AOF files, config and log.
REDIS_DATA_DIR = VAR_DIR / "redis"
#: Seconds to wait for /healthz after starting the processes.
HEALTH_TIMEOUT_S = 120.0
#: Seconds the worker gets to finish running jobs on Ctrl-C before the runner stops all.
WORKER_GRACE_S = 60.0
#: Seconds the runner gets to stop the processes (it SIGKILLs stragglers after 5 s).
RUNNER_STOP_S = 20.0
#: Seconds between two checks while waiting.
POLL_S = 0.25
#: Seconds to wait, once the console answers, for the worker and Flower to have started
#: (the banner comes after their start-up output), and then for their last lines.
SETTLE_TIMEOUT_S = 30.0
QUIET_S = 1.0
#: Flower turns task events on in the workers this long after it starts (its
#: `events_enable_interval`), and the worker logs it.
FLOWER_EVENTS_S = 5.0


class LaunchError(Exception):
    """Raised when Celeriac cannot be started; the message says what to do."""


class Interrupted(BaseException):
    """Raised by the signal handler while setting up (before the processes run).

    A BaseException, like KeyboardInterrupt, so that no library's `except Exception`
    turns it into an ordinary error.
    """


class Signals:
    """SIGINT/SIGTERM/SIGHUP: raise `Interrupted` while setting up, count afterwards."""

    def __init__(self) -> None:
        self.count = 0
        self.raise_on_signal = True

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.raise_on_signal:
            raise Interrupted(signal.Signals(signum).name)


@dataclass(frozen=True)
class Admin:
    """The console's admin account, as `flask celeriac bootstrap` reports it."""

    email: str
    #: Only on the run that created the account: shown once, in the final banner.
    password: str | None = None


@dataclass(frozen=True)
class Plan:
    """Everything decided before any process starts."""

    settings: Settings
    environ: dict[str, str]
    #: Known once the database is ready (`bootstrap`), for the banner.
    admin: Admin | None = None

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.flower_port}"


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signals = Signals()
    signals.install()
    try:
        if args.dry_run:
            return dry_run()
        return launch(signals, args.health_timeout, args.worker_grace)
    except LaunchError as exc:
        print(f"[make run] error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Interrupted as exc:
        say(f"{exc} received while starting: stopped.")
        return 130


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/run.py",
        description=(
            "Start Celeriac locally: web console, worker, beat, recorder and Flower (via "
            "the Procfile), with an embedded Redis when REDIS_URL does not answer. "
            "PORT (default 8000) and FLOWER_PORT (default 5555) come from the environment "
            "or .env."
        ),
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be started (and whether Redis answers) without changing anything",
    )
    parser.add_argument(
        "--health-timeout",
        type=float,
        default=HEALTH_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for /healthz (default {HEALTH_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--worker-grace",
        type=float,
        default=WORKER_GRACE_S,
        metavar="S",
        help=f"seconds the worker may finish running jobs on Ctrl-C (default {WORKER_GRACE_S:g})",
    )
    return parser.parse_args(argv)


def launch(signals: Signals, health_timeout_s: float, worker_grace_s: float) -> int:
    from app.config import DEFAULT_REDIS_URL
    from app.embedded_redis import EmbeddedRedisError, resolve_redis_url

    VAR_DIR.mkdir(exist_ok=True)
    ensure_env_file(ENV_FILE)
    plan = make_plan()
    problems = port_problems(plan.settings)
    if problems:
        raise LaunchError("; ".join(problems))
    configured = plan.environ.get("REDIS_URL") or None
    try:
        redis_url, embedded = resolve_redis_url(configured, REDIS_DATA_DIR)
    except (EmbeddedRedisError, ValueError) as exc:
        raise LaunchError(f"REDIS_URL: {exc}") from exc
    try:
        if embedded is None:
            redis = f"external at {mask_url(redis_url)}"
        else:
            redis = f"embedded (valkey, data in {rel(REDIS_DATA_DIR)}) at {redis_url}"
            wanted = mask_url(configured or DEFAULT_REDIS_URL)
            say(f"Nothing answers at {wanted}: started an embedded Redis at {redis_url}")
        environ = child_environ(plan.environ, redis_url, plan.settings)
        if plan.settings.attach.enabled:
            queues = environ["CELERIAC_WORKER_QUEUES"]
            say(f"Attach mode: the worker consumes only {queues}; the project's workers are recorded from their events")
        run_step(["flask", "db", "upgrade"], environ)
        plan = replace(plan, admin=bootstrap(environ))
        return run_processes(plan, environ, redis, signals, health_timeout_s, worker_grace_s)
    finally:
        if embedded is not None:
            say("Stopping the embedded Redis")
            embedded.stop()


def dry_run() -> int:
    """Say what `launch` would do; start nothing and write nothing."""
    from app.config import DEFAULT_REDIS_URL
    from app.embedded_redis import is_reachable

    if not ENV_FILE.exists():
        say(f"would create {rel(ENV_FILE)} (mode 0600) with SECRET_KEY, FLOWER_BASIC_AUTH and CELERIAC_ENCRYPTION_KEYS")
    plan = make_plan()
    configured = plan.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if is_reachable(configured):
        redis = f"external at {mask_url(configured)}"
    else:
        redis = f"embedded (data in {rel(REDIS_DATA_DIR)}): {mask_url(configured)} does not answer"
    for argv in (["flask", "db", "upgrade"], ["flask", "celeriac", "bootstrap"]):
        say(f"would run: {venv_command(argv)}")
    say(f"would run: {' '.join(runner_command(plan.settings.port))}")
    for problem in port_problems(plan.settings):
        say(f"warning: {problem}")
    print_banner(plan, redis, running=False)
    return 0


def ensure_env_file(path: Path) -> None:
    """Create .env with fresh secrets, or add the ones an existing file lacks.

    Only the names of what was written are printed, never the values.
    """
    from cryptography.fernet import Fernet

    from app.config import read_environment

    fresh = {
        "SECRET_KEY": secrets.token_hex(32),
        # token_urlsafe has no ':' or ',', on which Flower splits user:password[,...].
        "FLOWER_BASIC_AUTH": f"admin:{secrets.token_urlsafe(18)}",
        # One Fernet key for encrypted jobs (J9); rotation adds new keys in front.
        "CELERIAC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    if not path.exists():
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"# Created by `make run` on {stamp}. Keep it private (mode 0600); git ignores it.\n"
            "# Variables set in the environment win over the values here.\n"
            + "".join(f"{name}={value}\n" for name, value in fresh.items())
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as env_file:
            env_file.write(text)
        say(f"Created {rel(path)} (mode 0600) with a new SECRET_KEY, Flower password and encryption key")
        return
    current = read_environment(path)
    missing = {name: value for name, value in fresh.items() if not current.get(name)}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        say(f"warning: {rel(path)} holds secrets but others may read it: chmod 600 {rel(path)}")
    if missing:
        text = path.read_text(encoding="utf-8")
        with path.open("a", encoding="utf-8") as env_file:
            if text and not text.endswith("\n"):
                env_file.write("\n")
            env_file.writelines(f"{name}={value}\n" for name, value in missing.items())
        say(f"Added {', '.join(missing)} to {rel(path)}")


def make_plan() -> Plan:
    from app.config import ConfigError, load_settings, read_environment

    environ = read_environment(ENV_FILE)
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        raise LaunchError(f"bad configuration (environment or {rel(ENV_FILE)}): {exc}") from exc
    return Plan(settings=settings, environ=environ)


def child_environ(environ: Mapping[str, str], redis_url: str, settings: Settings) -> dict[str, str]:
    """The environment of every child: .env overlaid by ours, with the resolved Redis."""
    child = dict(environ)
    child.update(
        REDIS_URL=redis_url,
        PATH=os.pathsep.join([str(VENV_BIN), environ.get("PATH", os.defpath)]),
        VIRTUAL_ENV=str(VENV_BIN.parent),
        FLASK_APP="ops_ui",
        PORT=str(settings.port),
        FLOWER_PORT=str(settings.flower_port),
        PYTHONUNBUFFERED="1",
    )
    child.pop("PYTHONHOME", None)
    if settings.attach.enabled:
        # The Procfile's worker takes -Q from it: Celeriac's own queue, never the project's.
        child["CELERIAC_WORKER_QUEUES"] = ",".join(settings.attach.queues)
    return child


def venv_command(argv: list[str]) -> str:
    return " ".join([str(VENV_BIN / argv[0]), *argv[1:]])


def run_step(argv: list[str], environ: Mapping[str, str]) -> None:
    say(f"$ {' '.join(argv)}")
    result = subprocess.run([str(VENV_BIN / argv[0]), *argv[1:]], cwd=ROOT, env=dict(environ), check=False)
    if result.returncode != 0:
        raise LaunchError(f"`{' '.join(argv)}` failed (exit code {result.returncode})")


def read_bootstrap(output: str) -> tuple[Admin | None, list[str]]:
    """The admin `flask celeriac bootstrap` printed ("Admin: ...", "Password: ..." on the
    first run only), and its other lines."""
    found: dict[str, str] = {}
    rest = []
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("Admin", "Password") and value.strip():
            found[key] = value.strip()
        else:
            rest.append(line)
    admin = Admin(found["Admin"], found.get("Password")) if "Admin" in found else None
    return admin, rest


def bootstrap(environ: Mapping[str, str]) -> Admin | None:
    """`flask celeriac bootstrap`: its output passed on, except the admin's e-mail and
    password, which wait for the final banner (printed earlier, they scroll away)."""
    argv = ["flask", "celeriac", "bootstrap"]
    say(f"$ {' '.join(argv)}")
    command = [str(VENV_BIN / argv[0]), *argv[1:]]
    result = subprocess.run(command, cwd=ROOT, env=dict(environ), stdout=subprocess.PIPE, text=True, check=False)
    admin, rest = read_bootstrap(result.stdout)
    for line in rest:
        print(line, flush=True)
    if result.returncode != 0:
        if admin is not None and admin.password:
            say(f"the admin {admin.email} was created with the password {admin.password}")
        raise LaunchError(f"`{' '.join(argv)}` failed (exit code {result.returncode})")
    return admin


def runner_command(port: int) -> list[str]:
    """The Procfile runner: honcho's parsing and output, restarting a process that exits
    (scripts/procfile_runner.py). The children get .env through our environment."""
    command = [str(VENV_BIN / "python"), str(ROOT / "scripts" / "procfile_runner.py"), "-f", str(PROCFILE)]
    if not sys.stdout.isatty():
        command.append("--no-colour")
    # -p: the first Procfile process (web) gets PORT=<port>, the others +100 each.
    return [*command, "-p", str(port)]


def run_processes(
    plan: Plan,
    environ: Mapping[str, str],
    redis: str,
    signals: Signals,
    health_timeout_s: float,
    worker_grace_s: float,
) -> int:
    """Run the Procfile under the runner until a signal or until the runner exits."""
    # From here a signal only counts: the loops below notice it and stop in order.
    signals.raise_on_signal = False
    # A session of its own: a Ctrl-C in the terminal reaches only this script, which
    # stops the worker gently before the runner stops the rest (see stop_processes).
    launched = time.time()
    runner = subprocess.Popen(runner_command(plan.settings.port), cwd=ROOT, env=dict(environ), start_new_session=True)
    try:
        healthy = wait_until_healthy(plan.console_url, runner, signals, health_timeout_s)
        if signals.count == 0 and runner.poll() is None:
            if not healthy:
                say(f"error: {plan.console_url}/healthz did not answer 200 in {health_timeout_s:g} s")
                return 1
            wait_for_the_rest(plan, environ.get("REDIS_URL", ""), launched, runner, signals)
            if signals.count == 0 and runner.poll() is None:
                print_banner(plan, redis)
            while signals.count == 0 and runner.poll() is None:
                time.sleep(POLL_S)
        if signals.count == 0:
            say(f"the process runner exited (code {runner.returncode}); everything stopped")
            return runner.returncode or 1
        return 0
    finally:
        stop_processes(runner, signals, worker_grace_s)


def wait_until_healthy(console_url: str, runner: subprocess.Popen[bytes], signals: Signals, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and signals.count == 0 and runner.poll() is None:
        try:
            with urllib.request.urlopen(f"{console_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        time.sleep(POLL_S)
    return False


def wait_for_the_rest(
    plan: Plan,
    redis_url: str,
    since: float,
    runner: subprocess.Popen[bytes],
    signals: Signals,
    timeout_s: float = SETTLE_TIMEOUT_S,
    after_flower_s: float = FLOWER_EVENTS_S + QUIET_S,
) -> bool:
    """Until a worker has started (its first heartbeat) and Flower answers, and their last
    start-up lines are out: the banner is printed after them, not lost among them.

    The last line is the worker's "Events of group {task} enabled by remote": Flower turns
    task events on in the workers a few seconds after it starts. Returns whether both were
    seen; the banner follows after `timeout_s` anyway.
    """
    deadline = time.monotonic() + timeout_s
    flower_since: float | None = None
    while time.monotonic() < deadline and signals.count == 0 and runner.poll() is None:
        if flower_since is None and answers(plan.flower_url):
            flower_since = time.monotonic()
        if flower_since is not None and worker_started(redis_url, since):
            quiet_until = max(time.monotonic() + QUIET_S, flower_since + after_flower_s)
            while time.monotonic() < quiet_until and signals.count == 0 and runner.poll() is None:
                time.sleep(POLL_S)
            return True
        time.sleep(POLL_S)
    return False


def worker_started(redis_url: str, since: float) -> bool:
    """Whether a worker wrote a heartbeat since `since` (it beats once it is ready)."""
    import redis

    from app import redis_keys

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        return bool(client.zrangebyscore(redis_keys.WORKERS, since, "+inf", start=0, num=1))
    except (redis.RedisError, ValueError):
        return False


def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url`, whatever it answers (Flower asks for a password)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def stop_processes(runner: subprocess.Popen[bytes], signals: Signals, worker_grace_s: float) -> None:
    """Worker first (warm shutdown), then everything else through the runner.

    The runner stops a process by sending SIGTERM to its whole process group: for the worker
    that kills the prefork children mid-task (CELERY-NOTES.md, supervisor section). So
    the worker's main process alone gets SIGTERM first and may finish running jobs.
    """
    if runner.poll() is not None:
        return
    # From now on a process that exits is stopping, not crashing: no restarts.
    send(runner.pid, signal.SIGUSR1)
    workers = worker_main_processes(runner.pid)
    if workers and worker_grace_s > 0:
        say(
            f"Stopping: the worker finishes its running jobs (up to {worker_grace_s:g} s; Ctrl-C again to stop at once)"
        )
        seen = signals.count
        for pid in workers:
            send(pid, signal.SIGTERM)
        deadline = time.monotonic() + worker_grace_s
        while any(is_alive(pid) for pid in workers) and time.monotonic() < deadline and signals.count == seen:
            time.sleep(POLL_S)
    say("Stopping the other processes")
    if runner.poll() is None:
        runner.send_signal(signal.SIGTERM)
    try:
        runner.wait(RUNNER_STOP_S)
    except subprocess.TimeoutExpired:
        say("the process runner did not stop in time: killing it")
        runner.kill()
        runner.wait()


def worker_main_processes(root_pid: int) -> list[int]:
    """PIDs of the Celery worker main processes under the runner (not their pool children)."""
    import psutil  # type: ignore[import-untyped, unused-ignore]

    try:
        descendants = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return []
    workers: dict[int, int] = {}  # pid -> parent pid
    for process in descendants:
        try:
            argv = process.cmdline()
            if "worker" in argv and any(Path(arg).name == "celery" for arg in argv[:2]):
                workers[process.pid] = process.ppid()
        except psutil.Error:
            continue
    return [pid for pid, parent in workers.items() if parent not in workers]


def send(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def is_alive(pid: int) -> bool:
    import psutil  # type: ignore[import-untyped, unused-ignore]

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def port_problems(settings: Settings) -> list[str]:
    problems = []
    for name, port in (("PORT", settings.port), ("FLOWER_PORT", settings.flower_port)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                problems.append(f"127.0.0.1:{port} ({name}) is in use (another `make run`?); stop it or set {name}")
    return problems


def print_banner(plan: Plan, redis: str, running: bool = True) -> None:
    """Where everything is, printed last. The one secret shown is the admin password of the
    run that created the account (it is stored hashed: it can never be shown again); the
    Flower password stays in .env."""
    from sqlalchemy.engine import make_url

    auth = plan.environ.get("FLOWER_BASIC_AUTH", "")
    flower_user = auth.split(",", 1)[0].partition(":")[0] or "admin"
    database = make_url(plan.settings.database_url).render_as_string(hide_password=True)
    lines = [
        "Celeriac is running" if running else "Celeriac would run with",
        f"  Console   {plan.console_url}",
        *admin_lines(plan.admin),
        f"  Flower    {plan.flower_url}",
        f"            user {flower_user}, password in {rel(ENV_FILE)} (FLOWER_BASIC_AUTH)",
        f"  Redis     {redis}",
        f"  Database  {database}",
    ]
    if running:
        lines.append("  Ctrl-C stops everything.")
    rule = "=" * (max(len(line) for line in lines) + 2)
    print("", rule, *lines, rule, "", sep="\n", flush=True)


def admin_lines(admin: Admin | None) -> list[str]:
    pad = " " * 12
    if admin is None:
        return [f"{pad}admin: named here once the database is ready (its password too, on the first run)"]
    if admin.password:
        return [f"{pad}admin {admin.email}, password {admin.password}", f"{pad}(shown this once: note it now)"]
    reset = f".venv/bin/flask users set-password --email {admin.email} --password-stdin"
    return [f"{pad}admin {admin.email}", f"{pad}(password forgotten? {reset})"]


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
