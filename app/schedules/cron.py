"""Cron expressions in an IANA time zone: validation, description and run times (S2).

croniter iterates the expression over naive wall-clock times; this module maps those to
real instants in the schedule's zone, so daylight saving follows one documented policy
(docs/scheduling.md) instead of whatever the iterator or RedBeat would do:

- a wall-clock time skipped by the spring-forward gap runs once, shifted by the gap
  (02:30 on the day Berlin jumps from 02:00 to 03:00 runs at 03:30 CEST), the reading
  Python and POSIX `mktime` give a time that does not exist;
- a wall-clock time repeated by the fall-back overlap runs once, at its first occurrence,
  unless the hour field is `*`: such a schedule repeats through the day anyway and runs
  in both copies of the hour (as cronie does);
- two ticks that land on the same instant run once.

Expressions have 5 fields, or 6 with a leading seconds field (as Quartz, Spring and
cron-descriptor read them); `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` work too.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter
from croniter.croniter import CroniterError

from app.errors import ValidationError

#: The longest clock change in tzdb is two hours; this leaves room.
DST_SLACK = timedelta(hours=3)
#: Fields in a cron expression: standard, or with a leading seconds field.
FIELD_COUNTS = (5, 6)
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: A schedule must fire at least once within this many years to be accepted.
MAX_YEARS_BETWEEN_RUNS = 5


def parse_zone(name: object) -> ZoneInfo:
    """The IANA zone `name`.

    Raises:
        ValidationError: not a string naming a zone of the IANA database.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("timezone must be an IANA time zone name such as UTC or Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "America" is a folder
        raise ValidationError(
            f"timezone {name!r} is not an IANA time zone name (for example UTC, Europe/Berlin, America/New_York)"
        ) from exc


def normalize(expression: object) -> str:
    """The expression with aliases expanded and whitespace collapsed.

    Raises:
        ValidationError: not a string of 5 or 6 fields (or an alias).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("cron must be a cron expression such as '30 2 * * *'")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) not in FIELD_COUNTS:
        raise ValidationError(
            f"cron {expression!r} has {len(fields)} fields; use 5 (minute hour day-of-month month "
            "day-of-week) or 6 with a leading seconds field"
        )
    return text


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression in a zone; computes its run times."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: object, timezone: object = "UTC") -> CronSchedule:
        """Validate both parts.

        Raises:
            ValidationError: what is wrong with the expression or the zone.
        """
        zone = parse_zone(timezone)
        text = normalize(expression)
        schedule = cls(text, zone)
        try:
            croniter(text, datetime(2000, 1, 1), second_at_beginning=schedule.has_seconds)
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValidationError(f"cron {expression!r} is not valid: {_reason(exc)}") from exc
        try:
            schedule.describe()
        except Exception as exc:  # cron-descriptor raises several unrelated types
            raise ValidationError(f"cron {expression!r} is not valid: {exc}") from exc
        try:
            schedule.next_after(datetime.now(UTC))
        except CroniterError as exc:
            raise ValidationError(
                f"cron {expression!r} never fires (no run within {MAX_YEARS_BETWEEN_RUNS} years)"
            ) from exc
        return schedule

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split(" ")) == 6

    @property
    def _hour_is_star(self) -> bool:
        return self.expression.split(" ")[2 if self.has_seconds else 1] == "*"

    def describe(self) -> str:
        """Human description, e.g. "At 02:00, only on Monday"."""
        options = Options()
        options.use_24hour_time_format = True
        description: str = ExpressionDescriptor(self.expression, options).get_description()
        return description

    def next_runs(self, after: datetime, count: int = 5) -> list[datetime]:
        """The next `count` run times strictly after `after`, in the schedule's zone."""
        runs: list[datetime] = []
        for instant in self.iter_after(after):
            runs.append(instant.astimezone(self.zone))
            if len(runs) == count:
                break
        return runs

    def next_after(self, after: datetime) -> datetime:
        """The first run time strictly after `after` (UTC).

        Raises:
            CroniterError: the expression has no run within MAX_YEARS_BETWEEN_RUNS years.
        """
        return next(self.iter_after(after))

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Run times in [start, end] (UTC), oldest first, at most `limit` (the newest ones)."""
        found: list[datetime] = []
        for instant in self.iter_after(start - timedelta(microseconds=1)):
            if instant > end:
                break
            found.append(instant)
            if len(found) > limit:
                found.pop(0)
        return found

    def is_tick(self, instant: datetime) -> bool:
        """Whether `instant` is one of the schedule's run times."""
        return self.next_after(instant - timedelta(microseconds=1)) == instant.astimezone(UTC)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Run times (UTC) strictly after `after`, in order, each instant once.

        Wall-clock candidates come from croniter in increasing order; each maps to zero,
        one or two instants. An instant is final once no later candidate can map before it:
        when the candidates have passed its wall-clock time, and, right after a fall-back
        (where the wall clock goes backwards), by DST_SLACK more.
        """
        after = after.astimezone(UTC)
        start = after.astimezone(self.zone).replace(tzinfo=None)
        if (after - DST_SLACK).astimezone(self.zone).utcoffset() != after.astimezone(self.zone).utcoffset():
            # A clock change just before `after`: earlier wall times may map after it.
            start -= DST_SLACK
        candidates = croniter(
            self.expression,
            start,
            second_at_beginning=self.has_seconds,
            max_years_between_matches=MAX_YEARS_BETWEEN_RUNS,
        )
        pending: list[datetime] = []
        last: datetime | None = None
        while True:
            wall: datetime = candidates.get_next(datetime)
            for instant in self._instants(wall):
                if instant > after:
                    heapq.heappush(pending, instant)
            while pending and self._is_final(pending[0], wall):
                instant = heapq.heappop(pending)
                if instant != last:
                    last = instant
                    yield instant

    def _instants(self, wall: datetime) -> list[datetime]:
        """Real instants (UTC) for a naive wall-clock time, by the DST policy above."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        exists = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall
        if not exists:
            # In the gap: fold=0 reads it with the offset before the jump, i.e. shifted by the gap.
            return [first.astimezone(UTC)]
        if self._hour_is_star:
            return [first.astimezone(UTC), second.astimezone(UTC)]
        return [first.astimezone(UTC)]

    def _is_final(self, instant: datetime, cursor: datetime) -> bool:
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        if cursor < wall:
            return False
        before = (instant - DST_SLACK).astimezone(self.zone).utcoffset()
        after = instant.astimezone(self.zone).utcoffset()
        assert before is not None and after is not None
        if before > after:  # a fall-back shortly before: later candidates may map earlier
            return cursor >= wall + DST_SLACK
        return True


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "out of range" in text:
        return "a field is out of range (seconds and minutes 0-59, hours 0-23, days 1-31, months 1-12, weekdays 0-7)"
    return text or type(exc).__name__
