"""A synthetic clinic for the planner benchmarks: rooms, staff and a history of booked sessions.

Pure Python (no Django): ``generate_clinic`` lays sessions day by day, room by room, on a
15-minute grid, and gives each one a patient and clinicians who are working, not on time off and
within their concurrent-patient capacity, so the rows satisfy every exclusion constraint when
``benchmarks/planner.py`` writes them with ``bulk_create``. ``planner_inputs`` turns the same
clinic into the planner's plain values (what ``scheduling.supply`` loads from the database), for
the comparison with CP-SAT that needs no database.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from protocols.rules import day_start
from scheduling.planner import ClinicCalendar, Interval, RoomSupply, StaffSupply, WeeklyHours

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
SLOT_MINUTES = 15
TURNOVER_MINUTES = 15

#: The demo clinic's hours (seed_demo): weekdays 08:00-18:00, Saturday 09:00-13:00.
OPENING_HOURS = (
    *(WeeklyHours(day, time(8), time(18)) for day in range(5)),
    WeeklyHours(5, time(9), time(13)),
)
FULL_TIME = tuple(WeeklyHours(day, time(8), time(18)) for day in range(5))
NURSE_HOURS = (*FULL_TIME, WeeklyHours(5, time(9), time(13)))
PART_TIME = (  # Monday, Wednesday and Friday mornings, Tuesday and Thursday afternoons
    *(WeeklyHours(day, time(8), time(13)) for day in (0, 2, 4)),
    *(WeeklyHours(day, time(12), time(18)) for day in (1, 3)),
)


@dataclass(frozen=True, slots=True)
class SessionType:
    """What a room kind is booked for: the standard protocols' steps (protocols/data)."""

    kind: str
    route: str
    duration_minutes: int
    roles: tuple[tuple[str, int], ...]  # role, minutes held from the start


INFUSION = SessionType("medicine", "iv", 100, (("nurse", 100),))
KAP_MEDICINE = SessionType("medicine", "im", 120, (("therapist", 90), ("nurse", 30)))
SCREENING = SessionType("screening", "", 60, (("prescriber", 60),))
PREPARATION = SessionType("preparation", "", 60, (("therapist", 60),))
INTEGRATION = SessionType("integration", "", 60, (("therapist", 60),))

#: The session mix per room kind (weights).
MIX: dict[str, tuple[tuple[SessionType, int], ...]] = {
    "infusion_chair": ((INFUSION, 1),),
    "dosing_room": ((KAP_MEDICINE, 1),),
    "therapy_room": ((SCREENING, 1), (PREPARATION, 3), (INTEGRATION, 6)),
}


@dataclass(frozen=True, slots=True)
class ClinicShape:
    infusion_chairs: int
    dosing_rooms: int
    therapy_rooms: int
    telehealth_rooms: int
    nurses: int
    therapists: int
    part_time_therapists: int
    prescribers: int
    front_desk: int
    admins: int
    nurse_capacity: int = 3

    @property
    def staff_count(self) -> int:
        return self.nurses + self.therapists + self.prescribers + self.front_desk + self.admins


#: 39 rooms and 50 staff: about 170 sessions a weekday at 75 % of the rooms' time, so 100k
#: sessions span a little over two years.
BENCH_CLINIC = ClinicShape(
    infusion_chairs=16,
    dosing_rooms=8,
    therapy_rooms=14,
    telehealth_rooms=1,
    nurses=8,
    therapists=30,
    part_time_therapists=10,
    prescribers=3,
    front_desk=6,
    admins=3,
)
#: A clinic the size of the demo one (seed_demo), small enough for CP-SAT to prove optimality.
SMALL_CLINIC = ClinicShape(
    infusion_chairs=3,
    dosing_rooms=2,
    therapy_rooms=2,
    telehealth_rooms=0,
    nurses=2,
    therapists=3,
    part_time_therapists=1,
    prescribers=1,
    front_desk=0,
    admins=0,
)


@dataclass(frozen=True, slots=True)
class SyntheticRoom:
    name: str
    kind: str
    turnover_minutes: int = TURNOVER_MINUTES


@dataclass(frozen=True, slots=True)
class SyntheticStaff:
    name: str
    roles: tuple[str, ...]
    capacity: int
    working_hours: tuple[WeeklyHours, ...]
    time_off: tuple[Interval, ...]


