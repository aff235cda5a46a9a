"""Time for the simulator: the evidence span, the office calendar, and the time formats Windows logs use.

The span (first instant of evidence, collection instant) belongs to a scenario: most are collected on
2023-03-30 (`DEFAULT_SPAN`), when the compromise became public; an "aftermath" collection weeks later
needs its own. Every instant is UTC, built from the constants below and a seeded `random.Random`, never from the wall
clock, so two runs with the same arguments write the same bytes. Instants carry whole milliseconds only,
because that is the resolution of Sysmon's `UtcTime` and of Winlogbeat's `@timestamp`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum

UTC = timezone.utc

#: First instant of evidence (the oldest record still in the logs).
EVIDENCE_START = datetime(2022, 11, 1, tzinfo=UTC)
#: When the logs of the default span were collected; no event is at or after this instant.
COLLECTION_END = datetime(2023, 3, 30, 18, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Span:
    """The evidence of one collection: from `start` (the oldest record kept) up to `end` (excluded),
    the instant the logs were collected."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"empty evidence span {self.start}..{self.end}")

    def __contains__(self, ts: datetime) -> bool:
        return self.start <= ts < self.end


#: The span of the scenarios collected when the compromise became public.
DEFAULT_SPAN = Span(EVIDENCE_START, COLLECTION_END)

#: The office is closed and the machines are off (no event at all) on these days, inclusive.
CHRISTMAS_BREAK = (date(2022, 12, 24), date(2022, 12, 27))
#: French public holidays in the span: machines stay on, nobody works (like a weekend).
PUBLIC_HOLIDAYS = frozenset({
    date(2022, 11, 1), date(2022, 11, 11), date(2022, 12, 25), date(2023, 1, 1),
    date(2023, 4, 10), date(2023, 5, 1), date(2023, 5, 8),  # Easter Monday, Labour Day, Victory in Europe Day
})


class DayKind(Enum):
    """What a calendar day looks like in the logs."""

    WORK = "work"  # a user session plus background activity
    QUIET = "quiet"  # weekend or holiday: background activity only
    OFF = "off"  # machines off: nothing at all (record ids still continue the next day)


def calendar(span: Span = DEFAULT_SPAN) -> list[date]:
    """Every day of the evidence span, in order."""
    first, last = span.start.date(), span.end.date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_kind(day: date) -> DayKind:
    """Classify a day; the one place that knows the office's calendar."""
    if CHRISTMAS_BREAK[0] <= day <= CHRISTMAS_BREAK[1]:
        return DayKind.OFF
    if day.weekday() >= 5 or day in PUBLIC_HOLIDAYS:
        return DayKind.QUIET
    return DayKind.WORK


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def paris_offset(day: date) -> timedelta:
    """UTC offset of Paris on that day (EU rule: summer time from the last Sunday of March to that of October).

    People start work at local 08:30; getting this right moves the whole day by an hour on 2023-03-26, as
    in real logs.
    """
    summer = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
    return timedelta(hours=2 if summer else 1)


def local(day: date, hours: float) -> datetime:
    """The UTC instant of local Paris time `hours` after midnight of `day` (whole milliseconds)."""
    ms = round(hours * 3_600_000)
    return datetime.combine(day, time(), UTC) + timedelta(milliseconds=ms) - paris_offset(day)


def day_bounds(day: date, span: Span = DEFAULT_SPAN) -> tuple[datetime, datetime]:
    """UTC start and end of a calendar day, cut to the evidence span."""
    start = datetime.combine(day, time(), UTC)
    return max(start, span.start), min(start + timedelta(days=1), span.end)


def between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A random instant in [start, end), whole milliseconds."""
    span = int((end - start) / timedelta(milliseconds=1))
    return start + timedelta(milliseconds=rng.randrange(max(1, span)))


def after(rng: random.Random, ts: datetime, low_s: float, high_s: float) -> datetime:
    """A random instant between `low_s` and `high_s` seconds after `ts`, whole milliseconds."""
    return ts + timedelta(milliseconds=rng.randrange(round(low_s * 1000), round(high_s * 1000) + 1))


def floor_second(ts: datetime) -> datetime:
    return ts.replace(microsecond=0)


def early_in_second(rng: random.Random, ts: datetime) -> datetime:
    """`ts` moved to the first half of its second, so follow-up events a few hundred ms later share it.

    The ground truth promises that a trojanized process start and its ffmpeg.dll load fall in the same
    second.
    """
    return floor_second(ts) + timedelta(milliseconds=rng.randrange(500))


def iso_ms(ts: datetime) -> str:
    """`2023-03-25T08:12:03.120Z`: Winlogbeat's `@timestamp`."""
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


def iso_s(ts: datetime) -> str:
    """`2023-03-25T08:12:03Z`: the ground truth's resolution."""
    return f"{ts:%Y-%m-%dT%H:%M:%S}Z"


def sysmon_time(ts: datetime) -> str:
    """`2023-03-25 08:12:03.120`: Sysmon's `UtcTime` and `CreationUtcTime`."""
    return f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d}"
