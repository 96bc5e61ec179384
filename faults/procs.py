"""The harness as a supervisor: each process in its own process group, logged to a file,
restarted when it exits unexpectedly (with backoff, and said so), stopped at the end.

Processes the harness kills on purpose are `hold`-ed first, so the watcher leaves their
restart to the scenario; every other exit is an unexpected one and is counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("faults")

#: Seconds a process gets after SIGTERM before its whole group is SIGKILLed.
STOP_TIMEOUT_S = 10.0
#: First and longest wait before restarting a process that exited unexpectedly.
RESTART_BACKOFF_S = (1.0, 10.0)
#: A process up this long gets its backoff reset.
STABLE_AFTER_S = 30.0
#: How often the watcher looks at the processes.
WATCH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Event:
    """Something that happened to a process, `at` seconds on the monotonic clock."""

    at: float
    name: str
    what: str


class Proc:
    """One supervised command; `start` may be called again after it stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running")
        self._kill_group(signal.SIGKILL)  # leftovers of a previous run (pool children)
        self.starts += 1
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%H:%M:%S")
            log.write(f"=== [faults] start #{self.starts} at {stamp}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started_at = time.monotonic()

    def output_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a worker's pool children too)."""
        self._kill_group(signum)

    def signal_main(self, signum: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def wait_exit(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the group, a wait, then SIGKILL to the group."""
        if self.popen is None:
            return
        if self.alive():
            self._kill_group(signal.SIGTERM)
            if not self.wait_exit(timeout):
                logger.warning("%s did not stop in %.0fs: killing it", self.name, timeout)
        self._kill_group(signal.SIGKILL)
        self.wait_exit(timeout)

    def _kill_group(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


class Supervisor:
    """Starts, watches and stops the stack's processes; records every event."""

    def __init__(self) -> None:
        self.procs: dict[str, Proc] = {}
        self.events: list[Event] = []
        self._held: set[str] = set()
        self._backoff: dict[str, float] = {}
        self._restart_due: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, proc: Proc) -> Proc:
        with self._lock:
            self.procs[proc.name] = proc
        return proc

    def note(self, name: str, what: str) -> None:
        with self._lock:
            self.events.append(Event(time.monotonic(), name, what))
        logger.info("%s: %s", name, what)

    def start(self, name: str) -> None:
        with self._lock:
            self.procs[name].start()
            self._restart_due.pop(name, None)

    def hold(self, name: str) -> None:
        """The harness handles this process's next exit itself (a planned kill or outage)."""
        with self._lock:
            self._held.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        """A planned kill of the whole group; the caller restarts (see `restart`)."""
        with self._lock:
            self._held.add(name)
            self.procs[name].kill(signum)
        self.procs[name].wait_exit(STOP_TIMEOUT_S)
        self.note(name, f"killed on purpose ({signal.Signals(signum).name})")

    def restart(self, name: str) -> float:
        """Start a held process again and let the watcher look after it; returns when (monotonic)."""
        with self._lock:
            self.procs[name].start()
            self._held.discard(name)
        at = time.monotonic()
        self.note(name, "restarted by the harness")
        return at

    def watch(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="faults-supervisor", daemon=True)
        self._thread.start()

    def unexpected_exits(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.what.startswith("exited unexpectedly")]

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                for name, proc in self.procs.items():
                    self._look_after(name, proc, now)

    def _look_after(self, name: str, proc: Proc, now: float) -> None:
        if name in self._held or proc.popen is None:
            return
        if proc.alive():
            if now - proc.started_at > STABLE_AFTER_S:
                self._backoff.pop(name, None)
            return
        due = self._restart_due.get(name)
        if due is None:
            delay = self._backoff.get(name, RESTART_BACKOFF_S[0])
            self._backoff[name] = min(delay * 2, RESTART_BACKOFF_S[1])
            self._restart_due[name] = now + delay
            code = proc.popen.returncode
            self.events.append(Event(now, name, f"exited unexpectedly (code {code}); restart in {delay:.0f}s"))
            logger.warning("%s exited unexpectedly (code %s); restarting in %.0fs", name, code, delay)
        elif now >= due:
            del self._restart_due[name]
            try:
                proc.start()
                self.events.append(Event(now, name, "restarted by the supervisor"))
            except OSError as exc:
                self.events.append(Event(now, name, f"restart failed: {exc}"))

    def stop_all(self, order: list[str] | None = None) -> None:
        """Stop the watcher, then every process (in `order` first), even after errors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        names = list(order or []) + [n for n in self.procs if n not in (order or [])]
        for name in names:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.stop()
            except Exception:  # keep stopping the others
                logger.exception("could not stop %s", name)
        with self._lock:
            self.procs.clear()
            self._held.clear()
            self._backoff.clear()
            self._restart_due.clear()


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll `predicate` until truthy; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
