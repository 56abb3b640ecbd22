"""32 clients try to book the same room, patient or therapist at overlapping times at once.

Exactly one wins each race and the rest get the conflict error; a self-join finds no overlapping
pair afterwards. The second half writes rows with no Python check at all, so only the database's
exclusion constraints stand between the writers and a double booking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError, connection

from clinic.db import is_deadlock
from clinic.errors import ResourceConflict
from clinic.models import Role, RoomKind
from scheduling import services
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    RoomFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    aware,
)
from tests.races import at_once

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 32
NINE = aware(2026, 3, 9, 9)

OVERLAPPING_PAIRS = {
    "room": """
        SELECT count(*) FROM scheduling_session a JOIN scheduling_session b
          ON a.id < b.id AND a.room_id = b.room_id
         AND tstzrange(a.starts_at, a.room_released_at)
          && tstzrange(b.starts_at, b.room_released_at)
         WHERE a.status IN ('booked','confirmed','checked_in','completed')
           AND b.status IN ('booked','confirmed','checked_in','completed')""",
    "patient": """
        SELECT count(*) FROM scheduling_session a JOIN scheduling_session b
          ON a.id < b.id AND a.patient_id = b.patient_id
         AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
         WHERE a.status IN ('booked','confirmed','checked_in','completed')
           AND b.status IN ('booked','confirmed','checked_in','completed')""",
    "staff": """
        SELECT count(*) FROM scheduling_sessionstaff a JOIN scheduling_sessionstaff b
          ON a.id < b.id AND a.staff_id = b.staff_id
         AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)
         JOIN clinic_staffmember s ON s.id = a.staff_id
         WHERE a.is_active AND b.is_active AND s.max_concurrent_patients = 1""",
}


def _overlapping_pairs() -> dict[str, int]:
    with connection.cursor() as cursor:
        found = {}
        for name, sql in OVERLAPPING_PAIRS.items():
            cursor.execute(sql)
            found[name] = cursor.fetchone()[0]
        return found


def _race(
    attempt: Callable[[int], Any], expected: tuple[type[BaseException], ...]
) -> tuple[int, list[BaseException]]:
    """Run ``attempt(i)`` in CLIENTS threads released together; count wins, collect refusals."""
    wins, raised = at_once(attempt, CLIENTS)
    assert [error for error in raised if not isinstance(error, expected)] == []
    return len(wins), raised


@pytest.fixture
def clinic():
    return ClinicFactory()


def _rooms(clinic, n):
    return [RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM) for _ in range(n)]


def _therapists(clinic, n):
    return [StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST]) for _ in range(n)]


def _patients(clinic, n):
    return [ClearedPatientFactory(clinic=clinic) for _ in range(n)]


def _book(patient, room, therapist, index):
    return services.session_create(
        patient=patient,
        kind="integration",
        room=room,
        staff=[therapist],
        starts_at=NINE + dt.timedelta(minutes=index % 30),  # every pair overlaps
    )


def test_same_room(clinic) -> None:
    room, patients, therapists = (
        _rooms(clinic, 1)[0],
        _patients(clinic, CLIENTS),
        _therapists(clinic, CLIENTS),
    )

    wins, refusals = _race(
        lambda i: _book(patients[i], room, therapists[i], i), (ResourceConflict,)
    )

    assert (wins, len(refusals)) == (1, CLIENTS - 1)
    assert {taken.resource for error in refusals for taken in error.taken} == {"room"}
    assert _overlapping_pairs() == {"room": 0, "patient": 0, "staff": 0}


def test_same_patient(clinic) -> None:
    patient, rooms, therapists = (
        _patients(clinic, 1)[0],
        _rooms(clinic, CLIENTS),
        _therapists(clinic, CLIENTS),
    )

    wins, refusals = _race(
        lambda i: _book(patient, rooms[i], therapists[i], i), (ResourceConflict,)
    )

    assert (wins, len(refusals)) == (1, CLIENTS - 1)
    assert {taken.resource for error in refusals for taken in error.taken} == {"patient"}
    assert _overlapping_pairs() == {"room": 0, "patient": 0, "staff": 0}


def test_same_therapist(clinic) -> None:
    therapist, rooms, patients = (
        _therapists(clinic, 1)[0],
        _rooms(clinic, CLIENTS),
        _patients(clinic, CLIENTS),
    )

    wins, refusals = _race(
        lambda i: _book(patients[i], rooms[i], therapist, i), (ResourceConflict,)
    )

    assert (wins, len(refusals)) == (1, CLIENTS - 1)
    assert {taken.resource for error in refusals for taken in error.taken} == {"staff"}
    assert _overlapping_pairs() == {"room": 0, "patient": 0, "staff": 0}


def test_nurse_with_capacity_three_gets_exactly_three(clinic) -> None:
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE], max_concurrent_patients=3)
    chairs = [RoomFactory(clinic=clinic, kind=RoomKind.INFUSION_CHAIR) for _ in range(CLIENTS)]
    patients = _patients(clinic, CLIENTS)

    def infuse(index: int) -> None:
        services.session_create(
            patient=patients[index],
            kind="medicine",
            route="iv",
            room=chairs[index],
            staff=[nurse],
            starts_at=NINE + dt.timedelta(minutes=index % 30),
        )

    wins, refusals = _race(infuse, (ResourceConflict,))

    assert (wins, len(refusals)) == (3, CLIENTS - 3)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM scheduling_sessionstaff WHERE staff_id = %s AND is_active",
            [nurse.pk],
        )
        assert cursor.fetchone()[0] == 3


REFUSED = (IntegrityError, OperationalError)


def test_database_alone_refuses_overlapping_rows(clinic) -> None:
    """No service, no Python check: raw inserts from 32 connections at once. PostgreSQL refuses
    a clash with an exclusion violation, or, when two rows arrive together and each check waits
    for the other, by aborting one of them as a deadlock (the services write such a booking
    again: ``scheduling.services._write_holds``)."""
    room, therapist = _rooms(clinic, 1)[0], _therapists(clinic, 1)[0]
    patients, rooms = _patients(clinic, CLIENTS), _rooms(clinic, CLIENTS)
    patient = _patients(clinic, 1)[0]

    room_wins, room_refusals = _race(
        lambda i: SessionFactory(
            patient=patients[i], room=room, starts_at=NINE + dt.timedelta(minutes=i)
        ),
        REFUSED,
    )
    patient_wins, patient_refusals = _race(
        lambda i: SessionFactory(
            patient=patient, room=rooms[i], starts_at=NINE + dt.timedelta(days=1, minutes=i)
        ),
        REFUSED,
    )
    sessions = [
        SessionFactory(patient=patients[i], room=rooms[i], starts_at=NINE + dt.timedelta(days=2))
        for i in range(CLIENTS)
    ]
    staff_wins, staff_refusals = _race(
        lambda i: SessionStaffFactory(session=sessions[i], staff=therapist), REFUSED
    )

    assert (room_wins, patient_wins, staff_wins) == (1, 1, 1)
    refusals = [*room_refusals, *patient_refusals, *staff_refusals]
    assert len(refusals) == 3 * (CLIENTS - 1)
    assert all(isinstance(e, IntegrityError) or is_deadlock(e) for e in refusals)
    assert _overlapping_pairs() == {"room": 0, "patient": 0, "staff": 0}