@dataclass(frozen=True, slots=True)
class SyntheticHold:
    staff: int  # index into SyntheticClinic.staff
    role: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class SyntheticSession:
    """``is_live``: booked (or completed); a cancelled session leaves its slot to a live one."""

    patient: int  # index, 0 .. SyntheticClinic.patients - 1
    kind: str
    route: str
    room: int  # index into SyntheticClinic.rooms
    start: datetime  # UTC
    end: datetime
    room_released: datetime
    holds: tuple[SyntheticHold, ...]
    is_live: bool = True


@dataclass(frozen=True, slots=True)
class SyntheticClinic:
    tz: ZoneInfo
    opening_hours: tuple[WeeklyHours, ...]
    closures: frozenset[date]
    rooms: tuple[SyntheticRoom, ...]
    staff: tuple[SyntheticStaff, ...]
    patients: int
    sessions: tuple[SyntheticSession, ...]  # sorted by start
    first_day: date
    last_day: date  # the last day with a session

    @property
    def live_sessions(self) -> int:
        return sum(1 for session in self.sessions if session.is_live)


def us_holidays(year: int) -> set[date]:
    """The days a US outpatient clinic commonly closes."""

    def nth_weekday(month: int, weekday: int, n: int) -> date:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    last_may = date(year, 5, 31)
    return {
        date(year, 1, 1),
        last_may - timedelta(days=last_may.weekday()),  # Memorial Day
        date(year, 7, 4),
        nth_weekday(9, 0, 1),  # Labor Day
        nth_weekday(11, 3, 4),  # Thanksgiving
        date(year, 12, 25),
    }


def _staff(
    shape: ClinicShape, rng: random.Random, first: date, days: int, tz: ZoneInfo
) -> list[SyntheticStaff]:
    people: list[tuple[str, tuple[str, ...], int, tuple[WeeklyHours, ...]]] = []
    people += [
        (f"Nurse {n}", ("nurse",), shape.nurse_capacity, NURSE_HOURS) for n in range(shape.nurses)
    ]
    people += [
        (
            f"Therapist {n}",
            ("therapist",),
            1,
            PART_TIME if n < shape.part_time_therapists else FULL_TIME,
        )
        for n in range(shape.therapists)
    ]
    people += [(f"Prescriber {n}", ("prescriber",), 1, FULL_TIME) for n in range(shape.prescribers)]
    people += [(f"Front desk {n}", ("front_desk",), 1, FULL_TIME) for n in range(shape.front_desk)]
    people += [(f"Admin {n}", ("clinic_admin",), 1, FULL_TIME) for n in range(shape.admins)]
    staff = []
    for name, roles, capacity, hours in people:
        staff.append(SyntheticStaff(name, roles, capacity, hours, _time_off(rng, first, days, tz)))
    return staff


def _time_off(rng: random.Random, first: date, days: int, tz: ZoneInfo) -> tuple[Interval, ...]:
    """A week of holiday about every six months and a day off about every two months."""
    off: list[Interval] = []
    day = first + timedelta(days=rng.randrange(0, 180))
    last = first + timedelta(days=days)
    while day < last:
        monday = day - timedelta(days=day.weekday())
        off.append(Interval(day_start(monday, tz), day_start(monday + timedelta(7), tz)))
        day += timedelta(days=rng.randrange(150, 210))
    day = first + timedelta(days=rng.randrange(0, 60))
    while day < last:
        off.append(Interval(day_start(day, tz), day_start(day + timedelta(1), tz)))
        day += timedelta(days=rng.randrange(40, 80))
    return tuple(sorted(off, key=lambda interval: interval.start))


def _rooms(shape: ClinicShape) -> list[SyntheticRoom]:
    return [
        *(
            SyntheticRoom(f"Infusion chair {n + 1}", "infusion_chair")
            for n in range(shape.infusion_chairs)
        ),
        *(SyntheticRoom(f"Dosing room {n + 1}", "dosing_room") for n in range(shape.dosing_rooms)),
        *(
            SyntheticRoom(f"Therapy room {n + 1}", "therapy_room")
            for n in range(shape.therapy_rooms)
        ),
        *(
            SyntheticRoom(f"Telehealth {n + 1}", "telehealth")
            for n in range(shape.telehealth_rooms)
        ),
    ]


def _local(day: date, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz).astimezone(UTC)


