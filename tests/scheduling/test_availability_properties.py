"""``scheduling.availability.free_starts`` against the booking check itself (hypothesis).

``session_create`` places one session with ``planner.place_session``; the availability search
answers the same question for every slot at once with bitsets. On generated clinics (four time
zones, weeks with DST changes, closures, rooms with and without turnover, staff with and without
weekly hours, time off, nurses with capacity 1-3, someone holding two roles, busy intervals
reaching in from before the window), the starts it offers are exactly the grid starts after
``not_before`` at which ``place_session`` finds a room and clinicians, with and without a chosen
clinician or room.

Then, on the database: every start offered on a small clinic with sessions booked through
``scheduling.services.session_create`` books through it too, with the same patient, clinician
or room, and none lies inside the patient's, the room's (turnover included) or the clinician's
busy time.
"""

import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.rules import Step, StepRole
from scheduling.availability import Calendar, Hours, RoomTime, StaffTime, free_starts
from scheduling.planner import (
    ClinicCalendar,
    Interval,
    PlannedSession,
    RoomSupply,
    StaffSupply,
    WeeklyHours,
    place_session,
)

ZONES = [
    ZoneInfo(name)
    for name in ("America/Los_Angeles", "America/New_York", "Europe/Berlin", "Australia/Sydney")
]
#: Mondays of weeks in which clocks change in one of the zones, and two ordinary ones.
BASE_DAYS = (date(2026, 2, 23), date(2026, 3, 2), date(2026, 3, 23), date(2026, 9, 28))
STEPS = (
    Step("integration", 1, 60, "therapy_room", (StepRole("therapist"),)),
    Step("follow_up", 1, 30, "therapy_room", (StepRole("prescriber"),)),
    Step(
        "medicine",
        1,
        120,
        "dosing_room",
        (StepRole("therapist", 90), StepRole("nurse", 30)),
        route="im",
    ),
    Step("medicine", 1, 100, "infusion_chair", (StepRole("nurse"),), route="iv"),
)
ROLES = ("prescriber", "therapist", "nurse")
ROOM_KINDS = ("therapy_room", "dosing_room", "infusion_chair")


def intervals(rng: random.Random, tz: ZoneInfo, first: date, count: int) -> tuple[Interval, ...]:
    out = []
    for _ in range(count):
        day = first + timedelta(days=rng.randint(-2, 8))
        hour = rng.randint(0, 3) if rng.random() < 0.15 else rng.randint(6, 19)  # DST nights
        wall = datetime.combine(day, time(hour, rng.choice((0, 10, 15, 30, 45))), tzinfo=tz)
        start = wall.replace(fold=rng.randint(0, 1)).astimezone(UTC)
        minutes = rng.choice((15, 30, 45, 60, 60, 100, 120, 240))
        if rng.random() < 0.02:
            minutes = 60 * 24 * rng.choice((1, 3))  # time off over days
        out.append(Interval(start, start + timedelta(minutes=minutes)))
    return tuple(sorted(out, key=lambda iv: iv.start))


def weekly(rng: random.Random, open_days: float) -> tuple[WeeklyHours, ...]:
    hours = []
    for weekday in range(7):
        if rng.random() < open_days:
            start = 0 if rng.random() < 0.2 else rng.randint(6, 10)
            end = time(0) if rng.random() < 0.1 else time(min(start + rng.randint(3, 11), 23))
            hours.append(WeeklyHours(weekday, time(start), end))
            if rng.random() < 0.2 and start + 13 <= 23:
                hours.append(WeeklyHours(weekday, time(start + 12), time(start + 13)))
    return tuple(hours)


