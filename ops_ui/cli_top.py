"""`flask queue top`: an htop-style terminal view of queues, workers and running jobs.

Redrawn every second from `take_snapshot` (app/services/top_snapshot.py: reads only, the
same sources as the console); `q` or Ctrl-C quits. When standard output is not a terminal
(a pipe, a file, cron) or with `--once`, it prints one snapshot and exits 0.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from datetime import UTC, datetime

import click
from redis import RedisError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from app.monitoring.workers import ONLINE
from app.redis_client import get_redis
from app.services.progress import RunningJob
from app.services.top_snapshot import TopSnapshot, take_snapshot
from ops_ui.cli_checks import CannotRun, first_line
from ops_ui.extensions import sql
from ops_ui.settings import app_settings

#: Seconds between two redraws.
REFRESH_S = 1.0
QUIT_KEYS = frozenset("qQ")
#: Width of a snapshot printed to something that is not a terminal (which has no width).
PRINT_WIDTH = 160
#: What a failed read is: the backend is down or restarting; the live view says so and retries.
READ_ERRORS = (RedisError, SQLAlchemyError, OSError)


def read_snapshot(tenant: str | None) -> TopSnapshot:
    """A fresh reading; the read transaction ends, so the next one sees newer rows."""
    try:
        return take_snapshot(sql(), get_redis(app_settings().redis_url), app_settings(), tenant)
    finally:
        sql().rollback()


# --- Drawing ---


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _rate(value: float) -> str:
    return f"{value:g}" if value else "-"


def queues_table(snapshot: TopSnapshot) -> Table:
    table = Table(title="Queues", title_justify="left", expand=False)
    for name in ("queue", "pending", "delayed", "running", "done/min", "failed/min", "consumers", "state"):
        table.add_column(name, justify="left" if name in ("queue", "state") else "right", no_wrap=True)
    for line in snapshot.queues:
        table.add_row(
            line.name,
            str(line.pending),
            str(line.delayed),
            str(line.running),
            _rate(line.done_per_minute),
            Text(_rate(line.failed_per_minute), style="bold red" if line.failed_per_minute else ""),
            str(line.consumers),
            Text("paused", style="bold yellow") if line.paused else Text("active", style="green"),
        )
    if not snapshot.queues:
        table.add_row("(no queue has jobs or consumers yet)", *[""] * 7)
    return table


def workers_table(snapshot: TopSnapshot) -> Table:
    table = Table(title="Workers", title_justify="left")
    for name in ("host", "status", "active", "last beat", "queues"):
        table.add_column(name, justify="right" if name == "active" else "left", no_wrap=name != "queues")
    for worker in snapshot.workers:
        beat = worker.heartbeat
        table.add_row(
            beat.hostname,
            Text(worker.status, style="green" if worker.status == ONLINE else "red"),
            f"{beat.active}/{beat.pool_size}",
            _age(snapshot.taken_at - beat.last_heartbeat),
            ",".join(beat.queues) or "-",
        )
    if not snapshot.workers:
        table.add_row("(none: make run starts one)", "", "", "", "")
    return table


def _progress(job: RunningJob) -> RenderableType:
    if job.progress is None:
        return Text("no progress reported", style="dim")
    return ProgressBar(total=100, completed=job.progress, width=20)


def _progress_text(job: RunningJob) -> str:
    if job.progress is None:
        return ""
    counted = f" ({job.progress_done}/{job.progress_total})" if job.progress_total else ""
    message = f"  {job.progress_message}" if job.progress_message else ""
    return f"{job.progress:>3}%{counted}{message}"


def running_table(snapshot: TopSnapshot) -> Table:
    shown = len(snapshot.running)
    more = snapshot.running_total - shown
    title = "Running jobs" + (f" (longest-running {shown} of {snapshot.running_total})" if more > 0 else "")
    table = Table(title=title, title_justify="left")
    table.add_column("id", no_wrap=True, min_width=8, overflow="ellipsis")
    table.add_column("job class", overflow="fold")
    table.add_column("queue", no_wrap=True)
    table.add_column("worker", overflow="ellipsis", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("", overflow="fold")
    for job in snapshot.running:
        table.add_row(job.id, job.job_class, job.queue, job.worker_id or "-", _progress(job), _progress_text(job))
    if not snapshot.running:
        table.add_row("(nothing running)", "", "", "", "", "")
    return table


def render(snapshot: TopSnapshot, live: bool = False, problem: str | None = None) -> RenderableType:
    """The whole view: a title line, then queues, workers and running jobs."""
    moment = datetime.fromtimestamp(snapshot.taken_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    online = sum(1 for w in snapshot.workers if w.status == ONLINE)
    title = Text(f"Celeriac top  {moment}  ", style="bold")
    title.append(f"{snapshot.running_total} running, {online} of {len(snapshot.workers)} workers online", style="")
    if live:
        title.append("   q or Ctrl-C quits", style="dim")
    parts: list[RenderableType] = [title]
    if problem:
        parts.append(Text(f"{problem} (showing the last reading; retrying every second)", style="bold red"))
    parts += [queues_table(snapshot), workers_table(snapshot), running_table(snapshot)]
    return Group(*parts)


# --- The live loop ---


class Keys:
    """Single key presses from a terminal's standard input (cbreak mode: no Enter needed,
    Ctrl-C still interrupts); without a terminal, only waiting."""

    def __init__(self) -> None:
        self.fd: int | None = sys.stdin.fileno() if sys.stdin.isatty() else None

    @contextlib.contextmanager
    def listening(self) -> Iterator[Keys]:
        fd = self.fd
        if fd is None:
            yield self
            return
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        try:
            yield self
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)  # as it was, however top ends

    def wait(self, seconds: float) -> str | None:
        """The key pressed within `seconds`, or None."""
        if self.fd is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self.fd], [], [], seconds)
        if not ready:
            return None
        key = os.read(self.fd, 1)
        if not key:  # the terminal went away: no more keys, only waiting
            self.fd = None
        return key.decode(errors="replace") or None


def run_live(console: Console, first: TopSnapshot, tenant: str | None) -> None:
    """Redraw every REFRESH_S until `q` or Ctrl-C; a failed read keeps the last picture."""
    snapshot, problem = first, None
    keys = Keys()
    with keys.listening(), Live(render(snapshot, True), console=console, auto_refresh=False, screen=True) as live:
        deadline = time.monotonic() + REFRESH_S
        while True:
            key = keys.wait(max(deadline - time.monotonic(), 0.0))
            if key in QUIT_KEYS:
                return
            if time.monotonic() < deadline:
                continue  # another key: ignored
            deadline = time.monotonic() + REFRESH_S
            try:
                snapshot, problem = read_snapshot(tenant), None
            except READ_ERRORS as exc:
                problem = f"cannot read: {exc.__class__.__name__}: {first_line(exc)}"
            live.update(render(snapshot, True, problem), refresh=True)


@click.command("top")
@click.option("--once", is_flag=True, help="Print one snapshot and exit (what happens when stdout is not a terminal).")
@click.option("--tenant", default=None, help="Only this tenant's jobs (default: every tenant's).")
def top(once: bool, tenant: str | None) -> None:
    """Live view of queues, workers and running jobs with their progress, redrawn every second; q quits."""
    console = Console()
    try:
        first = read_snapshot(tenant)
    except READ_ERRORS as exc:
        raise CannotRun(f"cannot read queues and workers: {exc.__class__.__name__}: {first_line(exc)}") from exc
    if once or not console.is_terminal:
        Console(width=console.width if console.is_terminal else PRINT_WIDTH).print(render(first))
        return
    try:
        run_live(console, first, tenant)
    except KeyboardInterrupt:
        pass  # Ctrl-C: the same as q
