"""Free start times for one session of a kind (``GET /api/v1/availability/``).

Two halves, as STYLE.md asks of every rule that decides:

- ``free_starts`` is pure: plain values in (the clinic's calendar, rooms, staff and the patient's
  busy time, every instant as whole seconds since the epoch), a sorted list of aware UTC
  datetimes out. It answers the question ``scheduling.services.session_create`` asks of one start
  (``planner.place_session``) for every start of a 15-minute local grid at once: inside opening
  hours on a day the clinic is not closed, the patient free, a room of the step's kind free for
  the session and its turnover, and one distinct staff member per role of the step, each working
  (weekly hours; none recorded means whenever the clinic is open), not on time off and under
  capacity (``max_concurrent_patients``) for the minutes that role is held.
- ``availability`` loads those values in five queries whatever the size of the clinic's history
  (every busy interval in one, through ``scheduling.busy``, the planner's loader too, each read
  bounded on both sides of ``starts_at`` with ``MAX_HOLD`` so its index scan covers only the
  window), then calls ``free_starts``.

Each resource's busy intervals become a bitset over the candidate starts (a Python ``int``, bit
``i`` for the ``i``-th start): an interval ``[a, b)`` blocks a hold of length ``L`` at every start
``s`` with ``a - L < s < b``, two ``bisect`` calls and one mask. That keeps a month of a busy
clinic in a few milliseconds of CPU.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from zoneinfo import ZoneInfo

from django.db.models import Value
from django.utils import timezone

from clinic.models import Clinic, OpeningHours, Room, StaffRole, WorkingHours
from protocols.rules import Step

from .busy import Busy, busy_time

#: Candidate starts lie on this grid of local wall-clock times (API.md: quarter hours).
SLOT_MINUTES = 15

Span = tuple[int, int]
"""A half-open interval ``[start, end)`` of instants, in whole seconds since the epoch (UTC)."""


@dataclass(frozen=True, slots=True)
class Hours:
    """Weekly local hours, 0 = Monday; ``end`` of 00:00 means midnight at the end of the day."""

    weekday: int
    start: dt.time
    end: dt.time


@dataclass(frozen=True, slots=True)
class Calendar:
    tz: ZoneInfo
    opening_hours: tuple[Hours, ...]
    closures: frozenset[dt.date] = frozenset()


@dataclass(frozen=True, slots=True)
class RoomTime:
    """``busy``: live sessions' ``[starts_at, room_released_at)``, turnover included."""

    id: int
    kind: str
    turnover_minutes: int = 0
    busy: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class StaffTime:
    """``holds``: the live staff holds (``SessionStaff``) of this person, which may overlap up to
    ``capacity``."""

    id: int
    roles: frozenset[str]
    capacity: int = 1
    working_hours: tuple[Hours, ...] = ()
    time_off: tuple[Span, ...] = ()
    holds: tuple[Span, ...] = ()


# ---------------------------------------------------------------------------------------------
# The pure part