def spans(items: tuple[Interval, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((int(i.start.timestamp()), int(i.end.timestamp())) for i in items)


def hours(items: tuple[WeeklyHours, ...]) -> tuple[Hours, ...]:
    return tuple(Hours(h.weekday, h.start, h.end) for h in items)


def grid(tz: ZoneInfo, first: date, days: int) -> list[datetime]:
    """Every existing local quarter-hour on those days, in time order (both of a repeated one)."""
    out = set()
    for d in range(days):
        for minute in range(0, 24 * 60, 15):
            wall = time(minute // 60, minute % 60)
            for fold in (0, 1):
                candidate = datetime.combine(first + timedelta(days=d), wall, tzinfo=tz)
                candidate = candidate.replace(fold=fold)
                if candidate.astimezone(UTC).astimezone(tz).time() == wall:
                    out.add(candidate.astimezone(UTC))
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tz=st.sampled_from(ZONES),
    base=st.sampled_from(BASE_DAYS),
    offset=st.integers(0, 6),
    days=st.integers(1, 3),
    step=st.sampled_from(STEPS),
    busy=st.integers(0, 40),
    choose_staff=st.booleans(),
    choose_room=st.booleans(),
    not_before_hours=st.integers(-24, 40),
)
def test_offered_starts_are_exactly_where_place_session_books(
    seed: int,
    tz: ZoneInfo,
    base: date,
    offset: int,
    days: int,
    step: Step,
    busy: int,
    choose_staff: bool,
    choose_room: bool,
    not_before_hours: int,
) -> None:
    # given a generated clinic (a seeded Random: hundreds of intervals cost no draws each)
    rng = random.Random(seed)
    first = base + timedelta(days=offset)
    opening = weekly(rng, 0.8) or (WeeklyHours(first.weekday(), time(8), time(18)),)
    closures = frozenset(
        first + timedelta(days=rng.randint(0, 3)) for _ in range(rng.randint(0, 1))
    )
    rooms = [
        RoomSupply(10 * k + n, kind, rng.choice((0, 0, 10, 15)), intervals(rng, tz, first, busy))
        for k, kind in enumerate(ROOM_KINDS)
        for n in range(rng.randint(1, 2))
    ]
    staff = []
    for k, role in enumerate(ROLES):
        for n in range(rng.randint(1, 3)):
            extra = ("therapist",) if role == "nurse" and rng.random() < 0.25 else ()
            staff.append(
                StaffSupply(
                    100 + 10 * k + n,
                    frozenset({role, *extra}),
                    rng.randint(1, 3) if role == "nurse" else 1,
                    weekly(rng, 0.8) if rng.random() < 0.5 else (),
                    intervals(rng, tz, first, rng.randint(0, 2)),
                    intervals(rng, tz, first, busy),
                )
            )
    patient_busy = intervals(rng, tz, first, rng.randint(0, 6))
    wanted = {need.role for need in step.roles}
    staff_id = rng.choice([p.id for p in staff if p.roles & wanted]) if choose_staff else None
    room_id = rng.choice([r.id for r in rooms if r.kind == step.room_kind]) if choose_room else None
    not_before = datetime.combine(first, time(0), tzinfo=tz) + timedelta(hours=not_before_hours)
    day_to = first + timedelta(days=days - 1)

    # when the availability search runs on the same values
    found = free_starts(
        step,
        first,
        day_to,
        Calendar(tz, hours(opening), closures),
        [RoomTime(r.id, r.kind, r.turnover_minutes, spans(r.busy)) for r in rooms],
        [
            StaffTime(
                p.id,
                p.roles,
                p.capacity,
                hours(p.working_hours),
                spans(p.time_off),
                spans(p.busy),
            )
            for p in staff
        ],
        not_before=not_before,
        patient_busy=spans(patient_busy),
        staff_id=staff_id,
        room_id=room_id,
    )

    # then it offers exactly the later grid starts the booking check accepts
    calendar = ClinicCalendar(tz, opening, closures)
    expected = [
        start
        for start in grid(tz, first, days)
        if start > not_before
        and isinstance(
            place_session(
                step,
                start,
                calendar,
                rooms,
                staff,
                patient_busy=patient_busy,
                staff_ids=None if staff_id is None else [staff_id],
                room_id=room_id,
            ),
            PlannedSession,
        )
    ]
    event("some free starts" if found else "no free start")
    assert found == expected
    assert all(start.tzinfo is UTC for start in found)


# ------------------------------------------------------------------ through the booking service

MONDAY = date(2026, 3, 9)
NOW = datetime(2026, 3, 2, 17, tzinfo=UTC)


class SmallClinic:
    """Open Monday 9 March 2026 09:00-12:00 (Los Angeles): two therapy rooms (15 and 0 minutes'
    turnover), a dosing room, two therapists (one from 10:00), a nurse for two patients at once,
    a prescriber, the patient asked about and three others."""

    def __init__(self) -> None:
        from clinic.models import Role, RoomKind
        from tests.factories import (
            ClearedPatientFactory,
            ClinicFactory,
            RoomFactory,
            StaffMemberFactory,
            WorkingHoursFactory,
        )

        self.clinic = ClinicFactory(name="Property Clinic", opening_hours=[(0, time(9), time(12))])
        self.rooms = [
            RoomFactory(clinic=self.clinic, kind=RoomKind.THERAPY_ROOM, turnover_minutes=15),
            RoomFactory(clinic=self.clinic, kind=RoomKind.THERAPY_ROOM, turnover_minutes=0),
            RoomFactory(clinic=self.clinic, kind=RoomKind.DOSING_ROOM, turnover_minutes=15),
        ]
        self.staff = [
            StaffMemberFactory(clinic=self.clinic, roles=[Role.THERAPIST]),
            StaffMemberFactory(clinic=self.clinic, roles=[Role.THERAPIST]),
            StaffMemberFactory(clinic=self.clinic, roles=[Role.NURSE], max_concurrent_patients=2),
            StaffMemberFactory(clinic=self.clinic, roles=[Role.PRESCRIBER]),
        ]
        WorkingHoursFactory(staff=self.staff[1], weekday=0, start=time(10), end=time(12))
        self.patients = [ClearedPatientFactory(clinic=self.clinic) for _ in range(4)]


@pytest.fixture
def small_clinic(db: None) -> SmallClinic:
    return SmallClinic()


def _overlaps(rows: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(low < end and start < high for low, high in rows)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bookings=st.lists(
        st.tuples(
            st.sampled_from(["integration", "medicine", "follow_up"]),
            st.integers(0, 11),
            st.integers(0, 2),  # the fourth patient stays free: booked when no patient is named
        ),
        max_size=4,
    ),
    kind=st.sampled_from(["integration", "medicine", "follow_up"]),
    for_patient=st.booleans(),
    choice=st.sampled_from(["anyone", "staff", "room"]),
    pick=st.integers(0, 3),
    time_off=st.none() | st.tuples(st.integers(0, 11), st.integers(1, 8)),
)
def test_every_offered_start_books_and_none_is_inside_busy_time(
    small_clinic: SmallClinic,
    bookings: list[tuple[str, int, int]],
    kind: str,
    for_patient: bool,
    choice: str,
    pick: int,
    time_off: tuple[int, int] | None,
) -> None:
    from django.db import transaction

    from clinic.errors import ResourceConflict, RuleViolation
    from clinic.models import TimeOff
    from protocols.selectors import step_for_kind
    from scheduling import services
    from scheduling.availability import availability
    from scheduling.models import LIVE_STATUSES, Session, SessionStaff

    site = small_clinic
    nine = datetime.combine(MONDAY, time(9), tzinfo=ZoneInfo("America/Los_Angeles"))
    step = step_for_kind(None, kind)
    with transaction.atomic():
        # given sessions booked through the service (those it refuses are simply not booked)
        for booked_kind, quarter, patient in bookings:
            try:
                with transaction.atomic():
                    services.session_create(
                        patient=site.patients[patient],
                        kind=booked_kind,
                        starts_at=nine + timedelta(minutes=15 * quarter),
                    )
            except (ResourceConflict, RuleViolation):
                pass
        if time_off is not None:
            TimeOff.objects.create(
                staff=site.staff[0],
                starts_at=nine + timedelta(minutes=15 * time_off[0]),
                ends_at=nine + timedelta(minutes=15 * (time_off[0] + time_off[1])),
            )
        patient = site.patients[0] if for_patient else site.patients[3]
        suitable_staff = [m for m in site.staff if {r.role for r in step.roles} & set(m.roles)]
        member = suitable_staff[pick % len(suitable_staff)] if choice == "staff" else None
        rooms = [r for r in site.rooms if r.kind == step.room_kind]
        room = rooms[pick % len(rooms)] if choice == "room" else None

        # when the free starts are asked for
        found = availability(
            site.clinic,
            step,
            MONDAY,
            MONDAY,
            patient_id=patient.pk if for_patient else None,
            staff_id=member.pk if member else None,
            room_id=room.pk if room else None,
            now=NOW,
        )
        event(f"{len(found.starts)} free starts")

        length = timedelta(minutes=step.duration_minutes)
        live = Session.objects.filter(status__in=LIVE_STATUSES)
        for start in found.starts:
            # then none lies inside the patient's, the room's or the clinician's busy time
            if for_patient:
                mine = live.filter(patient=patient).values_list("starts_at", "ends_at")
                assert not _overlaps(mine, start, start + length)
            if room is not None:
                held = live.filter(room=room).values_list("starts_at", "room_released_at")
                turnover = timedelta(minutes=room.turnover_minutes)
                assert not _overlaps(held, start, start + length + turnover)
            if member is not None and member.max_concurrent_patients == 1:
                holds = SessionStaff.objects.filter(staff=member, is_active=True)
                shortest = min(
                    timedelta(minutes=need.minutes) if need.minutes else length
                    for need in step.roles
                    if need.role in member.roles
                )
                assert not _overlaps(
                    holds.values_list("starts_at", "ends_at"), start, start + shortest
                )
            # and booking it with the same choices succeeds (then is undone)
            with transaction.atomic():
                session = services.session_create(
                    patient=patient,
                    kind=kind,
                    starts_at=start,
                    room=room,
                    staff=[member] if member else (),
                )
                assert session.starts_at == start
                transaction.set_rollback(True)
        transaction.set_rollback(True)
