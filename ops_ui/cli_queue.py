"""`flask queue ...`: the operator's queue commands at a shell (Laravel's `queue:*`, Horizon's
`horizon:*`): stats, clear, monitor and health here; the failed history in
ops_ui/cli_queue_history.py, pause / resume / status in ops_ui/cli_queue_control.py, list and
settings in ops_ui/cli_queues.py.

Exit codes (docs/cli.md): 0 done; 1 the answer is "no" (`monitor` found a queue over its
limit, `health` warns, `clear` was not confirmed); 2 `health` is critical; 3 the command
cannot run (a bad argument, a backend unreachable), with one readable line and no traceback.
Every change is audited with actor "cli".

`flask queues ...` is the older spelling, kept for scripts: the same commands, with click's
exit codes as before (1 for an error, 2 for a usage error).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import click
import kombu.exceptions
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.backends.current import backends
from app.control import pauses
from app.control.queues import check_queue_name, is_known
from app.errors import AppError, NotFound
from app.monitoring import dashboard
from app.monitoring.queue_stats import QueueStats, stats_of_queues
from app.monitoring.workers import list_workers
from app.services import queue_clear
from ops_ui.cli_checks import CANNOT_RUN, first_line
from ops_ui.cli_queue_control import every_queue, queue_pause, queue_resume, queue_status, reason_option, redis_client
from ops_ui.cli_queue_history import queue_failed, queue_flush, queue_forget, queue_retry
from ops_ui.cli_queues import queues_list, queues_settings
from ops_ui.errors import backend_outage
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

#: `queue health`'s exit code per status.
HEALTH_EXIT = {"healthy": 0, "warning": 1, "critical": 2}
#: Errors of the backends and services that make a command unable to run.
_CANNOT_RUN = (AppError, RedisError, SQLAlchemyError, kombu.exceptions.OperationalError)


def readable(exc: BaseException) -> str:
    """One line for an error a command cannot get past (never a driver's SQL or parameters)."""
    if isinstance(exc, AppError):
        return str(exc)
    outage = backend_outage(exc)
    detail = f" ({first_line(getattr(exc, 'orig', None) or exc)[:200]})"
    if outage is not None:
        setting = "DATABASE_URL" if outage == "the database" else "REDIS_URL"
        return f"{outage} is unreachable{detail}: check {setting} and that it is running, then try again"
    if isinstance(exc, SQLAlchemyError):
        return f"the database refused the command{detail}"
    return f"Redis refused the command{detail}"


def fail(message: str, code: int = CANNOT_RUN) -> NoReturn:
    """Print one line on stderr and exit with `code`."""
    try:
        sql().rollback()
    except Exception:  # the database may be what is down
        pass
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class QueueCommands(click.Group):
    """`flask queue`: a command that cannot run prints one line and exits 3."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # usage errors too: a bad argument
            message = exc.format_message()
            if isinstance(exc, click.UsageError):
                message = f"{message.rstrip('.')} (see {(exc.ctx or ctx).command_path} --help)"
            fail(message)
        except _CANNOT_RUN as exc:
            fail(readable(exc))


class OlderSpelling(click.Group):
    """`flask queues`: every `flask queue` command under its older name, errors as click shows them."""

    def __init__(self, newer: click.Group) -> None:
        super().__init__("queues", help="The older spelling of `flask queue`: the same commands.")
        self.newer = newer

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self.newer.list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.newer.get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _CANNOT_RUN as exc:
            raise click.ClickException(readable(exc)) from exc


queue = QueueCommands(
    "queue", help="Queues: stats, failed jobs, clear, monitor, health, pause and resume (audited as cli)."
)
queues = OlderSpelling(queue)


def on_a_terminal() -> bool:
    """Whether someone can answer a question (standard input is a terminal)."""
    return sys.stdin.isatty()


def _stats(names: Sequence[str], explicit: bool) -> list[QueueStats]:
    """Stats of `names` (every tenant); a known queue with nothing recorded shows zeros.

    Raises:
        ValidationError: an `explicit` name that is not a queue name.
        NotFound: an `explicit` name that no job, worker, limit or pause ever used.
    """
    if explicit:
        for name in names:
            check_queue_name(name)
    found = {s.queue: s for s in stats_of_queues(sql(), names, None, redis_client())}
    result = []
    for name in dict.fromkeys(names):
        if name not in found:
            if explicit and not is_known(sql(), redis_client(), app_settings(), name):
                raise NotFound(f"no queue named {name!r}: it is not consumed, configured or used by any job")
            found[name] = QueueStats(name, 0, 0, 0, 0, 0, 0.0, None, None, None, 0)
        result.append(found[name])
    return result


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: Sequence[int] = (0,)) -> None:
    """Aligned columns under a header line: the `left` columns' text to the left, figures to the right."""
    lines = [list(header), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}s" if value < 120 else (f"{value / 60:.0f}m" if value < 7200 else f"{value / 3600:.0f}h")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


@click.command("stats")
@click.argument("names", metavar="[QUEUE]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per queue (as GET /api/admin/queue/stats).")
def queue_stats(names: tuple[str, ...], as_json: bool) -> None:
    """Figures per queue: waiting, running, the last hour.

    Pending, delayed, running, broker messages, the last hour's completed and failed jobs,
    p95 runtime and the oldest ready job of each QUEUE (default: every known queue).
    """
    stats = _stats(names or every_queue(), explicit=bool(names))
    if as_json:
        for entry in stats:
            click.echo(json.dumps(entry.as_dict()))
        return
    paused = pauses.paused_queues(redis_client())
    header = ("queue", "pending", "delayed", "running", "broker", "done/h", "failed/h", "p95 run", "oldest", "state")
    _table(
        header,
        (
            (
                s.queue,
                f"{s.pending:,}",
                f"{s.delayed:,}",
                f"{s.processing:,}",
                f"{s.broker_depth:,}",
                f"{s.completed:,}",
                f"{s.failed:,}",
                _ms(s.p95_runtime_ms),
                _seconds(s.oldest_pending_age_s),
                "paused" if s.queue in paused else "running",
            )
            for s in stats
        ),
        left=(0, len(header) - 1),
    )


def _limit_of(spec: str, default: int) -> tuple[str, int]:
    """QUEUE or QUEUE:MAX_PENDING."""
    name, sep, raw = spec.partition(":")
    if not sep:
        return name, default
    if not raw.isascii() or not raw.isdigit():
        raise click.BadParameter(f"{spec!r}: MAX_PENDING must be a whole number, e.g. {name}:500", param_hint="QUEUE")
    return name, int(raw)


@click.command("monitor")
@click.argument("specs", metavar="QUEUE[:MAX_PENDING]...", nargs=-1, required=True)
@click.option(
    "--max-wait", type=click.FloatRange(min=0), default=None, help="Also over when the oldest ready job waited longer."
)
def queue_monitor(specs: tuple[str, ...], max_wait: float | None) -> None:
    """Exit 1 when a queue holds too many jobs (cron, CI).

    Exits 1 when any QUEUE holds more than MAX_PENDING waiting jobs (without :MAX_PENDING:
    CELERIAC_HEALTH_PENDING_WARNING), or, with --max-wait, its oldest ready job waited longer.
    Waiting counts the larger of the jobs recorded pending and the messages in the broker.
    """
    limits = dict(_limit_of(spec, app_settings().health.pending_warning) for spec in specs)
    over = False
    for s in _stats(list(limits), explicit=True):
        waiting = max(s.pending, s.broker_depth)
        too_many = waiting > limits[s.queue]
        too_old = max_wait is not None and (s.oldest_pending_age_s or 0) > max_wait
        over = over or too_many or too_old
        wait = f"  oldest {_seconds(s.oldest_pending_age_s)} (max {_seconds(max_wait)})" if max_wait is not None else ""
        verdict = "OVER" if too_many or too_old else "ok"
        click.echo(f"{s.queue}  pending {waiting:,} (max {limits[s.queue]:,}){wait}  {verdict}")
    if over:
        sys.exit(1)


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as GET /api/admin/queue/health).")
def queue_health(as_json: bool) -> None:
    """Overall health: exit 0 healthy, 1 warning, 2 critical.

    The verdict of GET /api/admin/queue/health, with each issue and what to do.
    """
    settings, client = app_settings(), redis_client()
    stats = dashboard.all_queue_stats(sql(), None, client)
    report = dashboard.health_report(sql(), client, settings, None, stats, list_workers(client, settings.monitoring))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"Status: {report.status}")
        for issue in report.issues:
            click.echo(f"  [{issue['level']}] {issue['subject']}: {issue['issue']}")
        if report.recommendations:
            click.echo("What to do:")
            for text in report.recommendations:
                click.echo(f"  - {text}")
    sys.exit(HEALTH_EXIT[report.status])


