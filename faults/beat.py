"""The beat-kill scenario: every-minute schedules, beat SIGKILLed just before a tick and
restarted; did every tick of the window fire exactly once (docs/scheduling.md, missed fires)?
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from faults.ledger import LedgerReader
from faults.procs import wait_until
from faults.run import Run
from faults.stack import wait_seconds
from faults.ticks import floor_minute, tick_report
from faults.verdict import Accepted, judge, recovery_seconds

#: Schedules of the beat scenario: (name, missed_fire_policy).
BEAT_SCHEDULES = (("faults-skip-a", "skip"), ("faults-skip-b", "skip"), ("faults-run-once", "run_once"))
#: The kill lands this many seconds before a tick (RedBeat's lock then delays the new beat past it).
BEAT_KILL_BEFORE_TICK_S = 8
#: Ticks watched after the one the kill straddles, and the grace for their fires to land.
BEAT_TICKS_AFTER = 2
BEAT_FIRE_GRACE_S = 20


def beat_kill(run: Run) -> None:
    """Every-minute schedules; beat SIGKILLed 8 s before a tick, restarted 2 s later; every tick of
    the window must fire exactly once (or be handled by its missed-fire policy)."""
    run.begin()
    stack = run.stack
    assert run.observer is not None
    ids: dict[str, str] = {}
    for name, policy in BEAT_SCHEDULES:
        body = {
            "job_class": "faults.probe", "cron": "* * * * *", "timezone": "UTC", "payload": {"seconds": 0.2},
            "name": name, "missed_fire_policy": policy,
        }  # fmt: skip
        ids[stack.api("POST", "/api/schedules", body, token=stack.admin_token)["id"]] = policy
    created = datetime.now(UTC)
    observer = run.observer
    wait_until(
        lambda: {s for _, s, _ in observer.schedule_runs()} >= set(ids), 90 + BEAT_FIRE_GRACE_S, "the first fires"
    )
    first_tick = floor_minute(min(c for _, _, c in observer.schedule_runs()))
    now = datetime.now(UTC)
    tick = floor_minute(now) + timedelta(minutes=1)
    while (tick - now).total_seconds() < BEAT_KILL_BEFORE_TICK_S + 3:
        tick += timedelta(minutes=1)
    wait_seconds((tick - timedelta(seconds=BEAT_KILL_BEFORE_TICK_S) - datetime.now(UTC)).total_seconds())
    stack.supervisor.kill("beat")
    wait_seconds(2)
    run.fault_end = stack.supervisor.restart("beat")
    last_tick = tick + timedelta(minutes=BEAT_TICKS_AFTER)
    recovered_at = _beat_recovery(run, set(ids), tick, until=last_tick + timedelta(seconds=BEAT_FIRE_GRACE_S))
    for schedule_id in ids:
        stack.api("PATCH", f"/api/schedules/{schedule_id}", {"active": False}, token=stack.admin_token)
    run.outcome.fault = f"beat SIGKILLed {BEAT_KILL_BEFORE_TICK_S} s before the {tick:%H:%M} tick, restarted 2 s later"
    runs = observer.schedule_runs()
    events = observer.schedule_events()
    report = {}
    for schedule_id, policy in ids.items():
        counts = tick_report(runs, events, schedule_id, first_tick, last_tick)
        counts["policy"] = policy
        report[schedule_id] = counts
        run.note(
            f"schedule {schedule_id[:8]} ({policy}): {counts['expected']} ticks {first_tick:%H:%M}-{last_tick:%H:%M}, "
            f"fired once {counts['once']}, twice+ {counts['twice_or_more']}, not fired {counts['missing']} "
            f"(recorded missed {counts['missing_recorded_as_missed']}), catch-up jobs {counts['catch_up_jobs']}"
        )
    run.outcome.extra["ticks"] = report
    run.outcome.extra["schedules_created_at"] = created.isoformat()

    def accepted() -> list[Accepted]:
        return [Accepted(job_id) for job_id, _, _ in observer.schedule_runs()]

    run.outcome.load = {"dispatched": len(runs), "note": "jobs fired by the schedules (no other load)"}
    run.finish(accepted)
    # Recovery here is "the tick the kill straddled has fired, and every fired job's row is right",
    # watched while beat ran again (finish() only starts after the observation window).
    verdict = run.outcome.verdict
    right = verdict is not None and verdict.all_right
    run.outcome.recover_s = recovery_seconds(run.fault_end, recovered_at) if right else None


def _beat_recovery(run: Run, schedule_ids: set[str], tick: datetime, until: datetime) -> float | None:
    """Poll until `until`; the first moment (monotonic) every schedule had fired `tick` (or later)
    and the rows of every fire up to that tick were terminal and right, if that state lasted."""
    assert run.observer is not None
    reader = LedgerReader(run.stack.ledger_path)
    recovered_at = None
    while datetime.now(UTC) < until:
        try:
            runs = run.observer.schedule_runs()
            rows = run.observer.rows()
        except SQLAlchemyError:
            runs, rows = [], {}
        fired = {schedule for _, schedule, created in runs if floor_minute(created) >= tick}
        # Fires of later ticks are pending for a moment: they do not belong to this recovery.
        upto = [Accepted(job_id) for job_id, _, created in runs if floor_minute(created) <= tick]
        right = fired >= schedule_ids and judge(upto, rows, reader.refresh(), set()).all_right
        if not right:
            recovered_at = None
        elif recovered_at is None:
            recovered_at = time.monotonic()
        time.sleep(1.0)
    return recovered_at
