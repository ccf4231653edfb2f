"""The timeline of one grant's accesses, drawn as a chart: reads over time, denials and
break-glass apart, the grant window shaded. The geometry is pure (moments in, coordinates out);
`grant_timeline` gathers the grant and its events from the caller's own audit chain.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sharing.audit import AuditAction, Outcome
from sharing.clock import Clock
from sharing.handoffs import GrantStatus, GrantView, grant_row, grant_view
from sharing.incident_report import MAX_ACCESS_ROWS, AccessEvent, grant_events
from sharing.tables import Grant
from tenants import service
from tenants.errors import NotFound
from tenants.roles import Actor, Permission

__all__ = [
    "Chart",
    "ChartMark",
    "GrantTimeline",
    "GrantWindow",
    "Lane",
    "Layout",
    "MarkKind",
    "Reading",
    "Tick",
    "TimeScale",
    "WindowBand",
    "build_chart",
    "grant_timeline",
    "mark_kind",
    "nice_step",
    "place_marks",
    "plot_range",
    "time_ticks",
]


class MarkKind(enum.StrEnum):
    """What a mark on the chart stands for; each kind has its own lane and its own shape."""

    READ = "read"
    DENIED = "denied"
    BREAK_GLASS = "break-glass"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    MarkKind.READ: "Read",
    MarkKind.DENIED: "Denied",
    MarkKind.BREAK_GLASS: "Break-glass",
}

_MARK_ACTIONS = {
    AuditAction.GRANT_BUNDLE_READ.value: MarkKind.READ,
    AuditAction.PARTNER_DOCUMENT_READ.value: MarkKind.READ,
    AuditAction.PARTNER_DOCUMENT_DENIED.value: MarkKind.DENIED,
    AuditAction.BREAK_GLASS.value: MarkKind.BREAK_GLASS,
}


def mark_kind(action: str, outcome: str) -> MarkKind | None:
    """The mark of an event, or None for an event that is not a read (a rate limit or an
    integrity failure repeats a read that already has its mark; grant changes are history)."""
    kind = _MARK_ACTIONS.get(action)
    if kind is not None and outcome != Outcome.SUCCESS.value:
        return MarkKind.DENIED
    return kind


# --- Geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """The chart's size in SVG user units (the `viewBox`): a legend row on top, one lane per
    kind of mark, the time axis below."""

    width: float = 960.0
    left: float = 112.0
    right: float = 48.0
    top: float = 72.0
    lane_height: float = 44.0
    bottom: float = 52.0
    max_ticks: int = 8

    @property
    def plot_left(self) -> float:
        return self.left

    @property
    def plot_right(self) -> float:
        return self.width - self.right

    @property
    def plot_top(self) -> float:
        return self.top

    @property
    def plot_bottom(self) -> float:
        return self.top + self.lane_height * len(MarkKind)

    @property
    def height(self) -> float:
        return self.plot_bottom + self.bottom


@dataclass(frozen=True, slots=True)
class TimeScale:
    """Maps instants between `start` and `end` onto `left..right`; outside, it clamps."""

    start: datetime
    end: datetime
    left: float
    right: float

    def x(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        fraction = (moment - self.start).total_seconds() / span if span > 0 else 0.5
        fraction = min(max(fraction, 0.0), 1.0)
        return round(self.left + fraction * (self.right - self.left), 1)


def plot_range(
    moments: Sequence[datetime],
    *,
    minimum: timedelta = timedelta(minutes=10),
    padding: float = 0.03,
) -> tuple[datetime, datetime]:
    """The time range that shows every one of `moments` (at least one), at least `minimum`
    long, with a margin of `padding` (a fraction of the span) on each side."""
    first, last = min(moments), max(moments)
    span = last - first
    if span < minimum:
        widen = (minimum - span) / 2
        first, last, span = first - widen, last + widen, minimum
    margin = span * padding
    return first - margin, last + margin


_STEPS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=10),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
)
_DAY = timedelta(days=1)


def nice_step(span: timedelta, max_ticks: int) -> timedelta:
    """The smallest round step that puts at most `max_ticks` ticks on `span`. Every step under
    a day divides a day, so that ticks fall on the same wall-clock times every day."""
    for step in _STEPS:
        if span / step <= max_ticks:
            return step
    weeks = math.ceil(span / (_STEPS[-1] * max_ticks))
    return _STEPS[-1] * weeks


@dataclass(frozen=True, slots=True)
class Tick:
    """A tick of the time axis: `label` is the wall-clock time (or the day, for steps of days),
    `date` the day when it changed since the tick before."""

    at: datetime
    x: float
    label: str
    date: str | None


def _day(local: datetime, *, year: bool) -> str:
    text = f"{local:%a} {local.day} {local:%b}"
    return f"{text} {local.year}" if year else text


def _wall_times(start: datetime, end: datetime, zone: ZoneInfo, step: timedelta) -> list[datetime]:
    """The instants in `start..end` whose wall-clock time in `zone` is a multiple of `step`
    since local midnight (days counted from the first local midnight). Wall-clock times that
    do not exist (skipped by a change to summer time) are left out."""
    wall_start = start.astimezone(zone).replace(tzinfo=None)
    wall_end = end.astimezone(zone).replace(tzinfo=None)
    midnight = wall_start.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + step * ((wall_start - midnight) // step) if step < _DAY else midnight
    found: list[datetime] = []
    wall = first
    while wall <= wall_end + _DAY:
        moment = wall.replace(tzinfo=zone)
        if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            instant = moment.astimezone(UTC)
            if start <= instant <= end and (not found or instant > found[-1]):
                found.append(instant)
        wall += step
    return found


def time_ticks(scale: TimeScale, zone: ZoneInfo, max_ticks: int = 8) -> list[Tick]:
    """Ticks on round wall-clock times of `zone` across the scale, in order, labelled."""
    step = nice_step(scale.end - scale.start, max_ticks)
    ticks: list[Tick] = []
    previous: datetime | None = None
    for instant in _wall_times(scale.start, scale.end, zone, step):
        local = instant.astimezone(zone)
        new_day = previous is None or local.date() != previous.date()
        new_year = previous is None or local.year != previous.year
        if step >= _DAY:
            label, date = _day(local, year=new_year), None
        else:
            label = f"{local:%H:%M}"
            date = _day(local, year=new_year) if new_day else None
        ticks.append(Tick(instant, scale.x(instant), label, date))
        previous = local
    return ticks


@dataclass(frozen=True, slots=True)
class Reading:
    """One read (or attempt) to draw: when, of which kind, and a line that describes it."""

    seq: int
    at: datetime
    kind: MarkKind
    summary: str


@dataclass(frozen=True, slots=True)
class ChartMark:
    seq: int
    kind: MarkKind
    x: float
    y: float
    title: str
    label: str | None
    """Text beside the mark (break-glass marks carry one unless another one is just before)."""


@dataclass(frozen=True, slots=True)
class Lane:
    kind: MarkKind
    label: str
    y: float
    top: float
    bottom: float
    count: int


_ROW_OFFSETS = (0.0, -11.0, 11.0)
_MIN_GAP = 11.0  # marks closer than this in one lane are stacked
_LABEL_GAP = 96.0  # break-glass labels closer than this would overlap: only the first is drawn


def place_marks(
    readings: Sequence[Reading], scale: TimeScale, lanes: dict[MarkKind, float], zone: ZoneInfo
) -> list[ChartMark]:
    """A mark for each reading, in its lane at its time. Marks that would overlap in a lane
    are stacked on a row above or below; past three rows they overlap."""
    last_x: dict[MarkKind, list[float]] = {kind: [-math.inf] * len(_ROW_OFFSETS) for kind in lanes}
    last_label = -math.inf
    marks: list[ChartMark] = []
    for reading in sorted(readings, key=lambda r: (r.at, r.seq)):
        x = scale.x(reading.at)
        rows = last_x[reading.kind]
        row = next(
            (i for i, seen in enumerate(rows) if x - seen >= _MIN_GAP),
            min(range(len(rows)), key=rows.__getitem__),
        )
        rows[row] = x
        label = None
        if reading.kind is MarkKind.BREAK_GLASS and x - last_label >= _LABEL_GAP:
            label, last_label = "break-glass", x
        local = reading.at.astimezone(zone)
        marks.append(
            ChartMark(
                seq=reading.seq,
                kind=reading.kind,
                x=x,
                y=lanes[reading.kind] + _ROW_OFFSETS[row],
                title=f"{local:%a %d %b %H:%M:%S %Z} · {reading.kind.label}: {reading.summary}",
                label=label,
            )
        )
    return marks


@dataclass(frozen=True, slots=True)
class GrantWindow:
    """The grant's time box. `ended_at` is when it really ended, if it has; `end_status` how
    (expired, revoked, completed)."""

    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None
    end_status: str | None = None

    @property
    def real_end(self) -> datetime:
        if self.ended_at is not None and self.ended_at < self.ends_at:
            return self.ended_at
        return self.ends_at

    @property
    def ended_early(self) -> bool:
        return self.ended_at is not None and self.ended_at < self.ends_at


@dataclass(frozen=True, slots=True)
class WindowBand:
    """The shaded grant window on the chart, and the marker of an early end."""

    x: float
    width: float
    end_x: float
    ended_early: bool
    start_label: str
    end_label: str
    """"ends 08:00", or how and when it ended early: "revoked 02:30"."""
    planned_end_x: float | None
    """Where the window would have ended, when that is on the chart and it ended early."""


@dataclass(frozen=True, slots=True)
class Chart:
    layout: Layout
    start: datetime
    end: datetime
    zone: str
    lanes: list[Lane]
    band: WindowBand
    ticks: list[Tick]
    marks: list[ChartMark]
    now_x: float | None
    counts: dict[MarkKind, int] = field(default_factory=dict)
    description: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _count_phrase(counts: dict[MarkKind, int]) -> str:
    read, denied, glass = (counts.get(kind, 0) for kind in MarkKind)
    total = read + denied + glass
    if total == 0:
        return "no reads"
    reads = f"{total} read{'s' if total != 1 else ''}"
    return f"{reads}: {read} allowed, {denied} denied, {glass} break-glass"


def _describe(window: GrantWindow, counts: dict[MarkKind, int], zone: ZoneInfo, drawn: int) -> str:
    def when(moment: datetime) -> str:
        local = moment.astimezone(zone)
        return f"{_day(local, year=True)} {local:%H:%M}"

    text = (
        f"{_count_phrase(counts)}. Grant window from {when(window.starts_at)} to "
        f"{when(window.ends_at)} ({zone.key})"
    )
    if window.ended_early and window.ended_at is not None:
        text += f"; {window.end_status or 'ended'} early at {when(window.ended_at)}"
    total = sum(counts.values())
    if drawn < total:
        text += f". The first {drawn} reads are drawn"
    return text + "."


def build_chart(
    window: GrantWindow,
    readings: Sequence[Reading],
    zone: ZoneInfo,
    *,
    now: datetime | None = None,
    counts: dict[MarkKind, int] | None = None,
    layout: Layout | None = None,
) -> Chart:
    """The chart of `readings` against `window`. `now` is drawn when given (a live grant);
    `counts` default to the readings' (pass the true totals when only some are drawn)."""
    layout = layout or Layout()
    moments = [window.starts_at, window.real_end, *(r.at for r in readings)]
    if now is not None:
        moments.append(now)
    start, end = plot_range(moments)
    scale = TimeScale(start, end, layout.plot_left, layout.plot_right)
    if counts is None:
        counts = {kind: sum(1 for r in readings if r.kind is kind) for kind in MarkKind}
    lanes = [
        Lane(
            kind=kind,
            label=kind.label,
            y=layout.plot_top + layout.lane_height * (i + 0.5),
            top=layout.plot_top + layout.lane_height * i,
            bottom=layout.plot_top + layout.lane_height * (i + 1),
            count=counts.get(kind, 0),
        )
        for i, kind in enumerate(MarkKind)
    ]
    start_x, end_x = scale.x(window.starts_at), scale.x(window.real_end)
    planned_x = scale.x(window.ends_at) if window.ended_early else None
    how = (window.end_status or "ended") if window.ended_early else "ends"
    band = WindowBand(
        x=start_x,
        width=max(end_x - start_x, 1.0),
        end_x=end_x,
        ended_early=window.ended_early,
        start_label=f"opens {window.starts_at.astimezone(zone):%H:%M}",
        end_label=f"{how} {window.real_end.astimezone(zone):%H:%M}",
        planned_end_x=planned_x if planned_x is not None and window.ends_at <= end else None,
    )
    marks = place_marks(readings, scale, {lane.kind: lane.y for lane in lanes}, zone)
    return Chart(
        layout=layout,
        start=start,
        end=end,
        zone=zone.key,
        lanes=lanes,
        band=band,
        ticks=time_ticks(scale, zone, layout.max_ticks),
        marks=marks,
        now_x=scale.x(now) if now is not None else None,
        counts=counts,
        description=_describe(window, counts, zone, len(marks)),
    )