def _windows(hours: Sequence[WeeklyHours], weekday: int) -> list[tuple[int, int]]:
    """Local minutes [start, end) of the day's hours (an end of 00:00 is midnight)."""
    return [
        (h.start.hour * 60 + h.start.minute, (h.end.hour * 60 + h.end.minute) or 1440)
        for h in hours
        if h.weekday == weekday
    ]


class _People:
    """Who can take a role now: working, not on time off, below capacity (sessions arrive in
    start order, so only holds still running at the start count)."""

    def __init__(self, staff: Sequence[SyntheticStaff], rng: random.Random) -> None:
        self.staff = staff
        self.rng = rng
        self.by_role: dict[str, list[int]] = {}
        for index, person in enumerate(staff):
            for role in person.roles:
                self.by_role.setdefault(role, []).append(index)
        self.running: list[list[datetime]] = [[] for _ in staff]  # ends of holds, per person
        self.working: dict[int, list[tuple[datetime, datetime]]] = {}
        self.off_starts = [[iv.start for iv in person.time_off] for person in staff]

    def start_day(self, day: date, tz: ZoneInfo) -> None:
        self.working = {}
        for index, person in enumerate(self.staff):
            self.working[index] = [
                (
                    _local(day, a, tz),
                    _local(day, b, tz) if b < 1440 else day_start(day + timedelta(1), tz),
                )
                for a, b in _windows(person.working_hours, day.weekday())
            ]
            self.running[index] = []

    def _free(self, index: int, start: datetime, end: datetime) -> bool:
        person = self.staff[index]
        if not any(a <= start and end <= b for a, b in self.working[index]):
            return False
        off = person.time_off
        k = bisect_left(self.off_starts[index], end)
        if k and off[k - 1].end > start:
            return False
        running = [e for e in self.running[index] if e > start]
        self.running[index] = running
        return len(running) < person.capacity

    def choose(
        self, role: str, start: datetime, end: datetime, taken: Collection[int]
    ) -> int | None:
        candidates = self.by_role.get(role, [])
        if not candidates:
            return None
        offset = self.rng.randrange(len(candidates))
        for n in range(len(candidates)):
            index = candidates[(offset + n) % len(candidates)]
            if index not in taken and self._free(index, start, end):
                return index
        return None

    def hold(self, index: int, end: datetime) -> None:
        self.running[index].append(end)


