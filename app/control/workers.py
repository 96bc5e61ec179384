"""Commands to one worker (W2): shutdown, pool grow / shrink, add / cancel consumer, restart.

Status comes from the heartbeat registry (app.monitoring.workers), so an unknown or offline
worker is refused before anything is sent. Commands go out as Celery remote control to that
worker alone (`destination=[hostname]`) and wait briefly for its reply; shutdown sends no
reply by design (the worker raises WorkerShutdown), so it is "accepted". Restart needs
supervisord (app.control.supervisor): Celery's own `pool_restart` only re-forks the pool and
re-imports modules with `worker_pool_restarts` on, which Celery's docs call experimental and
which leaves the main process (and its code) as it was, so Celeriac does not use it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from app.config import Settings
from app.control import pauses, supervisor
from app.control.queues import check_queue_name, control_states
from app.errors import BackendUnavailable, Conflict, NotFound, ValidationError
from app.kernel.ports import WorkerControl
from app.monitoring.workers import OFFLINE, Heartbeat, find_worker, status_of

#: Actions of `POST /api/workers/{hostname}/{action}` (restart is an extension of API.md).
ACTIONS = ("shutdown", "pool-grow", "pool-shrink", "add-consumer", "cancel-consumer", "restart")
#: Largest pool change in one command.
MAX_POOL_STEP = 64
_REMOTE = {"pool-grow": "pool_grow", "pool-shrink": "pool_shrink", "add-consumer": "add_consumer"}


@dataclass(frozen=True)
class CommandResult:
    """What happened: "done" (the worker answered) or "accepted" (it acts after answering)."""

    hostname: str
    action: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_n(raw: Any) -> int:
    """`n` of pool-grow / pool-shrink: a whole number from 1 to MAX_POOL_STEP (default 1)."""
    if raw is None:
        return 1
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_POOL_STEP:
        raise ValidationError(f"n must be a whole number from 1 to {MAX_POOL_STEP}, got {raw!r}")
    return raw


def parse_queue(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("queue is required: the name of a queue")
    check_queue_name(raw.strip())
    return raw.strip()


def online_worker(redis: Any, settings: Settings, hostname: str) -> Heartbeat:
    """The worker's last heartbeat, if it is online.

    Raises:
        NotFound: no such worker in the registry. Conflict: it is offline.
    """
    beat = find_worker(redis, hostname)
    if beat is None:
        raise NotFound(f"no worker named {hostname!r}; see GET /api/admin/queue/workers")
    if status_of(beat, settings.monitoring, time.time()) == OFFLINE:
        raise Conflict(f"worker {hostname} is offline (no heartbeat); start it before sending it commands")
    return beat


def _remote(control: WorkerControl, settings: Settings, hostname: str, command: str, arguments: dict[str, Any]) -> str:
    timeout = settings.control_reply_timeout_s
    for reply in control.command(hostname, command, arguments, timeout):
        answer = reply.get(hostname) if isinstance(reply, dict) else None
        if isinstance(answer, dict):
            if "error" in answer:
                raise Conflict(f"worker {hostname} refused {command}: {answer['error']}")
            return str(answer.get("ok", "done"))
    raise BackendUnavailable(
        f"worker {hostname} did not answer {command} within {timeout} s (busy main process or broker trouble); "
        "it may still apply it, check its status"
    )


def run_command(
    redis: Any,
    control: WorkerControl,
    settings: Settings,
    hostname: str,
    action: str,
    body: dict[str, Any],
    wait: bool = False,
) -> CommandResult:
    """Validate and send `action` to the online worker `hostname` (`wait`: restart before returning).

    Raises:
        NotFound: unknown action or worker. Conflict: offline worker, a refusal, or restart
        without supervisord. ValidationError: bad n or queue. BackendUnavailable: no reply.
    """
    if action not in ACTIONS:
        raise NotFound(f"no worker action {action!r}; one of {', '.join(ACTIONS)}")
    # Validate the body before looking the worker up: bad input changes nothing either way.
    n = parse_n(body.get("n")) if action in ("pool-grow", "pool-shrink") else None
    queue = parse_queue(body.get("queue")) if action in ("add-consumer", "cancel-consumer") else None
    beat = online_worker(redis, settings, hostname)
    if action == "shutdown":
        control.shutdown(hostname)
        return CommandResult(hostname, action, "accepted", "warm shutdown: running tasks finish first")
    if action == "restart":
        return _restart(redis, settings, beat, wait)
    if action == "cancel-consumer":
        assert queue is not None
        if queue not in beat.queues:
            consumed = ", ".join(beat.queues) or "nothing"
            raise ValidationError(f"worker {hostname} does not consume {queue!r}; it consumes {consumed}")
        return CommandResult(
            hostname, action, "done", _remote(control, settings, hostname, "cancel_consumer", {"queue": queue})
        )
    if action == "add-consumer":
        assert queue is not None
        detail = _remote(control, settings, hostname, "add_consumer", {"queue": queue, "exchange_type": "direct"})
        if pauses.is_paused(redis, queue):
            detail += f"; queue {queue} is paused, so the worker starts fetching from it once it is resumed"
        return CommandResult(hostname, action, "done", detail)
    return CommandResult(hostname, action, "done", _remote(control, settings, hostname, _REMOTE[action], {"n": n}))


def supervisor_program(redis: Any, settings: Settings, hostname: str) -> tuple[supervisor.Supervisor, str]:
    """The supervisord client and program name that run `hostname`.

    Raises:
        Conflict: no CELERIAC_SUPERVISOR_URL, or the worker does not run under supervisord.
    """
    if not settings.supervisor_url:
        raise Conflict(
            "restart needs supervisord: set CELERIAC_SUPERVISOR_URL to its XML-RPC URL (docs/workers.md); "
            "without it, shut the worker down and start it again with the tool that runs it"
        )
    state = control_states(redis).get(hostname) or {}
    program = (state.get("supervisor") or {}).get("name")
    if not program:
        raise Conflict(f"worker {hostname} does not run under supervisord; restart it with the tool that started it")
    url = supervisor.url_for_machine(settings.supervisor_url, state.get("machine"))
    if url is None:
        raise Conflict(f"CELERIAC_SUPERVISOR_URL names no supervisord for machine {state.get('machine')!r}")
    return supervisor.Supervisor(url), str(program)


def _restart(redis: Any, settings: Settings, beat: Heartbeat, wait: bool) -> CommandResult:
    hostname = beat.hostname
    client, program = supervisor_program(redis, settings, hostname)
    info = client.info(program)  # reachable, and the program exists, before answering
    if int(info.get("pid") or 0) != beat.pid:
        raise Conflict(
            f"supervisord's {program} runs pid {info.get('pid')}, but worker {hostname} is pid {beat.pid}: "
            "CELERIAC_SUPERVISOR_URL points at another machine's supervisord"
        )
    if wait:
        pid = client.restart(program)
        return CommandResult(
            hostname, "restart", "done", f"supervisord restarted {program}: pid {info.get('pid')} -> {pid}"
        )
    client.restart_later(program)
    return CommandResult(
        hostname,
        "restart",
        "accepted",
        f"supervisord restarts {program} (pid {info.get('pid')}) after its running tasks",
    )
