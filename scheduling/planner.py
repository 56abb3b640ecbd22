"""The series planner: pure functions over plain intervals, no ORM.

The Django side loads the clinic's calendar, rooms, staff and the patient's busy time (one query
per resource type, ordered by start) and asks for a plan; this module decides where every session
of a protocol goes, and why nothing fits when nothing does. Rule semantics live in
``protocols.rules`` only: the planner asks it which sessions a rule compares (``rule_pairs``) and
which start times keep a pair valid (``later_start_bounds`` / ``earlier_start_bounds``), and checks
every finished plan with ``evaluate(..., require_complete=True)``.

Inputs and outputs
    Every datetime is aware. Every datetime the planner returns is a UTC instant: an aware
    datetime on a repeated or skipped wall-clock hour never compares equal to one in another
    zone (PEP 495), so local times are for display only (``.astimezone(calendar.tz)``).
    ``busy``, ``time_off`` and ``patient_busy`` must each be sorted by start
    (``ORDER BY starts_at``); they may overlap each other. They are searched with
    ``bisect``: the only linear work is one C-level running maximum of ends per list the search
    reaches. They may be tuples of ``Interval`` or ``EpochIntervals`` (epoch microseconds, what
    ``scheduling.supply`` loads); the planner searches integers either way.
    Room ``busy`` includes each hold's turnover; staff ``busy`` is one interval per existing
    assignment. Staff with no ``working_hours`` work whenever the clinic is open. Busy lists
    must contain the holds of ``PlanRequest.fixed`` sessions (they are booked) and must not
    contain the holds of sessions being re-placed (``replan_after``'s ``moved`` old time and
    ``later``).

Session order
    ``session_order`` derives it from the protocol: steps in listed order, a screening step first
    (unless a rule puts something before it), kinds linked by ``each_followed_by(A, B,
    at_least=n)`` interleaved (A, n x B, A, n x B, ..., leftover B's after the last A; chains
    A -> B -> C nest), and groups ordered so every ``precedes`` rule holds. A kind that must
    follow two different kinds is not supported: ``plan_series`` says ``protocol_order``. The
    plan is a chain in that order: each session starts when the previous one has ended or
    later. Fixed sessions (already booked) take the earliest positions of the order their kinds
    and time order allow; the new sessions fill the other positions, also between fixed ones.

Algorithm (earliest finish for that order)
    Every rule, restricted to a chain, is a constraint between two positions p < q of one of two
    shapes. *Lower bounds*: the chain itself, ``min_gap``, ``not_same_day`` and
    ``max_per_window`` say "q starts no earlier than f(start of p)" with f non-decreasing.
    *Upper bounds*: ``max_gap`` says "q starts before g(start of p)", g non-decreasing. Gates,
    opening hours, closures, preferences and resources are *filters* on one session's start.
    Fixed sessions turn every bound touching them into a constant.

    The planner places positions in order, each at the earliest slot-boundary start that passes
    the filters and all lower bounds (``_Search.earliest``: a loop of ``bisect`` queries that
    jumps straight past whatever is busy: the patient, every room of the kind, every staff
    member of each role, instead of trying slots one by one). If that start t breaks an upper
    bound g(start of p) from an earlier new session p, no valid plan keeps p where it is: every
    valid plan has q at t or later (see below), so p must start where g(p) > t. That becomes p's
    new lower bound and the search resumes from p. Bounds only grow and the horizon is finite,
    so this ends. An upper bound from a fixed session that cannot be met, or no start before
    the horizon, means there is no plan, and the reason is reported.

    Why it is the earliest finish: by induction every placed start is the smallest start any
    valid plan can give that position under the lower bounds found so far (lower-bound
    functions are monotone, so pushing an earlier session later never lets a later one start
    sooner), and every raised bound is implied by the rules, so it holds in every valid plan.
    When the chain is complete each session sits at the earliest start any valid plan can give
    it; in particular the last one finishes as early as possible. One coupling between
    positions is not a bound on times: a room's turnover after the patient's own earlier session
    in the same room. When only such holds stand between a position and an earlier start, the
    earlier sessions move to other free rooms at the same times (``_earlier_in_another_room``),
    which leaves every bound placed so far intact; it is a repair by room swaps of single
    sessions, not a full search over room assignments. (The tests compare the finish with a
    brute-force search over every series on small clinics, and the planner benchmark with
    CP-SAT's optimum.)

    Costs: each ``earliest`` call is O((rooms + staff) * log n) per jump, and jumps land only on
    ends of busy intervals, opening times or the next slot; the result is checked once with
    ``evaluate``.

Clinicians
    Each session gets a room of its room kind and one distinct staff member per ``StepRole``.
    With ``Preferences.therapist_id`` the planner first gives that therapist every therapist
    role at the planned times, else looks for a plan with them throughout that ends just as
    early; failing both, they take every session they are free for and the rest go to the
    therapist free for the most of them. Without a wish the same two attempts run for the
    therapists free at the most planned times (the whole-series one for the first three, ties
    going to whoever already sees the patient in fixed sessions), and only then is the choice
    made per session. Keeping a therapist never makes the series end later.

Re-planning
    ``replan_after`` runs the same search with each later session's current start as its lower
    bound: a session stays when its time is still valid (even off the slot grid and outside
    the patient's preferences, which only steer sessions that must move) and otherwise moves to
    the earliest valid slot after it, so each session moves as little as any valid cascade
    allows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import overload
from zoneinfo import ZoneInfo

from protocols.rules import (
    MEDICINE,
    PAIR_RULE_TYPES,
    PatientGates,
    ProtocolSpec,
    Rule,
    SessionFact,
    Step,
    Violation,
    day_start,
    earlier_start_bounds,
    evaluate,
    gate_failures,
    kind_label,
    later_start_bounds,
    require_aware,
    rule_pairs,
    validate_protocol,
)

PLACEMENT_RULES = (
    "clinic_closed",
    "room_unavailable",
    "staff_unavailable",
    "staff_capacity",
    "patient_busy",
    "outside_working_hours",
    "staff_time_off",
)
CONTINUITY_ROLE = "therapist"
"""The role a patient keeps across a series when possible (the therapeutic alliance of KAP)."""

_INSTANT = timedelta(microseconds=1)
_START = attrgetter("start")
_END = attrgetter("end")
_MAX_BOUND_RAISES = 10_000


@dataclass(frozen=True, slots=True)
class Interval:
    """Aware, half-open [start, end)."""

    start: datetime
    end: datetime


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(instant: datetime) -> int:
    """An aware instant as whole microseconds since 1970-01-01 UTC (exact)."""
    return (instant - _EPOCH) // _INSTANT


def from_epoch_us(value: int) -> datetime:
    """The UTC instant ``value`` microseconds after 1970-01-01 UTC (exact)."""
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class EpochIntervals(Sequence[Interval]):
    """Start-sorted half-open intervals held as epoch microseconds (``starts[i]``, ``ends[i]``).

    What the database loads cheaply (``scheduling.busy``) and what the planner's
    timelines search with plain ``int`` comparisons. It is a sequence of ``Interval`` for every
    other reader (the intervals are built on access).
    """

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.starts) != len(self.ends):
            raise ValueError("starts and ends must have the same length")

    @classmethod
    def of(cls, intervals: Iterable[Interval]) -> EpochIntervals:
        pairs = [(epoch_us(iv.start), epoch_us(iv.end)) for iv in intervals]
        return cls(tuple(start for start, _ in pairs), tuple(end for _, end in pairs))

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, index: int) -> Interval: ...

    @overload
    def __getitem__(self, index: slice) -> EpochIntervals: ...

    def __getitem__(self, index: int | slice) -> Interval | EpochIntervals:
        if isinstance(index, slice):
            return EpochIntervals(self.starts[index], self.ends[index])
        return Interval(from_epoch_us(self.starts[index]), from_epoch_us(self.ends[index]))

    def __iter__(self) -> Iterator[Interval]:
        for start, end in zip(self.starts, self.ends, strict=True):
            yield Interval(from_epoch_us(start), from_epoch_us(end))

    def inserted(self, interval: Interval) -> EpochIntervals:
        """These intervals and ``interval``, still sorted by start (after equal starts)."""
        start, end = epoch_us(interval.start), epoch_us(interval.end)
        at = bisect_right(self.starts, start)
        return EpochIntervals(
            (*self.starts[:at], start, *self.starts[at:]), (*self.ends[:at], end, *self.ends[at:])
        )


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Local clinic time; 0 = Monday. An ``end`` of 00:00 means midnight at the end of the day."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class ClinicCalendar:
    tz: ZoneInfo
    opening_hours: tuple[WeeklyHours, ...]
    closures: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class RoomSupply:
    """``busy`` = existing live holds including their turnover, sorted by start."""

    id: int
    kind: str
    turnover_minutes: int = 0
    busy: Sequence[Interval] = ()


@dataclass(frozen=True, slots=True)
class StaffSupply:
    """``busy`` = existing live assignments sorted by start (overlapping when capacity > 1)."""

    id: int
    roles: frozenset[str]
    capacity: int = 1
    working_hours: tuple[WeeklyHours, ...] = ()
    time_off: Sequence[Interval] = ()
    busy: Sequence[Interval] = ()


@dataclass(frozen=True, slots=True)
class Preferences:
    """``weekdays``, ``earliest_time`` and ``latest_start`` are hard filters (local time);
    ``therapist_id`` is a wish the planner grants whenever it can."""

    weekdays: frozenset[int] | None = None
    earliest_time: time | None = None
    latest_start: time | None = None
    therapist_id: int | None = None


@dataclass(frozen=True, slots=True)
class StaffHold:
    staff_id: int
    role: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """``index`` is the session's position in the series order (``session_order``); for
    ``replan_after`` it is the position in ``later``. Datetimes are UTC instants (see the
    module docstring)."""

    index: int
    kind: str
    route: str
    starts_at: datetime
    ends_at: datetime
    room_id: int
    staff: tuple[StaffHold, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """``violations`` is empty when a plan was found; otherwise ``sessions`` is empty and the
    violations say what blocked it."""

    sessions: tuple[PlannedSession, ...]
    violations: tuple[Violation, ...]


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """``fixed``: sessions this series already holds that stay where they are. Every new session
    starts on ``earliest_start`` or later (and not before ``not_before``, e.g. now, when
    planning from today) and before ``earliest_start + horizon_days``."""

    protocol: ProtocolSpec
    earliest_start: date
    patient_busy: Sequence[Interval] = ()
    preferences: Preferences = Preferences()
    gates: PatientGates | None = None
    horizon_days: int = 120
    slot_minutes: int = 15
    fixed: tuple[SessionFact, ...] = ()
    not_before: datetime | None = None

    def first_start(self, tz: ZoneInfo) -> datetime:
        """The earliest instant a new session may start."""
        start = day_start(self.earliest_start, tz)
        if self.not_before is None:
            return start
        return max(start, require_aware(self.not_before, "not_before").astimezone(UTC))


# --------------------------------------------------------------------------------------------
# Session order
# --------------------------------------------------------------------------------------------


def session_order(protocol: ProtocolSpec) -> tuple[str, ...]:
    """The kinds of a complete series, in the order the planner books them.

    ``each_followed_by(A, B, at_least=n)`` makes B a follower of A: each A is followed by n B's
    (while B's remain), and each of those by its own followers (chains such as preparation ->
    integration -> follow-up work the same way); B's left over come after the last A. A kind
    follows one kind only: the first such rule wins, later ones are left to ``evaluate``.
    """
    counts: dict[str, int] = {}
    listed: list[str] = []
    for step in protocol.steps:
        if step.kind not in counts:
            listed.append(step.kind)
        counts[step.kind] = counts.get(step.kind, 0) + step.count
    follows: dict[str, list[tuple[str, int]]] = {}
    leader: dict[str, str] = {}
    for rule in protocol.rules:
        a, b = rule.after, rule.before
        if rule.type != "each_followed_by" or a == b or a not in counts or b not in counts:
            continue
        if b in leader or a in _followers_below(follows, b):
            continue
        follows.setdefault(a, []).append((b, rule.at_least if rule.at_least is not None else 1))
        leader[b] = a
    units = [kind for kind in listed if kind not in leader]

    def root(kind: str) -> str:
        while kind in leader:
            kind = leader[kind]
        return kind

    edges: set[tuple[str, str]] = set()
    for rule in protocol.rules:
        if (
            rule.type == "precedes"
            and rule.after in counts
            and rule.before in counts
            and root(rule.after) != root(rule.before)
        ):
            edges.add((root(rule.after), root(rule.before)))
    if "screening" in units:  # screening first, unless a rule says otherwise
        edges.update(
            ("screening", unit)
            for unit in units
            if unit != "screening" and "screening" not in _reachable(edges, unit)
        )
    remaining = dict(counts)
    kinds: list[str] = []

    def emit(kind: str) -> None:
        kinds.append(kind)
        remaining[kind] -= 1
        for follower, per_session in follows.get(kind, ()):
            for _ in range(min(per_session, remaining[follower])):
                emit(follower)

    for unit in _stable_topological(units, edges):
        for kind in [unit, *_followers_below(follows, unit)]:
            while remaining[kind] > 0:
                emit(kind)
    return tuple(kinds)


def _followers_below(follows: dict[str, list[tuple[str, int]]], kind: str) -> list[str]:
    """Every kind that follows ``kind`` directly or through other followers, nearest first."""
    found: list[str] = []
    frontier = [kind]
    while frontier:
        current = frontier.pop(0)
        for follower, _ in follows.get(current, ()):
            if follower not in found and follower != kind:
                found.append(follower)
                frontier.append(follower)
    return found


def _reachable(edges: set[tuple[str, str]], start: str) -> set[str]:
    reached: set[str] = set()
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for a, b in edges:
            if a == node and b not in reached:
                reached.add(b)
                frontier.append(b)
    return reached


def _stable_topological(nodes: Sequence[str], edges: set[tuple[str, str]]) -> list[str]:
    """Kahn's algorithm taking the earliest listed node each time; a cycle keeps listed order."""
    waiting = {node: {a for a, b in edges if b == node and a != node} for node in nodes}
    order: list[str] = []
    remaining = list(nodes)
    while remaining:
        ready = next((n for n in remaining if not waiting[n] - set(order)), remaining[0])
        order.append(ready)
        remaining.remove(ready)
    return order


