"""Broken object-level authorization for the clinical endpoints: for every one that takes an id,
patient A's token against patient B's objects, and staff of the other clinic (whatever their role)
against this clinic's, get 404, and nothing changes (not even the audit trail)."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import AuditEvent, Role
from integration.models import (
    AdverseEvent,
    DoseRecord,
    IntegrationDecline,
    IntegrationNote,
    OutsideIntegration,
    QuestionnaireResponse,
    VitalSigns,
)
from scheduling.models import Session
from tests.api.clinical import ALL_CRITERIA, vitals
from tests.api.conftest import World
from tests.factories import (
    MedicineSessionFactory,
    OutsideIntegrationFactory,
    ProtocolFactory,
    ProtocolVersionFactory,
    QuestionnaireAssignmentFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    TreatmentSeriesFactory,
    UserFactory,
    aware,
)

pytestmark = pytest.mark.django_db


def _state() -> Any:
    return (
        sorted(Session.objects.values_list("id", "status", "revision")),
        sorted(DoseRecord.objects.values_list("id", "ended_at", "discharged_at")),
        VitalSigns.objects.count(),
        AdverseEvent.objects.count(),
        sorted(OutsideIntegration.objects.values_list("id", "confirmed_by", "confirmed_at")),
        IntegrationDecline.objects.count(),
        IntegrationNote.objects.count(),
        QuestionnaireResponse.objects.count(),
        AuditEvent.objects.count(),
    )


def _targets(world: World) -> dict[str, int]:
    """Patient B's objects, each ready for the action asked (so only the scope can refuse)."""
    series = TreatmentSeriesFactory(
        patient=world.patient_b,
        protocol_version=ProtocolVersionFactory(protocol=ProtocolFactory(care_model="infusion")),
    )
    medicine = MedicineSessionFactory(
        patient=world.patient_b,
        series=series,
        room=world.dosing_room,
        starts_at=aware(2026, 3, 2, 7),
        status="checked_in",
    )
    SessionStaffFactory(session=medicine, staff=world.therapist)
    SessionStaffFactory(session=medicine, staff=world.nurse, role=Role.NURSE, is_exclusive=False)
    integration = SessionFactory(
        patient=world.patient_b,
        series=series,
        kind="integration",
        room=world.therapy_room,
        starts_at=aware(2026, 3, 2, 6),
        status="checked_in",
    )
    SessionStaffFactory(session=integration, staff=world.therapist)
    outside = OutsideIntegrationFactory(medicine_session=medicine, held_on=aware(2026, 3, 2).date())
    questionnaire = QuestionnaireAssignmentFactory(
        series=series, available_from=aware(2026, 3, 1), due_at=aware(2026, 3, 9)
    )
    return {
        "medicine": medicine.pk,
        "integration": integration.pk,
        "outside": outside.pk,
        "questionnaire": questionnaire.pk,
        "series": series.pk,
    }


def _staff_requests(t: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    m, i = f"/api/v1/sessions/{t['medicine']}", f"/api/v1/sessions/{t['integration']}"
    at = "2026-03-02T08:30:00-08:00"
    return [
        ("get", f"{m}/clinical-record/", {}),
        ("post", f"{m}/vitals/", vitals("before", aware(2026, 3, 2, 7, 30))),
        (
            "post",
            f"{m}/dose/",
            {"route": "im", "dose_mg": "35", "weight_kg": "70.0", "started_at": at},
        ),
        ("post", f"{m}/dose/end/", {"ended_at": at}),
        ("post", f"{m}/adverse-events/", {"code": "nausea", "noted_at": at}),
        (
            "post",
            f"{m}/discharge/",
            {"discharged_at": at, "escort_handoff_name": "Robin", "criteria": ALL_CRITERIA},
        ),
        (
            "post",
            f"{m}/outside-integration/",
            {"held_on": "2026-03-02", "therapist_name": "Dr. X", "therapist_email": "x@x.org"},
        ),
        ("post", f"{m}/decline-integration/", {"reason": "No."}),
        ("get", f"{i}/notes/", {}),
        ("post", f"{i}/notes/", {"body": "A note."}),
        (
            "post",
            f"/api/v1/outside-integrations/{t['outside']}/confirm/",
            {"confirmed_by": "therapist"},
        ),
        (
            "post",
            f"/api/v1/questionnaires/{t['questionnaire']}/answers/",
            {"answers": [0, 0, 0, 0, 0, 0, 0, 0, 0]},
        ),
        ("get", f"/api/v1/series/{t['series']}/scores/", {}),
        ("post", f"/api/v1/series/{t['series']}/decline-integration/", {"reason": "No."}),
        ("get", f"/api/v1/series/{t['series']}/questionnaires/", {}),
    ]


def _portal_requests(t: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "post",
            f"/api/v1/me/questionnaires/{t['questionnaire']}/answers/",
            {"answers": [0, 0, 0, 0, 0, 0, 0, 0, 0]},
        ),
        ("post", f"/api/v1/me/outside-integrations/{t['outside']}/confirm/", {}),
    ]


def _answers(client: Any, requests: list[tuple[str, str, dict[str, Any]]]) -> dict[str, int]:
    return {
        f"{method} {path}": getattr(client, method)(path, body, format="json").status_code
        for method, path, body in requests
    }


def test_patient_a_cannot_reach_patient_bs_clinical_objects(world, as_user, frozen) -> None:
    targets = _targets(world)
    before = _state()
    portal = as_user(world.patient_a)

    answers = _answers(portal, _staff_requests(targets) + _portal_requests(targets))

    assert {key: code for key, code in answers.items() if code != 404} == {}
    assert _state() == before
    assert portal.get("/api/v1/me/questionnaires/").json()["results"] == []
    assert portal.get("/api/v1/me/outside-integrations/").json()["results"] == []
    assert portal.get("/api/v1/me/scores/").json()["results"] == []


@pytest.mark.parametrize(
    "roles",
    [[Role.THERAPIST], [Role.NURSE], [Role.PRESCRIBER], [Role.FRONT_DESK], [Role.CLINIC_ADMIN]],
)
def test_staff_of_another_clinic_cannot_reach_them(world, as_user, frozen, roles) -> None:
    targets = _targets(world)
    outsider = StaffMemberFactory(clinic=world.other_clinic, user=UserFactory(), roles=roles)
    before = _state()

    answers = _answers(as_user(outsider), _staff_requests(targets))

    assert {key: code for key, code in answers.items() if code != 404} == {}
    assert _state() == before


def test_the_same_requests_reach_them_from_inside(world, as_user, frozen) -> None:
    """The matrix above is not vacuous: from this clinic, with the right role, the same requests
    get past the scope (to the service's own answer)."""
    targets = _targets(world)
    nurse = _answers(as_user(world.nurse), _staff_requests(targets)[:6])
    assert 404 not in nurse.values()
    therapist = _answers(as_user(world.therapist), _staff_requests(targets)[6:])
    assert 404 not in therapist.values()
