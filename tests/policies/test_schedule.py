"""Business hours and the end of the after-hours shift: exact instants, validation, properties."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st

from policies.schedule import BusinessHours, is_open, shift_end, zone_of

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
QUARTER = timedelta(minutes=15)


def _hours(
    zone: str, weekly: dict[str, list[list[str]]], holidays: Sequence[str] = ()
) -> BusinessHours:
    """A schedule through the same door as the API: msgspec conversion from plain data."""
    return msgspec.convert(
        {"time_zone": zone, "weekly": weekly, "holidays": list(holidays)}, BusinessHours
    )


def _office(zone: str, start: str, end: str, holidays: Sequence[str] = ()) -> BusinessHours:
    return _hours(zone, {day: [[start, end]] for day in WEEKDAYS}, holidays)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))


# --- exact instants -------------------------------------------------------------------------

BERLIN_OFFICE = _office("Europe/Berlin", "08:00", "18:00")
CHRISTMAS = _office("Europe/Berlin", "08:00", "18:00", ["2026-12-24", "2026-12-25"])
EASTER = _office("Europe/Berlin", "08:00", "18:00", ["2026-04-03", "2026-04-06"])
LUNCH_BREAK = _hours(
    "Europe/Berlin", {day: [["13:00", "18:00"], ["08:00", "12:00"]] for day in WEEKDAYS}
)
NIGHT_SHIFT = _hours(
    "Europe/Berlin",
    {"mon": [["20:00", "24:00"]], "tue": [["00:00", "06:00"], ["20:00", "24:00"]]},
)
ALWAYS = _hours("Europe/Berlin", {day: [["00:00", "24:00"]] for day in ALL_DAYS})


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        pytest.param(
            CHRISTMAS,
            _local("Europe/Berlin", 2026, 12, 23, 17, 55),
            _utc(2026, 12, 28, 7, 0),  # Thu 24 and Fri 25 holidays, Sat 26, Sun 27 -> Mon 08:00 CET
            id="christmas-handoff-to-monday",
        ),
        pytest.param(
            BERLIN_OFFICE,
            _local("Europe/Berlin", 2026, 6, 5, 19, 0),  # Friday evening, CEST
            _utc(2026, 6, 8, 6, 0),
            id="friday-evening-to-monday",
        ),
        pytest.param(
            BERLIN_OFFICE,
            _local("Europe/Berlin", 2026, 6, 5, 12, 0),  # Friday, open: the next beginning
            _utc(2026, 6, 8, 6, 0),
            id="during-hours-next-beginning",
        ),
        pytest.param(
            BERLIN_OFFICE,
            _local("Europe/Berlin", 2026, 6, 8, 7, 59, 59),
            _utc(2026, 6, 8, 6, 0),
            id="one-second-before-opening",
        ),
        pytest.param(
            BERLIN_OFFICE,
            _local("Europe/Berlin", 2026, 6, 8, 8, 0),  # exactly at a beginning: strictly after
            _utc(2026, 6, 9, 6, 0),
            id="at-a-beginning-takes-the-next",
        ),
        pytest.param(
            EASTER,
            _local("Europe/Berlin", 2026, 4, 2, 18, 30),  # Maundy Thursday; Fri + Mon holidays
            _utc(2026, 4, 7, 6, 0),
            id="holiday-monday-after-weekend",
        ),
        pytest.param(
            LUNCH_BREAK,
            _local("Europe/Berlin", 2026, 6, 3, 12, 30),
            _utc(2026, 6, 3, 11, 0),
            id="lunch-break-reopens-13-00",
        ),
        pytest.param(
            LUNCH_BREAK,
            _local("Europe/Berlin", 2026, 6, 3, 12, 0),  # the morning range just ended
            _utc(2026, 6, 3, 11, 0),
            id="at-end-of-morning-range",
        ),
        pytest.param(
            LUNCH_BREAK,
            _local("Europe/Berlin", 2026, 6, 3, 6, 0),
            _utc(2026, 6, 3, 6, 0),
            id="before-morning-range",
        ),
        pytest.param(
            NIGHT_SHIFT,
            _local("Europe/Berlin", 2026, 6, 1, 19, 0),  # Monday
            _utc(2026, 6, 1, 18, 0),
            id="night-shift-begins-monday-20-00",
        ),
        pytest.param(
            NIGHT_SHIFT,
            _local("Europe/Berlin", 2026, 6, 1, 21, 0),  # Mon 24:00 + Tue 00:00 is one period
            _utc(2026, 6, 2, 18, 0),
            id="midnight-is-not-a-beginning",
        ),
        pytest.param(
            _hours("Europe/Berlin", {"sun": [["02:30", "18:00"]]}),
            _utc(2026, 3, 28, 12, 0),  # 02:30 does not exist on 2026-03-29 (02:00 -> 03:00)
            _utc(2026, 3, 29, 1, 0),
            id="spring-forward-start-in-gap",
        ),
        pytest.param(
            _hours("Europe/Berlin", {"sun": [["02:30", "18:00"]]}),
            _utc(2026, 10, 24, 12, 0),  # 02:30 occurs twice on 2026-10-25: CEST first
            _utc(2026, 10, 25, 0, 30),
            id="fall-back-first-occurrence",
        ),
        pytest.param(
            _hours("Australia/Lord_Howe", {"sun": [["02:15", "18:00"]]}),
            _utc(2026, 10, 3, 12, 0),  # 02:00 +10:30 -> 02:30 +11:00 on 2026-10-04
            _utc(2026, 10, 3, 15, 30),
            id="lord-howe-half-hour-gap",
        ),
        pytest.param(
            _office("America/New_York", "09:00", "17:00"),
            _local("America/New_York", 2026, 3, 6, 18, 0),  # Friday EST; DST begins Sun 03-08
            _utc(2026, 3, 9, 13, 0),  # Monday 09:00 EDT
            id="new-york-across-spring-forward",
        ),
        pytest.param(
            _office("America/New_York", "09:00", "17:00"),
            _local("America/New_York", 2026, 10, 30, 18, 0),  # Friday EDT; DST ends Sun 11-01
            _utc(2026, 11, 2, 14, 0),  # Monday 09:00 EST
            id="new-york-across-fall-back",
        ),
        pytest.param(
            _office("Asia/Kolkata", "09:30", "18:30"),
            _local("Asia/Kolkata", 2026, 7, 3, 20, 0),  # Friday
            _utc(2026, 7, 6, 4, 0),  # Monday 09:30 +05:30
            id="kolkata-half-hour-offset",
        ),
        pytest.param(
            _office("Asia/Kathmandu", "10:00", "17:00"),
            _local("Asia/Kathmandu", 2026, 7, 6, 8, 0),  # Monday
            _utc(2026, 7, 6, 4, 15),  # 10:00 +05:45
            id="kathmandu-quarter-hour-offset",
        ),
        pytest.param(
            _office("America/St_Johns", "08:00", "17:00"),
            _utc(2026, 1, 5, 0, 0),  # Sunday evening local (-03:30)
            _utc(2026, 1, 5, 11, 30),
            id="st-johns-negative-half-hour",
        ),
        pytest.param(
            _hours("America/Santiago", {"sat": [["20:00", "24:00"]], "sun": [["00:00", "06:00"]]}),
            _utc(2026, 9, 5, 12, 0),  # Sun 2026-09-06 00:00 does not exist (-> 01:00)
            _utc(2026, 9, 6, 0, 0),  # only Saturday 20:00 -04 begins; midnight is seamless
            id="santiago-midnight-gap-is-seamless",
        ),
        pytest.param(
            _hours("America/Santiago", {"sun": [["00:00", "06:00"]]}),
            _utc(2026, 9, 5, 12, 0),
            _utc(2026, 9, 6, 4, 0),  # 00:00 is skipped: begins when the clock jumps to 01:00
            id="santiago-start-at-midnight-gap",
        ),
    ],
)
def test_shift_end_exact_instants(
    schedule: BusinessHours, at: datetime, expected: datetime
) -> None:
    result = shift_end(schedule, at)
    assert result == expected
    assert result is not None
    assert result.tzinfo is UTC
    assert is_open(schedule, result)
    assert not is_open(schedule, result - SECOND)


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param(ALWAYS, id="24/7"),
        pytest.param(_hours("Europe/Berlin", {}), id="empty"),
        pytest.param(_hours("Europe/Berlin", {day: [] for day in ALL_DAYS}), id="empty-days"),
        pytest.param(
            _hours("America/Santiago", {day: [["00:00", "24:00"]] for day in ALL_DAYS}),
            id="24/7-midnight-dst",
        ),
    ],
)
@pytest.mark.parametrize(
    "at",
    [_utc(2026, 6, 3, 10, 0), _utc(2026, 3, 29, 0, 59, 59), _utc(2026, 9, 5, 12, 0)],
)
def test_no_shift_end_when_hours_never_begin(schedule: BusinessHours, at: datetime) -> None:
    assert shift_end(schedule, at) is None


def test_24_7_with_a_holiday_begins_after_it() -> None:
    schedule = _hours(
        "Europe/Berlin", {day: [["00:00", "24:00"]] for day in ALL_DAYS}, ["2026-12-25"]
    )
    assert not is_open(schedule, _local("Europe/Berlin", 2026, 12, 25, 12, 0))
    assert shift_end(schedule, _utc(2026, 12, 20, 0, 0)) == _utc(2026, 12, 25, 23, 0)


def test_result_is_utc_whatever_zone_at_is_given_in() -> None:
    at_berlin = _local("Europe/Berlin", 2026, 6, 5, 19, 0)
    at_tokyo = at_berlin.astimezone(ZoneInfo("Asia/Tokyo"))
    result = shift_end(BERLIN_OFFICE, at_tokyo)
    assert result == shift_end(BERLIN_OFFICE, at_berlin) == _utc(2026, 6, 8, 6, 0)
    assert result is not None
    assert result.tzinfo is UTC
    assert result.utcoffset() == timedelta(0)


def test_naive_at_is_refused() -> None:
    # a naive instant has no meaning across zones: it must not be silently read as local time
    with pytest.raises(TypeError):
        shift_end(BERLIN_OFFICE, datetime(2026, 6, 5, 19, 0))


def test_is_open_edges() -> None:
    assert is_open(BERLIN_OFFICE, _local("Europe/Berlin", 2026, 6, 8, 8, 0))
    assert is_open(BERLIN_OFFICE, _local("Europe/Berlin", 2026, 6, 8, 17, 59, 59, 999999))
    assert not is_open(BERLIN_OFFICE, _local("Europe/Berlin", 2026, 6, 8, 18, 0))
    assert not is_open(BERLIN_OFFICE, _local("Europe/Berlin", 2026, 6, 6, 12, 0))  # Saturday
    assert not is_open(CHRISTMAS, _local("Europe/Berlin", 2026, 12, 24, 12, 0))
    assert is_open(NIGHT_SHIFT, _local("Europe/Berlin", 2026, 6, 1, 23, 59, 59))
    assert is_open(NIGHT_SHIFT, _local("Europe/Berlin", 2026, 6, 2, 0, 0))


def test_holidays_are_local_dates() -> None:
    # 2026-12-24 00:30 Berlin is 2026-12-23 23:30 UTC: the holiday follows the MSP's calendar
    schedule = _hours(
        "Europe/Berlin", {day: [["00:00", "24:00"]] for day in ALL_DAYS}, ["2026-12-24"]
    )
    assert not is_open(schedule, _utc(2026, 12, 23, 23, 30))
    assert is_open(schedule, _utc(2026, 12, 23, 22, 59, 59))
    assert schedule.ranges_on(date(2026, 12, 24)) == []
    assert schedule.ranges_on(date(2026, 12, 23)) == [(0, 1440)]


# --- edges at DST transitions ------------------------------------------------------------------


def test_range_wholly_inside_a_spring_forward_gap_does_not_begin() -> None:
    # Berlin 2026-03-29: 02:00 CET -> 03:00 CEST, so Sunday 02:00-03:00 never happens that day.
    schedule = _hours("Europe/Berlin", {"sun": [["02:00", "03:00"]]})
    result = shift_end(schedule, _utc(2026, 3, 28, 12, 0))
    assert result is not None
    assert is_open(schedule, result), f"shift ends at {result} but business hours are closed"
    assert result == _utc(2026, 4, 5, 0, 0)  # the next Sunday that has 02:00 CEST


def test_reopening_in_the_repeated_hour_ends_the_shift() -> None:
    # Berlin 2026-10-25: 03:00 CEST -> 02:00 CET. Sunday 00:00-02:30 is open 22:00-00:30 UTC,
    # closed 00:30-01:00 UTC, and open again 01:00-01:30 UTC (02:00-02:30 CET).
    schedule = _hours("Europe/Berlin", {"sun": [["00:00", "02:30"]]})
    at = _utc(2026, 10, 25, 0, 45)
    assert not is_open(schedule, at)
    assert not is_open(schedule, _utc(2026, 10, 25, 1, 0) - SECOND)
    assert is_open(schedule, _utc(2026, 10, 25, 1, 0))
    assert shift_end(schedule, at) == _utc(2026, 10, 25, 1, 0)


# --- validation -----------------------------------------------------------------------------

_BAD_SCHEDULES = [
    pytest.param({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone", id="unknown-zone"),
    pytest.param({"time_zone": "europe/berlin"}, "unknown time zone", id="zone-wrong-case"),
    pytest.param({"time_zone": ""}, "unknown time zone", id="empty-zone"),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["25:00", "26:00"]]}}, "25:00", id="hour-25"
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["08:00", "24:01"]]}}, "24:01", id="after-24"
    ),
    pytest.param({"time_zone": "UTC", "weekly": {"mon": [["8:00", "09:00"]]}}, "8:00", id="h-mm"),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["08:00", "07:00"]]}},
        "must end after",
        id="reversed",
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["08:00", "08:00"]]}}, "must end after", id="empty"
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"tue": [["08:00", "12:00"], ["11:00", "13:00"]]}},
        "overlap",
        id="overlap",
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"tue": [["08:00", "18:00"], ["09:00", "10:00"]]}},
        "overlap",
        id="nested",
    ),
    pytest.param({"time_zone": "UTC", "opening": {}}, "unknown field", id="unknown-field"),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"funday": [["08:00", "09:00"]]}},
        "Invalid enum value",
        id="unknown-day",
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["08:00"]]}}, "length >= 2", id="half-range"
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [["08:00", "09:00", "10:00"]]}},
        "length <= 2",
        id="three-times",
    ),
    pytest.param(
        {"time_zone": "UTC", "weekly": {"mon": [[f"{h:02d}:00", f"{h:02d}:30"] for h in range(9)]}},
        "at most 8",
        id="nine-ranges",
    ),
    pytest.param(
        {"time_zone": "UTC", "holidays": ["2026-02-30"]}, "Invalid RFC3339", id="bad-holiday"
    ),
    pytest.param(
        {
            "time_zone": "UTC",
            "holidays": [(date(2026, 1, 1) + timedelta(d)).isoformat() for d in range(401)],
        },
        "at most 400",
        id="401-holidays",
    ),
]


@pytest.mark.parametrize(("raw", "message"), _BAD_SCHEDULES)
def test_bad_schedules_are_rejected_on_conversion(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, BusinessHours)


def test_touching_ranges_and_24_00_are_accepted() -> None:
    schedule = _hours("UTC", {"mon": [["12:00", "24:00"], ["00:00", "12:00"]]})
    assert schedule.ranges_on(date(2026, 6, 1)) == [(0, 720), (720, 1440)]
    # one continuous Monday: its only beginning is 00:00 (Sunday is closed)
    assert shift_end(schedule, _utc(2026, 5, 31, 12, 0)) == _utc(2026, 6, 1, 0, 0)
    assert shift_end(schedule, _utc(2026, 6, 1, 0, 0)) == _utc(2026, 6, 8, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"time_zone": "UTC", "weekly": {"mon": [["25:00", "26:00"]]}}, "25:00"),
        ({"time_zone": "UTC", "weekly": {"mon": [["08:00", "07:00"]]}}, "must end after"),
        (
            {"time_zone": "UTC", "weekly": {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}},
            "overlap",
        ),
    ],
)
def test_bad_schedules_are_rejected_on_construction(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessHours(**kwargs)  # type: ignore[arg-type]


def test_unknown_keyword_is_rejected_on_construction() -> None:
    with pytest.raises(TypeError, match="opening"):
        BusinessHours(time_zone="UTC", opening={})  # type: ignore[call-arg]


def test_zone_of() -> None:
    assert zone_of("Europe/Berlin") == BERLIN
    assert zone_of("UTC") == ZoneInfo("UTC")
    for bad in ("Mars/Olympus_Mons", "../etc/passwd", "/usr/share/zoneinfo/UTC", "Europe/"):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone_of(bad)


# --- properties -----------------------------------------------------------------------------

ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Europe/London",
    "America/Sao_Paulo",
    "Africa/Casablanca",
    "UTC",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "America/Santiago",  # DST at midnight
    "America/Havana",  # DST at midnight
    "Asia/Beirut",  # falls back at midnight
    "Africa/Cairo",
    "Pacific/Auckland",
    "America/Nuuk",  # springs forward over 23:00-24:00
    "Asia/Tehran",
)
_FIRST = datetime(2025, 1, 1, tzinfo=UTC)
_LAST = datetime(2029, 1, 1, tzinfo=UTC)
_SCAN_CAP = timedelta(days=8)
_NONE_WINDOW = timedelta(days=14)


@functools.cache
def _transitions(name: str) -> tuple[datetime, ...]:
    """The UTC instants in 2025-2028 at which the zone's offset changes (to the second)."""
    zone = ZoneInfo(name)
    found, day = [], _FIRST
    while day < _LAST:
        offset = day.astimezone(zone).utcoffset()
        low, high = 0, 86400  # seconds into the day: offset unchanged at low, changed at high
        if (day + timedelta(seconds=high)).astimezone(zone).utcoffset() != offset:
            while high - low > 1:
                middle = (low + high) // 2
                if (day + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(day + timedelta(seconds=high))
        day += timedelta(days=1)
    return tuple(found)


def _hhmm(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def _day_ranges(draw: st.DrawFn) -> list[list[str]]:
    shape = draw(st.integers(0, 7))
    if shape == 0:
        return [["00:00", "24:00"]]
    if shape <= 2:
        return []
    # sorted quarter-hour boundaries paired up: never overlapping, sometimes touching
    points = sorted(draw(st.lists(st.integers(0, 96), max_size=6)))
    ranges = [
        [_hhmm(low), _hhmm(high)]
        for low, high in zip(points[::2], points[1::2], strict=False)
        if low < high
    ]
    return draw(st.permutations(ranges))


@st.composite
def _around_transition(
    draw: st.DrawFn, zone: ZoneInfo, transition: datetime
) -> tuple[str, list[list[str]]]:
    """A weekday and its ranges, with a boundary in or next to the wall times that a DST
    transition skips or repeats."""
    before = (transition - SECOND).astimezone(zone).replace(tzinfo=None) + SECOND
    after = transition.astimezone(zone).replace(tzinfo=None)
    low, high = min(before, after), max(before, after)
    quarters = int((high - low) / QUARTER)
    start = low + QUARTER * draw(st.integers(-1, quarters))
    first = start.hour * 4 + start.minute // 15
    last = draw(st.integers(first + 1, min(96, first + 12)))
    ranges = [[_hhmm(first), _hhmm(last)]]
    if first > 1 and draw(st.booleans()):
        end = first - draw(st.integers(0, 1))  # touching, or a quarter before
        ranges.append([_hhmm(draw(st.integers(0, end - 1))), _hhmm(end)])
    return ALL_DAYS[start.weekday()], ranges


@st.composite
def _cases(draw: st.DrawFn) -> tuple[BusinessHours, datetime]:
    zone = draw(st.sampled_from(ZONES))
    weekly = {}
    for day in ALL_DAYS:
        ranges = draw(_day_ranges())
        if ranges or draw(st.booleans()):
            weekly[day] = ranges
    transitions = _transitions(zone)
    if transitions and draw(st.integers(0, 3)):
        transition = draw(st.sampled_from(transitions))
        if draw(st.integers(0, 3)):
            # a range that begins in or next to the skipped or repeated wall times, and an
            # `at` shortly before it, so that its beginning is the one that counts
            day, ranges = draw(_around_transition(ZoneInfo(zone), transition))
            weekly[day] = ranges
            at = transition + timedelta(seconds=draw(st.integers(-4 * 3600, 3600)))
        else:
            at = transition + timedelta(seconds=draw(st.integers(-4 * 86400, 4 * 86400)))
    else:
        span = int((_LAST - _FIRST).total_seconds())
        at = _FIRST + timedelta(seconds=draw(st.integers(0, span - 1)))
    local_day = at.astimezone(ZoneInfo(zone)).date()
    offsets = draw(st.lists(st.integers(-2, 12), max_size=4))
    holidays = [(local_day + timedelta(days=offset)).isoformat() for offset in offsets]
    schedule = _hours(zone, weekly, holidays)
    shown_in = draw(st.sampled_from((*ZONES, None)))  # `at` may arrive in any zone
    if shown_in is not None:
        at = at.astimezone(ZoneInfo(shown_in))
    return schedule, at


def _begins(schedule: BusinessHours, instant: datetime) -> bool:
    return is_open(schedule, instant) and not is_open(schedule, instant - SECOND)


def _next_grid(at: datetime, step: timedelta) -> datetime:
    """The first multiple of `step` (counted from the Unix epoch, in UTC) strictly after `at`."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (at - epoch) // step * step + step


def _beginnings(
    schedule: BusinessHours, after: datetime, before: datetime, step: timedelta
) -> Iterator[datetime]:
    # Every boundary falls on the UTC quarter-hour grid: ranges are on the local quarter-hour
    # grid and, in 2025-2028, every offset of every zone above is a whole number of quarters
    # and every transition happens on a UTC quarter hour.
    instant = _next_grid(after, step)
    while instant < before:
        if _begins(schedule, instant):
            yield instant
        instant += step


def _springs_forward(schedule: BusinessHours, instant: datetime) -> bool:
    zone = zone_of(schedule.time_zone)
    return instant.astimezone(zone).utcoffset() > (instant - SECOND).astimezone(zone).utcoffset()


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_shift_end_is_the_first_beginning_after_at(case: tuple[BusinessHours, datetime]) -> None:
    schedule, at = case
    result = shift_end(schedule, at)
    at = at.astimezone(UTC)  # `+` on a zoned datetime is wall-clock arithmetic: use UTC
    note(f"shift_end = {result}")
    if result is None:
        event("no shift end")
        # nothing begins within two weeks: no closed -> open transition in that window
        missed = list(_beginnings(schedule, at, at + _NONE_WINDOW, QUARTER))
        assert missed == [], f"no shift end found, but business hours begin at {missed[0]}"
        return
    event("begins at a DST jump" if _springs_forward(schedule, result) else "a shift end")
    assert result.tzinfo is UTC
    assert result > at
    assert result.second == result.microsecond == 0
    assert result.minute % 15 == 0
    assert is_open(schedule, result)
    assert not is_open(schedule, result - SECOND)
    earlier = list(_beginnings(schedule, at, min(result, at + _SCAN_CAP), MINUTE))
    assert earlier == [], f"business hours begin at {earlier[0]}, before {result}"


@settings(max_examples=150, deadline=None)
@given(_cases(), st.floats(0, 1, exclude_max=True))
def test_shift_end_is_the_same_from_any_instant_before_it(
    case: tuple[BusinessHours, datetime], fraction: float
) -> None:
    schedule, at = case
    result = shift_end(schedule, at)
    at = at.astimezone(UTC)  # `+` on a zoned datetime is wall-clock arithmetic: use UTC
    assert shift_end(schedule, at) == result  # the zone `at` is given in does not matter
    if result is None:
        later = at + timedelta(microseconds=int(fraction * 86_400_000_000))
        later_result = shift_end(schedule, later)
        # the search window slides with `at`: a beginning may only appear near its far end
        assert later_result is None or later_result - at > timedelta(days=13)
        return
    # any later instant, to the microsecond, that is still before the result
    later = at + (result - at) * fraction
    assume(later < result)
    assert shift_end(schedule, later) == result
    assert shift_end(schedule, result - timedelta(microseconds=1)) == result
    after = shift_end(schedule, result)
    assert after is None or after > result
