"""Settings of how long the job statistics keep each resolution (issue 15). Read by app.config only.

Minute rows are rolled up into hours, hours into days (app.kernel.stats_rollup, run by
retention); days go after `keep_days`. /metrics' counters are running totals, untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.config_parsing import ConfigError, env_int

#: Readers of the last day at minute resolution (the dashboard's day chart, the queues
#: used in the last day) need the minute rows of at least a day.
MIN_HOURLY_AFTER_H = 24


@dataclass(frozen=True)
class StatsRetention:
    """When per-minute stats become hourly, hourly become daily, and daily ones go."""

    #: CELERIAC_STATS_HOURLY_AFTER_HOURS: minute rows older than this are added up by hour.
    hourly_after_h: int = 48
    #: CELERIAC_STATS_DAILY_AFTER_DAYS: hour rows older than this are added up by day.
    daily_after_days: int = 60
    #: CELERIAC_STATS_RETENTION_DAYS: day rows older than this are deleted (0: kept forever).
    keep_days: int = 400


def stats_retention(environ: Mapping[str, str]) -> StatsRetention:
    """The resolutions' ages from the environment.

    Raises:
        ConfigError: a value out of range, or the resolutions out of order.
    """
    found = StatsRetention(
        hourly_after_h=env_int(environ, "CELERIAC_STATS_HOURLY_AFTER_HOURS", 48, MIN_HOURLY_AFTER_H),
        daily_after_days=env_int(environ, "CELERIAC_STATS_DAILY_AFTER_DAYS", 60, 1),
        keep_days=env_int(environ, "CELERIAC_STATS_RETENTION_DAYS", 400, 0),
    )
    if found.daily_after_days * 24 <= found.hourly_after_h:
        raise ConfigError("CELERIAC_STATS_DAILY_AFTER_DAYS must come after CELERIAC_STATS_HOURLY_AFTER_HOURS")
    if found.keep_days and found.keep_days < found.daily_after_days:
        raise ConfigError(
            "CELERIAC_STATS_RETENTION_DAYS must be 0 (forever) or at least CELERIAC_STATS_DAILY_AFTER_DAYS"
        )
    return found
