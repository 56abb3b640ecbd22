"""``GET /api/v1/availability/`` through the API, with real tokens: exact starts, refusals, the
audit row, and a query count that does not grow with the clinic's history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import AuditEvent, OpeningHours, Role
from scheduling.models import Session
from tests.api.conftest import World, book, client_for
from tests.factories import (
    ClearedPatientFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    aware,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/availability/"
TUESDAY = "2026-03-03"


@pytest.fixture
def tuesday_morning(world: World) -> World:
    """The clinic open on Tuesdays 09:00-13:00 only (staff work around the clock)."""
    OpeningHours.objects.filter(clinic=world.clinic).delete()
    OpeningHours.objects.create(clinic=world.clinic, weekday=1, start=dt.time(9), end=dt.time(13))
    return world


def tuesday(*times: str) -> list[str]:
    return [f"{TUESDAY}T{time}:00-08:00" for time in times]


def query(**params: Any) -> dict[str, Any]:
    return {"kind": "integration", "date_from": TUESDAY, "date_to": TUESDAY, **params}


def test_free_starts_around_a_booked_session(tuesday_morning: World, as_user, frozen) -> None:
    world = tuesday_morning
    desk = as_user(world.front_desk)
    # given the therapist booked 10:00-11:00 in the only therapy room (15 minutes' turnover)
    booked = book(
        desk,
        world.patient_b,
        "integration",
        aware(2026, 3, 3, 10),
        world.therapy_room,
        [world.therapist],
    )
    assert booked.status_code == 201

    # when the front desk asks for the therapist's free hours on Tuesday
    answer = desk.get(URL, query(staff=world.therapist.pk))

    # then the room's turnover and the therapist's hour are both respected
    assert answer.status_code == 200
    assert answer.json() == {
        "clinic": world.clinic.pk,
        "kind": "integration",
        "route": "",
        "duration_minutes": 60,
        "date_from": TUESDAY,
        "date_to": TUESDAY,
        "starts": tuesday("11:15", "11:30", "11:45", "12:00"),
    }
    assert AuditEvent.objects.filter(object_type="availability").count() == 0


def test_a_patients_availability_is_audited(tuesday_morning: World, as_user, frozen) -> None:
    world = tuesday_morning
    desk = as_user(world.front_desk)
    # given patient A booked 09:00-10:00 for integration in the therapy room
    book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 3, 9),
        world.therapy_room,
        [world.therapist],
    )
    before = AuditEvent.objects.count()

    # when the front desk asks for a medicine session for patient A on Tuesday
    answer = desk.get(URL, query(kind="medicine", patient=world.patient_a.pk))

    # then a 120-minute medicine session fits from 10:00 (patient free) until 11:00 (closing)
    assert answer.status_code == 200
    assert answer.json()["route"] == "im"
    assert answer.json()["duration_minutes"] == 120
    assert answer.json()["starts"] == tuesday("10:00", "10:15", "10:30", "10:45", "11:00")
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None
    assert (event.action, event.object_type, event.object_ids, event.patient_ids) == (
        "read",
        "availability",
        [world.patient_a.pk],
        [world.patient_a.pk],
    )
    assert event.actor_username == "front_desk"


def test_an_iv_route_books_a_chair_with_the_nurse(tuesday_morning: World, as_user, frozen) -> None:
    world = tuesday_morning
    answer = as_user(world.front_desk).get(
        URL, query(kind="medicine", route="iv", staff=world.nurse.pk, room=world.chair.pk)
    )

    assert answer.status_code == 200
    assert answer.json()["route"] == "iv"
    assert answer.json()["duration_minutes"] == 100
    assert answer.json()["starts"] == tuesday(
        "09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00", "11:15"
    )


def test_past_starts_are_not_offered(tuesday_morning: World, as_user, time_machine) -> None:
    world = tuesday_morning
    time_machine.move_to(aware(2026, 3, 3, 11, 40), tick=False)

    answer = as_user(world.front_desk).get(URL, query())

    assert answer.json()["starts"] == tuesday("11:45", "12:00")


def test_a_therapist_asks_for_their_own_hours(tuesday_morning: World, as_user, frozen) -> None:
    world = tuesday_morning
    answer = as_user(world.therapist).get(URL, query(staff=world.therapist.pk))

    assert answer.status_code == 200
    assert answer.json()["starts"] == tuesday(
        *[f"{hour:02d}:{minute:02d}" for hour in (9, 10, 11) for minute in (0, 15, 30, 45)],
        "12:00",
    )


ERRORS = [
    ({"kind": None}, {"kind": ["This field is required."]}),
    ({"kind": "massage"}, {"kind": ['"massage" is not a valid choice.']}),
    ({"date_from": "03/03/2026"}, {"date_from": None}),
    ({"date_to": "2026-02-30"}, {"date_to": None}),
    ({"date_from": "2026-03-04"}, {"date_to": ["Must be on or after date_from."]}),
    (
        {"date_to": "2026-04-03"},
        {"date_to": ["At most 31 days from date_from: absurd ranges refused."]},
    ),
    ({"patient": "abc"}, {"patient": ["A valid integer is required."]}),
    ({"staff": "1.5"}, {"staff": ["A valid integer is required."]}),
    ({"room": "0"}, {"room": ["Ensure this value is greater than or equal to 1."]}),
    ({"clinic": "x"}, {"clinic": ["A valid integer is required."]}),
    ({"route": "iv"}, {"route": ["Only a medicine session has a route."]}),
    ({"kind": "medicine", "route": "oral"}, {"route": ['"oral" is not a valid choice.']}),
    ({"colour": "blue"}, {"colour": ["Unknown field."]}),
]


@pytest.mark.parametrize(("change", "errors"), ERRORS)
def test_bad_input_is_400_problem_json(world: World, as_user, frozen, change, errors) -> None:
    params = {key: value for key, value in {**query(), **change}.items() if value is not None}
    before = AuditEvent.objects.count()

    answer = as_user(world.front_desk).get(URL, params)

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == 400
    assert sorted(body["errors"]) == sorted(errors)
    for field, messages in errors.items():
        if messages is not None:
            assert body["errors"][field] == messages
    assert AuditEvent.objects.count() == before


def test_a_31_day_range_is_answered(world: World, as_user, frozen) -> None:
    answer = as_user(world.front_desk).get(
        URL, query(date_to="2026-04-02", staff=world.therapist.pk)
    )

    assert answer.status_code == 200
    assert answer.json()["date_to"] == "2026-04-02"


def test_staff_without_the_roles_or_a_room_of_another_kind_is_400(
    world: World, as_user, frozen
) -> None:
    desk = as_user(world.front_desk)

    wrong_staff = desk.get(URL, query(kind="follow_up", staff=world.therapist.pk))
    wrong_room = desk.get(URL, query(kind="medicine", room=world.therapy_room.pk))

    assert wrong_staff.status_code == 400
    assert wrong_staff.json()["errors"] == {
        "staff": ["Therapist has none of the roles a follow_up session needs (prescriber)."]
    }
    assert wrong_room.status_code == 400
    assert wrong_room.json()["errors"] == {
        "room": [
            "A medicine session needs a room of kind dosing_room; Therapy 1 is a therapy_room."
        ]
    }


def test_a_patients_token_is_refused(world: World, as_user, frozen) -> None:
    answer = as_user(world.patient_a).get(URL, query(patient=world.patient_a.pk))

    assert answer.status_code == 403
    assert answer["Content-Type"] == "application/problem+json"
    assert AuditEvent.objects.filter(object_type="availability").count() == 0


def test_no_token_is_401(world: World, as_user, frozen) -> None:
    answer = client_for(None).get(URL, query())

    assert answer.status_code == 401


@pytest.mark.parametrize("name", ["patient", "staff", "room", "clinic"])
def test_objects_of_another_clinic_are_404(world: World, as_user, frozen, name) -> None:
    other = {
        "patient": world.other_patient.pk,
        "staff": world.other_therapist.pk,
        "room": world.other_room.pk,
        "clinic": world.other_clinic.pk,
    }

    answer = as_user(world.front_desk).get(URL, query(**{name: other[name]}))

    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/problem+json"
    assert AuditEvent.objects.filter(object_type="availability").count() == 0


def test_a_therapist_reaches_only_their_caseloads_patients(world: World, as_user, frozen) -> None:
    answer = as_user(world.therapist).get(URL, query(patient=world.patient_a.pk))

    assert answer.status_code == 404


def test_a_superuser_names_the_clinic(world: World, as_user, frozen) -> None:
    root = as_user(world.superuser)

    unnamed = root.get(URL, query())
    named = root.get(URL, query(clinic=world.other_clinic.pk, staff=world.other_therapist.pk))

    assert unnamed.status_code == 400
    assert unnamed.json()["errors"] == {"clinic": ["Name the clinic."]}
    assert named.status_code == 200
    assert named.json()["clinic"] == world.other_clinic.pk


def _history(world: World, first_day: int, last_day: int) -> None:
    """One hour-long session a day with the therapist in the therapy room, 10:00 on each of the
    days ``first_day`` to ``last_day - 1`` before Monday 2 March 2026."""
    for n in range(first_day, last_day):
        start = aware(2026, 3, 2, 10) - dt.timedelta(days=n)
        held = SessionFactory(
            patient=ClearedPatientFactory(clinic=world.clinic),
            room=world.therapy_room,
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            room_released_at=start + dt.timedelta(hours=1, minutes=15),
        )
        SessionStaffFactory(session=held, staff=world.therapist)


def test_the_query_count_does_not_grow_with_the_history(
    tuesday_morning: World, as_user, frozen, django_assert_num_queries
) -> None:
    world = tuesday_morning
    desk = as_user(world.front_desk)
    book(
        desk,
        world.patient_b,
        "integration",
        aware(2026, 3, 3, 10),
        world.therapy_room,
        [world.therapist],
    )
    params = query(patient=world.patient_a.pk, staff=world.therapist.pk)
    # the caller (user, roles), the clinic, the patient, the clinician (and roles), five reads
    # of the clinic's time (scheduling.availability) and the audit row
    queries = 12
    _history(world, 0, 2)
    with django_assert_num_queries(queries):
        small = desk.get(URL, params)
    _history(world, 2, 60)
    with django_assert_num_queries(queries):
        large = desk.get(URL, params)

    assert Session.objects.count() == 61
    assert small.status_code == large.status_code == 200
    assert (
        small.json()["starts"]
        == large.json()["starts"]
        == tuesday("11:15", "11:30", "11:45", "12:00")
    )


def test_a_new_clinician_with_the_role_widens_the_choice(
    tuesday_morning: World, as_user, frozen
) -> None:
    world = tuesday_morning
    desk = as_user(world.front_desk)
    book(
        desk,
        world.patient_b,
        "follow_up",
        aware(2026, 3, 3, 9),
        world.therapy_room,
        [world.prescriber],
    )
    second = StaffMemberFactory(
        clinic=world.clinic, full_name="Second Prescriber", roles=[Role.PRESCRIBER]
    )

    answer = desk.get(URL, query(kind="follow_up", staff=second.pk))

    # then the 30-minute follow-up fits once the room's 09:30-09:45 turnover is over
    assert answer.json()["starts"][:2] == tuesday("09:45", "10:00")
