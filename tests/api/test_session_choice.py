"""POST /sessions/ with the room or staff left out (API.md: "room and staff, when left out, are
chosen"): the service picks free ones of the session's room kind and roles in the patient's
clinic, keeps those the front desk named, and answers 409 naming what is taken when nothing is
free."""

from __future__ import annotations

import pytest

from clinic.models import Role, RoomKind
from scheduling.models import Session
from tests.api.conftest import iso
from tests.factories import RoomFactory, StaffMemberFactory, WorkingHoursFactory, aware

pytestmark = pytest.mark.django_db

NINE = aware(2026, 3, 9, 9)


def _post(client, body):
    return client.post("/api/v1/sessions/", body, format="json")


def _holds(body):
    return [(hold["staff"], hold["role"]) for hold in body["staff_holds"]]


def _take_therapy_room_and_therapist(desk, world) -> None:
    """Patient B holds Therapy 1 and the clinic's therapist at nine."""
    taken = _post(
        desk,
        {
            "patient": world.patient_b.pk,
            "kind": "integration",
            "starts_at": iso(NINE),
            "room": world.therapy_room.pk,
            "staff": [world.therapist.pk],
        },
    )
    assert taken.status_code == 201


def test_room_and_therapist_left_out_are_chosen(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)

    answer = _post(
        desk, {"patient": world.patient_a.pk, "kind": "integration", "starts_at": iso(NINE)}
    )

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["room"], body["room_name"]) == (world.therapy_room.pk, "Therapy 1")
    assert _holds(body) == [(world.therapist.pk, Role.THERAPIST)]
    assert body["ends_at"] == iso(aware(2026, 3, 9, 10))


def test_a_named_therapist_is_kept_and_the_nurse_is_chosen(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)

    answer = _post(
        desk,
        {
            "patient": world.patient_a.pk,
            "kind": "medicine",
            "route": "im",
            "starts_at": iso(NINE),
            "staff": [world.therapist.pk],
        },
    )

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["room"] == world.dosing_room.pk
    assert sorted(_holds(body)) == sorted(
        [(world.therapist.pk, Role.THERAPIST), (world.nurse.pk, Role.NURSE)]
    )


def test_a_second_room_and_therapist_are_chosen_when_the_first_are_taken(
    world, as_user, frozen
) -> None:
    desk = as_user(world.front_desk)
    second_room = RoomFactory(clinic=world.clinic, name="Therapy 2", kind=RoomKind.THERAPY_ROOM)
    second_therapist = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST])
    for weekday in range(7):
        WorkingHoursFactory(staff=second_therapist, weekday=weekday)
    _take_therapy_room_and_therapist(desk, world)

    chosen = _post(
        desk,
        {
            "patient": world.patient_a.pk,
            "kind": "integration",
            "starts_at": iso(NINE),
            "room": None,
        },
    )

    assert chosen.status_code == 201, chosen.json()
    assert chosen.json()["room"] == second_room.pk
    assert _holds(chosen.json()) == [(second_therapist.pk, Role.THERAPIST)]


def test_nothing_free_is_409_and_writes_nothing(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    _take_therapy_room_and_therapist(desk, world)

    refused = _post(
        desk, {"patient": world.patient_a.pk, "kind": "integration", "starts_at": iso(NINE)}
    )

    assert refused.status_code == 409
    assert refused["Content-Type"] == "application/problem+json"
    assert [(v["rule"], v["message"]) for v in refused.json()["violations"]] == [
        (
            "room_taken",
            "No therapy room is free during 2026-03-09 09:00-10:00 (with cleaning time).",
        ),
        (
            "staff_taken",
            "No therapist is free during 2026-03-09 09:00-10:00: all already care for as many "
            "patients as allowed.",
        ),
    ]
    assert Session.objects.filter(patient=world.patient_a).count() == 0
