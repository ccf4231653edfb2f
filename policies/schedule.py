"""An MSP's business hours and the end of the after-hours shift: pure, in the MSP's time zone.

`shift_end(schedule, at)` is the next instant after `at` at which business hours begin: the MSP
takes the incident back. Local times are resolved in the schedule's IANA zone: a start that does
not exist (a spring-forward gap) begins when the clock jumps past it; a start that occurs twice
(a fall-back overlap) begins at its first occurrence. Results are UTC.
"""

from __future__ import annotations

import enum
import functools
import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec

__all__ = ["BusinessHours", "Weekday", "is_open", "shift_end", "zone_of"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_SEARCH_DAYS = 15  # a week of closures plus holidays around it; beyond that: no shift end


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_DAYS = list(Weekday)
TimeRange = Annotated[list[str], msgspec.Meta(min_length=2, max_length=2)]


class BusinessHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Weekly opening ranges (`"08:00"`-`"18:00"`, several a day, `"24:00"` ends a day) and
    holidays (local dates with no business hours at all)."""

    time_zone: str
    weekly: dict[Weekday, list[TimeRange]] = msgspec.field(default_factory=dict)
    holidays: list[date] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        zone_of(self.time_zone)
        if len(self.holidays) > 400:
            raise ValueError("at most 400 holidays")
        for day, ranges in self.weekly.items():
            if len(ranges) > 8:
                raise ValueError(f"{day}: at most 8 ranges a day")
            parsed = sorted(_range(day, start, end) for start, end in ranges)
            for (_, first_end), (second_start, _) in itertools.pairwise(parsed):
                if second_start < first_end:
                    raise ValueError(f"{day}: ranges overlap")

    def ranges_on(self, day: date) -> list[tuple[int, int]]:
        """Open ranges of a local date, in minutes since midnight; none on a holiday."""
        if day in self._holiday_set:
            return []
        ranges = self.weekly.get(_DAYS[day.weekday()], [])
        return sorted(_range(_DAYS[day.weekday()], start, end) for start, end in ranges)

    @property
    def _holiday_set(self) -> frozenset[date]:
        return frozenset(self.holidays)


@functools.lru_cache(maxsize=512)
def zone_of(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _minutes(day: Weekday, text: str) -> int:
    if not _HHMM.match(text):
        raise ValueError(f"{day}: {text!r} is not a time HH:MM (00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _range(day: Weekday, start: str, end: str) -> tuple[int, int]:
    low, high = _minutes(day, start), _minutes(day, end)
    if low >= high:
        raise ValueError(f"{day}: a range must end after it starts ({start}-{end})")
    return low, high


def is_open(schedule: BusinessHours, instant: datetime) -> bool:
    """Whether business hours are on at `instant` (an aware datetime)."""
    local = instant.astimezone(zone_of(schedule.time_zone))
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    return any(low <= minute < high for low, high in schedule.ranges_on(local.date()))


def _local_instant(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """The first UTC instant whose local wall time in `zone` is at or after `day` + `minute`."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first  # exists (and for a repeated time, fold=0 is its first occurrence)
    # in a gap: the wall clock jumps from before `naive` to after it; find the jump
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # local before the gap
    high = first  # local after the gap
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def _transition_in(zone: ZoneInfo, day: date) -> datetime | None:
    """The UTC instant during local `day` at which the zone's offset changes, if it does."""
    first = _local_instant(zone, day, 0)
    last = _local_instant(zone, day + timedelta(days=1), 0) - timedelta(seconds=1)
    if first.astimezone(zone).utcoffset() == last.astimezone(zone).utcoffset():
        return None
    after = last.astimezone(zone).utcoffset()
    low, high = first, last
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _candidates(schedule: BusinessHours, zone: ZoneInfo, day: date) -> list[datetime]:
    """Instants of `day` at which business hours may begin: each range's start (both
    occurrences of a repeated local time) and the moment the clocks change."""
    found = []
    for low, _ in schedule.ranges_on(day):
        found.append(_local_instant(zone, day, low))
        naive = datetime.combine(day, time()) + timedelta(minutes=low)
        found.append(naive.replace(tzinfo=zone, fold=1).astimezone(UTC))
    transition = _transition_in(zone, day)
    if transition is not None:
        found.append(transition)
    return found


def shift_end(schedule: BusinessHours, at: datetime) -> datetime | None:
    """The next instant after `at` at which business hours begin (UTC), or None if there is
    none within two weeks (a schedule that never closes, or never opens).

    Business hours begin at an instant when they are on and were off the second before.
    """
    zone = zone_of(schedule.time_zone)
    start_day = at.astimezone(zone).date() - timedelta(days=1)
    for offset in range(_SEARCH_DAYS + 1):
        day = start_day + timedelta(days=offset)
        for begins in sorted(set(_candidates(schedule, zone, day))):
            if begins <= at:
                continue
            if is_open(schedule, begins) and not is_open(schedule, begins - timedelta(seconds=1)):
                return begins
    return None
