"""The clinical record of a medicine session through the API: dose (mg/kg computed), vital signs
before, during and after, adverse events, discharge; the check-in gate (screening, consent, a
confirmed ride home) and the completion gate (vitals after the dose and discharge)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from clinic.models import AuditEvent, Consent, Role
from integration.models import AdverseEvent, DoseRecord, VitalSigns
from scheduling.models import Session
from tests.api.clinical import (
    ALL_CRITERIA,
    book_integration,
    book_medicine,
    check_in,
    escort,
    post,
    record_medicine_session,
    tokens_outlive_the_test,
    vitals,
)
from tests.api.conftest import iso
from tests.factories import SessionFactory, SessionStaffFactory, StaffMemberFactory, aware

pytestmark = pytest.mark.django_db

START = aware(2026, 3, 2, 10)


@pytest.fixture(autouse=True)
def _long_tokens(monkeypatch) -> None:
    tokens_outlive_the_test(monkeypatch)


def _record_state() -> Any:
    return (
        list(DoseRecord.objects.values_list("id", "ended_at", "discharged_at")),
        VitalSigns.objects.count(),
        AdverseEvent.objects.count(),
        sorted(Session.objects.values_list("id", "status")),
    )


@pytest.fixture
def checked_in(world, as_user, frozen) -> int:
    session_id = book_medicine(world, as_user, START)
    escort(world, as_user, session_id)
    frozen.move_to(START)
    assert check_in(world, as_user, session_id).status_code == 200
    return session_id


def _dose(started: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {
        "route": "im",
        "dose_mg": "35",
        "weight_kg": "70.0",
        "started_at": iso(started),
        **extra,
    }


def test_a_whole_record_then_completion(world, as_user, frozen, checked_in) -> None:
    nurse = as_user(world.nurse)
    base = f"/api/v1/sessions/{checked_in}"
    # Completing with nothing recorded is refused, naming every missing piece.
    refused = post(nurse, f"{base}/complete/")
    assert refused.status_code == 422
    assert [v["rule"] for v in refused.json()["violations"]] == [
        "dose_record",
        "post_session_vitals",
        "discharge",
    ]
    assert Session.objects.get(pk=checked_in).status == "checked_in"

    before = post(nurse, f"{base}/vitals/", vitals("before", START, systolic_mmhg=132))
    assert before.status_code == 201
    assert before.json() == {
        "id": before.json()["id"],
        "session": checked_in,
        "phase": "before",
        "measured_at": "2026-03-02T10:00:00-08:00",
        "systolic_mmhg": 132,
        "diastolic_mmhg": 82,
        "heart_rate_bpm": 76,
        "spo2_percent": 98,
        "recorded_by": world.nurse.pk,
    }
    frozen.move_to(START + dt.timedelta(minutes=20))
    dose = post(nurse, f"{base}/dose/", _dose(START + dt.timedelta(minutes=5)))
    assert dose.status_code == 201
    assert dose.json() == {
        "id": dose.json()["id"],
        "session": checked_in,
        "route": "im",
        "dose_mg": "35.00",
        "weight_kg": "70.0",
        "dose_mg_per_kg": "0.500",
        "started_at": "2026-03-02T10:05:00-08:00",
        "ended_at": None,
        "administered_by": world.nurse.pk,
        "discharge": None,
    }
    ended = post(nurse, f"{base}/dose/end/", {"ended_at": iso(START + dt.timedelta(minutes=6))})
    assert ended.status_code == 200
    assert ended.json()["ended_at"] == "2026-03-02T10:06:00-08:00"
    event = post(
        as_user(world.therapist),
        f"{base}/adverse-events/",
        {"code": "nausea", "noted_at": iso(START + dt.timedelta(minutes=15)), "notes": "Mild."},
    )
    assert event.status_code == 201
    assert event.json() == {
        "id": event.json()["id"],
        "code": "nausea",
        "notes": "Mild.",
        "noted_at": "2026-03-02T10:15:00-08:00",
        "recorded_by": world.therapist.pk,
    }
    # Still not complete: vitals after the dose and the discharge are missing.
    refused = post(nurse, f"{base}/complete/")
    assert [v["rule"] for v in refused.json()["violations"]] == ["post_session_vitals", "discharge"]
    frozen.move_to(START + dt.timedelta(minutes=90))
    after = vitals("after", START + dt.timedelta(minutes=80))
    assert post(nurse, f"{base}/vitals/", after).status_code == 201
    discharge = post(
        as_user(world.prescriber),
        f"{base}/discharge/",
        {
            "discharged_at": iso(START + dt.timedelta(minutes=85)),
            "escort_handoff_name": "Robin Nguyen",
            "criteria": ALL_CRITERIA,
        },
    )
    assert discharge.status_code == 201
    assert discharge.json()["discharge"] == {
        "discharged_at": "2026-03-02T11:25:00-08:00",
        "discharged_by": world.prescriber.pk,
        "escort_handoff_name": "Robin Nguyen",
        "criteria": ALL_CRITERIA,
    }

    record = as_user(world.therapist).get(f"{base}/clinical-record/")
    assert record.status_code == 200
    body = record.json()
    assert (body["session"], body["patient"], body["status"]) == (
        checked_in,
        world.patient_a.pk,
        "checked_in",
    )
    assert [(v["phase"], v["measured_at"]) for v in body["vital_signs"]] == [
        ("before", "2026-03-02T10:00:00-08:00"),
        ("after", "2026-03-02T11:20:00-08:00"),
    ]
    assert [e["code"] for e in body["adverse_events"]] == ["nausea"]
    assert body["dose"]["dose_mg_per_kg"] == "0.500"
    assert (body["can_complete"], body["missing_for_completion"]) == (True, [])

    completed = post(nurse, f"{base}/complete/")
    assert completed.status_code == 200
    assert completed.json()["status"] == "completed"


def test_clinical_record_lists_what_is_missing(world, as_user, frozen, checked_in) -> None:
    body = as_user(world.nurse).get(f"/api/v1/sessions/{checked_in}/clinical-record/").json()
    assert body["dose"] is None
    assert body["can_complete"] is False
    assert [v["rule"] for v in body["missing_for_completion"]] == [
        "dose_record",
        "post_session_vitals",
        "discharge",
    ]


def test_the_whole_helper_flow_completes(world, as_user, frozen) -> None:
    session_id = book_medicine(world, as_user, START)
    escort(world, as_user, session_id)
    record_medicine_session(world, as_user, frozen, session_id, START)
    assert Session.objects.get(pk=session_id).status == "completed"
    dose = DoseRecord.objects.get(session_id=session_id)
    assert (dose.dose_mg, dose.weight_kg, dose.dose_mg_per_kg, dose.escort_handoff_name) == (
        Decimal("52.50"),
        Decimal("70.0"),
        Decimal("0.750"),
        "Robin Nguyen",
    )


def test_who_may_not_read_the_clinical_record(world, as_user, frozen, checked_in) -> None:
    # A colleague who sees the patient (an integration session with them) but not this session.
    colleague = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST])
    integration = SessionFactory(
        patient=world.patient_a, kind="integration", starts_at=aware(2026, 3, 5, 14)
    )
    SessionStaffFactory(session=integration, staff=colleague)
    path = f"/api/v1/sessions/{checked_in}/clinical-record/"
    assert as_user(colleague).get(f"/api/v1/sessions/{checked_in}/").status_code == 200
    assert as_user(colleague).get(path).status_code == 403
    assert as_user(world.front_desk).get(path).status_code == 403
    assert as_user(world.therapist).get(path).status_code == 200
    assert as_user(world.prescriber).get(path).status_code == 200


def test_the_read_is_audited(world, as_user, frozen, checked_in) -> None:
    as_user(world.admin).get(f"/api/v1/sessions/{checked_in}/clinical-record/")
    row = AuditEvent.objects.filter(object_type="clinical_record").get()
    assert (row.actor_id, row.action, row.object_ids, row.patient_ids) == (
        world.admin.user_id,
        "read",
        [checked_in],
        [world.patient_a.pk],
    )


@pytest.mark.parametrize("who", ["front_desk", "therapist", "admin"])
def test_only_nurses_and_prescribers_record_the_dose(
    world, as_user, frozen, checked_in, who
) -> None:
    before = _record_state()
    nurse_vitals = vitals("before", START)
    base = f"/api/v1/sessions/{checked_in}"
    client = as_user(getattr(world, who))
    assert post(client, f"{base}/vitals/", nurse_vitals).status_code == 403
    assert post(client, f"{base}/dose/", _dose(START)).status_code == 403
    assert _record_state() == before


def test_bad_input_is_400_with_field_errors(world, as_user, frozen, checked_in) -> None:
    nurse = as_user(world.nurse)
    base = f"/api/v1/sessions/{checked_in}"
    before = _record_state()
    shape = post(nurse, f"{base}/dose/", {**_dose(START), "dose_mg": "lots", "colour": "red"})
    assert shape.status_code == 400
    assert shape["Content-Type"] == "application/problem+json"
    assert sorted(shape.json()["errors"]) == ["colour"]
    shape = post(nurse, f"{base}/dose/", {**_dose(START), "dose_mg": "lots"})
    assert sorted(shape.json()["errors"]) == ["dose_mg"]
    naive = post(
        nurse, f"{base}/vitals/", {**vitals("before", START), "measured_at": "2026-03-02T10:00"}
    )
    assert naive.status_code == 400
    assert list(naive.json()["errors"]) == ["measured_at"]
    implausible = post(
        nurse, f"{base}/vitals/", vitals("before", START, systolic_mmhg=80, diastolic_mmhg=90)
    )
    assert implausible.status_code == 400
    assert implausible.json()["errors"] == {"diastolic_mmhg": ["Below the systolic pressure."]}
    post(nurse, f"{base}/vitals/", vitals("before", START))
    light = post(nurse, f"{base}/dose/", {**_dose(START), "weight_kg": "10.0"})
    assert light.status_code == 400
    assert light.json()["errors"] == {"weight_kg": ["Between 20 and 350."]}
    assert _record_state()[0] == before[0]


def test_rule_violations_are_422(world, as_user, frozen, checked_in) -> None:
    nurse = as_user(world.nurse)
    base = f"/api/v1/sessions/{checked_in}"
    # No vital signs before the dose yet.
    refused = post(nurse, f"{base}/dose/", _dose(START))
    assert refused.status_code == 422
    assert [v["rule"] for v in refused.json()["violations"]] == ["vitals_before_dose"]
    # Discharge without the dose.
    discharge = post(
        nurse,
        f"{base}/discharge/",
        {"discharged_at": iso(START), "escort_handoff_name": "Robin", "criteria": ALL_CRITERIA},
    )
    assert discharge.status_code == 422
    assert [v["rule"] for v in discharge.json()["violations"]] == ["dose_record"]
    assert DoseRecord.objects.count() == 0


def test_medicine_only(world, as_user, frozen) -> None:
    session_id = book_integration(world, as_user, START)
    base = f"/api/v1/sessions/{session_id}"
    # A nurse does not see integration sessions; their therapist does, and gets the rule.
    nurse = post(as_user(world.nurse), f"{base}/vitals/", vitals("before", START))
    assert nurse.status_code == 404
    answer = post(
        as_user(world.therapist),
        f"{base}/adverse-events/",
        {"code": "nausea", "noted_at": iso(START)},
    )
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["medicine_session_only"]


def test_the_dose_post_is_idempotent(world, as_user, frozen, checked_in) -> None:
    nurse = as_user(world.nurse)
    base = f"/api/v1/sessions/{checked_in}"
    post(nurse, f"{base}/vitals/", vitals("before", START))
    frozen.move_to(START + dt.timedelta(minutes=10))
    first = post(nurse, f"{base}/dose/", _dose(START), HTTP_IDEMPOTENCY_KEY="dose-1")
    again = post(nurse, f"{base}/dose/", _dose(START), HTTP_IDEMPOTENCY_KEY="dose-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert DoseRecord.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# The check-in gate, through the API


def test_check_in_needs_a_confirmed_ride_home(world, as_user, frozen) -> None:
    session_id = book_medicine(world, as_user, START)
    frozen.move_to(START)
    answer = check_in(world, as_user, session_id)
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["escort_gate"]
    escort(world, as_user, session_id, confirmed=False)
    answer = check_in(world, as_user, session_id)
    assert [v["message"] for v in answer.json()["violations"]] == [
        "The ride home is recorded but not confirmed."
    ]
    assert Session.objects.get(pk=session_id).status == "booked"
    escort(world, as_user, session_id)
    assert check_in(world, as_user, session_id).status_code == 200


def test_check_in_needs_consent_on_file(world, as_user, frozen) -> None:
    session_id = book_medicine(world, as_user, START)
    escort(world, as_user, session_id)
    Consent.objects.filter(patient=world.patient_a).delete()
    frozen.move_to(START)
    answer = check_in(world, as_user, session_id)
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["consent_gate"]
    assert Session.objects.get(pk=session_id).status == "booked"


ODD_VALUES = [None, "", "NaN", "Infinity", "-1", "1e400", 10**30, True, [], {}, "2026-13-45"]


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("dose", "dose_mg"),
        ("dose", "weight_kg"),
        ("dose", "started_at"),
        ("dose", "route"),
        ("dose/end", "ended_at"),
        ("vitals", "systolic_mmhg"),
        ("vitals", "measured_at"),
        ("vitals", "phase"),
        ("adverse-events", "code"),
        ("adverse-events", "noted_at"),
        ("discharge", "criteria"),
        ("discharge", "discharged_at"),
        ("discharge", "escort_handoff_name"),
    ],
)
def test_odd_values_are_refused_never_a_server_error(
    world, as_user, frozen, checked_in, endpoint, field
) -> None:
    bodies = {
        "dose": _dose(START),
        "dose/end": {"ended_at": iso(START)},
        "vitals": vitals("before", START),
        "adverse-events": {"code": "nausea", "noted_at": iso(START)},
        "discharge": {
            "discharged_at": iso(START),
            "escort_handoff_name": "Robin",
            "criteria": ALL_CRITERIA,
        },
    }
    nurse = as_user(world.nurse)
    before = _record_state()
    for value in ODD_VALUES:
        answer = post(
            nurse, f"/api/v1/sessions/{checked_in}/{endpoint}/", {**bodies[endpoint], field: value}
        )
        assert answer.status_code in (400, 422), (value, answer.json())
        assert answer["Content-Type"] == "application/problem+json"
    assert _record_state() == before
