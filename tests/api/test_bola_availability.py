"""Broken object-level authorization on ``GET /availability/``: a front desk of the other clinic
naming this clinic's staff, room, patient or the clinic itself gets 404 (their existence is
private), and no audit row names the patient. A patient's token gets 403 (no id in the path)."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import AuditEvent
from tests.api.conftest import World

pytestmark = pytest.mark.django_db

URL = "/api/v1/availability/"


def _query(**params: Any) -> dict[str, Any]:
    return {"kind": "integration", "date_from": "2026-03-03", "date_to": "2026-03-03", **params}


def _this_clinics_ids(world: World) -> dict[str, int]:
    return {
        "staff": world.therapist.pk,
        "room": world.therapy_room.pk,
        "patient": world.patient_a.pk,
        "clinic": world.clinic.pk,
    }


@pytest.mark.parametrize("name", ["staff", "room", "patient", "clinic"])
def test_the_other_clinics_front_desk_gets_404(world: World, as_user, frozen, name) -> None:
    target = _this_clinics_ids(world)[name]

    answer = as_user(world.other_front_desk).get(URL, _query(**{name: target}))

    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["detail"] == "Not found."
    assert not AuditEvent.objects.filter(object_type="availability").exists()


@pytest.mark.parametrize("name", ["staff", "room", "patient"])
def test_the_same_ids_answer_inside_their_clinic(world: World, as_user, frozen, name) -> None:
    target = _this_clinics_ids(world)[name]

    answer = as_user(world.front_desk).get(URL, _query(**{name: target}))

    assert answer.status_code == 200
    assert answer.json()["clinic"] == world.clinic.pk


def test_the_other_clinics_therapist_gets_404_for_this_clinics_patient(
    world: World, as_user, frozen
) -> None:
    answer = as_user(world.other_therapist).get(URL, _query(patient=world.patient_a.pk))

    assert answer.status_code == 404
    assert not AuditEvent.objects.filter(object_type="availability").exists()


@pytest.mark.parametrize("who", ["patient_a", "other_patient"])
def test_a_patients_token_gets_403_whatever_it_names(world: World, as_user, frozen, who) -> None:
    answer = as_user(getattr(world, who)).get(URL, _query(patient=world.patient_a.pk))

    assert answer.status_code == 403
    assert answer["Content-Type"] == "application/problem+json"
    assert not AuditEvent.objects.filter(object_type="availability").exists()
