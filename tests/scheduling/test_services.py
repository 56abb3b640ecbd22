"""Booking and cancelling through the services: a conflict names what is taken."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clinic.errors import IllegalTransition, InvalidInput, ResourceConflict, RuleViolation
from clinic.models import Role, RoomKind
from scheduling import services
from scheduling.models import Session, SessionStaff, SessionStatus
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    RoomFactory,
    StaffMemberFactory,
    aware,
)

pytestmark = pytest.mark.django_db

NINE = aware(2026, 3, 9, 9)


@pytest.fixture
def clinic():
    return ClinicFactory()


@pytest.fixture
def therapy_room(clinic):
    return RoomFactory(clinic=clinic, name="Therapy room 1", kind=RoomKind.THERAPY_ROOM)


@pytest.fixture
def therapist(clinic):
    return StaffMemberFactory(clinic=clinic, full_name="Jordan Lee", roles=[Role.THERAPIST])


def _integration(patient, room, staff, starts_at=NINE, **extra):
    return services.session_create(
        patient=patient, kind="integration", starts_at=starts_at, room=room, staff=staff, **extra
    )


def test_create_books_room_patient_and_staff_with_default_length(
    clinic, therapy_room, therapist
) -> None:
    patient = ClearedPatientFactory(clinic=clinic)

    session = _integration(patient, therapy_room, [therapist])

    assert (session.starts_at, session.ends_at) == (NINE, NINE + dt.timedelta(minutes=60))
    assert session.room_released_at == NINE + dt.timedelta(minutes=75)
    assert session.status == SessionStatus.BOOKED
    assert list(
        session.staff_holds.values_list("staff_id", "role", "starts_at", "ends_at", "is_exclusive")
    ) == [(therapist.pk, "therapist", NINE, NINE + dt.timedelta(minutes=60), True)]


def test_a_booking_with_its_room_and_therapist_chosen_reads_only_their_time(
    clinic, therapy_room, therapist
) -> None:
    # given a clinic with other rooms and therapists, each busy at nine
    for _ in range(3):
        other_room = RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM)
        other_therapist = StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])
        _integration(ClearedPatientFactory(clinic=clinic), other_room, [other_therapist])
    patient = ClearedPatientFactory(clinic=clinic)

    # when the front desk books the chosen room and therapist at nine
    with CaptureQueriesContext(connection) as queries:
        session = _integration(patient, therapy_room, [therapist])

    # then only their busy time (and the patient's) was read
    (busy_sql,) = [q["sql"] for q in queries.captured_queries if "array_agg" in q["sql"]]
    assert f"room_id IN ({therapy_room.pk})" in busy_sql
    assert f"staff_id IN ({therapist.pk})" in busy_sql
    assert f"patient_id = {patient.pk}" in busy_sql
    assert (session.room_id, list(session.staff_holds.values_list("staff_id", flat=True))) == (
        therapy_room.pk,
        [therapist.pk],
    )


def test_medicine_session_holds_nurse_only_for_her_minutes(clinic) -> None:
    dosing = RoomFactory(clinic=clinic, kind=RoomKind.DOSING_ROOM)
    therapist = StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE], max_concurrent_patients=3)

    session = services.session_create(
        patient=ClearedPatientFactory(clinic=clinic),
        kind="medicine",
        starts_at=NINE,
        room=dosing,
        staff=[nurse, therapist],
    )

    holds = {
        hold.role: (hold.starts_at, hold.ends_at, hold.is_exclusive)
        for hold in session.staff_holds.all()
    }
    assert holds == {
        "therapist": (NINE, NINE + dt.timedelta(minutes=90), True),
        "nurse": (NINE, NINE + dt.timedelta(minutes=30), False),
    }
    assert session.route == "im"
    assert session.ends_at == NINE + dt.timedelta(minutes=120)


def test_room_conflict_names_the_room_and_writes_nothing(clinic, therapy_room, therapist) -> None:
    first = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])
    other_therapist = StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])

    with pytest.raises(ResourceConflict) as caught:
        _integration(
            ClearedPatientFactory(clinic=clinic),
            therapy_room,
            [other_therapist],
            NINE + dt.timedelta(minutes=70),
        )

    assert [(t.resource, t.id, t.sessions) for t in caught.value.taken] == [
        ("room", therapy_room.pk, (first.pk,))
    ]
    assert caught.value.taken[0].message == (
        "Therapy room 1 is held from 2026-03-09 09:00 to 2026-03-09 10:15 "
        f"(session {first.pk}, turnover included)."
    )
    assert Session.objects.count() == 1
    assert SessionStaff.objects.count() == 1


def test_conflicts_on_patient_and_therapist_are_all_named(clinic, therapy_room, therapist) -> None:
    patient = ClearedPatientFactory(clinic=clinic, full_name="Avery Nguyen")
    first = _integration(patient, therapy_room, [therapist])
    room_2 = RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM)

    with pytest.raises(ResourceConflict) as caught:
        _integration(patient, room_2, [therapist], NINE + dt.timedelta(minutes=30))

    assert [(t.resource, t.id) for t in caught.value.taken] == [
        ("patient", patient.pk),
        ("staff", therapist.pk),
    ]
    assert caught.value.taken[1].message == (
        "Jordan Lee is with another patient between 2026-03-09 09:30 and 2026-03-09 10:30."
    )
    assert caught.value.problem()["status"] == 409
    assert caught.value.taken[0].sessions == (first.pk,)


def test_nurse_takes_three_infusions_at_once_and_not_a_fourth(clinic) -> None:
    nurse = StaffMemberFactory(
        clinic=clinic, full_name="Nia Okafor, RN", roles=[Role.NURSE], max_concurrent_patients=3
    )
    chairs = [RoomFactory(clinic=clinic, kind=RoomKind.INFUSION_CHAIR) for _ in range(4)]
    for index in range(3):
        services.session_create(
            patient=ClearedPatientFactory(clinic=clinic),
            kind="medicine",
            route="iv",
            starts_at=NINE + dt.timedelta(minutes=10 * index),
            room=chairs[index],
            staff=[nurse],
        )

    with pytest.raises(RuleViolation) as wrong_room:  # an IM dose needs a dosing room, not a chair
        services.session_create(
            patient=ClearedPatientFactory(clinic=clinic),
            kind="medicine",
            starts_at=NINE,
            room=chairs[3],
            staff=[nurse],
        )
    with pytest.raises(ResourceConflict) as caught:
        services.session_create(
            patient=ClearedPatientFactory(clinic=clinic),
            kind="medicine",
            route="iv",
            starts_at=NINE + dt.timedelta(minutes=99),
            room=chairs[3],
            staff=[nurse],
        )

    assert wrong_room.value.violations[0]["rule"] == "room_kind"
    assert [(t.resource, t.id) for t in caught.value.taken] == [("staff", nurse.pk)]
    assert caught.value.taken[0].message == (
        "Nia Okafor, RN already has 3 patients between 2026-03-09 10:39 and 2026-03-09 12:19."
    )
    assert SessionStaff.objects.filter(staff=nurse).count() == 3
    fourth = services.session_create(
        patient=ClearedPatientFactory(clinic=clinic),
        kind="medicine",
        route="iv",
        starts_at=NINE + dt.timedelta(minutes=100),
        room=chairs[3],
        staff=[nurse],
    )
    assert fourth.staff_holds.get().ends_at == NINE + dt.timedelta(minutes=200)


def test_nurse_is_free_again_after_her_minutes(clinic) -> None:
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE], max_concurrent_patients=1)
    rooms = [RoomFactory(clinic=clinic, kind=RoomKind.DOSING_ROOM) for _ in range(2)]
    therapists = [StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST]) for _ in range(2)]
    services.session_create(
        patient=ClearedPatientFactory(clinic=clinic),
        kind="medicine",
        starts_at=NINE,
        room=rooms[0],
        staff=[nurse, therapists[0]],
    )

    second = services.session_create(
        patient=ClearedPatientFactory(clinic=clinic),
        kind="medicine",
        starts_at=NINE + dt.timedelta(minutes=30),
        room=rooms[1],
        staff=[nurse, therapists[1]],
    )

    assert second.staff_holds.get(role="nurse").starts_at == NINE + dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field"),
    [
        (dt.datetime(2026, 3, 9, 9), None, "starts_at"),  # noqa: DTZ001 - naive on purpose
        (NINE, NINE, "ends_at"),
        (NINE, NINE - dt.timedelta(minutes=1), "ends_at"),
        (NINE, NINE + dt.timedelta(hours=12, minutes=1), "ends_at"),
    ],
)
def test_impossible_times_are_invalid_input(
    clinic, therapy_room, therapist, starts_at, ends_at, field
) -> None:
    with pytest.raises(InvalidInput) as caught:
        _integration(
            ClearedPatientFactory(clinic=clinic),
            therapy_room,
            [therapist],
            starts_at,
            ends_at=ends_at,
        )
    assert list(caught.value.errors) == [field]
    assert Session.objects.count() == 0


def test_room_of_another_clinic_is_refused(clinic, therapist) -> None:
    elsewhere = RoomFactory(kind=RoomKind.THERAPY_ROOM)
    with pytest.raises(InvalidInput) as caught:
        _integration(ClearedPatientFactory(clinic=clinic), elsewhere, [therapist])
    assert list(caught.value.errors) == ["room"]


def test_staff_without_the_needed_role_is_refused(clinic, therapy_room) -> None:
    desk = StaffMemberFactory(clinic=clinic, full_name="Fran Desk", roles=[Role.FRONT_DESK])
    with pytest.raises(RuleViolation) as caught:
        _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [desk])
    assert [v["message"] for v in caught.value.violations] == [
        "Fran Desk has none of the roles this integration session still needs.",
        "This integration session needs a therapist.",
    ]
    assert Session.objects.count() == 0


def test_cancel_early_is_cancelled_and_frees_every_hold(clinic, therapy_room, therapist) -> None:
    session = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])

    cancelled = services.session_cancel(
        session, reason="Feeling unwell", now=NINE - dt.timedelta(hours=25)
    )

    assert (cancelled.status, cancelled.cancel_reason, cancelled.revision) == (
        "cancelled",
        "Feeling unwell",
        2,
    )
    assert list(SessionStaff.objects.values_list("is_active", flat=True)) == [False]
    again = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])
    assert again.status == "booked"


def test_cancel_inside_the_window_is_late(clinic, therapy_room, therapist) -> None:
    session = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])

    cancelled = services.session_cancel(
        session, reason="Car trouble", now=NINE - dt.timedelta(hours=23, minutes=59)
    )

    assert cancelled.status == SessionStatus.LATE_CANCELLED
    assert cancelled.status_changed_at == NINE - dt.timedelta(hours=23, minutes=59)


def test_cancelling_twice_is_an_illegal_transition(clinic, therapy_room, therapist) -> None:
    session = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])
    services.session_cancel(session, reason="x", now=NINE - dt.timedelta(days=3))

    with pytest.raises(IllegalTransition) as caught:
        services.session_cancel(session, reason="again", now=NINE - dt.timedelta(days=2))

    assert (
        caught.value.violations[0]["message"]
        == f"Session {session.pk} is cancelled; it cannot be cancelled."
    )
    assert Session.objects.get(pk=session.pk).cancel_reason == "x"


def test_capacity_lowered_to_one_refused_while_patients_overlap(clinic) -> None:
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE], max_concurrent_patients=2)
    for _ in range(2):
        services.session_create(
            patient=ClearedPatientFactory(clinic=clinic),
            kind="medicine",
            starts_at=NINE,
            room=RoomFactory(clinic=clinic, kind=RoomKind.DOSING_ROOM),
            staff=[nurse, StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])],
        )

    with pytest.raises(RuleViolation):
        services.staff_capacity_set(nurse, 1)
    nurse.refresh_from_db()
    assert nurse.max_concurrent_patients == 2
    assert set(SessionStaff.objects.filter(staff=nurse).values_list("is_exclusive", flat=True)) == {
        False
    }

    services.staff_capacity_set(nurse, 4)
    nurse.refresh_from_db()
    assert nurse.max_concurrent_patients == 4


def test_escort_recorded_then_confirmed(clinic) -> None:
    dosing = RoomFactory(clinic=clinic, kind=RoomKind.DOSING_ROOM)
    session = services.session_create(
        patient=ClearedPatientFactory(clinic=clinic),
        kind="medicine",
        starts_at=NINE,
        room=dosing,
        staff=[
            StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST]),
            StaffMemberFactory(clinic=clinic, roles=[Role.NURSE]),
        ],
    )
    day_before = NINE - dt.timedelta(days=1)

    services.session_escort_set(session, name="Robin", phone="+14155550199", is_confirmed=False)
    escort = services.session_escort_set(
        session, name="Robin", phone="+14155550199", is_confirmed=True, now=day_before
    )

    assert (escort.is_confirmed, escort.confirmed_at) == (True, day_before)
    assert Session.objects.get(pk=session.pk).revision == 3


def test_escort_only_for_medicine_sessions(clinic, therapy_room, therapist) -> None:
    session = _integration(ClearedPatientFactory(clinic=clinic), therapy_room, [therapist])
    with pytest.raises(RuleViolation) as caught:
        services.session_escort_set(session, name="Robin", phone="+1415", is_confirmed=True)
    assert caught.value.violations[0]["rule"] == "escort_for_medicine_only"
