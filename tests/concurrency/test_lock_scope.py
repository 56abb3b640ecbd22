"""A booking or a session action locks its own rows, never its clinic's.

``SELECT ... FOR UPDATE`` over a join locks every joined row, and Patient's default ordering runs
through its clinic: one booking once held its whole clinic's row until it committed, so bookings of
different patients, rooms and therapists queued one behind another. Here a first client's
transaction stays open in the middle of its work while a second client, under a two-second lock
timeout, books, checks in, cancels or edits something else in the same clinic: it must finish.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction

from clinic.models import Patient, Role, RoomKind
from clinic.services import patient_update
from scheduling import services
from scheduling.models import Session, SessionStatus
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    RoomFactory,
    StaffMemberFactory,
    aware,
)

pytestmark = pytest.mark.django_db(transaction=True)

NINE = aware(2026, 3, 9, 9)


def _while_open(first: Callable[[], object], second: Callable[[], Any]) -> Any:
    """Run ``first`` in a thread inside a transaction kept open until ``second`` has run here,
    within a lock timeout of two seconds."""
    done, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                first()
                done.set()
                release.wait(timeout=30)
        except BaseException as error:
            failures.append(error)
            done.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert done.wait(timeout=30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            return second()
    finally:
        release.set()
        thread.join()
        assert failures == []


@pytest.fixture
def world() -> dict[str, list[Any]]:
    clinic = ClinicFactory()
    return {
        "patients": [ClearedPatientFactory(clinic=clinic) for _ in range(3)],
        "rooms": [RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM) for _ in range(3)],
        "therapists": [StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST]) for _ in range(3)],
    }


def _book(world: dict[str, list[Any]], lane: int) -> Session:
    return services.session_create(
        patient=world["patients"][lane],
        kind="integration",
        room=world["rooms"][lane],
        staff=[world["therapists"][lane]],
        starts_at=NINE,
    )


def test_two_bookings_in_one_clinic_do_not_wait_for_each_other(world) -> None:
    second = _while_open(lambda: _book(world, 0), lambda: _book(world, 1))

    assert second.status == SessionStatus.BOOKED
    assert sorted(Session.objects.values_list("patient_id", flat=True)) == sorted(
        patient.pk for patient in world["patients"][:2]
    )


def test_check_in_and_cancel_run_beside_an_open_booking(world) -> None:
    first, second = _book(world, 1), _book(world, 2)

    checked_in = _while_open(
        lambda: _book(world, 0), lambda: services.session_check_in(first, now=NINE)
    )
    cancelled = _while_open(
        lambda: _book_later(world),
        lambda: services.session_cancel(second, reason="Ill", now=NINE - dt.timedelta(days=2)),
    )

    assert (checked_in.status, cancelled.status) == (
        SessionStatus.CHECKED_IN,
        SessionStatus.CANCELLED,
    )


def _book_later(world: dict[str, list[Any]]) -> Session:
    return services.session_create(
        patient=world["patients"][0],
        kind="integration",
        room=world["rooms"][0],
        staff=[world["therapists"][0]],
        starts_at=NINE + dt.timedelta(hours=3),
    )


def test_a_patient_edit_runs_beside_another_patients_booking(world) -> None:
    other = world["patients"][1]

    edited = _while_open(
        lambda: _book(world, 0), lambda: patient_update(other, phone="+15550100123")
    )

    assert Patient.objects.get(pk=other.pk).phone == edited.phone == "+15550100123"