def epoch(moment: dt.datetime) -> int:
    """Whole seconds since the epoch, rounded down (slot starts are whole minutes)."""
    return int(moment.timestamp() // 1)


class _Days:
    """Local days of the calendar's zone as epoch seconds, DST changes included."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._midnight: dict[dt.date, int] = {}
        self._changes: dict[dt.date, bool] = {}

    def midnight(self, day: dt.date) -> int:
        """The first instant of ``day`` (a midnight inside a DST gap resolves to the change)."""
        found = self._midnight.get(day)
        if found is None:
            found = epoch(dt.datetime.combine(day, dt.time(0), tzinfo=self.tz))
            self._midnight[day] = found
        return found

    def changes_offset(self, day: dt.date) -> bool:
        found = self._changes.get(day)
        if found is None:
            found = self.midnight(day + dt.timedelta(days=1)) - self.midnight(day) != 86_400
            self._changes[day] = found
        return found

    def at(self, day: dt.date, wall: dt.time) -> int:
        """The instant of a local wall-clock time on ``day`` (the first one when it repeats)."""
        if not self.changes_offset(day):
            return self.midnight(day) + wall.hour * 3600 + wall.minute * 60 + wall.second
        return epoch(dt.datetime.combine(day, wall, tzinfo=self.tz))

    def grid(self, day: dt.date, minutes: int) -> list[int]:
        """Every instant of ``day`` whose local wall-clock time is a multiple of ``minutes``:
        on a DST day the times the change skips are left out and the ones it repeats come twice."""
        if not self.changes_offset(day):
            start = self.midnight(day)
            return list(range(start, start + 86_400, minutes * 60))
        found: set[int] = set()
        for minute in range(0, 1440, minutes):
            wall = dt.time(minute // 60, minute % 60)
            for fold in (0, 1):
                candidate = dt.datetime.combine(day, wall, tzinfo=self.tz).replace(fold=fold)
                if candidate.astimezone(dt.UTC).astimezone(self.tz).time() == wall:
                    found.add(epoch(candidate))
        return sorted(found)

    def windows(self, hours: Sequence[Hours], day: dt.date) -> list[Span]:
        """The weekly hours of ``day`` as instants, merged where they touch."""
        spans = sorted(
            (
                self.at(day, entry.start),
                self.midnight(day + dt.timedelta(days=1))
                if entry.end == dt.time(0)
                else self.at(day, entry.end),
            )
            for entry in hours
            if entry.weekday == day.weekday()
        )
        merged: list[Span] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def _days(day_from: dt.date, day_to: dt.date) -> list[dt.date]:
    return [day_from + dt.timedelta(days=n) for n in range((day_to - day_from).days + 1)]


def candidate_starts(
    calendar: Calendar,
    day_from: dt.date,
    day_to: dt.date,
    *,
    duration_minutes: int,
    not_before: dt.datetime,
    slot_minutes: int = SLOT_MINUTES,
) -> list[int]:
    """Grid starts from ``day_from`` to ``day_to`` (local, inclusive) after ``not_before`` at
    which a session of ``duration_minutes`` fits inside one opening window of its own day."""
    days = _Days(calendar.tz)
    length = duration_minutes * 60
    earliest = epoch(not_before)
    starts: list[int] = []
    for day in _days(day_from, day_to):
        if day in calendar.closures:
            continue
        windows = days.windows(calendar.opening_hours, day)
        if not windows:
            continue
        grid = days.grid(day, slot_minutes)
        for open_at, close_at in windows:
            low = bisect_left(grid, max(open_at, earliest + 1))
            high = bisect_right(grid, close_at - length)
            starts.extend(grid[low:high])
    return starts


def _mask(low: int, high: int) -> int:
    return ((1 << (high - low)) - 1) << low if low < high else 0


def _blocked(starts: Sequence[int], spans: Iterable[Span], length: int) -> int:
    """The starts ``s`` at which a hold ``[s, s + length)`` overlaps one of ``spans``."""
    blocked = 0
    for start, end in spans:
        low = bisect_right(starts, start - length)
        high = bisect_left(starts, end, low)
        if low < high:
            blocked |= _mask(low, high)
    return blocked


def _saturated(spans: Iterable[Span], capacity: int) -> list[Span]:
    """The stretches during which ``capacity`` or more of ``spans`` run at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    depth = 0
    opened: int | None = None
    found: list[Span] = []
    for instant, step in events:  # at one instant, ends (-1) come before starts (+1)
        depth += step
        if opened is None and depth >= capacity:
            opened = instant
        elif opened is not None and depth < capacity:
            found.append((opened, instant))
            opened = None
    return found


def _inside(starts: Sequence[int], windows: Iterable[Span], length: int) -> int:
    """The starts ``s`` with ``[s, s + length)`` inside one of ``windows``."""
    inside = 0
    for open_at, close_at in windows:
        inside |= _mask(bisect_left(starts, open_at), bisect_right(starts, close_at - length))
    return inside


class _People:
    """Per person and hold length, the starts at which that person can take the hold."""

    def __init__(
        self,
        starts: Sequence[int],
        staff: Sequence[StaffTime],
        calendar: Calendar,
        days: list[dt.date],
    ) -> None:
        self.starts = starts
        self.everyone = (1 << len(starts)) - 1
        self.by_id = {person.id: person for person in staff}
        self._days = _Days(calendar.tz)
        self._day_list = days
        self._free: dict[tuple[int, int], int] = {}
        self._windows: dict[tuple[Hours, ...], list[Span]] = {}

    def working(self, hours: tuple[Hours, ...]) -> list[Span]:
        """The working windows of ``hours`` on every day asked about (shared by everyone with
        the same weekly hours)."""
        found = self._windows.get(hours)
        if found is None:
            found = [window for day in self._day_list for window in self._days.windows(hours, day)]
            self._windows[hours] = found
        return found

    def free(self, person: StaffTime, length: int) -> int:
        key = (person.id, length)
        found = self._free.get(key)
        if found is None:
            found = self.everyone
            if person.working_hours:
                found &= _inside(self.starts, self.working(person.working_hours), length)
            if person.time_off:
                found &= ~_blocked(self.starts, person.time_off, length)
            busy = (
                person.holds if person.capacity == 1 else _saturated(person.holds, person.capacity)
            )
            found &= ~_blocked(self.starts, busy, length)
            self._free[key] = found
        return found


def _staffed(
    people: _People, roles: Sequence[tuple[str, int]], candidates: Sequence[Sequence[StaffTime]]
) -> int:
    """The starts at which every role has its own person free (one person fills one role)."""
    per_role = [
        [(person.id, people.free(person, length)) for person in group]
        for group, (_, length) in zip(candidates, roles, strict=True)
    ]
    staffed = people.everyone
    for group in per_role:
        anyone = 0
        for _, free in group:
            anyone |= free
        staffed &= anyone
    ids = [person_id for group in per_role for person_id, _ in group]
    if len(ids) == len(set(ids)) or not staffed:
        return staffed
    # Someone could fill two roles: keep only the starts with distinct people for every role.
    distinct = 0
    bit = 0
    remaining = staffed
    while remaining:
        if remaining & 1:
            free_here = [[pid for pid, free in group if free >> bit & 1] for group in per_role]
            if any(len(set(choice)) == len(choice) for choice in product(*free_here)):
                distinct |= 1 << bit
        remaining >>= 1
        bit += 1
    return distinct


def _staffed_with(
    people: _People,
    roles: Sequence[tuple[str, int]],
    by_role: Sequence[Sequence[StaffTime]],
    staff_id: int,
) -> int:
    """The starts at which every role is staffed with ``staff_id`` taking one of them.

    As the booking check does (``planner.place_session``), that person takes any one role they
    hold for which they are free for that role's hold.
    """
    chosen = people.by_id.get(staff_id)
    if chosen is None:
        return 0
    staffed = 0
    for n, (role, _) in enumerate(roles):
        if role in chosen.roles:
            candidates = [
                [chosen] if m == n else [p for p in group if p.id != staff_id]
                for m, group in enumerate(by_role)
            ]
            staffed |= _staffed(people, roles, candidates)
    return staffed


def free_starts(
    step: Step,
    day_from: dt.date,
    day_to: dt.date,
    calendar: Calendar,
    rooms: Sequence[RoomTime],
    staff: Sequence[StaffTime],
    *,
    not_before: dt.datetime,
    patient_busy: Sequence[Span] = (),
    staff_id: int | None = None,
    room_id: int | None = None,
    slot_minutes: int = SLOT_MINUTES,
) -> list[dt.datetime]:
    """Every start from ``day_from`` to ``day_to`` (local dates, inclusive), later than
    ``not_before``, at which one session of ``step`` can be booked; with ``staff_id`` that
    person must be one of its clinicians, with ``room_id`` it must be in that room. The starts
    are UTC instants, in time order."""
    length = step.duration_minutes * 60
    starts = candidate_starts(
        calendar,
        day_from,
        day_to,
        duration_minutes=step.duration_minutes,
        not_before=not_before,
        slot_minutes=slot_minutes,
    )
    if not starts:
        return []
    everyone = (1 << len(starts)) - 1
    free = everyone & ~_blocked(starts, patient_busy, length)
    any_room = 0
    for room in rooms:
        if room.kind == step.room_kind and (room_id is None or room.id == room_id):
            any_room |= everyone & ~_blocked(starts, room.busy, length + room.turnover_minutes * 60)
    free &= any_room
    if free and step.roles:
        roles = [
            (need.role, min(need.minutes * 60, length) if need.minutes else length)
            for need in step.roles
        ]
        people = _People(starts, staff, calendar, _days(day_from, day_to))
        by_role = [[person for person in staff if role in person.roles] for role, _ in roles]
        if staff_id is None:
            free &= _staffed(people, roles, by_role)
        else:
            free &= _staffed_with(people, roles, by_role, staff_id)
    return [
        dt.datetime.fromtimestamp(start, dt.UTC)
        for bit, start in enumerate(starts)
        if free >> bit & 1
    ]


# ---------------------------------------------------------------------------------------------
# Loading the busy time


@dataclass(frozen=True, slots=True)
class Availability:
    clinic: Clinic
    step: Step
    date_from: dt.date
    date_to: dt.date
    starts: tuple[dt.datetime, ...]


def _who_matters(granted: dict[int, set[str]], step: Step, staff_id: int | None) -> list[int]:
    """The staff whose time can decide a start: everyone with one of the step's roles, or with
    ``staff_id``, that person and the others only for the roles left to them (their colleagues
    in the same role cannot change the answer, so their bookings are not read)."""
    wanted = [need.role for need in step.roles]
    if staff_id is None or len(set(wanted)) != len(wanted):
        return sorted(granted)
    theirs = granted.get(staff_id, set())
    left = {role for role in wanted for taken in theirs if taken != role}
    return sorted(member for member, roles in granted.items() if member == staff_id or roles & left)


def availability(
    clinic: Clinic,
    step: Step,
    date_from: dt.date,
    date_to: dt.date,
    *,
    patient_id: int | None = None,
    staff_id: int | None = None,
    room_id: int | None = None,
    now: dt.datetime | None = None,
) -> Availability:
    """The free starts of one session of ``step`` at ``clinic``; see ``free_starts``.

    Five queries, whatever the number of sessions: staff with their roles, rooms, opening hours
    with the staff's working hours, closures, and every busy interval. The caller checks that
    ``patient_id``, ``staff_id`` and ``room_id`` belong to ``clinic``.
    """
    now = now or timezone.now()
    tz = clinic.tz
    first_instant = max(epoch(dt.datetime.combine(date_from, dt.time(0), tzinfo=tz)), epoch(now))
    roles: dict[int, set[str]] = defaultdict(set)
    capacity: dict[int, int] = {}
    for member, role, most in (
        StaffRole.objects.filter(
            staff__clinic=clinic, staff__is_active=True, role__in=[n.role for n in step.roles]
        )
        .order_by()
        .values_list("staff_id", "role", "staff__max_concurrent_patients")
    ):
        roles[member].add(role)
        capacity[member] = most
    staff_ids = _who_matters(roles, step, staff_id)
    rooms = Room.objects.filter(clinic=clinic, is_active=True, kind=step.room_kind)
    if room_id is not None:
        rooms = rooms.filter(pk=room_id)
    room_rows = list(rooms.order_by("id").values_list("id", "turnover_minutes"))
    hours_rows = list(
        OpeningHours.objects.filter(clinic=clinic)
        .order_by()
        .annotate(owner=Value(0))
        .values_list("owner", "weekday", "start", "end")
        .union(
            WorkingHours.objects.filter(staff_id__in=staff_ids)
            .order_by()
            .values_list("staff_id", "weekday", "start", "end"),
            all=True,
        )
    )
    closures = frozenset(
        clinic.closures.filter(date__range=(date_from, date_to))
        .order_by()
        .values_list("date", flat=True)
    )
    longest_turnover = max((turnover for _, turnover in room_rows), default=0)
    last_instant = epoch(dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(0), tzinfo=tz))
    window = (first_instant, last_instant + (step.duration_minutes + longest_turnover) * 60)
    busy: dict[tuple[Busy, int], tuple[list[int], list[int]]] = {}
    if room_rows and first_instant < last_instant:
        busy = busy_time(
            rooms=[room for room, _ in room_rows],
            staff=staff_ids,
            patient_id=patient_id,
            window=(
                dt.datetime.fromtimestamp(window[0], dt.UTC),
                dt.datetime.fromtimestamp(window[1], dt.UTC),
            ),
            seconds=True,
        )

    def spans(tag: Busy, owner: int) -> tuple[Span, ...]:
        found = busy.get((tag, owner))
        return tuple(zip(*found, strict=True)) if found else ()

    hours: dict[int, list[Hours]] = defaultdict(list)
    for owner, weekday, start, end in hours_rows:
        hours[owner].append(Hours(weekday, start, end))
    calendar = Calendar(tz, tuple(hours.get(0, ())), closures)
    starts = free_starts(
        step,
        date_from,
        date_to,
        calendar,
        [
            RoomTime(room, step.room_kind, turnover, spans(Busy.ROOM, room))
            for room, turnover in room_rows
        ],
        [
            StaffTime(
                member,
                frozenset(roles[member]),
                capacity[member],
                tuple(hours.get(member, ())),
                spans(Busy.TIME_OFF, member),
                spans(Busy.STAFF, member),
            )
            for member in staff_ids
        ],
        not_before=now,
        patient_busy=spans(Busy.PATIENT, patient_id) if patient_id else (),
        staff_id=staff_id,
        room_id=room_id,
    )
    return Availability(clinic, step, date_from, date_to, tuple(starts))