@click.command("clear")
@click.argument("name", metavar="QUEUE")
@click.option("--force", is_flag=True, help="Clear without asking (needed without a terminal).")
@click.option("--tenant", default=None, help="Only this tenant's jobs (default: every tenant's).")
@reason_option
def queue_clear_command(name: str, force: bool, tenant: str | None, reason: str | None) -> None:
    """Remove QUEUE's waiting jobs and cancel them.

    Removes QUEUE's messages from the broker (every priority list) and its jobs held for a
    long delay, and cancels those jobs. Shows the count first; asks to confirm on a
    terminal, and without one needs --force.
    """
    settings, client = app_settings(), redis_client()
    found = queue_clear.preview(sql(), client, name, tenant, settings.default_tenant)
    whose = f" of tenant {tenant}" if tenant else ""
    click.echo(
        f"Queue {name}: {found.messages:,} message(s){whose} waiting in the broker and {found.held:,} job(s) "
        "held for a long delay or backoff."
    )
    if not found.total:
        click.echo("Nothing to clear.")
        return
    if not force:
        if not on_a_terminal():
            fail("not confirmed: add --force to clear without a terminal", 1)
        click.confirm(f"Remove them and cancel their jobs ({found.total:,})?", abort=True)
    outcome = queue_clear.clear(
        sql(), client, backends().canceller, name, tenant, default_tenant=settings.default_tenant, reason=reason
    )
    record_cli_action(
        "queue.clear",
        "queue",
        name,
        tenant_id=tenant,
        before={"messages": found.messages, "held": found.held},
        after=outcome.as_dict(),
        reason=reason,
    )
    click.echo(outcome.message())


for _command in (
    queue_stats,
    queue_failed,
    queue_retry,
    queue_forget,
    queue_flush,
    queue_clear_command,
    queue_monitor,
    queue_health,
    queue_pause,
    queue_resume,
    queue_status,
    queues_list,
    queues_settings,
):
    queue.add_command(_command)
