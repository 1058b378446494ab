"""Five-field cron expressions, in UTC: which minutes a schedule fires on.

The fields are minute (0-59), hour (0-23), day of month (1-31), month
(1-12) and day of week (0-6, Sunday is 0; 7 also means Sunday). Each field
is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a
comma-separated list of those. As in classic cron, when both day fields
are restricted a day matches if either does. ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``)
are shorthands. Month and day names are not accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["CronExpression"]

SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)

# A matching minute exists within any 366 * 24 hours for every valid
# expression except impossible dates (February 30th): stop looking then.
_SEARCH_DAYS = 366 * 5


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron {name}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise ValueError(f"cron {name}: bad range {part!r}")
            start, end = int(first), int(last)
        elif base.isdigit():
            start = int(base)
            end = high if step_text else start
        else:
            raise ValueError(f"cron {name}: {part!r} is not a number, range or '*'")
        if not low <= start <= end <= high:
            raise ValueError(
                f"cron {name}: {part!r} is outside {low}-{high} or runs backwards"
            )
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; :meth:`parse` builds one from text."""

    text: str
    """The expression as given."""
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """Days of the week, Monday 0 (Python's numbering, converted from cron's)."""
    any_day: bool
    """The day-of-month field was ``*``."""
    any_weekday: bool
    """The day-of-week field was ``*``."""

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse five fields or a shorthand.

        Raises:
            ValueError: the expression is malformed.
        """
        if not isinstance(text, str):
            raise TypeError("a cron expression is a string")
        expanded = SHORTHANDS.get(text.strip().lower(), text)
        fields = expanded.split()
        if len(fields) != 5:
            raise ValueError(
                f"cron expression {text!r} needs five fields (minute hour "
                "day-of-month month day-of-week) or a shorthand like @daily"
            )
        parsed = [
            _parse_field(field, name, low, high)
            for field, (name, low, high) in zip(fields, _FIELDS, strict=True)
        ]
        # cron counts Sunday as 0 (or 7); Python's weekday() has Monday 0.
        weekdays = frozenset((day - 1) % 7 for day in parsed[4])
        return cls(
            text=text,
            minutes=parsed[0],
            hours=parsed[1],
            days=parsed[2],
            months=parsed[3],
            weekdays=weekdays,
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        by_date = moment.day in self.days
        by_weekday = moment.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def matches(self, moment: datetime) -> bool:
        """True when the minute of ``moment`` (UTC) is a slot."""
        moment = moment.astimezone(UTC)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and self._day_matches(moment)
        )

    def next_after(self, epoch_seconds: float) -> float:
        """The first slot strictly after ``epoch_seconds``, in epoch seconds.

        Raises:
            ValueError: no date matches (like the 30th of February).
        """
        start = datetime.fromtimestamp(epoch_seconds, UTC).replace(
            second=0, microsecond=0
        ) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for offset in range(_SEARCH_DAYS):
            candidate_day = day + timedelta(days=offset)
            if not self._day_matches(candidate_day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    moment = candidate_day.replace(hour=hour, minute=minute)
                    if moment >= start:
                        return moment.timestamp()
        raise ValueError(f"cron expression {self.text!r} matches no date")

    def at_or_before(self, epoch_seconds: float) -> float | None:
        """The last slot at or before ``epoch_seconds``, if one exists."""
        end = datetime.fromtimestamp(epoch_seconds, UTC).replace(
            second=0, microsecond=0
        )
        day = end.replace(hour=0, minute=0)
        for offset in range(_SEARCH_DAYS):
            candidate_day = day - timedelta(days=offset)
            if not self._day_matches(candidate_day):
                continue
            for hour in sorted(self.hours, reverse=True):
                for minute in sorted(self.minutes, reverse=True):
                    moment = candidate_day.replace(hour=hour, minute=minute)
                    if moment <= end:
                        return moment.timestamp()
        return None