# --- The grant's events, from the caller's chain ----------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantTimeline:
    """A grant as one tenant's auditor sees it: from the MSP's chain, or from the partner
    NOC's (`side`). `accesses` are the reads, listed as drawn; `history` the grant's other
    events (created, extended, revoked, tokens, notes...)."""

    grant: GrantView
    side: str
    time_zone: str
    accesses: list[AccessEvent]
    history: list[AccessEvent]
    chart: Chart

    @property
    def truncated(self) -> bool:
        return len(self.accesses) < self.chart.total


def _summary(event: AccessEvent) -> str:
    what = f"{event.kind} document" if event.kind else event.action
    return f"{what} by {event.actor_label}"


async def grant_timeline(actor: Actor, clock: Clock, grant_id: uuid.UUID) -> GrantTimeline:
    """The timeline of a grant the caller's tenant handed off (MSP) or received (NOC), from
    that tenant's own chain. Needs `audit:read`; any other grant is "not found". Like a search,
    it writes nothing to the chain (see `audit_search.search`)."""
    tenant_id = actor.require(Permission.AUDIT_READ)
    row = await grant_row(
        (Grant.id == grant_id)
        & ((Grant.tenant_id == tenant_id) | (Grant.noc_tenant_id == tenant_id))
    )
    if row is None:
        raise NotFound("no such grant")
    zone = ZoneInfo((await service.get_tenant(tenant_id)).time_zone)
    now = await clock.now()
    view = grant_view(row, now)
    accesses: list[AccessEvent] = []
    history: list[AccessEvent] = []
    readings: list[Reading] = []
    counts = dict.fromkeys(MarkKind, 0)
    async for event in grant_events(tenant_id, grant_id):
        kind = mark_kind(event.action, event.outcome)
        if kind is None:
            if len(history) < MAX_ACCESS_ROWS:
                history.append(event)
            continue
        counts[kind] += 1
        if len(accesses) < MAX_ACCESS_ROWS:
            accesses.append(event)
            readings.append(Reading(event.seq, event.occurred_at, kind, _summary(event)))
    window = GrantWindow(
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        ended_at=view.ended_at,
        end_status=view.status.value if view.ended_at is not None else None,
    )
    live = view.status in {GrantStatus.ACTIVE, GrantStatus.SCHEDULED}
    chart = build_chart(window, readings, zone, now=now if live else None, counts=counts)
    side = "msp" if row["tenant_id"] == tenant_id else "noc"
    return GrantTimeline(view, side, zone.key, accesses, history, chart)
