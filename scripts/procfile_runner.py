"""Run a Procfile as honcho does, but restart a process that exits unexpectedly (R1).

`honcho start` stops every process as soon as one exits: under `make run`, one recorder
that crashed (or a worker killed by the OOM killer) stopped the whole stack. This runner
uses honcho's own Procfile parsing, process wrapper and coloured printer, and differs in
one thing: a process that exits while the runner is not stopping is started again after
a pause that doubles on each quick exit (1 s up to `MAX_BACKOFF_S`), and the runner says
so. A process that ran for `HEALTHY_AFTER_S` before exiting starts again after 1 s.

Signals: SIGTERM or SIGINT stop everything (SIGTERM to each process group, SIGKILL to
what still runs `honcho.manager.KILL_WAIT` seconds later); SIGUSR1 means "a stop is coming:
restart nothing from now on" (scripts/run.py sends it before it stops the worker gently).

    python scripts/procfile_runner.py [-f Procfile] [-p PORT] [--no-colour]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from honcho import environ
from honcho.manager import KILL_WAIT, SIGNALS, Manager
from honcho.printer import Printer

#: Longest pause before restarting a process that keeps exiting, in seconds.
MAX_BACKOFF_S = 30.0
#: A process that ran this long before exiting is restarted after the shortest pause.
HEALTHY_AFTER_S = 60.0


class RestartingManager(Manager):  # type: ignore[misc]
    """honcho's Manager, restarting processes that exit unless it is stopping."""

    def __init__(self, printer: Any = None, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        super().__init__(printer)
        self.max_backoff_s = max_backoff_s
        self.restarts: dict[str, int] = {}
        self._backoff: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self._restart_at: dict[str, float] = {}
        self._restarting_allowed = True

    def loop(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._system_print(f"{SIGNALS[signum]['name']} received\n")
            self.returncode = SIGNALS[signum]["rc"]
            self._restart_at.clear()
            self.terminate()

        def no_more_restarts(signum: int, frame: FrameType | None) -> None:
            self._restarting_allowed = False
            self._restart_at.clear()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGUSR1, no_more_restarts)
        self._start()
        stopping_since: float | None = None
        while True:
            try:
                self._handle(self.events.get(timeout=0.1))
            except queue.Empty:
                pass
            self._restart_due()
            if self._terminating or not self._restarting_allowed:
                if self._all_started() and self._all_stopped() and not self._restart_at:
                    break
                if self._terminating:
                    stopping_since = stopping_since or time.monotonic()
                    if time.monotonic() - stopping_since > KILL_WAIT:
                        self.kill()

    def _handle(self, msg: Any) -> None:
        if msg.type == "line":
            self._printer.write(msg)
        elif msg.type == "start":
            self._processes[msg.name]["pid"] = msg.data["pid"]
            self._processes[msg.name].pop("returncode", None)
            self._started_at[msg.name] = time.monotonic()
            self._system_print(f"{msg.name} started (pid={msg.data['pid']})\n")
        elif msg.type == "stop":
            code = msg.data["returncode"]
            self._processes[msg.name]["returncode"] = code
            self._system_print(f"{msg.name} stopped (rc={code})\n")
            if self._terminating or not self._restarting_allowed:
                if self.returncode is None:
                    self.returncode = code
                return
            self._schedule_restart(msg.name, code)

    def _schedule_restart(self, name: str, code: int) -> None:
        ran_s = time.monotonic() - self._started_at.get(name, time.monotonic())
        pause = 1.0 if ran_s >= HEALTHY_AFTER_S else min(self.max_backoff_s, self._backoff.get(name, 0.5) * 2)
        self._backoff[name] = pause
        self._restart_at[name] = time.monotonic() + pause
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self._system_print(
            f"{name} exited unexpectedly (rc={code}); restarting it in {pause:g} s (restart {self.restarts[name]})\n"
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for name in [n for n, at in self._restart_at.items() if at <= now]:
            del self._restart_at[name]
            entry = self._processes[name]
            entry["process"] = multiprocessing.Process(name=name, target=entry["obj"].run, args=(self.events, True))
            entry["process"].start()


def build(procfile: Path, port: int, colour: bool) -> RestartingManager:
    """A manager with every process of `procfile` (ports as `honcho start -p PORT` gives them)."""
    parsed = environ.parse_procfile(procfile.read_text())
    manager = RestartingManager(Printer(sys.stdout, colour=colour, prefix=True))
    for params in environ.expand_processes(parsed.processes, port=port):
        env = os.environ.copy()
        env.update(params.env)
        manager.add_process(params.name, params.cmd, quiet=params.quiet, env=env)
    return manager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--procfile", default="Procfile")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--no-colour", action="store_true")
    args = parser.parse_args(argv)
    manager = build(Path(args.procfile), args.port, colour=not args.no_colour and sys.stdout.isatty())
    manager.loop()
    return int(manager.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
