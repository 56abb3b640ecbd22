"""The series-planning problem as a Google OR-Tools CP-SAT model, and an independent checker.

The reference answer for ``benchmarks/planner.py``: the same instance (calendar, rooms, staff
with busy time, protocol, request) that ``scheduling.planner.plan_series`` gets, modelled at the
planner's slot granularity and solved for the earliest end of the series' last session.

Model (times in whole minutes from the request's first allowed start):

* One start variable per session; its domain is every local wall-clock multiple of
  ``slot_minutes`` (DST nights included) where the whole session fits in the day's merged
  opening hours, on a day that is not a closure, before the horizon, and, for medicine
  sessions, on a day the screening and consent gates pass. A table constraint ties each start to
  its local calendar day, so calendar-day rules are exact on DST days too.
* The sessions come in ``session_order(protocol)`` (screening, preparations, each medicine
  session followed by its integration, ...) and form a chain: each starts when the previous one
  has ended or later (the patient is in one place at a time). ``allowed_orders`` shows that the
  standard protocols' ``precedes`` and ``each_followed_by`` rules allow no other order, so
  fixing it loses no plan.
* Pairwise rules on the pairs ``protocols.rules.rule_pairs`` names for that order:
  ``min_gap``/``max_gap`` in calendar days (and hours), ``not_same_day``, ``max_per_window``.
* Rooms: an optional interval per (session, room of the step's kind) holding the room for the
  session plus the room's turnover; exactly one is present; ``NoOverlap`` per room with the
  room's busy time.
* Staff: an optional interval per (session, role, person with the role) for the role's minutes
  from the start; exactly one person per role, distinct people within a session. Time off and
  the time outside working hours are fixed intervals at full capacity; ``NoOverlap`` for a
  capacity of one, ``Cumulative`` otherwise (a nurse watching three chairs).
* Objective: the end of the last session.

``check_schedule`` re-checks any schedule against the instance without sharing code with either
solver beyond ``protocols.rules.evaluate`` (the protocol's rules); both answers go through it.
"""

from __future__ import annotations

import time as clock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from protocols.rules import (
    MEDICINE,
    PAIR_RULE_TYPES,
    ProtocolSpec,
    SessionFact,
    Step,
    day_start,
    evaluate,
    gate_failures,
    rule_pairs,
)
from scheduling.planner import (
    ClinicCalendar,
    Interval,
    PlanRequest,
    Preferences,
    RoomSupply,
    StaffSupply,
    WeeklyHours,
    session_order,
)

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Instance:
    """One planning problem, exactly as ``plan_series`` receives it."""

    name: str
    request: PlanRequest
    calendar: ClinicCalendar
    rooms: tuple[RoomSupply, ...]
    staff: tuple[StaffSupply, ...]

    @property
    def busy_intervals(self) -> int:
        return sum(len(r.busy) for r in self.rooms) + sum(len(s.busy) for s in self.staff)


@dataclass(frozen=True, slots=True)
class ScheduledSession:
    """A session of a schedule, from either solver: UTC instants, room and staff ids."""

    kind: str
    start: datetime
    end: datetime
    room_id: int
    staff: tuple[tuple[int, str, datetime, datetime], ...]  # staff id, role, start, end


@dataclass(frozen=True, slots=True)
class CpSatResult:
    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN, MODEL_INVALID
    finish: datetime | None  # end of the best schedule found
    bound: datetime | None  # proven lower bound on the finish
    seconds: float  # building and solving
    schedule: tuple[ScheduledSession, ...]


# --------------------------------------------------------------------------------------------
# Calendar helpers (written from the rules' definitions, not taken from the planner)
# --------------------------------------------------------------------------------------------


