"""Generated clinics for the planner (hypothesis).

* Every plan passes ``evaluate(..., require_complete=True)`` and never double-books anything.
* On tiny clinics, the plan ends exactly when the best series found by brute force ends.
* ``free_starts`` (which jumps over busy time with bisect) agrees slot by slot with
  ``place_session`` (which checks one start directly), on busy lists long enough to cross the
  planner's internal chunks and with intervals reaching in from before the window.
"""

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from protocols.rules import (
    PatientGates,
    ProtocolSpec,
    Rule,
    ScreeningFact,
    SessionFact,
    Step,
    StepRole,
    day_start,
    evaluate,
    validate_protocol,
)
from scheduling.planner import (
    ClinicCalendar,
    Interval,
    Plan,
    PlannedSession,
    PlanRequest,
    Preferences,
    RoomSupply,
    StaffSupply,
    WeeklyHours,
    free_starts,
    place_session,
    plan_series,
    replan_after,
    session_order,
)

ZONES = [
    ZoneInfo(n)
    for n in ("America/Los_Angeles", "America/New_York", "Europe/Berlin", "Australia/Sydney")
]
BASE_DAYS = (date(2026, 2, 23), date(2026, 3, 30), date(2026, 9, 28), date(2026, 10, 26))
ROLES = ("prescriber", "therapist", "nurse")
ROOM_KINDS = ("therapy_room", "dosing_room", "infusion_chair")


def intervals(
    rng: random.Random, tz: ZoneInfo, first: date, count: int, days: int
) -> tuple[Interval, ...]:
    """``count`` intervals sorted by start, some long, some starting before ``first``, given
    in UTC (as Django loads them) or in the clinic's zone."""
    zone = UTC if rng.random() < 0.5 else tz
    out = []
    for _ in range(count):
        day = first + timedelta(days=rng.randint(-20, days))
        hour = rng.randint(0, 3) if rng.random() < 0.1 else rng.randint(6, 19)  # DST nights too
        wall = datetime.combine(day, time(hour, rng.choice((0, 15, 30, 45))), tzinfo=tz)
        start = wall.replace(fold=rng.randint(0, 1)).astimezone(UTC)
        minutes = rng.choice((15, 30, 45, 60, 60, 100, 120, 240))
        if rng.random() < 0.004:  # now and then one that runs for days or weeks
            minutes = rng.choice((60 * 24 * 3, 60 * 24 * 30))
        end = start + timedelta(minutes=minutes)
        out.append(Interval(start.astimezone(zone), end.astimezone(zone)))
    return tuple(sorted(out, key=lambda iv: iv.start))


def weekly(rng: random.Random, open_days: float) -> tuple[WeeklyHours, ...]:
    hours = []
    for weekday in range(7):
        if rng.random() < open_days:
            start = 0 if rng.random() < 0.15 else rng.randint(6, 10)  # some open over DST nights
            hours.append(
                WeeklyHours(weekday, time(start), time(min(start + rng.randint(4, 11), 23)))
            )
            if rng.random() < 0.2 and start + 13 <= 23:
                hours.append(WeeklyHours(weekday, time(start + 12), time(start + 13)))
    return tuple(hours)


