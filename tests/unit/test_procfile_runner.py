"""`make run`'s process runner restarts a process that exits instead of stopping the stack (R1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT, wait_for


class Runner:
    """scripts/procfile_runner.py on a Procfile of its own, its output collected as it comes."""

    def __init__(self, procfile: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "procfile_runner.py"), "-f", str(procfile), "-p", "7100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self._reader.join(timeout=5)
        return code


def write_procfile(tmp_path: Path) -> Path:
    marker = tmp_path / "crashed-once"
    crash_once = (
        f"import os, sys, time; p = {str(marker)!r}; "
        "first = not os.path.exists(p); open(p, 'a').close(); "
        "print('crashing' if first else 'steady', flush=True); "
        "sys.exit(3) if first else time.sleep(60)"
    )
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f'steady: {sys.executable} -c "import time; print(\'up\', flush=True); time.sleep(60)"\n'
        f'crashy: {sys.executable} -c "{crash_once}"\n'
    )
    return procfile


def test_a_process_that_exits_is_restarted_and_says_so_while_the_others_keep_running(tmp_path: Path) -> None:
    runner = Runner(write_procfile(tmp_path))
    try:
        wait_for(lambda: runner.count("crashy.1 | steady"), what="the crashed process to run again")
        assert runner.count("crashy.1 exited unexpectedly (rc=3); restarting it in 1 s (restart 1)") == 1
        assert runner.count("steady.1 stopped") == 0, "the other processes were never stopped"
        assert runner.process.poll() is None
    finally:
        code = runner.stop()
    assert code == 143  # stopped by SIGTERM, as honcho answers it
    assert runner.count("steady.1 stopped") == 1 and runner.count("restart 2") == 0


def test_after_sigusr1_nothing_is_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    runner = Runner(write_procfile(tmp_path))
    try:
        wait_for(lambda: runner.count("crashy.1 | steady"), what="the second start")
        os.kill(runner.process.pid, signal.SIGUSR1)  # what `make run` sends before a stop
        started = next(line for line in reversed(runner.lines) if "crashy.1 started" in line)
        crashy_pid = int(started.split("pid=")[1].rstrip(")"))
        os.killpg(crashy_pid, signal.SIGTERM)
        wait_for(lambda: runner.count("crashy.1 stopped") == 2, what="the crashed process to stop")
        assert runner.count("restart 2") == 0
    finally:
        runner.stop()
    assert runner.count("steady.1 stopped") == 1
