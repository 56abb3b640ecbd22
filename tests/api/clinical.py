"""Steps of a medicine session through the API, shared by the clinical API tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework_simplejwt.tokens import AccessToken

from clinic.models import Patient, Room, StaffMember
from tests.api.conftest import World, book, iso

ALL_CRITERIA = {
    "is_alert_and_oriented": True,
    "are_vital_signs_stable": True,
    "is_walking_steadily": True,
    "is_nausea_controlled": True,
    "is_dissociation_resolved": True,
}


def post(client: Any, path: str, body: dict[str, Any] | None = None, **headers: Any) -> Any:
    return client.post(path, body or {}, format="json", **headers)


def book_medicine(
    world: World,
    as_user: Any,
    starts_at: dt.datetime,
    patient: Patient | None = None,
    room: Room | None = None,
    therapist: StaffMember | None = None,
    **extra: Any,
) -> int:
    answer = book(
        as_user(world.front_desk),
        patient or world.patient_a,
        "medicine",
        starts_at,
        room or world.dosing_room,
        [therapist or world.therapist, world.nurse],
        **extra,
    )
    assert answer.status_code == 201, answer.json()
    return int(answer.json()["id"])


def book_integration(
    world: World, as_user: Any, starts_at: dt.datetime, patient: Patient | None = None, **extra: Any
) -> int:
    answer = book(
        as_user(world.front_desk),
        patient or world.patient_a,
        "integration",
        starts_at,
        world.therapy_room,
        [world.therapist],
        **extra,
    )
    assert answer.status_code == 201, answer.json()
    return int(answer.json()["id"])


def escort(world: World, as_user: Any, session_id: int, confirmed: bool = True) -> None:
    answer = post(
        as_user(world.front_desk),
        f"/api/v1/sessions/{session_id}/escort/",
        {"name": "Robin Nguyen", "phone": "+14155550199", "confirmed": confirmed},
    )
    assert answer.status_code == 200, answer.json()


def check_in(world: World, as_user: Any, session_id: int) -> Any:
    return post(as_user(world.nurse), f"/api/v1/sessions/{session_id}/check-in/")


def vitals(phase: str, at: dt.datetime, **readings: int) -> dict[str, Any]:
    return {
        "phase": phase,
        "measured_at": iso(at),
        "systolic_mmhg": readings.get("systolic_mmhg", 128),
        "diastolic_mmhg": readings.get("diastolic_mmhg", 82),
        "heart_rate_bpm": readings.get("heart_rate_bpm", 76),
        "spo2_percent": readings.get("spo2_percent", 98),
    }


def record_medicine_session(
    world: World, as_user: Any, frozen: Any, session_id: int, starts_at: dt.datetime
) -> None:
    """Check in, vitals before, the dose (IM, a minute), vitals during and after, discharge and
    completion, the clock moving along with the session."""
    nurse = as_user(world.nurse)
    base = f"/api/v1/sessions/{session_id}"
    frozen.move_to(starts_at)
    assert check_in(world, as_user, session_id).status_code == 200
    assert post(nurse, f"{base}/vitals/", vitals("before", starts_at)).status_code == 201
    frozen.move_to(starts_at + dt.timedelta(minutes=30))
    dose = post(
        nurse,
        f"{base}/dose/",
        {
            "route": "im",
            "dose_mg": "52.50",
            "weight_kg": "70.0",
            "started_at": iso(starts_at + dt.timedelta(minutes=5)),
            "ended_at": iso(starts_at + dt.timedelta(minutes=6)),
        },
    )
    assert dose.status_code == 201, dose.json()
    during = vitals("during", starts_at + dt.timedelta(minutes=20))
    assert post(nurse, f"{base}/vitals/", during).status_code == 201
    frozen.move_to(starts_at + dt.timedelta(minutes=90))
    after = vitals("after", starts_at + dt.timedelta(minutes=80))
    assert post(nurse, f"{base}/vitals/", after).status_code == 201
    discharge = post(
        nurse,
        f"{base}/discharge/",
        {
            "discharged_at": iso(starts_at + dt.timedelta(minutes=85)),
            "escort_handoff_name": "Robin Nguyen",
            "criteria": ALL_CRITERIA,
        },
    )
    assert discharge.status_code == 201, discharge.json()
    complete = post(nurse, f"{base}/complete/")
    assert complete.status_code == 200, complete.json()


def tokens_outlive_the_test(monkeypatch: Any) -> None:
    """Tests move the clock through a whole session; an access token lasts five minutes."""
    monkeypatch.setattr(AccessToken, "lifetime", dt.timedelta(days=365))
