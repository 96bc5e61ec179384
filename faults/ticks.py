"""Did each schedule fire each tick of the window exactly once? (the beat-kill scenario)

Pure: a fire is mapped to its tick by the minute it was recorded in (an every-minute cron
fires a tick at most 60 s late, or the tick counts as missed; docs/scheduling.md), except
catch-up jobs, which missed-fire events name.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

MINUTE = timedelta(minutes=1)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def minute_ticks(first: datetime, last: datetime) -> list[datetime]:
    ticks = []
    tick = floor_minute(first)
    if tick < first:
        tick += MINUTE
    while tick <= last:
        ticks.append(tick)
        tick += MINUTE
    return ticks


def tick_report(
    runs: Iterable[tuple[str, str, datetime]],
    events: Iterable[dict[str, Any]],
    schedule_id: str,
    first_tick: datetime,
    last_tick: datetime,
) -> dict[str, Any]:
    """Counts for one every-minute schedule over [first_tick, last_tick]."""
    events = [e for e in events if e["schedule_id"] == schedule_id]
    catch_up = {e["job_id"] for e in events if e["kind"] == "missed" and e.get("job_id")}
    expected = minute_ticks(first_tick, last_tick)
    fires: dict[datetime, int] = {tick: 0 for tick in expected}
    for job_id, owner, created in runs:
        if owner != schedule_id or job_id in catch_up:
            continue
        tick = floor_minute(created)
        if tick in fires:
            fires[tick] += 1
    recorded_missed = {
        tick for tick in expected for e in events
        if e["kind"] == "missed" and e["tick_at"] <= tick <= e["last_tick_at"]
    }  # fmt: skip
    missing = [tick for tick, count in fires.items() if count == 0]
    return {
        "expected": len(expected),
        "once": sum(1 for count in fires.values() if count == 1),
        "twice_or_more": sum(1 for count in fires.values() if count > 1),
        "missing": len(missing),
        "missing_recorded_as_missed": sum(1 for tick in missing if tick in recorded_missed),
        "catch_up_jobs": len(catch_up),
        "missed_events": [
            {
                "first": e["tick_at"].isoformat(),
                "last": e["last_tick_at"].isoformat(),
                "count": e["count"],
                "action": e["action"],
            }
            for e in events
            if e["kind"] == "missed"
        ],  # fmt: skip
    }