# --------------------------------------------------------------------------------------------
# Timelines: start-sorted intervals searched with bisect
# --------------------------------------------------------------------------------------------


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


_NONE = -(2**63)
"""Below every epoch-microsecond instant: the latest end of no interval."""


class _Timeline:
    """Start-sorted intervals answered with ``bisect`` and the running maximum of their ends.

    Held as epoch microseconds (``int``): the searches compare integers, and callers' datetimes
    are converted once per query. The maximum end over a prefix tells whether anything that
    started before a point is still running there, whatever the intervals' lengths and overlaps;
    it is computed (one C-level ``accumulate``) on the first query, so a resource the search
    never asks about costs nothing. Busy time is loaded only around the planning window, so the
    lists are short.
    """

    __slots__ = ("_ends", "_latest", "_starts")

    def __init__(self, items: Sequence[Interval]) -> None:
        epochs = items if isinstance(items, EpochIntervals) else EpochIntervals.of(items)
        self._starts = epochs.starts
        self._ends = epochs.ends
        self._latest: list[int] = []  # [j]: the latest end among the first j intervals

    def __bool__(self) -> bool:
        return bool(self._starts)

    def _latest_ends(self) -> list[int]:
        latest = self._latest
        if not latest:
            latest.append(_NONE)
            latest.extend(accumulate(self._ends, max))
        return latest

    def first_free_us(self, t: int, length: int) -> int:
        """Earliest s >= t with [s, s + length) clear of every interval (epoch microseconds).

        Jumping to the latest end of everything that started before ``t + length`` skips no
        free start: that interval overlaps every window starting before its end.
        """
        starts = self._starts
        if not starts:
            return t
        latest_ends = self._latest or self._latest_ends()
        while True:
            latest = latest_ends[bisect_left(starts, t + length)]
            if latest <= t:
                return t
            t = latest

    def first_free(self, t: datetime, length: timedelta) -> datetime:
        """``first_free_us`` for aware datetimes; returns a UTC instant."""
        if not self._starts:
            return t
        t_us = epoch_us(t)
        free = self.first_free_us(t_us, length // _INSTANT)
        return t if free == t_us else from_epoch_us(free)

    def overlapping_us(self, t0: int, t1: int) -> list[tuple[int, int]]:
        """Every interval overlapping [t0, t1), walking back only as far as something that
        started earlier may still run at ``t0``."""
        starts, ends = self._starts, self._ends
        latest_ends = self._latest or self._latest_ends()
        found: list[tuple[int, int]] = []
        i = bisect_left(starts, t1) - 1
        while i >= 0 and latest_ends[i + 1] > t0:
            if ends[i] > t0:
                found.append((starts[i], ends[i]))
            i -= 1
        return found

    def first_saturated_us(self, t0: int, t1: int, capacity: int) -> tuple[int, int] | None:
        """The first stretch of [t0, t1) where ``capacity`` or more intervals run at once,
        clipped to [t0, t1); None when there is none."""
        running = self.overlapping_us(t0, t1)
        if len(running) < capacity:
            return None
        points = sorted(
            {t0}
            | {start for start, _ in running if start > t0}
            | {end for _, end in running if end < t1}
        )
        stretch_start: int | None = None
        for point in points:
            depth = sum(1 for start, end in running if start <= point < end)
            if stretch_start is None and depth >= capacity:
                stretch_start = point
            elif stretch_start is not None and depth < capacity:
                return stretch_start, point
        return (stretch_start, t1) if stretch_start is not None else None

    def first_saturated(
        self, t0: datetime, t1: datetime, capacity: int
    ) -> tuple[datetime, datetime] | None:
        """``first_saturated_us`` for aware datetimes; returns UTC instants."""
        found = self.first_saturated_us(epoch_us(t0), epoch_us(t1), capacity)
        if found is None:
            return None
        return from_epoch_us(found[0]), from_epoch_us(found[1])


# --------------------------------------------------------------------------------------------
# Weekly hours
# --------------------------------------------------------------------------------------------


class _WeeklyWindows:
    """Weekly local hours as UTC windows per date, merged where they touch, cached per date."""

    __slots__ = ("_by_weekday", "_cache", "_cache_us", "_tz")

    def __init__(self, hours: Iterable[WeeklyHours], tz: ZoneInfo) -> None:
        by_weekday: dict[int, list[tuple[time, time | None]]] = {}
        for entry in hours:
            if not 0 <= entry.weekday <= 6:
                raise ValueError(f"weekday must be 0 (Monday) to 6, got {entry.weekday}")
            end = None if entry.end == time(0) else entry.end
            if end is not None and end <= entry.start:
                raise ValueError(f"hours {entry.start}-{entry.end} end before they start")
            by_weekday.setdefault(entry.weekday, []).append((entry.start, end))
        self._by_weekday = by_weekday
        self._tz = tz
        self._cache: dict[date, list[tuple[datetime, datetime]]] = {}
        self._cache_us: dict[date, list[tuple[int, int]]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_weekday)

    def on(self, day: date) -> list[tuple[datetime, datetime]]:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        windows: list[tuple[datetime, datetime]] = []
        for start, end in sorted(self._by_weekday.get(day.weekday(), ()), key=lambda pair: pair[0]):
            utc_start = datetime.combine(day, start, tzinfo=self._tz).astimezone(UTC)
            utc_end = (
                day_start(day + timedelta(days=1), self._tz)
                if end is None
                else datetime.combine(day, end, tzinfo=self._tz).astimezone(UTC)
            )
            if windows and utc_start <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], utc_end))
            else:
                windows.append((utc_start, utc_end))
        self._cache[day] = windows
        return windows

    def next_inside(self, t: datetime, length: timedelta, limit: datetime) -> datetime | None:
        """Earliest s >= t with [s, s + length) inside one window; None if none before limit."""
        day = t.astimezone(self._tz).date()
        while day_start(day, self._tz) < limit:
            for start, end in self.on(day):
                s = start if start > t else t
                if s + length <= end:
                    return s if s < limit else None
            day += timedelta(days=1)
        return None

    def contains(self, t: datetime, length: timedelta) -> bool:
        day = t.astimezone(self._tz).date()
        return any(start <= t and t + length <= end for start, end in self.on(day))

    def contains_us(self, t: int, length: int, day: date) -> bool:
        """``contains`` in epoch microseconds; ``day`` is t's local date."""
        windows = self._cache_us.get(day)
        if windows is None:
            windows = self._cache_us[day] = [
                (epoch_us(start), epoch_us(end)) for start, end in self.on(day)
            ]
        end = t + length
        for start, stop in windows:  # noqa: SIM110 (a plain loop: tens of thousands per plan)
            if start <= t and end <= stop:
                return True
        return False


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


