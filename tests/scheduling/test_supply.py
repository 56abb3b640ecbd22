"""Loading busy time for the planner: bounded reads, epoch microseconds, exact answers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clinic.models import Role, RoomKind
from scheduling.busy import Busy, busy_time
from scheduling.models import MAX_HOLD, Session, SessionStatus
from scheduling.planner import EpochIntervals, Interval, epoch_us, from_epoch_us
from scheduling.supply import patient_busy, room_supply, staff_supply, supply_for
from tests.factories import (
    ClinicFactory,
    PatientFactory,
    RoomFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
)

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC
WINDOW = Interval(dt.datetime(2027, 3, 10, 8, tzinfo=UTC), dt.datetime(2027, 3, 12, 8, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0, microsecond: int = 0) -> dt.datetime:
    return dt.datetime(2027, 3, day, hour, minute, 0, microsecond, tzinfo=UTC)


def us(instant: dt.datetime) -> int:
    return epoch_us(instant)


def test_epoch_microseconds_round_trip_exactly() -> None:
    instant = dt.datetime(2027, 3, 14, 9, 30, 15, 123457, tzinfo=UTC)

    value = epoch_us(instant)

    assert value == 1_805_016_615_123_457
    assert from_epoch_us(value) == instant
    assert from_epoch_us(value).tzinfo is UTC


@pytest.mark.django_db
def test_the_database_returns_the_same_microseconds_as_python() -> None:
    # given a session whose times carry microseconds
    session = SessionFactory(
        starts_at=at(10, 17, 0, 123456),
        ends_at=at(10, 18, 0, 999999),
        room_released_at=at(10, 18, 15, 1),
    )

    # when its busy time is read as epoch microseconds, and as whole seconds
    exact = busy_time(
        rooms=[session.room_id],
        staff=[],
        patient_id=session.patient_id,
        window=(WINDOW.start, WINDOW.end),
    )
    seconds = busy_time(
        rooms=[session.room_id],
        staff=[],
        patient_id=session.patient_id,
        window=(WINDOW.start, WINDOW.end),
        seconds=True,
    )

    # then they are exact, and whole seconds never shrink an interval
    assert exact == {
        (Busy.ROOM, session.room_id): ([us(at(10, 17, 0, 123456))], [us(at(10, 18, 15, 1))]),
        (Busy.PATIENT, session.patient_id): (
            [us(at(10, 17, 0, 123456))],
            [us(at(10, 18, 0, 999999))],
        ),
    }

    def second(instant: dt.datetime) -> int:
        return us(instant) // 1_000_000

    # starts round down to 17:00:00, ends up to 18:15:01 and 18:00:01
    assert seconds == {
        (Busy.ROOM, session.room_id): ([second(at(10, 17))], [second(at(10, 18, 15)) + 1]),
        (Busy.PATIENT, session.patient_id): ([second(at(10, 17))], [second(at(10, 18)) + 1]),
    }


@pytest.mark.django_db
def test_room_holds_overlapping_the_window_are_loaded_and_no_others() -> None:
    # given two rooms with holds before, across the start of, inside, and after the window
    clinic = ClinicFactory()
    room, other_room = (RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM) for _ in "ab")

    def hold(start: dt.datetime, end: dt.datetime, released: dt.datetime, **kw: object) -> Session:
        return SessionFactory(
            patient=PatientFactory(clinic=clinic),
            starts_at=start,
            ends_at=end,
            room_released_at=released,
            **{"room": room, **kw},
        )

    hold(at(9, 6), at(9, 7), at(9, 7, 15))  # ended long before
    hold(at(10, 6), at(10, 7, 45), at(10, 8), room=other_room)  # released at the window start
    across = hold(at(9, 9), at(10, 8, 30), at(10, 8, 45))  # started 23 h before, still held
    inside = hold(at(11, 12), at(11, 13), at(11, 13, 15))
    hold(at(11, 14), at(11, 15), at(11, 15, 15), status=SessionStatus.CANCELLED)
    hold(at(12, 8), at(12, 9), at(12, 9, 15))  # starts at the window end

    # when the rooms are loaded
    with CaptureQueriesContext(connection) as queries:
        loaded, other = room_supply(clinic, WINDOW)

    # then exactly the two overlapping live holds, with their turnover, as epoch microseconds
    assert (loaded.id, other.id) == (room.pk, other_room.pk)
    assert loaded.turnover_minutes == 15
    assert loaded.busy == EpochIntervals(
        (us(across.starts_at), us(inside.starts_at)),
        (us(at(10, 8, 45)), us(at(11, 13, 15))),
    )
    assert list(loaded.busy) == [
        Interval(at(9, 9), at(10, 8, 45)),
        Interval(at(11, 12), at(11, 13, 15)),
    ]
    assert list(other.busy) == []
    # and the hold query is bounded from below by MAX_HOLD, so its index scan is too
    holds_sql = queries.captured_queries[1]["sql"]
    assert len(queries.captured_queries) == 2  # the rooms, their holds
    lower_bound = WINDOW.start - MAX_HOLD
    assert f"starts_at >= '{lower_bound:%Y-%m-%d %H:%M:%S}" in holds_sql


@pytest.mark.django_db
def test_excluded_sessions_are_left_out_of_room_staff_and_patient_busy_time() -> None:
    clinic = ClinicFactory()
    room = RoomFactory(clinic=clinic)
    therapist = StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])
    patient = PatientFactory(clinic=clinic)
    kept = SessionFactory(patient=patient, room=room, starts_at=at(10, 17))
    moving = SessionFactory(patient=patient, room=room, starts_at=at(11, 17))
    SessionStaffFactory(session=kept, staff=therapist)
    SessionStaffFactory(session=moving, staff=therapist)

    (rooms,) = room_supply(clinic, WINDOW, exclude_sessions=[moving.pk])
    (staff,) = staff_supply(clinic, WINDOW, exclude_sessions=[moving.pk])
    busy = patient_busy(patient, WINDOW, exclude_sessions=[moving.pk])

    assert list(rooms.busy) == [Interval(at(10, 17), at(10, 18, 15))]
    assert list(staff.busy) == [Interval(at(10, 17), at(10, 18))]
    assert list(busy) == [Interval(at(10, 17), at(10, 18))]


@pytest.mark.django_db
def test_staff_holds_starting_before_the_window_that_still_run_are_loaded() -> None:
    # given a nurse watching three chairs, with holds before, across and inside the window
    clinic = ClinicFactory()
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE], max_concurrent_patients=3)

    def watched(start: dt.datetime, end: dt.datetime, *, is_active: bool = True) -> None:
        session = SessionFactory(
            patient=PatientFactory(clinic=clinic),
            room=RoomFactory(clinic=clinic, kind=RoomKind.INFUSION_CHAIR),
            starts_at=start,
            ends_at=end,
            room_released_at=end,
        )
        SessionStaffFactory(session=session, staff=nurse, role=Role.NURSE, is_active=is_active)

    watched(at(9, 8), at(10, 8))  # a whole day (MAX_HOLD), ending at the window start
    watched(at(9, 8, 30), at(10, 8, 15))  # 23:45 long, still running at the start
    watched(at(10, 9), at(10, 10))
    watched(at(10, 9, 30), at(10, 10, 30), is_active=False)  # a released hold
    watched(at(11, 16), at(11, 17))

    # when the staff are loaded for nurses
    (loaded,) = staff_supply(clinic, WINDOW, roles={Role.NURSE})

    # then the three live holds overlapping the window, sorted by start
    assert loaded.id == nurse.pk
    assert loaded.capacity == 3
    assert loaded.roles == frozenset({Role.NURSE})
    assert list(loaded.busy) == [
        Interval(at(9, 8, 30), at(10, 8, 15)),
        Interval(at(10, 9), at(10, 10)),
        Interval(at(11, 16), at(11, 17)),
    ]


@pytest.mark.django_db
def test_a_clinic_without_rooms_or_staff_of_the_kind_loads_nothing_and_does_not_fail() -> None:
    clinic = ClinicFactory()
    RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM)
    StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])
    patient = PatientFactory(clinic=clinic)

    with CaptureQueriesContext(connection) as queries:
        supply = supply_for(
            patient, WINDOW, room_kinds={RoomKind.DOSING_ROOM}, roles={Role.PRESCRIBER}
        )

    assert supply.rooms == ()
    assert supply.staff == ()
    assert supply.patient_busy == EpochIntervals((), ())
    # rooms and staff, hours and closures, the patient's sessions: no room or staff hold read
    assert len(queries.captured_queries) == 3
    assert "scheduling_sessionstaff" not in queries.captured_queries[2]["sql"]


SQLITE_SCRIPT = """
import datetime as dt
from clinic.models import Clinic, Patient, Room
from scheduling.models import Session
from scheduling.planner import Interval
from scheduling.supply import room_supply