@st.composite
def worlds(
    draw: st.DrawFn, busy_count: int = 30
) -> tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random]:
    # A seeded Random, not st.randoms(): hundreds of busy intervals per resource would cost
    # a hypothesis draw each. A failure still reproduces from the drawn seed.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    tz = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(BASE_DAYS)) + timedelta(days=draw(st.integers(0, 6)))
    opening = weekly(rng, 0.75) or (WeeklyHours(0, time(8), time(18)),)
    closures = frozenset(
        first + timedelta(days=rng.randint(0, 40)) for _ in range(rng.randint(0, 4))
    )
    calendar = ClinicCalendar(tz, opening, closures)
    rooms = [
        RoomSupply(
            10 * k + n,
            kind,
            rng.choice((0, 0, 10, 15)),
            intervals(rng, tz, first, rng.randint(0, busy_count), 45),
        )
        for k, kind in enumerate(ROOM_KINDS)
        for n in range(rng.randint(1, 3))
    ]
    staff = []
    for k, role in enumerate(ROLES):
        for n in range(rng.randint(1, 3)):
            capacity = rng.randint(1, 3) if role == "nurse" else 1
            staff.append(
                StaffSupply(
                    100 + 10 * k + n,
                    frozenset(
                        {
                            role,
                            *(
                                ("therapist",)
                                if role == "prescriber" and rng.random() < 0.3
                                else ()
                            ),
                        }
                    ),
                    capacity,
                    weekly(rng, 0.8) if rng.random() < 0.4 else (),
                    intervals(rng, tz, first, rng.randint(0, 2), 45),
                    intervals(rng, tz, first, rng.randint(0, busy_count), 45),
                )
            )
    return calendar, first, rooms, staff, rng


