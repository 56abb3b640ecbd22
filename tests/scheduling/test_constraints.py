"""The database itself refuses what must never happen, whatever code writes the rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction

from clinic.models import Role
from scheduling.models import Session, SessionStaff, SessionStatus
from tests.factories import (
    PatientFactory,
    RoomFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    aware,
)

pytestmark = pytest.mark.django_db

NINE = aware(2026, 3, 9, 9)


def _constraint_of(error: IntegrityError) -> str:
    return error.__cause__.diag.constraint_name


def test_room_cannot_hold_two_live_sessions_at_once() -> None:
    first = SessionFactory(starts_at=NINE)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        SessionFactory(room=first.room, starts_at=NINE + dt.timedelta(minutes=30))
    assert _constraint_of(caught.value) == "session_room_no_overlap"
    assert Session.objects.count() == 1


def test_room_turnover_is_part_of_the_hold() -> None:
    first = SessionFactory(starts_at=NINE)  # 09:00-10:00, released 10:15
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        SessionFactory(room=first.room, starts_at=NINE + dt.timedelta(minutes=70))
    assert _constraint_of(caught.value) == "session_room_no_overlap"
    back_to_back = SessionFactory(room=first.room, starts_at=NINE + dt.timedelta(minutes=75))
    assert back_to_back.starts_at == first.room_released_at


def test_patient_cannot_be_in_two_rooms_at_once() -> None:
    first = SessionFactory(starts_at=NINE)
    other_room = RoomFactory(clinic=first.clinic)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        SessionFactory(
            patient=first.patient, room=other_room, starts_at=NINE + dt.timedelta(minutes=59)
        )
    assert _constraint_of(caught.value) == "session_patient_no_overlap"
    touching = SessionFactory(
        patient=first.patient, room=other_room, starts_at=NINE + dt.timedelta(hours=1)
    )
    assert touching.starts_at == first.ends_at


@pytest.mark.parametrize(
    "status", [SessionStatus.CANCELLED, SessionStatus.LATE_CANCELLED, SessionStatus.NO_SHOW]
)
def test_cancelled_and_no_show_sessions_free_their_slot(status: str) -> None:
    first = SessionFactory(starts_at=NINE)
    Session.objects.filter(pk=first.pk).update(status=status)
    again = SessionFactory(room=first.room, patient=first.patient, starts_at=NINE)
    assert again.status == SessionStatus.BOOKED


def test_single_capacity_staff_cannot_hold_two_overlapping_sessions() -> None:
    therapist = StaffMemberFactory(roles=[Role.THERAPIST])
    SessionStaffFactory(
        staff=therapist, session=SessionFactory(patient__clinic=therapist.clinic, starts_at=NINE)
    )
    other = SessionFactory(
        patient__clinic=therapist.clinic, starts_at=NINE + dt.timedelta(minutes=30)
    )
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        SessionStaffFactory(staff=therapist, session=other)
    assert _constraint_of(caught.value) == "staffhold_single_capacity_no_overlap"


def test_shared_capacity_staff_holds_may_overlap_in_the_database() -> None:
    """A nurse watching three chairs: the capacity count runs under a lock in the service."""
    nurse = StaffMemberFactory(roles=[Role.NURSE], max_concurrent_patients=3)
    for _ in range(2):
        SessionStaffFactory(
            staff=nurse, session=SessionFactory(patient__clinic=nurse.clinic, starts_at=NINE)
        )
    assert SessionStaff.objects.filter(staff=nurse, is_exclusive=False).count() == 2


def test_inactive_staff_holds_free_the_staff_member() -> None:
    therapist = StaffMemberFactory()
    hold = SessionStaffFactory(
        staff=therapist, session=SessionFactory(patient__clinic=therapist.clinic, starts_at=NINE)
    )
    SessionStaff.objects.filter(pk=hold.pk).update(is_active=False)
    again = SessionStaffFactory(
        staff=therapist, session=SessionFactory(patient__clinic=therapist.clinic, starts_at=NINE)
    )
    assert again.is_active is True


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"ends_at": NINE}, "session_starts_before_ends"),
        ({"room_released_at": NINE + dt.timedelta(minutes=30)}, "session_room_released_after_end"),
        ({"kind": "massage"}, "session_kind_valid"),
        ({"route": "im"}, "session_route_only_for_medicine"),
        (
            {
                "ends_at": NINE + dt.timedelta(hours=20),
                "room_released_at": NINE + dt.timedelta(hours=24, minutes=1),
            },
            "session_room_held_at_most_a_day",
        ),
    ],
)
def test_session_check_constraints(changes: dict[str, object], constraint: str) -> None:
    session = SessionFactory(starts_at=NINE)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Session.objects.filter(pk=session.pk).update(**changes)
    assert _constraint_of(caught.value) == constraint


def test_a_room_may_be_held_for_exactly_a_day_and_no_longer() -> None:
    session = SessionFactory(starts_at=NINE)
    day = NINE + dt.timedelta(days=1)
    Session.objects.filter(pk=session.pk).update(ends_at=day, room_released_at=day)
    assert Session.objects.get(pk=session.pk).room_released_at == day


def test_a_staff_hold_lasts_at_most_a_day() -> None:
    hold = SessionStaffFactory(session=SessionFactory(starts_at=NINE))
    SessionStaff.objects.filter(pk=hold.pk).update(ends_at=hold.starts_at + dt.timedelta(days=1))
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        SessionStaff.objects.filter(pk=hold.pk).update(
            ends_at=hold.starts_at + dt.timedelta(days=1, seconds=1)
        )
    assert _constraint_of(caught.value) == "staffhold_at_most_a_day"


def test_unknown_status_is_refused_by_the_database() -> None:
    session = SessionFactory(starts_at=NINE)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Session.objects.filter(pk=session.pk).update(status="teleported")
    assert _constraint_of(caught.value) == "session_status_valid"


def test_exclusion_constraints_exist_with_btree_gist() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE contype = 'x' ORDER BY conname")
        names = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'")
        (extensions,) = cursor.fetchone()
    assert names == [
        "session_patient_no_overlap",
        "session_room_no_overlap",
        "staffhold_single_capacity_no_overlap",
    ]
    assert extensions == 1


def test_patient_preferred_channel_needs_its_contact() -> None:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        PatientFactory(preferred_channel="sms", phone="")
    assert _constraint_of(caught.value) == "patient_sms_needs_phone"