def generate_clinic(
    shape: ClinicShape,
    *,
    first_day: date,
    live_sessions: int | None = None,
    days: int | None = None,
    utilization: float = 0.75,
    cancelled_share: float = 0.05,
    patients: int | None = None,
    seed: int = 0,
    tz: ZoneInfo = LOS_ANGELES,
) -> SyntheticClinic:
    """A clinic whose rooms are booked ``utilization`` of their time, day after day from
    ``first_day``, until ``live_sessions`` live sessions exist (or for ``days`` days).

    Each room's day is cut into back-to-back slots of one session plus turnover, rounded up to
    the 15-minute grid, starting 0 to 45 minutes after opening; each slot is booked with
    probability ``utilization`` if a patient and clinicians are free for it. ``cancelled_share``
    of the live sessions get a cancelled session in the same room and time (cancelled and
    rebooked), which the planner's queries must skip.
    """
    if live_sessions is None and days is None:
        raise ValueError("give live_sessions or days")
    rng = random.Random(seed)
    span = days if days is not None else 3650
    closures = frozenset(
        holiday
        for year in range(first_day.year, first_day.year + span // 365 + 2)
        for holiday in us_holidays(year)
    )
    rooms = _rooms(shape)
    staff = _staff(shape, rng, first_day, span, tz)
    people = _People(staff, rng)
    if patients is None:
        patients = max(300, (live_sessions or 0) // 12)
    patient_free = [datetime.min.replace(tzinfo=UTC)] * patients
    next_patient = 0
    sessions: list[SyntheticSession] = []
    live = 0
    day = first_day
    last_day = first_day
    while (live_sessions is None or live < live_sessions) and (
        days is None or day < first_day + timedelta(days=days)
    ):
        if day in closures or not _windows(OPENING_HOURS, day.weekday()):
            day += timedelta(1)
            continue
        people.start_day(day, tz)
        slots: list[tuple[datetime, int, SessionType]] = []
        for room_index, room in enumerate(rooms):
            mix = MIX.get(room.kind)
            if mix is None:
                continue
            types = [t for t, _ in mix]
            weights = [w for _, w in mix]
            longest = max(t.duration_minutes for t in types) + room.turnover_minutes
            length = -(-longest // SLOT_MINUTES) * SLOT_MINUTES
            for open_at, close_at in _windows(OPENING_HOURS, day.weekday()):
                minute = open_at + SLOT_MINUTES * rng.randrange(4)
                while True:
                    kind = rng.choices(types, weights)[0]
                    if minute + kind.duration_minutes > close_at:
                        break
                    if rng.random() < utilization:
                        slots.append((_local(day, minute, tz), room_index, kind))
                    minute += length
        slots.sort(key=lambda slot: (slot[0], slot[1]))
        for start, room_index, kind in slots:
            end = start + timedelta(minutes=kind.duration_minutes)
            holds: list[SyntheticHold] = []
            for role, minutes in kind.roles:
                hold_end = start + timedelta(minutes=minutes)
                person = people.choose(role, start, hold_end, {h.staff for h in holds})
                if person is None:
                    break
                holds.append(SyntheticHold(person, role, start, hold_end))
            if len(holds) < len(kind.roles):
                continue
            for _ in range(patients):
                patient = next_patient
                next_patient = (next_patient + 1) % patients
                if patient_free[patient] <= start:
                    break
            else:
                continue
            for hold in holds:
                people.hold(hold.staff, hold.end)
            patient_free[patient] = end
            released = end + timedelta(minutes=rooms[room_index].turnover_minutes)
            if rng.random() < cancelled_share:
                sessions.append(
                    SyntheticSession(
                        rng.randrange(patients),
                        kind.kind,
                        kind.route,
                        room_index,
                        start,
                        end,
                        released,
                        tuple(holds),
                        is_live=False,
                    )
                )
            sessions.append(
                SyntheticSession(
                    patient, kind.kind, kind.route, room_index, start, end, released, tuple(holds)
                )
            )
            live += 1
            last_day = day
            if live_sessions is not None and live >= live_sessions:
                break
        day += timedelta(1)
    return SyntheticClinic(
        tz=tz,
        opening_hours=OPENING_HOURS,
        closures=closures,
        rooms=tuple(rooms),
        staff=tuple(staff),
        patients=patients,
        sessions=tuple(sessions),
        first_day=first_day,
        last_day=last_day,
    )


def planner_inputs(
    clinic: SyntheticClinic,
    window: Interval,
    *,
    room_kinds: Collection[str] | None = None,
    roles: Collection[str] | None = None,
) -> tuple[ClinicCalendar, tuple[RoomSupply, ...], tuple[StaffSupply, ...]]:
    """The planner's inputs for ``window``, as ``scheduling.supply`` loads them from the rows
    ``benchmarks/planner.py`` writes (room and staff ids are indexes + 1)."""
    calendar = ClinicCalendar(clinic.tz, clinic.opening_hours, clinic.closures)
    room_busy: dict[int, list[Interval]] = {}
    staff_busy: dict[int, list[Interval]] = {}
    for session in clinic.sessions:
        if not session.is_live or session.start >= window.end:
            continue
        if session.room_released > window.start:
            room_busy.setdefault(session.room, []).append(
                Interval(session.start, session.room_released)
            )
        for hold in session.holds:
            if hold.end > window.start:
                staff_busy.setdefault(hold.staff, []).append(Interval(hold.start, hold.end))
    rooms = tuple(
        RoomSupply(
            index + 1,
            room.kind,
            room.turnover_minutes,
            tuple(sorted(room_busy.get(index, ()), key=lambda iv: iv.start)),
        )
        for index, room in enumerate(clinic.rooms)
        if room_kinds is None or room.kind in room_kinds
    )
    staff = tuple(
        StaffSupply(
            id=index + 1,
            roles=frozenset(person.roles),
            capacity=person.capacity,
            working_hours=person.working_hours,
            time_off=tuple(
                iv for iv in person.time_off if iv.start < window.end and iv.end > window.start
            ),
            busy=tuple(sorted(staff_busy.get(index, ()), key=lambda iv: iv.start)),
        )
        for index, person in enumerate(clinic.staff)
        if roles is None or set(person.roles) & set(roles)
    )
    return calendar, rooms, staff