UTC = dt.UTC
clinic = Clinic.objects.create(name="Lite", timezone="America/Los_Angeles")
room = Room.objects.create(clinic=clinic, name="Therapy", kind="therapy_room")
patient = Patient.objects.create(
    clinic=clinic, full_name="Ana", date_of_birth=dt.date(1980, 1, 1), email="ana@example.org"
)
common = dict(clinic=clinic, patient=patient, room=room, kind="integration")
Session.objects.create(
    starts_at=dt.datetime(2027, 3, 9, 9, 0, 0, 123456, tzinfo=UTC),
    ends_at=dt.datetime(2027, 3, 10, 8, 30, tzinfo=UTC),
    room_released_at=dt.datetime(2027, 3, 10, 8, 45, 0, 1, tzinfo=UTC),
    **common,
)
Session.objects.create(
    starts_at=dt.datetime(2027, 3, 9, 6, tzinfo=UTC),
    ends_at=dt.datetime(2027, 3, 9, 7, tzinfo=UTC),
    room_released_at=dt.datetime(2027, 3, 9, 7, 15, tzinfo=UTC),
    **common,
)
window = Interval(dt.datetime(2027, 3, 10, 8, tzinfo=UTC), dt.datetime(2027, 3, 12, 8, tzinfo=UTC))
(loaded,) = room_supply(clinic, window)
print(loaded.busy.starts, loaded.busy.ends)
"""


def test_the_embedded_sqlite_default_loads_the_same_epoch_microseconds(tmp_path: Path) -> None:
    # given the embedded SQLite default, migrated, with one hold running into the window
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"CLINIC_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "clinic.settings"})

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--noinput")

    # when the rooms are loaded
    printed = manage("shell", "-c", SQLITE_SCRIPT)

    # then the hold comes back exact to the microsecond, and the one before the window does not
    starts = (us(dt.datetime(2027, 3, 9, 9, 0, 0, 123456, tzinfo=UTC)),)
    ends = (us(dt.datetime(2027, 3, 10, 8, 45, 0, 1, tzinfo=UTC)),)
    assert printed.strip().splitlines()[-1] == f"{starts} {ends}"