def _day_windows(
    hours: Sequence[WeeklyHours], day: date, calendar: ClinicCalendar
) -> list[tuple[datetime, datetime]]:
    """The day's hours as merged UTC windows (an end of 00:00 is the next midnight)."""
    tz = calendar.tz
    windows = sorted(
        (
            datetime.combine(day, entry.start, tzinfo=tz).astimezone(UTC),
            day_start(day + timedelta(days=1), tz)
            if entry.end == time(0)
            else datetime.combine(day, entry.end, tzinfo=tz).astimezone(UTC),
        )
        for entry in hours
        if entry.weekday == day.weekday()
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in windows:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _slot_starts(day: date, calendar: ClinicCalendar, slot_minutes: int) -> list[datetime]:
    """Every instant whose local wall-clock time on ``day`` is a multiple of the slot: a wall
    time the DST change skips does not exist, one it repeats exists twice."""
    tz = calendar.tz
    found: set[datetime] = set()
    for minute in range(0, 1440, slot_minutes):
        wall = datetime.combine(day, time(minute // 60, minute % 60))
        for fold in (0, 1):
            instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
            if instant.astimezone(tz).replace(tzinfo=None) == wall:
                found.add(instant)
    return sorted(found)


def _days(request: PlanRequest) -> list[date]:
    return [request.earliest_start + timedelta(days=n) for n in range(request.horizon_days)]


def _merge(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _load_profile(
    busy: Sequence[tuple[int, int]], blocked: Sequence[tuple[int, int]], capacity: int
) -> list[tuple[int, int, int]]:
    """Fixed load of a person as disjoint (start, end, demand) pieces: each busy interval uses
    one unit, blocked time (off, not working) all of it; capped at ``capacity``."""
    events: dict[int, int] = {}
    for start, end in busy:
        events[start] = events.get(start, 0) + 1
        events[end] = events.get(end, 0) - 1
    for start, end in blocked:
        events[start] = events.get(start, 0) + capacity
        events[end] = events.get(end, 0) - capacity
    pieces: list[tuple[int, int, int]] = []
    load = 0
    points = sorted(events)
    for here, after in pairwise(points):
        load += events[here]
        demand = min(load, capacity)
        if demand <= 0:
            continue
        if pieces and pieces[-1][1] == here and pieces[-1][2] == demand:
            pieces[-1] = (pieces[-1][0], after, demand)
        else:
            pieces.append((here, after, demand))
    return pieces


# --------------------------------------------------------------------------------------------
# Session order
# --------------------------------------------------------------------------------------------


def allowed_orders(protocol: ProtocolSpec, limit: int = 100) -> list[tuple[str, ...]]:
    """Every order of the protocol's sessions (by kind) its ``precedes`` and
    ``each_followed_by`` rules accept, as ``evaluate`` judges them (at most ``limit``).

    Branches are cut only where a structural rule is already broken for every completion: a B
    placed before every A of ``precedes(A, B)`` is placed, or an A placed while the previous A
    has fewer than n B's after it for ``each_followed_by(A, B, at_least=n)``.
    """
    structural = tuple(r for r in protocol.rules if r.type in ("precedes", "each_followed_by"))
    counts: dict[str, int] = {}
    for step in protocol.steps:
        counts[step.kind] = counts.get(step.kind, 0) + step.count
    spec = ProtocolSpec(protocol.name, protocol.care_model, protocol.steps, structural)
    found: list[tuple[str, ...]] = []
    placed: list[str] = []
    left = dict(counts)

    def doomed(kind: str) -> bool:
        for rule in structural:
            if rule.type == "precedes" and kind == rule.before and left.get(rule.after, 0) > 0:
                return True
            if rule.type == "each_followed_by" and kind == rule.after and rule.after in placed:
                last = len(placed) - 1 - placed[::-1].index(rule.after)
                followers = sum(1 for k in placed[last + 1 :] if k == rule.before)
                if followers < (rule.at_least or 1):
                    return True
        return False

    def extend() -> None:
        if len(found) >= limit:
            return
        if not any(left.values()):
            base = datetime(2000, 1, 3, tzinfo=UTC)
            facts = [
                SessionFact(n, kind, base + timedelta(days=n), base + timedelta(days=n, hours=1))
                for n, kind in enumerate(placed)
            ]
            if not evaluate(facts, spec, UTC):
                found.append(tuple(placed))
            return
        for kind in counts:
            if left[kind] == 0 or doomed(kind):
                continue
            left[kind] -= 1
            placed.append(kind)
            extend()
            placed.pop()
            left[kind] += 1

    extend()
    return found


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def solve_cpsat(instance: Instance, *, time_limit: float, workers: int = 0) -> CpSatResult:
    """Minimize the end of the series' last session (see the module docstring)."""
    from ortools.sat.python import cp_model  # the bench dependency group only

    began = clock.perf_counter()
    request = instance.request
    calendar = instance.calendar
    tz = calendar.tz
    if request.fixed or request.preferences != Preferences():
        raise ValueError("the CP-SAT model covers new series without preferences")
    protocol = request.protocol
    origin = request.first_start(tz)
    limit = day_start(request.earliest_start + timedelta(days=request.horizon_days), tz)

    def minutes(instant: datetime) -> int:
        delta = instant.astimezone(UTC) - origin
        if delta % _MINUTE:
            raise ValueError(f"{instant} is not on a whole minute")
        return delta // _MINUTE

    steps: dict[str, Step] = {step.kind: step for step in protocol.steps}
    kinds = session_order(protocol)
    days = _days(request)
    starts_by_day = {day: _slot_starts(day, calendar, request.slot_minutes) for day in days}
    model = cp_model.CpModel()
    start_vars: list[cp_model.IntVar] = []
    day_vars: list[cp_model.IntVar] = []
    durations: list[int] = []
    for k, kind in enumerate(kinds):
        step = steps[kind]
        duration = step.duration_minutes
        allowed: list[tuple[int, int]] = []
        for index, day in enumerate(days):
            if day in calendar.closures:
                continue
            if kind == MEDICINE and request.gates is not None and gate_failures(day, request.gates):
                continue
            windows = _day_windows(calendar.opening_hours, day, calendar)
            for instant in starts_by_day[day]:
                if instant < origin or instant >= limit:
                    continue
                end = instant + timedelta(minutes=duration)
                if any(a <= instant and end <= b for a, b in windows):
                    allowed.append((minutes(instant), index))
        if not allowed:
            return CpSatResult("INFEASIBLE", None, None, clock.perf_counter() - began, ())
        start = model.new_int_var_from_domain(
            cp_model.Domain.from_values([t for t, _ in allowed]), f"start{k}"
        )
        day_var = model.new_int_var(0, len(days) - 1, f"day{k}")
        model.add_allowed_assignments([start, day_var], allowed)
        start_vars.append(start)
        day_vars.append(day_var)
        durations.append(duration)
    for k in range(1, len(kinds)):
        model.add(start_vars[k] >= start_vars[k - 1] + durations[k - 1])
    for rule in protocol.rules:
        if rule.type not in PAIR_RULE_TYPES:
            continue
        for i, j in rule_pairs(rule, kinds):
            gap_days = day_vars[j] - day_vars[i]
            after_end = start_vars[j] - (start_vars[i] + durations[i])
            if rule.type == "min_gap":
                if rule.days is not None:
                    model.add(gap_days >= rule.days)
                if rule.hours is not None:
                    model.add(after_end >= 60 * rule.hours)
            elif rule.type == "max_gap":
                if rule.days is not None:
                    model.add(gap_days <= rule.days)
                if rule.hours is not None:
                    model.add(after_end <= 60 * rule.hours)
            elif rule.type == "not_same_day":
                model.add(gap_days != 0)
            elif rule.type == "max_per_window":
                model.add(gap_days >= (rule.window_days or 1))
    horizon_end = minutes(limit) + 24 * 60

    def relevant(iv: Interval) -> tuple[int, int] | None:
        start, end = minutes(iv.start), minutes(iv.end)
        if end <= 0 or start >= horizon_end:
            return None
        return max(start, -1), min(end, horizon_end)

    # the patient
    patient = [iv for iv in map(relevant, request.patient_busy) if iv is not None]
    patient_intervals = [
        model.new_fixed_size_interval_var(start_vars[k], durations[k], f"patient{k}")
        for k in range(len(kinds))
    ]
    patient_intervals += [
        model.new_fixed_size_interval_var(a, b - a, f"patient_busy{n}")
        for n, (a, b) in enumerate(_merge(patient))
    ]
    model.add_no_overlap(patient_intervals)
    # rooms
    room_intervals: dict[int, list[cp_model.IntervalVar]] = {room.id: [] for room in instance.rooms}
    room_choice: list[dict[int, cp_model.IntVar]] = []
    for k, kind in enumerate(kinds):
        step = steps[kind]
        chosen: dict[int, cp_model.IntVar] = {}
        for room in instance.rooms:
            if room.kind != step.room_kind:
                continue
            present = model.new_bool_var(f"s{k}_room{room.id}")
            room_intervals[room.id].append(
                model.new_optional_fixed_size_interval_var(
                    start_vars[k], durations[k] + room.turnover_minutes, present, f"s{k}r{room.id}"
                )
            )
            chosen[room.id] = present
        if not chosen:
            return CpSatResult("INFEASIBLE", None, None, clock.perf_counter() - began, ())
        model.add_exactly_one(chosen.values())
        room_choice.append(chosen)
    for room in instance.rooms:
        busy = _merge([iv for iv in map(relevant, room.busy) if iv is not None])
        fixed = [model.new_fixed_size_interval_var(a, b - a, "") for a, b in busy]
        if room_intervals[room.id]:
            model.add_no_overlap(room_intervals[room.id] + fixed)
    # staff
    staff_intervals: dict[int, list[cp_model.IntervalVar]] = {p.id: [] for p in instance.staff}
    staff_choice: list[list[tuple[str, int, dict[int, cp_model.IntVar]]]] = []
    for k, kind in enumerate(kinds):
        step = steps[kind]
        roles: list[tuple[str, int, dict[int, cp_model.IntVar]]] = []
        per_person: dict[int, list[cp_model.IntVar]] = {}
        for n, role in enumerate(step.roles):
            held = role.minutes if role.minutes is not None else step.duration_minutes
            chosen = {}
            for person in instance.staff:
                if role.role not in person.roles:
                    continue
                present = model.new_bool_var(f"s{k}_role{n}_staff{person.id}")
                staff_intervals[person.id].append(
                    model.new_optional_fixed_size_interval_var(
                        start_vars[k], held, present, f"s{k}n{n}p{person.id}"
                    )
                )
                chosen[person.id] = present
                per_person.setdefault(person.id, []).append(present)
            if not chosen:
                return CpSatResult("INFEASIBLE", None, None, clock.perf_counter() - began, ())
            model.add_exactly_one(chosen.values())
            roles.append((role.role, held, chosen))
        for presences in per_person.values():
            if len(presences) > 1:
                model.add_at_most_one(presences)
        staff_choice.append(roles)
    first_day = request.earliest_start - timedelta(days=1)
    for person in instance.staff:
        if not staff_intervals[person.id]:
            continue
        blocked: list[tuple[int, int]] = []
        if person.working_hours:
            for n in range(request.horizon_days + 3):
                day = first_day + timedelta(days=n)
                cursor = minutes(day_start(day, tz))
                for a, b in _day_windows(person.working_hours, day, calendar):
                    blocked.append((cursor, minutes(a)))
                    cursor = minutes(b)
                blocked.append((cursor, minutes(day_start(day + timedelta(days=1), tz))))
        blocked += [iv for iv in map(relevant, person.time_off) if iv is not None]
        blocked = [(a, b) for a, b in blocked if a < b]
        busy = [iv for iv in map(relevant, person.busy) if iv is not None]
        pieces = _load_profile(busy, blocked, person.capacity)
        fixed = [model.new_fixed_size_interval_var(a, b - a, "") for a, b, _ in pieces]
        if person.capacity == 1:
            model.add_no_overlap(staff_intervals[person.id] + fixed)
        else:
            model.add_cumulative(
                staff_intervals[person.id] + fixed,
                [1] * len(staff_intervals[person.id]) + [d for _, _, d in pieces],
                person.capacity,
            )
    last = len(kinds) - 1
    model.minimize(start_vars[last] + durations[last])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    seconds = clock.perf_counter() - began
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return CpSatResult(name, None, None, seconds, ())
    schedule = []
    for k, kind in enumerate(kinds):
        start = origin + solver.value(start_vars[k]) * _MINUTE
        room_id = next(r for r, v in room_choice[k].items() if solver.boolean_value(v))
        holds = tuple(
            (
                next(s for s, v in chosen.items() if solver.boolean_value(v)),
                role,
                start,
                start + held * _MINUTE,
            )
            for role, held, chosen in staff_choice[k]
        )
        schedule.append(
            ScheduledSession(kind, start, start + durations[k] * _MINUTE, room_id, holds)
        )
    return CpSatResult(
        name,
        origin + round(solver.objective_value) * _MINUTE,
        origin + int(solver.best_objective_bound) * _MINUTE,
        seconds,
        tuple(schedule),
    )


# --------------------------------------------------------------------------------------------
# Checking a schedule
# --------------------------------------------------------------------------------------------


def check_schedule(instance: Instance, schedule: Sequence[ScheduledSession]) -> list[str]:
    """Everything ``schedule`` breaks: the protocol's rules (``evaluate``) and every clinic
    constraint, checked directly on the instance's intervals."""
    request = instance.request
    calendar = instance.calendar
    tz = calendar.tz
    problems = [
        f"rule {v.rule}: {v.message}"
        for v in evaluate(
            [SessionFact(n, s.kind, s.start, s.end) for n, s in enumerate(schedule)],
            request.protocol,
            tz,
            gates=request.gates,
            require_complete=True,
        )
    ]
    origin = request.first_start(tz)
    limit = day_start(request.earliest_start + timedelta(days=request.horizon_days), tz)
    steps = {step.kind: step for step in request.protocol.steps}
    rooms = {room.id: room for room in instance.rooms}
    staff = {person.id: person for person in instance.staff}
    own_room: list[tuple[int, datetime, datetime]] = []
    own_staff: list[tuple[int, datetime, datetime]] = []
    for n, session in enumerate(schedule):
        label = f"session {n} ({session.kind} at {session.start.astimezone(tz):%Y-%m-%d %H:%M})"
        step = steps[session.kind]
        day = session.start.astimezone(tz).date()
        if not origin <= session.start < limit:
            problems.append(f"{label}: outside the planning window")
        if session.start not in _slot_starts(day, calendar, request.slot_minutes):
            problems.append(f"{label}: not on the slot grid")
        if day in calendar.closures or not any(
            a <= session.start and session.end <= b
            for a, b in _day_windows(calendar.opening_hours, day, calendar)
        ):
            problems.append(f"{label}: clinic closed")
        if any(iv.start < session.end and session.start < iv.end for iv in request.patient_busy):
            problems.append(f"{label}: patient busy")
        room = rooms.get(session.room_id)
        if room is None or room.kind != step.room_kind:
            problems.append(f"{label}: wrong room {session.room_id}")
            continue
        room_end = session.end + timedelta(minutes=room.turnover_minutes)
        if any(iv.start < room_end and session.start < iv.end for iv in room.busy) or any(
            r == room.id and a < room_end and session.start < b for r, a, b in own_room
        ):
            problems.append(f"{label}: room {room.id} double-booked")
        own_room.append((room.id, session.start, room_end))
        if sorted(role for _, role, _, _ in session.staff) != sorted(r.role for r in step.roles):
            problems.append(f"{label}: roles {session.staff} do not match the step")
        if len({staff_id for staff_id, _, _, _ in session.staff}) != len(session.staff):
            problems.append(f"{label}: one person in two roles")
        for staff_id, role, start, end in session.staff:
            person = staff.get(staff_id)
            if person is None or role not in person.roles:
                problems.append(f"{label}: staff {staff_id} cannot be {role}")
                continue
            if person.working_hours and not any(
                a <= start and end <= b
                for a, b in _day_windows(person.working_hours, day, calendar)
            ):
                problems.append(f"{label}: staff {staff_id} not working")
            if any(iv.start < end and start < iv.end for iv in person.time_off):
                problems.append(f"{label}: staff {staff_id} on time off")
            holds = [(iv.start, iv.end) for iv in person.busy] + [
                (a, b) for s, a, b in own_staff if s == staff_id
            ]
            points = {start} | {a for a, _ in holds if start < a < end}
            depth = max(sum(1 for a, b in holds if a <= p < b) for p in points)
            if depth >= person.capacity:
                problems.append(f"{label}: staff {staff_id} over capacity")
            own_staff.append((staff_id, start, end))
    return problems
