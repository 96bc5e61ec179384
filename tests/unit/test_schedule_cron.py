"""Cron validation, descriptions and run times in IANA zones, DST policy included (S2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import ValidationError
from app.schedules.cron import CronSchedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local_runs(cron: str, zone: str, after: datetime, count: int) -> list[str]:
    return [run.isoformat() for run in CronSchedule.parse(cron, zone).next_runs(after, count)]


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("61 * * * *", "UTC", "out of range"),
        ("* * 32 * *", "UTC", "out of range"),
        ("* * *", "UTC", "has 3 fields"),
        ("0 0 * * * * *", "UTC", "has 7 fields"),
        ("", "UTC", "cron must be"),
        ("every day", "UTC", "has 2 fields"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 2 * * *", "Mars/Olympus_Mons", "not an IANA time zone"),
        ("0 2 * * *", "", "IANA time zone"),
        ("0 2 * * *", "../../etc/passwd", "not an IANA time zone"),
    ],
)
def test_invalid_expressions_and_zones_say_what_is_wrong(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CronSchedule.parse(cron, zone)


def test_non_string_input_is_refused() -> None:
    with pytest.raises(ValidationError):
        CronSchedule.parse(5, "UTC")
    with pytest.raises(ValidationError):
        CronSchedule.parse("0 2 * * *", None)


@pytest.mark.parametrize(
    ("cron", "description"),
    [
        ("0 2 * * 1", "At 02:00, only on Monday"),
        ("30 2 * * *", "At 02:30"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 9 * * MON-FRI", "At 09:00, Monday through Friday"),
        ("*/5 * * * * *", "Every 5 seconds"),
        ("@daily", "At 00:00"),
    ],
)
def test_descriptions_are_human(cron: str, description: str) -> None:
    assert CronSchedule.parse(cron).describe() == description


def test_next_runs_are_in_the_schedules_zone() -> None:
    assert local_runs("0 9 * * MON-FRI", "America/New_York", utc(2024, 6, 7, 14, 0), 3) == [
        "2024-06-10T09:00:00-04:00",
        "2024-06-11T09:00:00-04:00",
        "2024-06-12T09:00:00-04:00",
    ]


def test_seconds_field_and_aliases() -> None:
    schedule = CronSchedule.parse("*/20 * * * * *")
    assert schedule.has_seconds
    assert schedule.next_runs(utc(2024, 1, 1, 0, 0, 5), 3) == [
        utc(2024, 1, 1, 0, 0, 20),
        utc(2024, 1, 1, 0, 0, 40),
        utc(2024, 1, 1, 0, 1, 0),
    ]
    assert CronSchedule.parse("@hourly").next_after(utc(2024, 1, 1, 0, 30)) == utc(2024, 1, 1, 1, 0)


@pytest.mark.parametrize(
    ("zone", "spring_day", "fall_day", "spring_run", "fall_run"),
    [
        # Berlin: 02:00 -> 03:00 on 31 March, 03:00 -> 02:00 on 27 October 2024
        ("Europe/Berlin", (2024, 3, 31), (2024, 10, 27), "2024-03-31T03:30:00+02:00", "2024-10-27T02:30:00+02:00"),
        # New York: 02:00 -> 03:00 on 10 March, 02:00 -> 01:00 on 3 November 2024
        (
            "America/New_York",
            (2024, 3, 10),
            (2024, 11, 3),
            "2024-03-10T03:30:00-04:00",
            "2024-11-03T02:30:00-05:00",
        ),
    ],
)
def test_daily_0230_runs_once_on_both_transition_days(
    zone: str, spring_day: tuple[int, int, int], fall_day: tuple[int, int, int], spring_run: str, fall_run: str
) -> None:
    for day, expected in ((spring_day, spring_run), (fall_day, fall_run)):
        start = utc(*day) - timedelta(days=1)
        runs = CronSchedule.parse("30 2 * * *", zone).next_runs(start, 3)
        on_day = [run for run in runs if run.date() == datetime(*day).date()]
        assert [run.isoformat() for run in on_day] == [expected]
        # and the days around it run at 02:30 local as usual
        assert [run.strftime("%H:%M") for run in runs] == ["02:30", on_day[0].strftime("%H:%M"), "02:30"]


def test_a_time_repeated_by_fall_back_runs_at_its_first_occurrence() -> None:
    # New York repeats 01:00-02:00 on 3 November 2024 (EDT, then EST)
    assert local_runs("30 1 * * *", "America/New_York", utc(2024, 11, 2, 12), 2) == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_an_hour_star_schedule_runs_through_both_copies_of_the_repeated_hour() -> None:
    runs = local_runs("*/30 * * * *", "Europe/Berlin", utc(2024, 10, 26, 23, 45), 6)
    assert runs == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]


def test_ticks_in_the_spring_gap_collapse_onto_existing_times() -> None:
    # 02:00 and 02:30 do not exist on 31 March 2024 in Berlin: they run 1 h later, once each instant
    runs = CronSchedule.parse("*/30 * * * *", "Europe/Berlin").next_runs(utc(2024, 3, 31, 0, 15), 4)
    assert [run.isoformat() for run in runs] == [
        "2024-03-31T01:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:30:00+02:00",
        "2024-03-31T04:00:00+02:00",
    ]
    real = [run.astimezone(UTC) for run in runs]  # same-zone subtraction would use wall time
    assert {b - a for a, b in zip(real, real[1:], strict=False)} == {timedelta(minutes=30)}


def test_utc_instants_stay_ordered_across_a_whole_year_of_transitions() -> None:
    schedule = CronSchedule.parse("0 */6 * * *", "Australia/Lord_Howe")  # a 30-minute DST shift
    runs = schedule.next_runs(utc(2024, 1, 1), 4 * 366)
    assert runs == sorted(runs) and len(set(runs)) == len(runs)


def test_between_and_is_tick() -> None:
    schedule = CronSchedule.parse("0 * * * *", "Europe/Berlin")
    ticks = schedule.between(utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 3, 0), limit=10)
    assert ticks == [utc(2024, 1, 1, h) for h in range(4)]
    assert schedule.between(utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 3, 0), limit=2) == ticks[-2:]
    assert schedule.is_tick(utc(2024, 1, 1, 5)) and not schedule.is_tick(utc(2024, 1, 1, 5, 1))
