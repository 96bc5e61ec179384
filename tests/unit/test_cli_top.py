"""`flask queue top`: what one snapshot shows, and the live view in a real terminal (a pty):
`q` quits, Ctrl-C quits, the terminal is given back as it was."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from fcntl import ioctl
from typing import Any

import pytest
import redis

from app import redis_keys
from app.config import get_settings
from app.control import pauses
from app.monitoring.workers import Heartbeat, write_heartbeat
from ops_ui.cli_top import top
from tests.conftest import ROOT, wait_for
from tests.job_rows import add_job

pytestmark = pytest.mark.redis


@pytest.fixture()
def paused_queue(redis_client: Any, unique: str) -> Iterator[str]:
    name = f"top-paused-{unique}"
    pauses.pause(redis_client, name, by="cli", reason="test")
    yield name
    redis_client.hdel(redis_keys.QUEUE_PAUSES, name)


@pytest.fixture()
def worker_beat(redis_client: Any, unique: str) -> Iterator[Heartbeat]:
    now = time.time()
    beat = Heartbeat(f"w-{unique}@host", 1, 4, 1, 7, [f"top-{unique}"], [0.1, 0.1, 0.1], 50.0, now - 60, now - 3)
    write_heartbeat(redis_client, beat, get_settings().monitoring)
    yield beat
    redis_client.delete(redis_keys.worker(beat.hostname))
    redis_client.zrem(redis_keys.WORKERS, beat.hostname)


def row(output: str, first_cell: str) -> list[str]:
    """The cells of the one table row whose first cell is `first_cell`."""
    found = [cells for line in output.splitlines() if (cells := [c.strip() for c in line.split("│")[1:-1]])]
    found = [cells for cells in found if cells[0] == first_cell]
    assert len(found) == 1, f"one row {first_cell!r} expected in:\n{output}"
    return found[0]


def test_once_shows_queues_workers_and_running_jobs_with_progress(
    app: Any, unique: str, paused_queue: str, worker_beat: Heartbeat
) -> None:
    tenant, queue = f"top-{unique}", f"top-{unique}"
    running = add_job(
        tenant,
        status="processing",
        queue=queue,
        job_class="demo.progress",
        started_at=datetime.now(UTC),
        worker_id=worker_beat.hostname,
        progress=40,
        progress_done=4,
        progress_total=10,
        progress_message="step 4 of 10",
    )
    add_job(tenant, status="pending", queue=queue)
    add_job(tenant, status="pending", queue=queue)

    result = app.test_cli_runner().invoke(top, ["--once", "--tenant", tenant])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "1 running" in out.splitlines()[0]
    # queue, pending, delayed, running, done/min, failed/min, consumers, state
    assert row(out, queue) == [queue, "2", "0", "1", "-", "-", "1", "active"]
    assert row(out, paused_queue)[-1] == "paused"
    # host, status, active, last beat, queues
    host, status, active, beat, consumed = row(out, worker_beat.hostname)
    assert (status, active, consumed) == ("online", "1/4", queue) and beat.endswith("s ago")
    job = row(out, running)
    assert job[1:4] == ["demo.progress", queue, worker_beat.hostname]
    assert "━" in job[4] and job[5] == "40% (4/10)  step 4 of 10"


def test_without_a_terminal_it_prints_one_snapshot_and_exits_0(app: Any, unique: str) -> None:
    result = app.test_cli_runner().invoke(top, ["--tenant", f"nobody-{unique}"])
    assert result.exit_code == 0, result.output
    assert result.output.count("Celeriac top") == 1
    assert "(nothing running)" in result.output and "q or Ctrl-C" not in result.output


def test_unreachable_redis_is_one_line_and_exit_3(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    monkeypatch.setattr("ops_ui.cli_top.get_redis", lambda url: dead)
    result = app.test_cli_runner().invoke(top, ["--once"])
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot read queues and workers: ConnectionError")


def test_a_failed_refresh_keeps_the_last_picture_and_says_why(
    app: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from ops_ui import cli_top

    first = cli_top.read_snapshot(f"top-{unique}")
    keys = iter([None, "x", None, "q"])  # a refresh, a key that means nothing, a refresh, q

    def wait(self: Any, seconds: float) -> str | None:
        return next(keys)

    def down(tenant: str | None) -> Any:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(cli_top.Keys, "wait", wait)
    monkeypatch.setattr(cli_top, "read_snapshot", down)
    monkeypatch.setattr(cli_top, "REFRESH_S", 0.0)
    screen = io.StringIO()
    cli_top.run_live(Console(file=screen, force_terminal=True, width=120), first, f"top-{unique}")

    shown = screen.getvalue()
    assert "cannot read: ConnectionError: Error 111" in shown and "retrying every second" in shown
    assert shown.count("Queues") >= 2, "the last reading stays on screen"


# --- The live view in a pseudo-terminal ---

LIVE = """
import sys
from ops_ui import create_app
from ops_ui.cli_top import top
with create_app().app_context():
    top.main(args=sys.argv[1:], prog_name="top")
"""


class Terminal:
    """`top` running on a pty of 40x140, as in a terminal emulator."""

    def __init__(self, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        self.seen = b""
        self.process = subprocess.Popen(
            [sys.executable, "-c", LIVE, *args],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            cwd=ROOT,
            env={**os.environ, "TERM": "xterm-256color"},
        )

    def read(self) -> bytes:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:  # the child closed its side
                break
        return self.seen

    def drawn(self, times: int) -> bool:
        return self.read().count(b"Celeriac top") >= times

    def exited(self) -> int | None:
        self.read()  # a full pty would block the child
        return self.process.poll()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture()
def terminal() -> Iterator[type[Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str) -> Terminal:
        opened.append(Terminal(*args))
        return opened[-1]

    yield open_terminal  # type: ignore[misc]
    for term in opened:
        term.close()


def test_live_view_redraws_every_second_and_q_quits_restoring_the_terminal(terminal: Any) -> None:
    term = terminal()
    wait_for(lambda: term.drawn(2), timeout=30, what="a first redraw")  # the first picture, then one a second later
    assert b"q or Ctrl-C quits" in term.seen and b"\x1b[?1049h" in term.seen  # the alternate screen
    assert not termios.tcgetattr(term.slave)[3] & termios.ICANON, "keys are read without Enter"

    os.write(term.master, b"q")

    assert wait_for(lambda: term.exited() is not None, timeout=10, what="top to quit") is not None
    assert term.process.returncode == 0, term.seen.decode(errors="replace")[-2000:]
    assert termios.tcgetattr(term.slave)[3] == term.before[3], "the terminal is given back as it was"
    assert b"Traceback" not in term.seen


def test_ctrl_c_quits_cleanly(terminal: Any) -> None:
    term = terminal()
    wait_for(lambda: term.drawn(1), timeout=30, what="the first picture")
    term.process.send_signal(signal.SIGINT)
    wait_for(lambda: term.exited() is not None, timeout=10, what="top to quit")
    assert term.process.returncode == 0 and b"Traceback" not in term.seen and b"KeyboardInterrupt" not in term.seen
    assert termios.tcgetattr(term.slave)[3] == term.before[3]