@st.composite
def generated_protocols(draw: st.DrawFn) -> ProtocolSpec:
    kinds = draw(
        st.lists(
            st.sampled_from(("screening", "preparation", "medicine", "integration")),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    steps = []
    for kind in kinds:
        roles = draw(st.lists(st.sampled_from(ROLES), max_size=2, unique=True))
        duration = draw(st.sampled_from((30, 60, 90, 120)))
        steps.append(
            Step(
                kind,
                draw(st.integers(1, 3)),
                duration,
                draw(st.sampled_from(ROOM_KINDS)),
                tuple(
                    StepRole(role, draw(st.none() | st.sampled_from((15, 30)))) for role in roles
                ),
                "im" if kind == "medicine" else "",
            )
        )
    any_kind = st.sampled_from(kinds)
    rule = st.one_of(
        st.builds(Rule, st.just("min_gap"), any_kind, any_kind, days=st.integers(1, 3)),
        st.builds(Rule, st.just("min_gap"), any_kind, any_kind, hours=st.integers(1, 30)),
        st.builds(Rule, st.just("max_gap"), any_kind, any_kind, days=st.integers(2, 7)),
        st.builds(Rule, st.just("max_gap"), any_kind, any_kind, hours=st.integers(24, 100)),
        st.builds(Rule, st.just("precedes"), any_kind, any_kind),
        st.builds(Rule, st.just("not_same_day"), any_kind, any_kind),
        st.builds(Rule, st.just("each_followed_by"), any_kind, any_kind, at_least=st.just(1)),
        st.builds(
            Rule,
            st.just("max_per_window"),
            any_kind,
            count=st.integers(1, 3),
            window_days=st.integers(1, 7),
        ),
    )
    protocol = ProtocolSpec(
        "generated", "kap", tuple(steps), tuple(draw(st.lists(rule, max_size=4)))
    )
    assume(validate_protocol(protocol) == [])
    return protocol


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def inside_weekly(
    start: datetime, end: datetime, hours: Sequence[WeeklyHours], tz: ZoneInfo
) -> bool:
    day = start.astimezone(tz).date()
    windows = sorted(
        (
            datetime.combine(day, h.start, tzinfo=tz).astimezone(UTC),
            datetime.combine(day, h.end, tzinfo=tz).astimezone(UTC),
        )
        for h in hours
        if h.weekday == day.weekday()
    )
    merged: list[list[datetime]] = []
    for s, e in windows:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return any(s <= start and end <= e for s, e in merged)


def check_plan(
    plan: Plan,
    request: PlanRequest,
    calendar: ClinicCalendar,
    rooms: Sequence[RoomSupply],
    staff: Sequence[StaffSupply],
) -> None:
    """Everything a booked plan must never do."""
    tz = calendar.tz
    protocol = request.protocol
    prefs = request.preferences
    rooms_by_id = {room.id: room for room in rooms}
    staff_by_id = {person.id: person for person in staff}
    steps = {step.kind: step for step in protocol.steps}
    sessions = plan.sessions
    facts = [SessionFact(s.index, s.kind, s.starts_at, s.ends_at) for s in sessions]
    assert evaluate(facts, protocol, tz, gates=request.gates, require_complete=True) == []
    assert [s.kind for s in sessions] == list(session_order(protocol))
    horizon_end = day_start(request.earliest_start + timedelta(days=request.horizon_days), tz)
    for n, s in enumerate(sessions):
        step = steps[s.kind]
        local = s.starts_at.astimezone(tz)
        assert s.ends_at - s.starts_at == timedelta(minutes=step.duration_minutes)
        assert day_start(request.earliest_start, tz) <= s.starts_at < horizon_end
        assert (local.hour * 60 + local.minute) % request.slot_minutes == 0
        assert local.second == 0
        assert local.date() not in calendar.closures
        assert inside_weekly(s.starts_at, s.ends_at, calendar.opening_hours, tz)
        if prefs.weekdays is not None:
            assert local.weekday() in prefs.weekdays
        if prefs.earliest_time is not None:
            assert local.time() >= prefs.earliest_time
        if prefs.latest_start is not None:
            assert local.time() <= prefs.latest_start
        assert not any(
            overlaps(s.starts_at, s.ends_at, b.start, b.end) for b in request.patient_busy
        )
        if n:
            assert sessions[n - 1].ends_at <= s.starts_at
        room = rooms_by_id[s.room_id]
        assert room.kind == step.room_kind
        held_until = s.ends_at + timedelta(minutes=room.turnover_minutes)
        assert not any(overlaps(s.starts_at, held_until, b.start, b.end) for b in room.busy)
        for other in sessions[:n]:
            if other.room_id == s.room_id:
                assert other.ends_at + timedelta(minutes=room.turnover_minutes) <= s.starts_at
        assert len({h.staff_id for h in s.staff}) == len(s.staff) == len(step.roles)
        for hold, role in zip(s.staff, step.roles, strict=True):
            person = staff_by_id[hold.staff_id]
            assert hold.role == role.role in person.roles
            minutes = role.minutes if role.minutes is not None else step.duration_minutes
            assert (hold.start, hold.end) == (s.starts_at, s.starts_at + timedelta(minutes=minutes))
            if person.working_hours:
                assert inside_weekly(hold.start, hold.end, person.working_hours, tz)
            assert not any(overlaps(hold.start, hold.end, t.start, t.end) for t in person.time_off)
            own = [
                Interval(h.start, h.end)
                for other in sessions
                for h in other.staff
                if h.staff_id == hold.staff_id and h is not hold
            ]
            running = [*person.busy, *own]
            points = {hold.start} | {iv.start for iv in running if hold.start < iv.start < hold.end}
            for point in points:
                together = sum(1 for iv in running if iv.start <= point < iv.end)
                assert together < person.capacity


preferences = st.builds(
    Preferences,
    weekdays=st.none() | st.frozensets(st.integers(0, 6), min_size=3),
    earliest_time=st.none() | st.sampled_from((time(7), time(9), time(12))),
    latest_start=st.none() | st.sampled_from((time(12), time(15), time(20))),
)


@settings(max_examples=250)
@given(
    world=worlds(),
    protocol=st.sampled_from(("kap", "infusion")) | generated_protocols(),
    prefs=st.just(Preferences()) | preferences,
    slot=st.sampled_from((15, 30, 60)),
    with_gates=st.booleans(),
    patient_busy_count=st.integers(0, 20),
)
def test_every_plan_keeps_every_rule_and_double_books_nothing(
    world: tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random],
    protocol: str | ProtocolSpec,
    prefs: Preferences,
    slot: int,
    with_gates: bool,
    patient_busy_count: int,
    kap: ProtocolSpec,
    infusion: ProtocolSpec,
) -> None:
    calendar, first, rooms, staff, rng = world
    spec = {"kap": kap, "infusion": infusion}.get(protocol, protocol)  # type: ignore[arg-type]
    assert isinstance(spec, ProtocolSpec)
    gates = (
        PatientGates((ScreeningFact(True, first + timedelta(days=rng.randint(5, 60))),), first)
        if with_gates
        else None
    )
    request = PlanRequest(
        spec,
        first,
        patient_busy=intervals(rng, calendar.tz, first, patient_busy_count, 45),
        preferences=prefs,
        gates=gates,
        horizon_days=45,
        slot_minutes=slot,
    )

    planned = plan_series(request, calendar, rooms, staff)

    if planned.sessions:
        event("planned")
        assert planned.violations == ()
        check_plan(planned, request, calendar, rooms, staff)
    else:
        event(f"no plan: {planned.violations[0].rule}")
        assert planned.violations
        assert all(v.rule and v.message and v.suggested_fix for v in planned.violations)


@settings(max_examples=200)
@given(protocol=generated_protocols())
def test_session_order_keeps_the_order_rules_of_every_valid_protocol(
    protocol: ProtocolSpec,
) -> None:
    """Spaced a day apart, the derived order breaks no precedes or each_followed_by rule (when
    no kind has to follow two different kinds, which the planner refuses as protocol_order)."""
    leaders: dict[str, set[str]] = {}
    for rule in protocol.rules:
        if rule.type == "each_followed_by":
            leaders.setdefault(rule.before, set()).add(rule.after)
    assume(all(len(kinds) == 1 for kinds in leaders.values()))
    day = datetime(2026, 1, 1, tzinfo=UTC)
    order = session_order(protocol)
    sessions = [
        SessionFact(n, kind, day + timedelta(days=n), day + timedelta(days=n, hours=1))
        for n, kind in enumerate(order)
    ]

    violations = evaluate(sessions, protocol, ZoneInfo("UTC"), require_complete=True)

    assert [v for v in violations if v.rule in ("precedes", "each_followed_by", "step_count")] == []


# ----------------------------------------------------------------------------- optimality


TinyCase = tuple[ProtocolSpec, ClinicCalendar, list[RoomSupply], tuple[Interval, ...], date]


@st.composite
def tiny_cases(draw: st.DrawFn) -> TinyCase:
    """Two one-hour slots a day for six days: small enough to try every series."""
    medicine = draw(st.integers(1, 3))
    integration = draw(st.integers(0, 2))
    steps = [Step("medicine", medicine, 60, "dosing_room", route="im")]
    if integration:
        steps.append(Step("integration", integration, 60, "therapy_room"))
    kinds = st.sampled_from([step.kind for step in steps])
    rule = st.one_of(
        st.builds(Rule, st.just("min_gap"), kinds, kinds, days=st.integers(1, 3)),
        st.builds(Rule, st.just("min_gap"), kinds, kinds, hours=st.integers(1, 30)),
        st.builds(Rule, st.just("max_gap"), kinds, kinds, days=st.integers(0, 3)),
        st.builds(Rule, st.just("max_gap"), kinds, kinds, days=st.integers(0, 2)),
        st.builds(Rule, st.just("max_gap"), kinds, kinds, hours=st.integers(0, 30)),
        st.builds(Rule, st.just("not_same_day"), kinds, kinds),
        st.builds(Rule, st.just("each_followed_by"), kinds, kinds, at_least=st.just(1)),
        st.builds(
            Rule,
            st.just("max_per_window"),
            kinds,
            count=st.integers(1, 2),
            window_days=st.integers(1, 4),
        ),
    )
    protocol = ProtocolSpec("tiny", "kap", tuple(steps), tuple(draw(st.lists(rule, max_size=3))))
    assume(validate_protocol(protocol) == [])
    tz = ZoneInfo("America/Los_Angeles")
    first = draw(st.sampled_from((date(2026, 3, 5), date(2026, 6, 1), date(2026, 10, 29))))
    closures = frozenset(
        first + timedelta(days=d) for d in draw(st.lists(st.integers(0, 5), max_size=2))
    )
    calendar = ClinicCalendar(
        tz, tuple(WeeklyHours(d, time(8), time(10)) for d in range(7)), closures
    )

    def taken(count: int) -> tuple[Interval, ...]:
        slots = draw(st.lists(st.integers(0, 11), max_size=count, unique=True))
        return tuple(
            sorted(
                (
                    Interval(start, start + timedelta(hours=1))
                    for start in (
                        datetime.combine(first + timedelta(days=s // 2), time(8 + s % 2), tzinfo=tz)
                        for s in slots
                    )
                ),
                key=lambda iv: iv.start,
            )
        )

    rooms = [
        RoomSupply(1, "dosing_room", busy=taken(3)),
        RoomSupply(2, "therapy_room", busy=taken(3)),
    ]
    return protocol, calendar, rooms, taken(2), first


def brute_force_finish(
    protocol: ProtocolSpec,
    calendar: ClinicCalendar,
    rooms: list[RoomSupply],
    patient_busy: Sequence[Interval],
    first: date,
) -> datetime | None:
    tz = calendar.tz
    order = session_order(protocol)
    slots = [
        datetime.combine(first + timedelta(days=d), time(8 + h), tzinfo=tz)
        for d in range(6)
        for h in range(2)
        if first + timedelta(days=d) not in calendar.closures
    ]
    room_of = {step.kind: step.room_kind for step in protocol.steps}
    busy_of = {room.kind: room.busy for room in rooms}

    def free(kind: str, start: datetime) -> bool:
        end = start + timedelta(hours=1)
        blocked = [*busy_of[room_of[kind]], *patient_busy]
        return not any(overlaps(start, end, b.start, b.end) for b in blocked)

    best: datetime | None = None
    for chosen in itertools.combinations(slots, len(order)):
        if best is not None and chosen[-1] >= best:
            continue
        if not all(free(kind, start) for kind, start in zip(order, chosen, strict=True)):
            continue
        facts = [
            SessionFact(n, kind, start, start + timedelta(hours=1))
            for n, (kind, start) in enumerate(zip(order, chosen, strict=True))
        ]
        if not evaluate(facts, protocol, tz, require_complete=True):
            best = chosen[-1]
    return best


@settings(max_examples=200)
@given(case=tiny_cases())
def test_the_plan_finishes_as_early_as_the_best_series_there_is(case: TinyCase) -> None:
    protocol, calendar, rooms, patient_busy, first = case

    planned = plan_series(
        PlanRequest(protocol, first, patient_busy=patient_busy, horizon_days=6, slot_minutes=60),
        calendar,
        rooms,
        [],
    )

    best = brute_force_finish(protocol, calendar, rooms, patient_busy, first)
    event("no series exists" if best is None else "a series exists")
    if best is None:
        assert planned.sessions == ()
        assert planned.violations
    else:
        assert planned.violations == ()
        assert planned.sessions[-1].starts_at == best


# ----------------------------------------------------------------------------- free_starts


def slot_starts(calendar: ClinicCalendar, first: date, days: int, slot: int) -> list[datetime]:
    """Every existing local wall-clock slot boundary on those days, in time order."""
    tz = calendar.tz
    out = set()
    for d in range(days):
        day = first + timedelta(days=d)
        for minute in range(0, 24 * 60, slot):
            wall = time(minute // 60, minute % 60)
            for fold in (0, 1):
                candidate = datetime.combine(day, wall, tzinfo=tz).replace(fold=fold)
                if candidate.astimezone(UTC).astimezone(tz).time() == wall:
                    out.add(candidate.astimezone(UTC))
    return sorted(out)


@settings(max_examples=100)
@given(
    world=worlds(busy_count=250),
    which=st.integers(0, 3),
    slot=st.sampled_from((15, 30)),
    days=st.integers(1, 2),
    offset=st.integers(0, 20),
    with_staff=st.booleans(),
)
def test_free_starts_agrees_with_place_session_at_every_slot(
    world: tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random],
    which: int,
    slot: int,
    days: int,
    offset: int,
    with_staff: bool,
    kap: ProtocolSpec,
    infusion: ProtocolSpec,
) -> None:
    calendar, first, rooms, staff, rng = world
    step = [*kap.steps, infusion.steps[1]][which]
    day_from = first + timedelta(days=offset)
    day_to = day_from + timedelta(days=days - 1)
    patient_busy = intervals(rng, calendar.tz, first, 40, 30)
    candidates = [p.id for p in staff if p.roles & {r.role for r in step.roles}]
    staff_id = rng.choice(candidates) if with_staff and candidates else None

    found = free_starts(
        step,
        day_from,
        day_to,
        calendar,
        rooms,
        staff,
        patient_busy=patient_busy,
        slot_minutes=slot,
        staff_id=staff_id,
    )

    expected = [
        start
        for start in slot_starts(calendar, day_from, days, slot)
        if isinstance(
            place_session(
                step,
                start,
                calendar,
                rooms,
                staff,
                patient_busy=patient_busy,
                staff_ids=None if staff_id is None else [staff_id],
            ),
            PlannedSession,
        )
    ]
    event("some free starts" if found else "no free start")
    assert found == expected


# ----------------------------------------------------------------------------- replan_after


def as_facts(plan: Plan) -> list[SessionFact]:
    return [
        SessionFact(
            1000 + s.index,
            s.kind,
            s.starts_at,
            s.ends_at,
            s.room_id,
            tuple(h.staff_id for h in s.staff),
        )
        for s in plan.sessions
    ]


@settings(max_examples=150)
@given(
    world=worlds(),
    protocol=st.sampled_from(("kap", "infusion")),
    pick=st.integers(1, 14),
    shift_days=st.integers(-2, 4),
    shift_minutes=st.sampled_from((0, 30, 60, 120)),
)
def test_replan_after_keeps_every_rule_and_never_moves_a_session_earlier(
    world: tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random],
    protocol: str,
    pick: int,
    shift_days: int,
    shift_minutes: int,
    kap: ProtocolSpec,
    infusion: ProtocolSpec,
) -> None:
    calendar, first, rooms, staff, _ = world
    spec = kap if protocol == "kap" else infusion
    request = PlanRequest(spec, first, horizon_days=45)
    series = as_facts(plan_series(request, calendar, rooms, staff))
    assume(len(series) > pick)
    old = series[pick]
    start = old.starts_at + timedelta(days=shift_days, minutes=shift_minutes)
    moved = SessionFact(old.ref, old.kind, start, start + (old.ends_at - old.starts_at))
    later = series[pick + 1 :]

    replanned = replan_after(
        PlanRequest(spec, first, fixed=tuple(series[:pick]), horizon_days=45),
        calendar,
        rooms,
        staff,
        moved=moved,
        later=later,
    )

    if shift_days == 0 and shift_minutes == 0:
        assert replanned.violations == ()
        assert [(s.starts_at, s.room_id) for s in replanned.sessions] == [
            (f.starts_at, f.room_id) for f in later
        ]
    if replanned.violations:
        event(f"refused: {replanned.violations[0].rule}")
        assert replanned.sessions == ()
        return
    moved_later = sum(
        s.starts_at != f.starts_at for f, s in zip(later, replanned.sessions, strict=True)
    )
    event("some later sessions moved" if moved_later else "no later session moved")
    assert [s.index for s in replanned.sessions] == list(range(len(later)))
    for fact, session in zip(later, replanned.sessions, strict=True):
        assert session.kind == fact.kind
        assert session.starts_at >= fact.starts_at
    everything = [
        *series[:pick],
        moved,
        *(
            SessionFact(f.ref, f.kind, s.starts_at, s.ends_at)
            for f, s in zip(later, replanned.sessions, strict=True)
        ),
    ]
    assert evaluate(everything, spec, calendar.tz, require_complete=True) == []
