"""The geometry of a grant's timeline chart: marks inside the plot and in their lanes, the
grant window's bounds (up to an early end), ticks in order on round wall-clock times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharing.timeline import (
    GrantWindow,
    Layout,
    MarkKind,
    Reading,
    TimeScale,
    build_chart,
    mark_kind,
    nice_step,
    plot_range,
    time_ticks,
)

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 12, 23, 17, 55, tzinfo=BERLIN)
PLANNED_END = datetime(2026, 12, 28, 8, 0, tzinfo=BERLIN)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=BERLIN)


STORY = [
    Reading(10, at(23, 18, 2), MarkKind.READ, "bundle"),
    Reading(12, at(23, 18, 3), MarkKind.READ, "network document"),
    Reading(14, at(24, 2, 9), MarkKind.DENIED, "credential document, no reason"),
    Reading(16, at(24, 2, 10), MarkKind.BREAK_GLASS, "credential document"),
    Reading(18, at(24, 3, 0), MarkKind.DENIED, "other client's document"),
]


def assert_inside(chart_layout: Layout, x: float, y: float) -> None:
    assert chart_layout.plot_left <= x <= chart_layout.plot_right
    assert chart_layout.plot_top <= y <= chart_layout.plot_bottom


@pytest.mark.parametrize(
    ("action", "outcome", "kind"),
    [
        ("grant:bundle_read", "success", MarkKind.READ),
        ("document:partner_read", "success", MarkKind.READ),
        ("document:read_denied", "denied", MarkKind.DENIED),
        ("document:break_glass", "success", MarkKind.BREAK_GLASS),
        ("document:partner_read", "failure", MarkKind.DENIED),
        ("grant:rate_limited", "denied", None),
        ("grant:revoked", "success", None),
        ("token:issued", "success", None),
    ],
)
def test_each_read_is_a_mark_of_its_kind_and_nothing_else_is(action, outcome, kind) -> None:
    assert mark_kind(action, outcome) is kind


def test_a_story_chart_has_one_mark_per_read_inside_the_plot_in_its_own_lane() -> None:
    window = GrantWindow(START, PLANNED_END)
    chart = build_chart(window, STORY, BERLIN)
    layout = chart.layout

    assert [m.seq for m in chart.marks] == [r.seq for r in STORY]
    lanes = {lane.kind: lane for lane in chart.lanes}
    for mark, reading in zip(chart.marks, STORY, strict=True):
        assert mark.kind is reading.kind
        assert_inside(layout, mark.x, mark.y)
        assert lanes[mark.kind].top <= mark.y <= lanes[mark.kind].bottom
    assert [m.x for m in chart.marks] == sorted(m.x for m in chart.marks)
    assert chart.counts == {MarkKind.READ: 2, MarkKind.DENIED: 2, MarkKind.BREAK_GLASS: 1}
    assert [lane.count for lane in chart.lanes] == [2, 2, 1]
    [glass] = [m for m in chart.marks if m.kind is MarkKind.BREAK_GLASS]
    assert glass.label == "break-glass"
    assert "Thu 24 Dec 02:10:00 CET" in glass.title
    assert chart.description.startswith("5 reads: 2 allowed, 2 denied, 1 break-glass.")
    assert "Wed 23 Dec 2026 17:55 to Mon 28 Dec 2026 08:00 (Europe/Berlin)" in chart.description


def test_the_window_is_shaded_from_its_start_to_its_end() -> None:
    window = GrantWindow(START, PLANNED_END)
    chart = build_chart(window, STORY, BERLIN)
    scale = TimeScale(chart.start, chart.end, chart.layout.plot_left, chart.layout.plot_right)

    band = chart.band
    assert band.x == scale.x(START) and band.end_x == scale.x(PLANNED_END)
    assert band.x + band.width == pytest.approx(band.end_x)
    assert chart.layout.plot_left < band.x < band.end_x < chart.layout.plot_right
    assert not band.ended_early and band.planned_end_x is None
    assert (band.start_label, band.end_label) == ("opens 17:55", "ends 08:00")
    assert chart.start <= START and chart.end >= PLANNED_END


def test_a_window_ended_early_is_shaded_to_its_real_end_and_the_end_is_marked() -> None:
    revoked = at(24, 2, 30)
    after = Reading(20, at(24, 2, 45), MarkKind.DENIED, "read after the revocation")
    window = GrantWindow(START, PLANNED_END, ended_at=revoked, end_status="revoked")

    chart = build_chart(window, [*STORY[:4], after], BERLIN)

    scale = TimeScale(chart.start, chart.end, chart.layout.plot_left, chart.layout.plot_right)
    assert chart.band.ended_early
    assert chart.band.end_x == scale.x(revoked)
    assert chart.band.end_label == "revoked 02:30"
    # The read after the end lies outside the shaded band, still inside the plot.
    last = chart.marks[-1]
    assert last.seq == 20 and chart.band.end_x < last.x <= chart.layout.plot_right
    # The chart ends soon after the last event, not at the planned end days later.
    assert chart.end < PLANNED_END
    assert "revoked early at Thu 24 Dec 2026 02:30" in chart.description


def test_an_expired_grant_is_shaded_to_its_planned_end_without_an_early_mark() -> None:
    window = GrantWindow(START, PLANNED_END, ended_at=PLANNED_END, end_status="expired")

    chart = build_chart(window, STORY, BERLIN)

    assert not chart.band.ended_early
    assert chart.band.end_label == "ends 08:00"


def test_a_live_grant_shows_now_inside_the_window() -> None:
    now = at(24, 3, 30)
    chart = build_chart(GrantWindow(START, PLANNED_END), STORY, BERLIN, now=now)

    assert chart.now_x is not None
    assert chart.band.x < chart.now_x < chart.band.end_x


def test_reads_at_the_same_moment_are_stacked_not_hidden() -> None:
    moment = at(24, 2, 10)
    burst = [Reading(i, moment, MarkKind.READ, "bundle") for i in range(3)]

    chart = build_chart(GrantWindow(START, PLANNED_END), burst, BERLIN)

    assert len({(m.x, m.y) for m in chart.marks}) == 3
    for mark in chart.marks:
        assert_inside(chart.layout, mark.x, mark.y)


def test_counts_given_for_more_reads_than_drawn_are_told() -> None:
    counts = {MarkKind.READ: 2500, MarkKind.DENIED: 0, MarkKind.BREAK_GLASS: 0}
    drawn = [Reading(i, at(24, 1, 0), MarkKind.READ, "x") for i in range(2)]

    chart = build_chart(GrantWindow(START, PLANNED_END), drawn, BERLIN, counts=counts)

    assert chart.total == 2500 and len(chart.marks) == 2
    assert "The first 2 reads are drawn" in chart.description


def test_an_empty_grant_has_no_marks_and_a_window() -> None:
    chart = build_chart(GrantWindow(START, PLANNED_END), [], BERLIN)

    assert chart.marks == [] and chart.total == 0
    assert chart.description.startswith("no reads.")
    assert chart.band.width > 0


def test_ticks_of_the_story_fall_on_local_midnights_in_order() -> None:
    chart = build_chart(GrantWindow(START, PLANNED_END), STORY, BERLIN)

    ticks = chart.ticks
    assert 2 <= len(ticks) <= chart.layout.max_ticks
    assert [t.at for t in ticks] == sorted({t.at for t in ticks})
    assert [t.x for t in ticks] == sorted(t.x for t in ticks)
    for tick in ticks:
        assert chart.start <= tick.at <= chart.end
        assert chart.layout.plot_left <= tick.x <= chart.layout.plot_right
        local = tick.at.astimezone(BERLIN)
        assert (local.hour, local.minute) == (0, 0)
    assert [t.label for t in ticks][:2] == ["Thu 24 Dec 2026", "Fri 25 Dec"]


def test_hour_ticks_carry_the_date_when_the_day_changes() -> None:
    scale = TimeScale(at(23, 20, 10), at(24, 3, 50), 0.0, 100.0)

    ticks = time_ticks(scale, BERLIN, max_ticks=8)

    assert [t.label for t in ticks] == [
        "21:00",
        "22:00",
        "23:00",
        "00:00",
        "01:00",
        "02:00",
        "03:00",
    ]
    assert [t.date for t in ticks] == [
        "Wed 23 Dec 2026",
        None,
        None,
        "Thu 24 Dec",
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # Summer time ends: 02:00-03:00 comes twice.
        (datetime(2026, 10, 24, 20, 0, tzinfo=BERLIN), datetime(2026, 10, 25, 8, 0, tzinfo=BERLIN)),
        # Summer time begins: 02:00-03:00 does not exist.
        (datetime(2026, 3, 28, 20, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 8, 0, tzinfo=BERLIN)),
    ],
)
def test_ticks_across_a_change_of_clocks_stay_ordered_and_round(start, end) -> None:
    scale = TimeScale(start, end, 0.0, 100.0)

    ticks = time_ticks(scale, BERLIN, max_ticks=8)

    assert len(ticks) >= 4
    assert [t.at for t in ticks] == sorted({t.at for t in ticks})
    for tick in ticks:
        local = tick.at.astimezone(BERLIN)
        assert local.minute == 0 and local.hour % 2 == 0
        assert tick.label == f"{local:%H:%M}"


def test_the_step_is_the_smallest_round_one_that_fits() -> None:
    assert nice_step(timedelta(hours=110), 8) == timedelta(days=1)
    assert nice_step(timedelta(hours=7), 8) == timedelta(hours=1)
    assert nice_step(timedelta(minutes=3), 8) == timedelta(minutes=1)
    assert nice_step(timedelta(days=400), 8) >= timedelta(days=50)


def test_the_plot_range_holds_every_moment_and_a_minimum_span() -> None:
    moment = datetime(2026, 12, 24, 1, 0, tzinfo=UTC)

    first, last = plot_range([moment])

    assert first < moment < last and last - first >= timedelta(minutes=10)


_instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    start=_instants,
    hours=st.floats(min_value=0.02, max_value=168),
    early=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
    offsets=st.lists(
        st.tuples(st.floats(min_value=-2.0, max_value=3.0), st.sampled_from(list(MarkKind))),
        max_size=40,
    ),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]),
)
def test_every_mark_tick_and_window_edge_lies_inside_the_plot(
    start, hours, early, offsets, zone
) -> None:
    ends_at = start + timedelta(hours=hours)
    ended_at = None if early is None else start + (ends_at - start) * early
    window = GrantWindow(start, ends_at, ended_at=ended_at, end_status="revoked")
    span = ends_at - start
    readings = [
        Reading(i, start + span * offset, kind, "x") for i, (offset, kind) in enumerate(offsets)
    ]

    chart = build_chart(window, readings, ZoneInfo(zone))

    layout = chart.layout
    assert len(chart.marks) == len(readings)
    for mark in chart.marks:
        assert_inside(layout, mark.x, mark.y)
    assert layout.plot_left <= chart.band.x <= chart.band.end_x <= layout.plot_right
    assert chart.band.x < layout.plot_right
    assert [t.at for t in chart.ticks] == sorted({t.at for t in chart.ticks})
    assert len(chart.ticks) <= layout.max_ticks + 1
    for tick in chart.ticks:
        assert layout.plot_left <= tick.x <= layout.plot_right
