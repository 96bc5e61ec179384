"""The scenarios of issue 11: each starts a fresh stack, puts load on it, injects one fault,
then waits (with a deadline) for the rows to settle and judges them against the ledger.

The timeline is in seconds since the load started (`Run.at`); faults are timed so they land
while jobs are queued and running.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from faults.beat import beat_kill
from faults.observe import broker_backlog
from faults.run import Options, Outcome, Run
from faults.stack import Stack, wait_seconds

logger = logging.getLogger("faults")

#: Jobs queued in Redis when the Redis faults strike (issue 11: "300 jobs queued").
QUEUED_AT_REDIS_FAULT = 300


# -- the scenarios -------------------------------------------------------------------------


def child_kills(run: Run) -> None:
    """20 SIGKILLs of prefork pool children, one every 2 s, during the load; worker left running."""
    run.begin()
    run.start_load(min_window_s=45)
    kills = 0
    for k in range(20):
        run.at(4 + 2 * k)
        children = run.stack.worker_children()
        if not children:
            run.note(f"kill {k + 1}: the worker had no pool child at that moment")
            continue
        pid = run.rng.choice(children)
        try:
            run.killed(pid)
            os.kill(pid, signal.SIGKILL)
            kills += 1
            logger.info("[child-kills] kill %d: pool child %d at t=%.1f s", k + 1, pid, run.t())
        except ProcessLookupError:
            run.note(f"kill {k + 1}: child {pid} had already exited")
        run.fault_end = time.monotonic()
    run.outcome.fault = f"{kills} SIGKILLs of pool children, every 2 s from t=4 s"


def _kill_and_restart(run: Run, name: str, gap_s: float = 2.0) -> None:
    run.struck_wall = time.time()
    if name == "worker":
        run.killed()
    run.stack.supervisor.kill(name)
    struck = run.t()
    wait_seconds(gap_s)
    run.fault_end = run.stack.supervisor.restart(name)
    run.outcome.fault = f"{name} SIGKILLed at t={struck:.0f} s, restarted {gap_s:.0f} s later"


def worker_kill(run: Run) -> None:
    """SIGKILL the worker's main process and pool children at once; a new worker starts 2 s later
    with the same command and hostname (as supervisord restarts it on the same machine)."""
    run.begin()
    window = run.start_load(min_window_s=40)
    run.at(window / 2)
    _kill_and_restart(run, "worker")
    ready_from = time.monotonic()
    run.stack.wait_worker_ready()
    run.note(f"the new worker (same hostname) was ready {time.monotonic() - ready_from:.1f} s after its start")


def recorder_kill(run: Run) -> None:
    """SIGKILL the recorder mid-load; restart it 2 s later."""
    run.begin()
    window = run.start_load(min_window_s=40)
    run.at(window / 2)
    _kill_and_restart(run, "recorder")


def _wait_for_backlog(run: Run, until_t: float) -> int | None:
    """Wait until QUEUED_AT_REDIS_FAULT jobs are queued (or `until_t`); returns the depth seen."""
    queued: int | None = None
    while run.t() < until_t:
        queued = broker_backlog(run.stack.redis.url)["queued"]
        if queued is not None and queued >= QUEUED_AT_REDIS_FAULT:
            break
        time.sleep(0.2)
    return queued


def _redis_restart(run: Run, keep_data: bool) -> None:
    run.begin(redis_persist=keep_data)
    window = run.start_load(min_window_s=40)
    run.at(5)
    queued = _wait_for_backlog(run, until_t=window * 0.8)
    backlog = broker_backlog(run.stack.redis.url)
    run.struck_wall = time.time()
    run.stack.supervisor.kill("redis")
    struck = run.t()
    run.fault_end = run.stack.restart_redis(keep_data=keep_data)
    kind = "with its data (AOF everysec)" if keep_data else "empty (no AOF, no RDB)"
    run.outcome.fault = f"Redis SIGKILLed at t={struck:.0f} s with {queued} jobs queued, restarted {kind}"
    run.note(f"at the kill: {backlog['queued']} queued, {backlog['unacked']} delivered and unacknowledged")


def redis_restart_with_data(run: Run) -> None:
    """Redis with AOF everysec SIGKILLed mid-load (300+ queued) and restarted on the same port."""
    _redis_restart(run, keep_data=True)


def redis_restart_without_data(run: Run) -> None:
    """Redis without persistence restarted empty with 300+ jobs queued."""
    _redis_restart(run, keep_data=False)


def redis_outage(run: Run) -> None:
    """Redis stopped (SIGTERM: a clean shutdown) for 30 s and restarted with its data; dispatching goes on."""
    run.begin()
    run.start_load(min_window_s=75)
    run.at(15)
    run.struck_wall = time.time()
    run.stack.supervisor.kill("redis", signal.SIGTERM)
    run.at(45)
    run.fault_end = run.stack.restart_redis(keep_data=True)
    run.outcome.fault = "Redis stopped at t=15 s, started again with its data at t=45 s"


def sql_outage(run: Run) -> None:
    """The SQL database unavailable for 60 s under load, then back."""
    run.begin()
    run.start_load(min_window_s=100)
    run.at(15)
    run.struck_wall = time.time()
    if run.stack.pg is not None:
        run.stack.pg.stop("immediate")
        run.at(75)
        run.stack.pg.start()
        run.fault_end = time.monotonic()
        run.outcome.fault = "PostgreSQL stopped (pg_ctl -m immediate) at t=15 s, started at t=75 s"
        return
    lock = run.stack.sqlite_lock()
    lock.acquire()
    try:
        run.at(75)
    finally:
        lock.release()
    run.fault_end = time.monotonic()
    run.outcome.fault = "EMULATED on SQLite: write lock held (BEGIN EXCLUSIVE) from t=15 s to t=75 s"
    run.note(
        "SQLite has no server to stop: the harness held its write lock for 60 s, so writers got "
        "'database is locked' while readers (WAL) kept reading. Not the same fault as a server outage."
    )


#: Every scenario, in the order `make faults` runs them.
SCENARIOS: dict[str, Callable[[Run], None]] = {
    "child-kills": child_kills,
    "worker-kill": worker_kill,
    "recorder-kill": recorder_kill,
    "redis-restart-with-data": redis_restart_with_data,
    "redis-restart-without-data": redis_restart_without_data,
    "redis-outage": redis_outage,
    "sql-outage": sql_outage,
    "beat-kill": beat_kill,
}


def run_scenario(stack: Stack, options: Options, name: str) -> Outcome:
    """Run one scenario; a harness failure is reported in the outcome, not raised."""
    run = Run(stack, options, name)
    try:
        SCENARIOS[name](run)
        if run.outcome.verdict is None:
            run.finish()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the suite goes on with the next scenario and reports this one failed
        logger.exception("scenario %s failed in the harness", name)
        run.outcome.error = f"{type(exc).__name__}: {exc}"
        if run.load is not None:
            run.load.stop()
    finally:
        run.outcome.seconds = time.monotonic() - run.began
    return run.outcome