class _Room:
    __slots__ = ("busy", "id", "kind", "turnover")

    def __init__(self, supply: RoomSupply) -> None:
        self.id = supply.id
        self.kind = supply.kind
        self.turnover = timedelta(minutes=supply.turnover_minutes)
        self.busy = _Timeline(supply.busy)


class _Staff:
    __slots__ = ("busy", "capacity", "hours", "id", "roles", "time_off")

    def __init__(self, supply: StaffSupply, tz: ZoneInfo) -> None:
        if supply.capacity < 1:
            raise ValueError(f"staff {supply.id} has capacity {supply.capacity}; it must be >= 1")
        self.id = supply.id
        self.roles = supply.roles
        self.capacity = supply.capacity
        self.hours = _WeeklyWindows(supply.working_hours, tz)
        self.time_off = _Timeline(supply.time_off)
        self.busy = _Timeline(supply.busy)

    def next_free(self, t: datetime, length: timedelta, limit: datetime) -> datetime | None:
        """Earliest s >= t this person can hold [s, s + length); None if none before limit."""
        while t < limit:
            s = t
            if self.hours:
                inside = self.hours.next_inside(t, length, limit)
                if inside is None:
                    return None
                s = inside
            s = self.time_off.first_free(s, length)
            s = self._busy_free(s, length)
            if s == t:
                return t
            t = s
        return None

    def _busy_free(self, t: datetime, length: timedelta) -> datetime:
        if self.capacity == 1:
            return self.busy.first_free(t, length)
        while True:
            saturated = self.busy.first_saturated(t, t + length, self.capacity)
            if saturated is None:
                return t
            t = saturated[1]

    def is_free_at(self, t: int, length: int, day: date) -> bool:
        """Whether this person can hold [t, t + length) (epoch microseconds; ``day`` is t's
        local date): ``reason_blocked`` is None, and ``next_free`` would return t, without
        searching past t. Busy time is checked first: it is what most often says no."""
        if self.capacity == 1:
            if self.busy.first_free_us(t, length) != t:
                return False
        elif self.busy.first_saturated_us(t, t + length, self.capacity) is not None:
            return False
        return self.time_off.first_free_us(t, length) == t and (
            not self.hours or self.hours.contains_us(t, length, day)
        )

    def reason_blocked(self, t: datetime, length: timedelta) -> str | None:
        """Why this person cannot hold [t, t + length), as a placement rule name."""
        if self.hours and not self.hours.contains(t, length):
            return "outside_working_hours"
        if self.time_off.first_free(t, length) != t:
            return "staff_time_off"
        if self.capacity == 1:
            at_capacity = self.busy.first_free(t, length) != t
        else:
            at_capacity = self.busy.first_saturated(t, t + length, self.capacity) is not None
        if at_capacity:
            return "staff_capacity"
        return None


@dataclass(frozen=True, slots=True)
class _Need:
    """One session to place, with what may and should hold it."""

    kind: str
    route: str
    duration: timedelta
    room_kind: str
    roles: tuple[tuple[str, timedelta], ...]
    gated: bool = False
    use_preferences: bool = True
    room_ids: frozenset[int] | None = None
    role_staff: tuple[frozenset[int] | None, ...] = ()
    preferred_room: int | None = None
    preferred_staff: tuple[int, ...] = ()
    stay_at: datetime | None = None

    def allowed(self, n: int) -> frozenset[int] | None:
        """Who may take the n-th role (None: anyone with the role)."""
        return self.role_staff[n] if n < len(self.role_staff) else None

    def only(self, staff_id: int, *, role: str | None = None, n: int | None = None) -> _Need:
        """The same session with ``role`` (or the n-th role) taken by ``staff_id`` only."""
        restrictions = tuple(
            frozenset({staff_id}) if name == role or m == n else self.allowed(m)
            for m, (name, _) in enumerate(self.roles)
        )
        return replace(self, role_staff=restrictions)


def _need_for_step(step: Step, *, gated: bool = False, use_preferences: bool = True) -> _Need:
    duration = timedelta(minutes=step.duration_minutes)
    roles = tuple(
        (role.role, duration if role.minutes is None else timedelta(minutes=role.minutes))
        for role in step.roles
    )
    return _Need(
        step.kind,
        step.route,
        duration,
        step.room_kind,
        roles,
        gated=gated,
        use_preferences=use_preferences,
    )


@dataclass(frozen=True, slots=True)
class _Assignment:
    room_id: int
    staff: tuple[tuple[int, str, timedelta], ...]  # staff id, role, minutes from the start


@dataclass(frozen=True, slots=True)
class _OwnHold:
    """A room hold of a session placed in this plan (with the room's turnover)."""

    room_id: int
    start: datetime
    end: datetime


