"""Subprocesses of the benchmark (worker, recorder, publisher, gunicorn), always cleaned up.

Each runs in a session of its own so a Ctrl-C reaches only the benchmark, which then
stops them in order: SIGTERM, a wait, then SIGKILL of that process's own group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from bench.env import ROOT

T = TypeVar("T")

#: Seconds a subprocess gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0


class Proc:
    """One subprocess with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait, then SIGKILL its process group (the worker's children too)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # Prefork children of a worker that died abruptly: they share its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


@contextlib.contextmanager
def running(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Iterator[Proc]:
    proc = Proc(name, argv, env, log_dir)
    try:
        yield proc
    finally:
        proc.stop()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def worker_argv(queue: str, concurrency: int, hostname: str) -> list[str]:
    return python(
        "-m", "celery", "-A", "app.celery_app", "worker",
        "-Q", queue, "-c", str(concurrency), "-l", "warning", "-n", hostname,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    )  # fmt: skip


def run_to_end(name: str, argv: list[str], env: dict[str, str], log_dir: Path, timeout: float) -> str:
    """Run a short subprocess to completion; returns its output, raises if it failed."""
    with running(name, argv, env, log_dir) as proc:
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{name} did not finish in {timeout:.0f}s:\n{proc.tail()}") from exc
        if proc.popen.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.popen.returncode}):\n{proc.tail()}")
        return proc.tail()


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05, proc: Proc | None = None
) -> T:
    """Poll `predicate` until truthy; raise after `timeout` or when `proc` dies."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