class _Search:
    """Where one session can go: the clinic, its rooms and staff, the patient and the filters."""

    def __init__(
        self,
        calendar: ClinicCalendar,
        rooms: Sequence[RoomSupply],
        staff: Sequence[StaffSupply],
        *,
        patient_busy: Sequence[Interval],
        slot_minutes: int,
        preferences: Preferences = Preferences(),
        gates: PatientGates | None = None,
    ) -> None:
        if slot_minutes < 1 or 1440 % slot_minutes:
            raise ValueError(f"slot_minutes must divide a day, got {slot_minutes}")
        self.tz = calendar.tz
        self.calendar = calendar
        self.opening = _WeeklyWindows(calendar.opening_hours, calendar.tz)
        self.rooms = [_Room(room) for room in rooms]
        self.room_turnover = {room.id: room.turnover for room in self.rooms}
        self.staff = [_Staff(person, calendar.tz) for person in staff]
        self.staff_by_id = {person.id: person for person in self.staff}
        self.patient = _Timeline(patient_busy)
        self.slot_minutes = slot_minutes
        self.preferences = preferences
        self.gates = gates
        self._day_ok: dict[tuple[date, bool, bool], bool] = {}
        self._pref_window: dict[date, tuple[datetime | None, datetime | None]] = {}
        self._offset_change: dict[date, bool] = {}
        self._boundaries: dict[date, list[datetime]] = {}
        self._with_role: dict[str, list[_Staff]] = {}

    # -- candidate starts ----------------------------------------------------------------

    def _day_allowed(self, day: date, need: _Need) -> bool:
        key = (day, need.gated, need.use_preferences)
        allowed = self._day_ok.get(key)
        if allowed is None:
            weekdays = self.preferences.weekdays
            allowed = (
                day not in self.calendar.closures
                and not (
                    need.use_preferences and weekdays is not None and day.weekday() not in weekdays
                )
                and not (need.gated and self.gates is not None and gate_failures(day, self.gates))
            )
            self._day_ok[key] = allowed
        return allowed

    def _preference_window(self, day: date) -> tuple[datetime | None, datetime | None]:
        window = self._pref_window.get(day)
        if window is None:
            prefs = self.preferences
            low = (
                None
                if prefs.earliest_time is None
                else datetime.combine(day, prefs.earliest_time, tzinfo=self.tz).astimezone(UTC)
            )
            high = (
                None
                if prefs.latest_start is None
                else datetime.combine(day, prefs.latest_start, tzinfo=self.tz).astimezone(UTC)
            )
            window = (low, high)
            self._pref_window[day] = window
        return window

    def next_start(self, t: datetime, need: _Need, limit: datetime) -> datetime | None:
        """The first slot boundary >= t where the session fits the opening hours, the closures,
        the gates and the preferences; None if there is none before ``limit``."""
        day = t.astimezone(self.tz).date()
        while day_start(day, self.tz) < limit:
            if self._day_allowed(day, need):
                low_pref, high_pref = (
                    self._preference_window(day) if need.use_preferences else (None, None)
                )
                for open_at, close_at in self.opening.on(day):
                    low = max(open_at, t) if low_pref is None else max(open_at, t, low_pref)
                    high = close_at - need.duration
                    if high_pref is not None and high_pref < high:
                        high = high_pref
                    if low > high:
                        continue
                    start = self._boundary_at_or_after(low, day)
                    if start is not None and start <= high:
                        return start if start < limit else None
            day += timedelta(days=1)
        return None

    def _boundary_at_or_after(self, t: datetime, day: date) -> datetime | None:
        """The first local wall-clock multiple of ``slot_minutes`` on ``day`` at or after t."""
        if self._offset_changes(day):
            return next((start for start in self._day_boundaries(day) if start >= t), None)
        local = t.astimezone(self.tz)
        minute = local.hour * 60 + local.minute + (1 if local.second or local.microsecond else 0)
        if local.date() != day:
            minute = 0
        step = self.slot_minutes
        minute = -(-minute // step) * step
        if minute >= 1440:
            return None
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz).astimezone(
            UTC
        )

    def _day_boundaries(self, day: date) -> list[datetime]:
        """Every slot boundary of a day whose clock changes, in time order: wall times the
        change skips are left out, wall times it repeats come twice."""
        found = self._boundaries.get(day)
        if found is None:
            instants = set()
            for minute in range(0, 1440, self.slot_minutes):
                wall = time(minute // 60, minute % 60)
                for fold in (0, 1):
                    candidate = datetime.combine(day, wall, tzinfo=self.tz).replace(fold=fold)
                    if candidate.astimezone(UTC).astimezone(self.tz).time() == wall:
                        instants.add(candidate.astimezone(UTC))
            found = sorted(instants)
            self._boundaries[day] = found
        return found

    def _offset_changes(self, day: date) -> bool:
        changes = self._offset_change.get(day)
        if changes is None:
            changes = (
                day_start(day, self.tz).astimezone(self.tz).utcoffset()
                != (day_start(day + timedelta(days=1), self.tz) - _INSTANT)
                .astimezone(self.tz)
                .utcoffset()
            )
            self._offset_change[day] = changes
        return changes

    def fits_opening(self, start: datetime, need: _Need) -> bool:
        day = start.astimezone(self.tz).date()
        return (
            day not in self.calendar.closures
            and self.opening.contains(start, need.duration)
            and not (need.gated and self.gates is not None and gate_failures(day, self.gates))
        )

    # -- resources ------------------------------------------------------------------------

    def rooms_for(self, need: _Need) -> list[_Room]:
        rooms = [
            room
            for room in self.rooms
            if room.kind == need.room_kind and (need.room_ids is None or room.id in need.room_ids)
        ]
        if need.preferred_room is not None:
            rooms.sort(key=lambda room: room.id != need.preferred_room)
        return rooms

    def staff_for(self, need: _Need, n: int) -> list[_Staff]:
        role = need.roles[n][0]
        allowed = need.allowed(n)
        with_role = self._with_role.get(role)
        if with_role is None:
            with_role = self._with_role[role] = [p for p in self.staff if role in p.roles]
        people = (
            list(with_role)
            if allowed is None
            else [person for person in with_role if person.id in allowed]
        )
        if need.preferred_staff:
            rank = {staff_id: i for i, staff_id in enumerate(need.preferred_staff)}
            people.sort(key=lambda person: rank.get(person.id, len(rank)))
        return people

    @staticmethod
    def _own_room_free(
        room: _Room, t: datetime, span: timedelta, own: Sequence[_OwnHold]
    ) -> datetime:
        moved = True
        while moved:
            moved = False
            for hold in own:
                if hold.room_id == room.id and hold.start < t + span and t < hold.end:
                    t = hold.end
                    moved = True
        return t

    def probe(
        self, need: _Need, s: datetime, limit: datetime, own: Sequence[_OwnHold]
    ) -> tuple[_Assignment | None, datetime | None]:
        """Either an assignment at s, or a start before which nothing can fit (None: nothing
        before ``limit``)."""
        duration = need.duration
        patient_free = self.patient.first_free(s, duration)
        if patient_free > s:
            return None, patient_free
        free_rooms: list[_Room] = []
        room_next: datetime | None = None
        for room in self.rooms_for(need):
            span = duration + room.turnover
            t = room.busy.first_free(s, span)
            while own:
                after_own = self._own_room_free(room, t, span, own)
                if after_own == t:
                    break
                t = room.busy.first_free(after_own, span)
            if t == s:
                free_rooms.append(room)
            elif room_next is None or t < room_next:
                room_next = t
        if not free_rooms:
            return None, room_next
        jump = s
        s_us = epoch_us(s)
        day = s.astimezone(self.tz).date()
        free_staff: list[list[_Staff]] = []
        for n, (_, minutes) in enumerate(need.roles):
            people = self.staff_for(need, n)
            length = minutes // _INSTANT
            free = [person for person in people if person.is_free_at(s_us, length, day)]
            if not free:
                # Only when nobody is free at s: the earliest anyone of the role is (a search).
                role_next: datetime | None = None
                for person in people:
                    t_person = person.next_free(s, minutes, limit)
                    if t_person is not None and (role_next is None or t_person < role_next):
                        role_next = t_person
                if role_next is None:
                    return None, None
                jump = max(jump, role_next)
            free_staff.append(free)
        if jump > s:
            return None, jump
        chosen = _distinct_choice(free_staff)
        if chosen is None:
            return None, s + _INSTANT
        staff = tuple(
            (person.id, role, minutes)
            for person, (role, minutes) in zip(chosen, need.roles, strict=True)
        )
        return _Assignment(free_rooms[0].id, staff), None

    def assignment_at(self, need: _Need, s: datetime) -> _Assignment | None:
        """What ``probe`` assigns at s (with no own holds), without looking past s."""
        if self.patient.first_free(s, need.duration) != s:
            return None
        room = next(
            (
                room
                for room in self.rooms_for(need)
                if room.busy.first_free(s, need.duration + room.turnover) == s
            ),
            None,
        )
        if room is None:
            return None
        s_us = epoch_us(s)
        day = s.astimezone(self.tz).date()
        free_staff: list[list[_Staff]] = []
        for n, (_, minutes) in enumerate(need.roles):
            length = minutes // _INSTANT
            free = [p for p in self.staff_for(need, n) if p.is_free_at(s_us, length, day)]
            if not free:
                return None
            free_staff.append(free)
        chosen = _distinct_choice(free_staff)
        if chosen is None:
            return None
        return _Assignment(
            room.id,
            tuple(
                (person.id, role, minutes)
                for person, (role, minutes) in zip(chosen, need.roles, strict=True)
            ),
        )

    def earliest(
        self,
        need: _Need,
        low: datetime,
        limit: datetime,
        own: Sequence[_OwnHold] = (),
    ) -> tuple[datetime, _Assignment] | None:
        """The earliest start >= low (before ``limit``) where the session fits, with who and
        where; the session's own time (``stay_at``) counts even off the slot grid."""
        if need.stay_at == low and low < limit and self.fits_opening(low, need):
            assignment, _ = self.probe(need, low, limit, own)
            if assignment is not None:
                return low, assignment
        s = self.next_start(low, need, limit)
        while s is not None:
            assignment, jump = self.probe(need, s, limit, own)
            if assignment is not None:
                return s, assignment
            if jump is None or jump >= limit:
                return None
            s = self.next_start(jump if jump > s else s + _INSTANT, need, limit)
        return None


def _distinct_choice(candidates: Sequence[Sequence[_Staff]]) -> list[_Staff] | None:
    """One distinct person per role, earlier candidates preferred (small backtracking)."""
    chosen: list[_Staff] = []
    used: set[int] = set()

    def fill(n: int) -> bool:
        if n == len(candidates):
            return True
        for person in candidates[n]:
            if person.id in used:
                continue
            used.add(person.id)
            chosen.append(person)
            if fill(n + 1):
                return True
            used.discard(person.id)
            chosen.pop()
        return False

    return chosen if fill(0) else None


# --------------------------------------------------------------------------------------------
# The chain search
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Position:
    kind: str
    label: str
    need: _Need | None = None
    pinned: SessionFact | None = None
    index: int = 0
    lower: datetime | None = None


@dataclass(slots=True)
class _Placed:
    start: datetime
    end: datetime
    assignment: _Assignment | None = None


@dataclass(frozen=True, slots=True)
class _Blocked:
    """Why position ``position`` could not be placed."""

    position: int
    low: datetime
    bound: tuple[Rule | None, int] | None = None  # an upper bound from a fixed session
    pushed: tuple[Rule, int, int] | None = None  # the last max_gap that moved a session later


@dataclass(slots=True)
class _Chain:
    positions: list[_Position]
    tz: ZoneInfo
    rules: tuple[Rule, ...]
    by_later: dict[int, list[tuple[Rule, int]]] = field(default_factory=dict)
    by_earlier: dict[int, list[tuple[Rule, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = [position.kind for position in self.positions]
        for rule in self.rules:
            if rule.type not in PAIR_RULE_TYPES:
                continue
            for i, j in rule_pairs(rule, kinds):
                self.by_later.setdefault(j, []).append((rule, i))
                self.by_earlier.setdefault(i, []).append((rule, j))


def _pinned_placement(fact: SessionFact) -> _Placed:
    return _Placed(fact.starts_at.astimezone(UTC), fact.ends_at.astimezone(UTC))


def _solve(
    chain: _Chain,
    search: _Search,
    limit: datetime,
    latest: Sequence[datetime] | None = None,
) -> tuple[list[_Placed], None] | tuple[None, _Blocked]:
    """Place every free position at its earliest start (see the module docstring).

    ``latest[k]``: position k must start before it (``_latest_starts``); the search for k stops
    there, since a start found later could only end in a plan that finishes too late."""
    positions = chain.positions
    n = len(positions)
    lower: list[datetime | None] = [position.lower for position in positions]
    placed: list[_Placed | None] = [
        _pinned_placement(p.pinned) if p.pinned is not None else None for p in positions
    ]
    raises = 0
    pushed: tuple[Rule, int, int] | None = None
    k = 0
    while k < n:
        position = positions[k]
        if position.pinned is not None:
            k += 1
            continue
        need = position.need
        assert need is not None
        low = lower[k]
        high_fixed: datetime | None = None
        fixed_bound: tuple[Rule | None, int] | None = None
        upper_from_new: list[tuple[datetime, Rule, int]] = []
        if k > 0:
            previous = placed[k - 1]
            assert previous is not None
            low = _later(low, previous.end)
        if k + 1 < n and positions[k + 1].pinned is not None:
            following = placed[k + 1]
            assert following is not None
            high_fixed = following.start - need.duration + _INSTANT
            fixed_bound = (None, k + 1)
        for rule, i in chain.by_later.get(k, ()):
            earlier = placed[i]
            assert earlier is not None
            rule_low, rule_high = later_start_bounds(rule, earlier.start, earlier.end, chain.tz)
            low = _later(low, rule_low)
            if rule_high is None:
                continue
            if positions[i].pinned is not None:
                if high_fixed is None or rule_high < high_fixed:
                    high_fixed, fixed_bound = rule_high, (rule, i)
            else:
                upper_from_new.append((rule_high, rule, i))
        for rule, j in chain.by_earlier.get(k, ()):
            later_fixed = placed[j]
            if positions[j].pinned is None or later_fixed is None:
                continue
            rule_low, rule_high = earlier_start_bounds(
                rule, later_fixed.start, need.duration, chain.tz
            )
            low = _later(low, rule_low)
            if rule_high is not None and (high_fixed is None or rule_high < high_fixed):
                high_fixed, fixed_bound = rule_high, (rule, j)
        assert low is not None
        own = [
            _OwnHold(p.assignment.room_id, p.start, p.end + _turnover(search, p.assignment))
            for p in placed[:k]
            if p is not None and p.assignment is not None
        ]
        before = limit if latest is None else min(limit, latest[k])
        found = search.earliest(need, low, before, own) if low < before else None
        if found is not None and own:
            found = _earlier_in_another_room(search, positions, placed, k, low, found)
        if found is None:
            return None, _Blocked(k, low, pushed=pushed)
        start, assignment = found
        if high_fixed is not None and start >= high_fixed:
            return None, _Blocked(k, start, fixed_bound)
        broken = [(rule, i) for high, rule, i in upper_from_new if start >= high]
        if not broken:
            placed[k] = _Placed(start, start + need.duration, assignment)
            k += 1
            continue
        raises += 1
        if raises > _MAX_BOUND_RAISES:
            return None, _Blocked(k, start, pushed=pushed)
        restart = k
        for rule, i in broken:
            earlier_need = positions[i].need
            assert earlier_need is not None
            new_low, _ = earlier_start_bounds(rule, start, earlier_need.duration, chain.tz)
            assert new_low is not None
            lower[i] = _later(lower[i], new_low)
            restart = min(restart, i)
            pushed = (rule, i, k)
        for i in range(restart, n):
            if positions[i].pinned is None:
                placed[i] = None
        k = restart
    return [p for p in placed if p is not None], None


def _turnover(search: _Search, assignment: _Assignment) -> timedelta:
    return search.room_turnover[assignment.room_id]


def _earlier_in_another_room(
    search: _Search,
    positions: Sequence[_Position],
    placed: list[_Placed | None],
    k: int,
    low: datetime,
    found: tuple[datetime, _Assignment],
) -> tuple[datetime, _Assignment]:
    """An earlier start for position ``k`` that only the plan's own room holds stand in the way
    of, freed by moving those earlier sessions to another room at the same times.

    A room's turnover after the patient's own session is the one coupling between positions that
    the earliest-start argument does not cover (module docstring): screening in the only room
    that stays free all afternoon can push the preparation after it, and so the whole series, a
    day later. Moving an earlier session to another free room keeps every time, so every bound
    already placed still holds. Mutates ``placed`` when it succeeds.
    """
    need = positions[k].need
    assert need is not None
    limit, _ = found
    relaxed = search.earliest(need, low, limit) if low < limit else None
    while relaxed is not None:
        start, assignment = relaxed
        swap = _room_swaps_for(search, positions, placed, k, need, start)
        if swap is not None:
            room_id, moves = swap
            for i, other_room in moves.items():
                held = placed[i]
                assert held is not None
                assert held.assignment is not None
                placed[i] = replace(held, assignment=replace(held.assignment, room_id=other_room))
            return start, replace(assignment, room_id=room_id)
        relaxed = search.earliest(need, start + _INSTANT, limit)
    return found


def _own_holds(
    search: _Search, placed: Sequence[_Placed | None], skip: int | None = None
) -> list[_OwnHold]:
    return [
        _OwnHold(p.assignment.room_id, p.start, p.end + _turnover(search, p.assignment))
        for i, p in enumerate(placed)
        if p is not None and p.assignment is not None and i != skip
    ]


def _conflicts(hold: _OwnHold, others: Iterable[_OwnHold]) -> list[_OwnHold]:
    return [
        other
        for other in others
        if other.room_id == hold.room_id and other.start < hold.end and hold.start < other.end
    ]


def _room_swaps_for(
    search: _Search,
    positions: Sequence[_Position],
    placed: Sequence[_Placed | None],
    k: int,
    need: _Need,
    start: datetime,
) -> tuple[int, dict[int, int]] | None:
    """A room for position ``k`` at ``start`` and the earlier sessions to move out of its way
    (position -> their new room; empty when it is free as it is), or None."""
    end = start + need.duration
    for room in search.rooms_for(need):
        if room.busy.first_free(start, need.duration + room.turnover) != start:
            continue
        wanted = _OwnHold(room.id, start, end + room.turnover)
        blocking = [
            i
            for i, p in enumerate(placed[:k])
            if p is not None
            and p.assignment is not None
            and _conflicts(wanted, _own_holds(search, [p]))
        ]
        if not blocking:
            return room.id, {}
        moves: dict[int, int] = {}
        trial = list(placed)
        for i in blocking:
            new_room = _another_room(search, positions, trial, i, extra=[wanted])
            if new_room is None:
                break
            held = trial[i]
            assert held is not None
            assert held.assignment is not None
            trial[i] = replace(held, assignment=replace(held.assignment, room_id=new_room))
            moves[i] = new_room
        else:
            return room.id, moves
    return None


def _another_room(
    search: _Search,
    positions: Sequence[_Position],
    placed: Sequence[_Placed | None],
    i: int,
    *,
    extra: Sequence[_OwnHold],
) -> int | None:
    """Another room for placed position ``i`` at its own time, clear of every other hold."""
    position, held = positions[i], placed[i]
    if position.pinned is not None or position.need is None or held is None:
        return None
    assert held.assignment is not None
    others = [*_own_holds(search, placed, skip=i), *extra]
    for room in search.rooms_for(position.need):
        if room.id == held.assignment.room_id:
            continue
        span = held.end - held.start + room.turnover
        if room.busy.first_free(held.start, span) != held.start:
            continue
        if not _conflicts(_OwnHold(room.id, held.start, held.start + span), others):
            return room.id
    return None


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def plan_series(
    request: PlanRequest,
    calendar: ClinicCalendar,
    rooms: Sequence[RoomSupply],
    staff: Sequence[StaffSupply],
) -> Plan:
    """Plan the sessions of ``request.protocol`` not yet held (``fixed``) so the series finishes
    as early as possible (see the module docstring); writes nothing."""
    protocol = request.protocol
    problems = validate_protocol(protocol)
    if problems:
        return _blocked_plan(
            Violation("protocol_invalid", problem, (), "Correct the protocol and plan again.")
            for problem in problems
        )
    unordered = _order_problems(protocol)
    if unordered:
        return _blocked_plan(unordered)
    tz = calendar.tz
    fixed = sorted(
        (_checked_fact(fact) for fact in request.fixed),
        key=lambda f: (f.starts_at.astimezone(UTC), f.ends_at.astimezone(UTC)),
    )
    window_start = request.first_start(tz)
    limit = day_start(request.earliest_start + timedelta(days=request.horizon_days), tz)
    positions = _positions_for(protocol, fixed, request.gates is not None, window_start)
    shortages = _missing_resources(positions, rooms, staff)
    if shortages:
        return _blocked_plan(shortages)
    search = _Search(
        calendar,
        rooms,
        staff,
        patient_busy=request.patient_busy,
        slot_minutes=request.slot_minutes,
        preferences=request.preferences,
        gates=request.gates,
    )
    therapist_first = _continuity_candidates(request.preferences.therapist_id, fixed, staff)
    for position in positions:
        if position.need is not None and therapist_first:
            position.need = replace(position.need, preferred_staff=therapist_first)
    chain = _Chain(positions, tz, protocol.rules)
    result, blocked = _solve(chain, search, limit)
    if result is None:
        assert blocked is not None
        return _blocked_plan(_explain(blocked, chain, search, limit, request))
    result = _keep_one_therapist(
        chain, search, limit, result, therapist_first, request.preferences.therapist_id
    )
    sessions = _planned_sessions(chain, result, tz)
    facts = [
        position.pinned
        if position.pinned is not None
        else SessionFact(position.index, position.kind, placement.start, placement.end)
        for position, placement in zip(positions, result, strict=True)
    ]
    violations = evaluate(facts, protocol, tz, gates=request.gates, require_complete=True)
    if violations:
        return _blocked_plan(violations)
    return Plan(tuple(sessions), ())


def replan_after(
    request: PlanRequest,
    calendar: ClinicCalendar,
    rooms: Sequence[RoomSupply],
    staff: Sequence[StaffSupply],
    *,
    moved: SessionFact,
    later: Sequence[SessionFact],
) -> Plan:
    """Re-place the sessions after a moved one, moving each as little as needed.

    ``request.fixed`` are the series' sessions before the moved one; they and ``moved`` (at its
    new time) stay. Each of ``later`` keeps its time (and its room and clinicians, when given and
    still free) if the series stays valid that way; otherwise it goes to the earliest valid start
    not before its current one. Every session's new start is the smallest such start any valid
    re-plan could give it. The answer lists ``later`` in the given order, ``index`` being the
    position in ``later``; ``violations`` explain a cascade that cannot be done.
    """
    protocol = request.protocol
    tz = calendar.tz
    pinned = sorted(
        (_checked_fact(fact) for fact in (*request.fixed, moved)),
        key=lambda f: (f.starts_at.astimezone(UTC), f.ends_at.astimezone(UTC)),
    )
    order = sorted(
        range(len(later)), key=lambda n: _checked_fact(later[n]).starts_at.astimezone(UTC)
    )
    base_day = max(request.earliest_start, moved.starts_at.astimezone(tz).date())
    first_start = request.first_start(tz)
    limit = day_start(base_day + timedelta(days=request.horizon_days), tz)
    labels = _Labels()
    positions = [_Position(fact.kind, labels(fact.kind), pinned=fact, index=-1) for fact in pinned]
    therapist_first = _continuity_candidates(request.preferences.therapist_id, pinned, staff)
    unknown: list[Violation] = []
    for n in order:
        fact = later[n]
        step = next((s for s in protocol.steps if s.kind == fact.kind), None)
        label = labels(fact.kind)
        if step is None:
            unknown.append(
                Violation(
                    "step_count",
                    f"The protocol has no {kind_label(fact.kind)} step for {label}.",
                    (fact.ref,),
                    f"Cancel {label} or move it by hand.",
                )
            )
            continue
        positions.append(
            _Position(
                fact.kind,
                label,
                need=_need_for_session(step, fact, request, therapist_first),
                index=n,
                lower=max(fact.starts_at.astimezone(UTC), first_start),
            )
        )
    if unknown:
        return _blocked_plan(unknown)
    shortages = _missing_resources(positions, rooms, staff)
    if shortages:
        return _blocked_plan(shortages)
    search = _Search(
        calendar,
        rooms,
        staff,
        patient_busy=request.patient_busy,
        slot_minutes=request.slot_minutes,
        preferences=request.preferences,
        gates=request.gates,
    )
    chain = _Chain(positions, tz, protocol.rules)
    result, blocked = _solve(chain, search, limit)
    if result is None:
        assert blocked is not None
        return _blocked_plan(_explain(blocked, chain, search, limit, request))
    facts = [
        position.pinned
        if position.pinned is not None
        else SessionFact(later[position.index].ref, position.kind, placement.start, placement.end)
        for position, placement in zip(positions, result, strict=True)
    ]
    violations = evaluate(facts, protocol, tz, gates=request.gates)
    if violations:
        return _blocked_plan(violations)
    sessions = sorted(_planned_sessions(chain, result, tz), key=attrgetter("index"))
    return Plan(tuple(sessions), ())


def free_starts(
    kind_step: Step,
    day_from: date,
    day_to: date,
    calendar: ClinicCalendar,
    rooms: Sequence[RoomSupply],
    staff: Sequence[StaffSupply],
    *,
    patient_busy: Sequence[Interval] = (),
    slot_minutes: int = 15,
    staff_id: int | None = None,
    room_id: int | None = None,
) -> list[datetime]:
    """Every slot start from ``day_from`` to ``day_to`` (inclusive, local dates) where one
    session of the step fits; with ``staff_id`` that person must be one of its clinicians,
    with ``room_id`` it must be in that room. Times are UTC instants."""
    window_start = day_start(day_from, calendar.tz)
    limit = day_start(day_to + timedelta(days=1), calendar.tz)
    search = _Search(
        calendar,
        rooms,
        staff,
        patient_busy=patient_busy,
        slot_minutes=slot_minutes,
    )
    base = _need_for_step(kind_step, use_preferences=False)
    if room_id is not None:
        base = replace(base, room_ids=frozenset({room_id}))
    needs = [base]
    if staff_id is not None:
        person = next((p for p in staff if p.id == staff_id), None)
        needs = [
            base.only(staff_id, n=n)
            for n, (role, _) in enumerate(base.roles)
            if person is not None and role in person.roles
        ]
    starts: set[datetime] = set()
    for need in needs:
        found = search.earliest(need, window_start, limit)
        while found is not None:
            starts.add(found[0])
            found = search.earliest(need, found[0] + _INSTANT, limit)
    return sorted(starts)


def place_session(
    step: Step,
    starts_at: datetime,
    calendar: ClinicCalendar,
    rooms: Sequence[RoomSupply],
    staff: Sequence[StaffSupply],
    *,
    patient_busy: Sequence[Interval] = (),
    staff_ids: Sequence[int] | None = None,
    room_id: int | None = None,
    preferred_therapist: int | None = None,
) -> PlannedSession | list[Violation]:
    """Choose a room and clinicians for one session at ``starts_at``, or say why not.

    ``room_id`` must be used when given. Every one of ``staff_ids`` must take one of the step's
    roles; roles they leave open are filled by anyone free. The violations (rules
    ``clinic_closed``, ``patient_busy``, ``room_unavailable``, ``staff_unavailable``,
    ``staff_capacity``, ``outside_working_hours``, ``staff_time_off``) name no sessions.
    """
    start = require_aware(starts_at, "starts_at").astimezone(UTC)
    tz = calendar.tz
    need = _need_for_step(step, use_preferences=False)
    if preferred_therapist is not None:
        need = replace(need, preferred_staff=(preferred_therapist,))
    search = _Search(calendar, rooms, staff, patient_busy=patient_busy, slot_minutes=1)
    label = f"{kind_label(step.kind)} session"
    local = start.astimezone(tz)
    end_local = (start + need.duration).astimezone(tz)
    span = f"{local:%Y-%m-%d %H:%M}-{end_local:%H:%M}"
    violations: list[Violation] = []
    if not search.fits_opening(start, need):
        day = local.date()
        reason = (
            f"The clinic is closed on {day}."
            if day in calendar.closures or not search.opening.on(day)
            else f"A {step.duration_minutes}-minute {label} at {span} is outside opening hours."
        )
        violations.append(
            Violation("clinic_closed", reason, (), "Choose a time inside opening hours.")
        )
    if search.patient.first_free(start, need.duration) != start:
        violations.append(
            Violation(
                "patient_busy",
                f"The patient already has an appointment during {span}.",
                (),
                "Choose a time when the patient is free.",
            )
        )
    room_violation, room = _choose_room(search, need, start, room_id, span)
    if room_violation is not None:
        violations.append(room_violation)
    staff_violations, holds = _choose_staff(search, need, start, staff_ids, span)
    violations.extend(staff_violations)
    if violations or room is None:
        return violations
    return PlannedSession(
        0,
        step.kind,
        step.route,
        start,
        start + need.duration,
        room.id,
        tuple(
            StaffHold(staff_id, role, start, start + minutes) for staff_id, role, minutes in holds
        ),
    )


# --------------------------------------------------------------------------------------------
# Helpers of the entry points
# --------------------------------------------------------------------------------------------


_STRUCTURAL_RULES = ("precedes", "each_followed_by")


def _order_problems(protocol: ProtocolSpec) -> list[Violation]:
    """The rules ``session_order`` cannot keep (a kind that must follow two different kinds)."""
    structural = tuple(rule for rule in protocol.rules if rule.type in _STRUCTURAL_RULES)
    if not structural:
        return []
    day = datetime(2000, 1, 1, tzinfo=UTC)
    sessions = [
        SessionFact(n, kind, day + timedelta(days=n), day + timedelta(days=n, minutes=1))
        for n, kind in enumerate(session_order(protocol))
    ]
    broken = {
        v.rule for v in evaluate(sessions, replace(protocol, rules=structural), ZoneInfo("UTC"))
    }
    return [
        Violation(
            "protocol_order",
            f"No order of this protocol's sessions keeps its {rule} rules as the planner reads "
            "them (a kind can follow only one other kind).",
            (),
            "Book the series session by session, or simplify the protocol's rules.",
        )
        for rule in sorted(broken)
    ]


def _checked_fact(fact: SessionFact) -> SessionFact:
    require_aware(fact.starts_at, f"session {fact.ref!r} starts_at")
    require_aware(fact.ends_at, f"session {fact.ref!r} ends_at")
    return fact


class _Labels:
    """Labels sessions the way clinicians count them: ``medicine 3``."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def __call__(self, kind: str) -> str:
        self._seen[kind] += 1
        return f"{kind_label(kind)} {self._seen[kind]}"


def _positions_for(
    protocol: ProtocolSpec, fixed: Sequence[SessionFact], gated: bool, window_start: datetime
) -> list[_Position]:
    """The series order with fixed sessions embedded at the earliest positions that keep both
    the order and their time order; if they do not fit the order, new sessions follow them."""
    order = session_order(protocol)
    steps = {step.kind: step for step in protocol.steps}
    labels = _Labels()
    embedding: list[SessionFact | None] = []
    pending = list(fixed)
    for kind in order:
        if pending and pending[0].kind == kind:
            embedding.append(pending.pop(0))
        else:
            embedding.append(None)
    if pending:  # the fixed sessions do not follow the protocol's order: new ones go after
        remaining = _remaining_kinds(order, fixed)
        embedding = [*fixed, *([None] * len(remaining))]
        order = (*(fact.kind for fact in fixed), *remaining)
    positions: list[_Position] = []
    for index, (kind, fact) in enumerate(zip(order, embedding, strict=True)):
        label = labels(kind)
        if fact is not None:
            positions.append(_Position(kind, label, pinned=fact, index=index))
            continue
        step = steps[kind]
        need = _need_for_step(step, gated=gated and kind == MEDICINE)
        positions.append(_Position(kind, label, need=need, index=index, lower=window_start))
    return positions


def _remaining_kinds(order: Sequence[str], fixed: Sequence[SessionFact]) -> list[str]:
    held = Counter(fact.kind for fact in fixed)
    remaining = []
    for kind in order:
        if held[kind] > 0:
            held[kind] -= 1
        else:
            remaining.append(kind)
    return remaining


def _need_for_session(
    step: Step, fact: SessionFact, request: PlanRequest, therapist_first: tuple[int, ...]
) -> _Need:
    """A booked session to keep or move: its own length, room and clinicians preferred."""
    duration = fact.ends_at.astimezone(UTC) - fact.starts_at.astimezone(UTC)
    roles = tuple(
        (role.role, duration if role.minutes is None else min(duration, _mins(role.minutes)))
        for role in step.roles
    )
    preferred = tuple(dict.fromkeys((*fact.staff_ids, *therapist_first)))
    return _Need(
        fact.kind,
        step.route,
        duration,
        step.room_kind,
        roles,
        gated=request.gates is not None and fact.kind == MEDICINE,
        preferred_room=fact.room_id,
        preferred_staff=preferred,
        stay_at=fact.starts_at.astimezone(UTC),
    )


def _mins(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def _continuity_candidates(
    therapist_id: int | None, fixed: Sequence[SessionFact], staff: Sequence[StaffSupply]
) -> tuple[int, ...]:
    """Therapists in the order the planner tries to keep: the patient's wish, then whoever
    already sees the patient in this series (most sessions first)."""
    therapists = {person.id for person in staff if CONTINUITY_ROLE in person.roles}
    seen = Counter(
        staff_id for fact in fixed for staff_id in fact.staff_ids if staff_id in therapists
    )
    ordered = [therapist_id] if therapist_id in therapists else []
    ordered += [staff_id for staff_id, _ in seen.most_common() if staff_id != therapist_id]
    return tuple(ordered)


def _missing_resources(
    positions: Sequence[_Position], rooms: Sequence[RoomSupply], staff: Sequence[StaffSupply]
) -> list[Violation]:
    violations: list[Violation] = []
    seen: set[tuple[str, str]] = set()
    for position in positions:
        need = position.need
        if need is None:
            continue
        kind = kind_label(need.kind)
        room_word = need.room_kind.replace("_", " ")
        if not any(room.kind == need.room_kind for room in rooms) and (
            ("room", need.room_kind) not in seen
        ):
            seen.add(("room", need.room_kind))
            violations.append(
                Violation(
                    "room_unavailable",
                    f"The clinic has no {room_word}; {kind} sessions need one.",
                    (),
                    f"Add a {room_word} or change the room kind of the protocol's {kind} step.",
                )
            )
        for role, _ in need.roles:
            if any(role in person.roles for person in staff) or ("role", role) in seen:
                continue
            seen.add(("role", role))
            violations.append(
                Violation(
                    "staff_unavailable",
                    f"No staff member has the {role} role; {kind} sessions need one.",
                    (),
                    f"Give a staff member the {role} role.",
                )
            )
    return violations


def _blocked_plan(violations: Iterable[Violation]) -> Plan:
    return Plan((), tuple(violations))


def _planned_sessions(
    chain: _Chain, result: Sequence[_Placed], tz: ZoneInfo
) -> list[PlannedSession]:
    sessions: list[PlannedSession] = []
    for position, placement in zip(chain.positions, result, strict=True):
        if position.pinned is not None or placement.assignment is None:
            continue
        start = placement.start
        sessions.append(
            PlannedSession(
                position.index,
                position.kind,
                position.need.route if position.need else "",
                start,
                placement.end,
                placement.assignment.room_id,
                tuple(
                    StaffHold(staff_id, role, start, start + minutes)
                    for staff_id, role, minutes in placement.assignment.staff
                ),
            )
        )
    return sessions


# --------------------------------------------------------------------------------------------
# Keeping one therapist
# --------------------------------------------------------------------------------------------


_WHOLE_SERIES_TRIES = 3
"""Therapists (most often free at the planned times first) offered a whole re-planned series."""


def _keep_one_therapist(
    chain: _Chain,
    search: _Search,
    limit: datetime,
    result: list[_Placed],
    therapist_first: tuple[int, ...],
    wished: int | None,
) -> list[_Placed]:
    """Give the series one therapist if that does not make it end later (module docstring)."""
    with_therapist = [
        k
        for k, position in enumerate(chain.positions)
        if position.need is not None
        and any(role == CONTINUITY_ROLE for role, _ in position.need.roles)
    ]
    if not with_therapist:
        return result
    current = {_therapist_of(result[k]) for k in with_therapist}
    if len(current) == 1 and (wished is None or wished in current):
        return result
    candidates = list(
        dict.fromkeys(
            (*therapist_first, *(p.id for p in search.staff if CONTINUITY_ROLE in p.roles))
        )
    )
    probes: dict[tuple[int, int], _Placed | None] = {}

    def taking(therapist: int, k: int) -> _Placed | None:
        """Session k as planned with ``therapist`` in its therapist role, or None."""
        if (therapist, k) not in probes:
            probes[therapist, k] = _with_therapist_as_planned(
                chain, search, result[k], k, therapist
            )
        return probes[therapist, k]

    # Whoever comes first and can take every session as planned keeps the series; checking
    # stops at a therapist's first busy session (most are busy at some planned time).
    for therapist in [wished] if wished is not None else candidates:
        if therapist in candidates and all(taking(therapist, k) for k in with_therapist):
            return [
                taking(therapist, k) or placed if k in with_therapist else placed
                for k, placed in enumerate(result)
            ]
    free_at = {
        therapist: {
            k: placed for k in with_therapist if (placed := taking(therapist, k)) is not None
        }
        for therapist in candidates
    }
    rank = {therapist: n for n, therapist in enumerate(candidates)}
    by_coverage = sorted(candidates, key=lambda t: (-len(free_at[t]), rank[t]))
    # A wish is tried alone: the series goes to someone else only session by session.
    whole_series = [wished] if wished is not None else by_coverage
    # Only a plan whose last session starts no later can end as early: search no further.
    last_start = max(placement.start for placement in result) + _INSTANT
    for therapist in whole_series[:_WHOLE_SERIES_TRIES]:
        kept = _whole_series_with(chain, search, min(limit, last_start), result, therapist)
        if kept is not None:
            return kept
    return _most_sessions_per_therapist(result, with_therapist, free_at, by_coverage, wished)


def _with_therapist_as_planned(
    chain: _Chain, search: _Search, placement: _Placed, k: int, therapist: int
) -> _Placed | None:
    """Planned session k at its time and in its room with ``therapist`` in the therapist role
    (and whoever is free in the others), or None when that cannot be."""
    assert placement.assignment is not None
    need = chain.positions[k].need
    assert need is not None
    person = search.staff_by_id.get(therapist)
    if person is None or CONTINUITY_ROLE not in person.roles:
        return None
    start = epoch_us(placement.start)
    day = placement.start.astimezone(search.tz).date()
    if not all(
        person.is_free_at(start, minutes // _INSTANT, day)
        for role, minutes in need.roles
        if role == CONTINUITY_ROLE
    ):
        return None  # the usual answer, known before building the restricted session
    pinned_room = replace(
        need,
        role_staff=tuple(
            frozenset({therapist}) if role == CONTINUITY_ROLE else need.allowed(n)
            for n, (role, _) in enumerate(need.roles)
        ),
        room_ids=frozenset({placement.assignment.room_id}),
    )
    assignment = search.assignment_at(pinned_room, placement.start)
    return None if assignment is None else _Placed(placement.start, placement.end, assignment)


def _whole_series_with(
    chain: _Chain, search: _Search, limit: datetime, result: list[_Placed], therapist: int
) -> list[_Placed] | None:
    """A plan with ``therapist`` in every therapist role that ends no later than ``result``."""
    restricted = _Chain(
        [
            replace(p, need=p.need.only(therapist, role=CONTINUITY_ROLE))
            if p.need is not None and any(role == CONTINUITY_ROLE for role, _ in p.need.roles)
            else p
            for p in chain.positions
        ],
        chain.tz,
        chain.rules,
    )
    attempt, _ = _solve(restricted, search, limit, _latest_starts(restricted, limit))
    finish = max(placement.end for placement in result)
    if attempt is None or max(placement.end for placement in attempt) > finish:
        return None
    return attempt


def _latest_starts(chain: _Chain, limit: datetime) -> list[datetime]:
    """For each position, a start it must come before in any plan whose new sessions all start
    before ``limit``: the chain and the lower-bound rules read backwards from ``limit``.

    Sound because every lower bound is a non-decreasing function of the earlier start (module
    docstring): if q must start before L, p must start before ``earlier_start_bounds``' high for
    q at L. A restricted search (``_whole_series_with``) then gives up on a position as soon as
    it cannot start in time, instead of searching on to ``limit`` and failing later.
    """
    positions = chain.positions
    latest = [limit] * len(positions)
    for k in range(len(positions) - 1, -1, -1):
        position = positions[k]
        if position.pinned is not None:
            latest[k] = position.pinned.starts_at.astimezone(UTC) + _INSTANT
            continue
        need = position.need
        assert need is not None
        bound = limit
        if k + 1 < len(positions):
            bound = min(bound, latest[k + 1] - need.duration)
        for rule, j in chain.by_earlier.get(k, ()):
            _, high = earlier_start_bounds(rule, latest[j] - _INSTANT, need.duration, chain.tz)
            if high is not None and high < bound:
                bound = high
        latest[k] = bound
    return latest


def _therapist_of(placement: _Placed) -> int | None:
    assert placement.assignment is not None
    return next(
        (sid for sid, role, _ in placement.assignment.staff if role == CONTINUITY_ROLE), None
    )


def _most_sessions_per_therapist(
    result: list[_Placed],
    with_therapist: Sequence[int],
    free_at: dict[int, dict[int, _Placed]],
    by_coverage: Sequence[int],
    wished: int | None,
) -> list[_Placed]:
    """Same times; the wished-for therapist wherever free, then whoever is free most often."""
    kept = list(result)
    open_positions = set(with_therapist)
    order = ([wished] if wished is not None else []) + [t for t in by_coverage if t != wished]
    while open_positions and order:
        coverage = {t: open_positions & free_at[t].keys() for t in order}
        best = max(order, key=lambda t: (t == wished and bool(coverage[t]), len(coverage[t])))
        if not coverage[best]:
            break
        for k in coverage[best]:
            kept[k] = free_at[best][k]
        open_positions -= coverage[best]
        order.remove(best)
    return kept


# --------------------------------------------------------------------------------------------
# Saying why there is no plan
# --------------------------------------------------------------------------------------------


def _explain(
    blocked: _Blocked, chain: _Chain, search: _Search, limit: datetime, request: PlanRequest
) -> list[Violation]:
    position = chain.positions[blocked.position]
    need = position.need
    assert need is not None
    tz = chain.tz
    ref = _ref(position)
    label = position.label
    last_day = (limit - _INSTANT).astimezone(tz).date()
    if blocked.bound is not None:
        rule, j = blocked.bound
        other = chain.positions[j]
        why = "the series order" if rule is None else f"the {rule.type} rule"
        return [
            Violation(
                rule.type if rule is not None else "fixed_sessions",
                f"{label.capitalize()} cannot fit between the sessions already booked: its "
                f"earliest possible start is {_local_text(blocked.low, tz)}, too late for "
                f"{other.label} on {_local_text(_pinned_start(other), tz)} ({why}).",
                (ref, _ref(other)),
                f"Move {other.label} later, or cancel it and plan the series again.",
            )
        ]
    if need.gated and request.gates is not None:
        ungated = search.earliest(replace(need, gated=False), blocked.low, limit)
        if ungated is not None:
            return _gate_explanation(position, ungated[0], request.gates, tz)
    if blocked.pushed is not None:
        rule, i, j = blocked.pushed
        earlier, later = chain.positions[i], chain.positions[j]
        gap = f"{rule.days} days" if rule.days is not None else f"{rule.hours} hours"
        preferred = " on the patient's preferred days and times" if _has_prefs(request) else ""
        return [
            Violation(
                rule.type,
                f"No plan keeps {later.label} within {gap} of {earlier.label}{preferred} before "
                f"the {request.horizon_days}-day planning horizon ends on {last_day}: the "
                f"clinic's open days, staff and rooms leave longer gaps.",
                (_ref(earlier), _ref(later)),
                "Widen the patient's preferences or free up time, or allow a longer gap in "
                "the protocol.",
            )
        ]
    if blocked.low >= limit:
        return [
            Violation(
                "horizon",
                f"{label.capitalize()} could not start before {_local_text(blocked.low, tz)}, "
                f"after the {request.horizon_days}-day planning horizon ends on {last_day}.",
                (ref,),
                "Plan with a longer horizon or a later start date.",
            )
        ]
    if search.next_start(blocked.low, need, limit) is None:
        preferred = " on the patient's preferred days and times" if _has_prefs(request) else ""
        return [
            Violation(
                "clinic_closed",
                f"No opening hours from {_local_text(blocked.low, tz)} to {last_day} fit a "
                f"{_minutes(need.duration)}-minute {kind_label(need.kind)} session{preferred}.",
                (ref,),
                "Widen the patient's preferences, extend opening hours or the planning horizon.",
            )
        ]
    reason, subject = _commonest_obstacle(search, need, blocked.low, limit)
    return [
        Violation(
            reason,
            f"No time from {_local_text(blocked.low, tz)} to {last_day} fits {label}: {subject}.",
            (ref,),
            f"Free up {_obstacle_fix(reason, need)}, or plan with a longer horizon than "
            f"{request.horizon_days} days.",
        )
    ]


def _has_prefs(request: PlanRequest) -> bool:
    prefs = request.preferences
    return (
        prefs.weekdays is not None
        or prefs.earliest_time is not None
        or prefs.latest_start is not None
    )


def _pinned_start(position: _Position) -> datetime:
    assert position.pinned is not None
    return position.pinned.starts_at


def _ref(position: _Position) -> int | str:
    return position.pinned.ref if position.pinned is not None else position.index


def _local_text(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _minutes(duration: timedelta) -> int:
    return int(duration / timedelta(minutes=1))


def _gate_explanation(
    position: _Position, earliest: datetime, gates: PatientGates, tz: ZoneInfo
) -> list[Violation]:
    day = earliest.astimezone(tz).date()
    label = position.label
    ref = _ref(position)
    violations = []
    failures = gate_failures(day, gates)
    if "screening_gate" in failures:
        cleared = [s for s in gates.screenings if s.is_cleared]
        if not cleared:
            message = f"The patient has no cleared screening, so {label} cannot be booked."
            fix = "Have a prescriber clear the patient's screening, then plan the series."
        else:
            valid = max(s.valid_until for s in cleared)
            message = (
                f"The screening clearance is valid through {valid}, but {label} cannot happen "
                f"before {day}."
            )
            fix = f"Renew the screening (valid through at least {day}), then plan the series."
        violations.append(Violation("screening_gate", message, (ref,), fix))
    if "consent_gate" in failures:
        if gates.consent_signed_on is None:
            message = f"The patient has not signed the consent, so {label} cannot be booked."
            fix = "Have the patient sign the consent, then plan the series."
        else:
            message = f"The consent is signed on {gates.consent_signed_on}, after {label}."
            fix = f"Start the series on {gates.consent_signed_on} or later."
        violations.append(Violation("consent_gate", message, (ref,), fix))
    return violations


def _commonest_obstacle(
    search: _Search, need: _Need, low: datetime, limit: datetime
) -> tuple[str, str]:
    """The rule that blocks the most candidate starts, and whom it concerns."""
    obstacles: Counter[tuple[str, str]] = Counter()
    for s in _starts(search, need, low, limit):
        obstacles[_obstacle_at(search, need, s)] += 1
    if not obstacles:
        return "staff_unavailable", "nobody is free"
    (reason, subject), _ = obstacles.most_common(1)[0]
    return reason, subject


def _starts(
    search: _Search, need: _Need, low: datetime, limit: datetime, cap: int = 1_000
) -> Iterator[datetime]:
    s = search.next_start(low, need, limit)
    while s is not None and cap:
        yield s
        cap -= 1
        s = search.next_start(s + _INSTANT, need, limit)


def _obstacle_at(search: _Search, need: _Need, s: datetime) -> tuple[str, str]:
    if search.patient.first_free(s, need.duration) != s:
        return "patient_busy", "the patient is busy"
    rooms = search.rooms_for(need)
    if not any(room.busy.first_free(s, need.duration + room.turnover) == s for room in rooms):
        return "room_unavailable", f"no {need.room_kind.replace('_', ' ')} is free"
    for n, (role, minutes) in enumerate(need.roles):
        reasons = [person.reason_blocked(s, minutes) for person in search.staff_for(need, n)]
        if any(reason is None for reason in reasons):
            continue
        distinct = set(reasons) - {None}
        reason = distinct.pop() if len(distinct) == 1 else "staff_unavailable"
        return str(reason), f"no {role} is free"
    return "staff_unavailable", "the clinicians free at the same time are too few"


def _obstacle_fix(reason: str, need: _Need) -> str:
    if reason == "patient_busy":
        return "time in the patient's calendar"
    if reason == "room_unavailable":
        return f"a {need.room_kind.replace('_', ' ')}"
    roles = " or ".join(dict.fromkeys(role for role, _ in need.roles))
    return f"a {roles}"


def _choose_room(
    search: _Search, need: _Need, start: datetime, room_id: int | None, span: str
) -> tuple[Violation | None, _Room | None]:
    room_word = need.room_kind.replace("_", " ")
    if room_id is not None:
        room = next((r for r in search.rooms if r.id == room_id), None)
        if room is None or room.kind != need.room_kind:
            what = "does not exist" if room is None else f"is a {room.kind.replace('_', ' ')}"
            return (
                Violation(
                    "room_unavailable",
                    f"Room {room_id} {what}; {kind_label(need.kind)} sessions need a {room_word}.",
                    (),
                    f"Choose a {room_word}.",
                ),
                None,
            )
        candidates = [room]
    else:
        candidates = search.rooms_for(need)
    for room in candidates:
        if room.busy.first_free(start, need.duration + room.turnover) == start:
            return None, room
    which = f"Room {room_id} is" if room_id is not None else f"No {room_word} is"
    return (
        Violation(
            "room_unavailable",
            f"{which} free during {span} (with cleaning time).",
            (),
            f"Choose another time{'' if room_id is None else ' or room'}.",
        ),
        None,
    )


def _choose_staff(
    search: _Search, need: _Need, start: datetime, staff_ids: Sequence[int] | None, span: str
) -> tuple[list[Violation], list[tuple[int, str, timedelta]]]:
    """Fill every role of ``need`` at ``start``; listed staff must each take one."""
    listed = list(dict.fromkeys(staff_ids or ()))
    by_id = {person.id: person for person in search.staff}
    violations: list[Violation] = []
    for staff_id in listed:
        person = by_id.get(staff_id)
        if person is None or not any(role in person.roles for role, _ in need.roles):
            roles = " or ".join(dict.fromkeys(role for role, _ in need.roles)) or "no role"
            violations.append(
                Violation(
                    "staff_unavailable",
                    f"Staff member {staff_id} has no role this session needs ({roles}).",
                    (),
                    "Choose staff with the session's roles.",
                )
            )
            continue
        # Free for at least one role they hold (a nurse-prescriber free for the nurse's minutes
        # may take that role); which role is settled with everyone else's below.
        blocked = [
            person.reason_blocked(start, minutes)
            for role, minutes in sorted(need.roles, key=itemgetter(1))
            if role in person.roles
        ]
        shortest = blocked[0]
        if shortest is not None and None not in blocked:
            violations.append(_person_violation(shortest, staff_id, span))
    if violations:
        return violations, []
    candidates: list[list[_Staff]] = []
    for n, (role, minutes) in enumerate(need.roles):
        people = search.staff_for(need, n)
        free = [p for p in people if p.reason_blocked(start, minutes) is None]
        free.sort(key=lambda p: p.id not in listed)
        if not free:
            reasons = {p.reason_blocked(start, minutes) for p in people} - {None}
            reason = reasons.pop() if len(reasons) == 1 else "staff_unavailable"
            violations.append(_role_violation(str(reason), role, span))
        candidates.append(free)
    if violations:
        return violations, []
    chosen = _choice_using(candidates, listed)
    if chosen is None:
        return [
            Violation(
                "staff_unavailable",
                f"Not enough different clinicians are free during {span} for every role.",
                (),
                "Choose another time.",
            )
        ], []
    return [], [
        (person.id, role, minutes)
        for person, (role, minutes) in zip(chosen, need.roles, strict=True)
    ]


def _choice_using(
    candidates: Sequence[Sequence[_Staff]], listed: Sequence[int]
) -> list[_Staff] | None:
    """A distinct choice per role that uses every listed staff member."""
    chosen: list[_Staff] = []
    used: set[int] = set()

    def fill(n: int) -> bool:
        if n == len(candidates):
            return set(listed) <= used
        for person in candidates[n]:
            if person.id in used:
                continue
            used.add(person.id)
            chosen.append(person)
            if fill(n + 1):
                return True
            used.discard(person.id)
            chosen.pop()
        return False

    return chosen if fill(0) else None


_PERSON_TEXT = {
    "outside_working_hours": "is not working",
    "staff_time_off": "is on time off",
    "staff_capacity": "already cares for as many patients as allowed",
}
_ROLE_TEXT = {
    "outside_working_hours": "none is working then",
    "staff_time_off": "all are on time off",
    "staff_capacity": "all already care for as many patients as allowed",
}


def _person_violation(reason: str, staff_id: int, span: str) -> Violation:
    return Violation(
        reason,
        f"Staff member {staff_id} {_PERSON_TEXT.get(reason, 'is not free')} during {span}.",
        (),
        "Choose another time or another staff member.",
    )


def _role_violation(reason: str, role: str, span: str) -> Violation:
    detail = _ROLE_TEXT.get(reason, "each is busy, off or not working")
    return Violation(
        reason,
        f"No {role} is free during {span}: {detail}.",
        (),
        "Choose another time.",
    )
