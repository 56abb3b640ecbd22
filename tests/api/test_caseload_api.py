"""``GET /caseload/``: per patient of the therapist, the series, the recent medicine sessions with
each one's integration status, how long overdue, the next session, the latest PHQ-9 and GAD-7 and
the open safety events; most urgent first; a fixed number of queries; who may read whose."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import AuditEvent, Role
from integration import services as integration_services
from integration.models import Instrument, Milestone, QuestionnaireResponse
from scheduling.alerts.models import StaffAlert
from scheduling.alerts.services import staff_alert_acknowledge
from scheduling.models import SessionStatus
from tests.api.conftest import World
from tests.factories import (
    IntegrationDeclineFactory,
    IntegrationLinkFactory,
    MedicineSessionFactory,
    OutsideIntegrationFactory,
    PatientFactory,
    ProtocolFactory,
    ProtocolVersionFactory,
    QuestionnaireAssignmentFactory,
    QuestionnaireResponseFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    TreatmentSeriesFactory,
    UserFactory,
    aware,
)

pytestmark = pytest.mark.django_db


def _patient_with_medicine(world: World, name: str, day: int, hour: int = 9) -> Any:
    """A patient of ``world.therapist`` with one completed medicine session on ``day`` February."""
    patient = PatientFactory(clinic=world.clinic, full_name=name)
    series = TreatmentSeriesFactory(
        patient=patient,
        protocol_version=ProtocolVersionFactory(
            protocol=ProtocolFactory(name=f"KAP for {name}", care_model="kap")
        ),
    )
    medicine = MedicineSessionFactory(
        patient=patient,
        series=series,
        starts_at=aware(2026, 2, day, hour),
        status=SessionStatus.COMPLETED,
    )
    SessionStaffFactory(session=medicine, staff=world.therapist)
    return patient, series, medicine


def _linked_integration(medicine: Any, day: int, month: int, status: str) -> Any:
    link = IntegrationLinkFactory(
        medicine_session=medicine,
        integration_session=SessionFactory(
            patient=medicine.patient,
            series=medicine.series,
            kind="integration",
            starts_at=aware(2026, month, day, 14),
            status=status,
        ),
    )
    return link.integration_session


def _score(series: Any, instrument: str, milestone: str, total: int, severity: str, day: int):
    items = 9 if instrument == Instrument.PHQ9 else 7
    answers = [min(3, max(0, total - 3 * i)) for i in range(items)]
    assert sum(answers) == total
    return QuestionnaireResponseFactory(
        assignment=QuestionnaireAssignmentFactory(
            series=series, instrument=instrument, milestone=milestone
        ),
        instrument=instrument,
        answers=answers,
        total_score=total,
        severity=severity,
        answered_at=aware(2026, 2, day, 10),
    )


def _safety_event(series: Any, day: int) -> Any:
    """A PHQ-9 with item 9 above zero, raised through the service (so its staff alerts exist)."""
    response = QuestionnaireResponseFactory(
        assignment=QuestionnaireAssignmentFactory(
            series=series, instrument=Instrument.PHQ9, milestone=Milestone.END_OF_SERIES
        ),
        answers=[0, 0, 0, 0, 0, 0, 0, 0, 2],
        total_score=2,
        severity="minimal",
        answered_at=aware(2026, 2, day, 10),
    )
    return integration_services.safety_alert_raise(
        response=response, item_number=9, answer=2, now=aware(2026, 2, day, 10)
    )


@pytest.fixture
def caseload_world(world: World) -> dict[str, Any]:
    """Now is Monday 2 March 2026, 09:00 in Los Angeles. Windows are the 7-day default."""
    ana, ana_series, ana_m = _patient_with_medicine(world, "Ana Safety", 27)
    event = _safety_event(ana_series, 28)
    ben, _, ben_m = _patient_with_medicine(world, "Ben Long Overdue", 10)
    cal, _, cal_m = _patient_with_medicine(world, "Cal Overdue", 20, hour=11)
    dee, _, dee_m = _patient_with_medicine(world, "Dee Booked", 27, hour=11)
    dee_i = _linked_integration(dee_m, 3, 3, SessionStatus.BOOKED)
    eve, eve_series, eve_m = _patient_with_medicine(world, "Eve Done", 20, hour=13)
    eve_i = _linked_integration(eve_m, 21, 2, SessionStatus.COMPLETED)
    _score(eve_series, Instrument.PHQ9, Milestone.BASELINE, 18, "moderately_severe", 19)
    _score(eve_series, Instrument.PHQ9, Milestone.END_OF_SERIES, 9, "mild", 28)
    _score(eve_series, Instrument.GAD7, Milestone.BASELINE, 12, "moderate", 19)
    fay, _, fay_m = _patient_with_medicine(world, "Fay External", 24)
    outside = OutsideIntegrationFactory(medicine_session=fay_m, held_on=dt.date(2026, 3, 4))
    gus, _, gus_m = _patient_with_medicine(world, "Gus Declined", 16)
    IntegrationDeclineFactory(medicine_session=gus_m, recorded_by=world.therapist)
    hal, _, hal_m = _patient_with_medicine(world, "Hal Pending", 28)
    return {
        "patients": [ana, ben, cal, dee, eve, fay, gus, hal],
        "medicine": {
            "ana": ana_m,
            "ben": ben_m,
            "cal": cal_m,
            "dee": dee_m,
            "eve": eve_m,
            "fay": fay_m,
            "gus": gus_m,
            "hal": hal_m,
        },
        "eve_series": eve_series,
        "dee_integration": dee_i,
        "eve_integration": eve_i,
        "outside": outside,
        "event": event,
    }


def _summary(body: dict[str, Any]) -> list[tuple[str, int, list[tuple[int, str, int]]]]:
    return [
        (
            row["patient_name"],
            row["days_overdue"],
            [
                (m["session"], m["integration"]["status"], m["integration"]["days_overdue"])
                for m in row["medicine_sessions"]
            ],
        )
        for row in body["results"]
    ]


def test_statuses_and_urgency_order(world, as_user, frozen, caseload_world) -> None:
    m = caseload_world["medicine"]

    answer = as_user(world.therapist).get("/api/v1/caseload/")

    assert answer.status_code == 200
    body = answer.json()
    assert body["therapist"] == world.therapist.pk
    # Ana: an open safety event comes first. Ben: overdue since 18 Feb (13 days, 18 Feb counted);
    # Cal: since 28 Feb (3 days). Hal: integration still to arrange. Dee: next session soonest.
    assert _summary(body) == [
        ("Ana Safety", 0, [(m["ana"].pk, "none", 0)]),
        ("Ben Long Overdue", 13, [(m["ben"].pk, "overdue", 13)]),
        ("Cal Overdue", 3, [(m["cal"].pk, "overdue", 3)]),
        ("Hal Pending", 0, [(m["hal"].pk, "none", 0)]),
        ("Dee Booked", 0, [(m["dee"].pk, "booked", 0)]),
        ("Eve Done", 0, [(m["eve"].pk, "done", 0)]),
        ("Fay External", 0, [(m["fay"].pk, "external", 0)]),
        ("Gus Declined", 0, [(m["gus"].pk, "declined", 0)]),
    ]


def test_a_patients_full_row(world, as_user, frozen, caseload_world) -> None:
    rows = {
        row["patient_name"]: row
        for row in as_user(world.therapist).get("/api/v1/caseload/").json()["results"]
    }
    eve_m = caseload_world["medicine"]["eve"]
    series = caseload_world["eve_series"]
    assert rows["Eve Done"] == {
        "patient": eve_m.patient_id,
        "patient_name": "Eve Done",
        "days_overdue": 0,
        "series": [
            {
                "id": series.pk,
                "protocol_name": "KAP for Eve Done",
                "care_model": "kap",
                "status": "active",
            }
        ],
        "medicine_sessions": [
            {
                "session": eve_m.pk,
                "series": series.pk,
                "starts_at": "2026-02-20T13:00:00-08:00",
                "status": "completed",
                "route": "im",
                "integration": {
                    "status": "done",
                    "due_on": "2026-02-27",
                    "overdue_from": "2026-02-28T00:00:00-08:00",
                    "days_overdue": 0,
                    "sessions": [caseload_world["eve_integration"].pk],
                    "outside_integrations": [],
                },
            }
        ],
        "next_session": None,
        "scores": {
            "phq9": {
                "series": series.pk,
                "total_score": 9,
                "severity": "mild",
                "milestone": "end_of_series",
                "answered_at": "2026-02-28T10:00:00-08:00",
                "baseline": 18,
                "change_from_baseline": -9,
            },
            "gad7": {
                "series": series.pk,
                "total_score": 12,
                "severity": "moderate",
                "milestone": "baseline",
                "answered_at": "2026-02-19T10:00:00-08:00",
                "baseline": 12,
                "change_from_baseline": 0,
            },
        },
        "open_safety_events": [],
    }
    dee = rows["Dee Booked"]
    assert dee["next_session"] == {
        "id": caseload_world["dee_integration"].pk,
        "kind": "integration",
        "status": "booked",
        "starts_at": "2026-03-03T14:00:00-08:00",
    }
    assert dee["medicine_sessions"][0]["integration"]["sessions"] == [
        caseload_world["dee_integration"].pk
    ]
    assert rows["Fay External"]["medicine_sessions"][0]["integration"]["outside_integrations"] == [
        caseload_world["outside"].pk
    ]
    event = caseload_world["event"]
    assert rows["Ana Safety"]["open_safety_events"] == [
        {
            "id": event.pk,
            "item_number": 9,
            "answer": 2,
            "raised_at": "2026-02-28T10:00:00-08:00",
            "therapist": world.therapist.pk,
            "prescriber": None,
        }
    ]
    assert rows["Ana Safety"]["scores"]["phq9"]["change_from_baseline"] is None


def test_an_acknowledged_safety_event_is_no_longer_open(
    world, as_user, frozen, caseload_world
) -> None:
    for alert in StaffAlert.objects.filter(kind="phq9_self_harm"):
        staff_alert_acknowledge(alert, by=world.therapist.user)

    body = as_user(world.therapist).get("/api/v1/caseload/").json()

    names = [row["patient_name"] for row in body["results"]]
    assert names[:4] == ["Ben Long Overdue", "Cal Overdue", "Ana Safety", "Hal Pending"]
    assert body["results"][2]["open_safety_events"] == []


def test_the_caseload_is_paginated_most_urgent_first(
    world, as_user, frozen, caseload_world
) -> None:
    therapist = as_user(world.therapist)
    everyone = [row["patient"] for row in therapist.get("/api/v1/caseload/").json()["results"]]
    seen = AuditEvent.objects.latest("id").pk

    first = therapist.get("/api/v1/caseload/", {"page_size": 3}).json()
    second = therapist.get("/api/v1/caseload/", {"page_size": 3, "page": 2}).json()

    assert (first["therapist"], first["count"], first["previous"]) == (world.therapist.pk, 8, None)
    assert first["next"] == "http://testserver/api/v1/caseload/?page=2&page_size=3"
    assert [row["patient"] for row in first["results"] + second["results"]] == everyone[:6]
    # each read audits the patients it showed, and no others
    assert [
        row.patient_ids
        for row in AuditEvent.objects.filter(object_type="caseload", pk__gt=seen).order_by("id")
    ] == [sorted(everyone[:3]), sorted(everyone[3:6])]


def test_the_read_is_audited(world, as_user, frozen, caseload_world) -> None:
    as_user(world.therapist).get("/api/v1/caseload/")

    row = AuditEvent.objects.get(object_type="caseload")
    ids = sorted(patient.pk for patient in caseload_world["patients"])
    assert (row.actor_id, row.action, row.object_ids, row.patient_ids) == (
        world.therapist.user_id,
        "list",
        ids,
        ids,
    )


def test_a_patient_seen_only_by_another_therapist_is_not_listed(world, as_user, frozen) -> None:
    colleague = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST])
    patient = PatientFactory(clinic=world.clinic, full_name="Someone Else's")
    medicine = MedicineSessionFactory(
        patient=patient, room=world.dosing_room, starts_at=aware(2026, 2, 25, 9), status="completed"
    )
    SessionStaffFactory(session=medicine, staff=colleague)

    assert as_user(world.therapist).get("/api/v1/caseload/").json()["results"] == []
    listed = as_user(colleague).get("/api/v1/caseload/").json()["results"]
    assert [row["patient_name"] for row in listed] == ["Someone Else's"]


@pytest.mark.parametrize("role", ["front_desk", "nurse", "prescriber"])
def test_other_roles_are_refused(world, as_user, frozen, role) -> None:
    client = as_user(getattr(world, role))
    assert client.get("/api/v1/caseload/").status_code == 403
    assert client.get("/api/v1/caseload/", {"therapist": world.therapist.pk}).status_code == 403


def test_a_patient_token_is_refused(world, as_user, frozen) -> None:
    assert as_user(world.patient_a).get("/api/v1/caseload/").status_code == 403


def test_a_supervisor_reads_any_therapist_of_their_clinic(
    world, as_user, frozen, caseload_world
) -> None:
    admin = as_user(world.admin)
    answer = admin.get("/api/v1/caseload/", {"therapist": world.therapist.pk})
    assert answer.status_code == 200
    assert len(answer.json()["results"]) == 8
    # Naming no one, a supervisor who is not a therapist is asked to name one.
    refused = admin.get("/api/v1/caseload/")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"therapist": ["Name the therapist."]}
    # A staff member who is not a therapist has no caseload.
    assert admin.get("/api/v1/caseload/", {"therapist": world.nurse.pk}).status_code == 404
    root = as_user(world.superuser).get("/api/v1/caseload/", {"therapist": world.therapist.pk})
    assert root.status_code == 200


def test_another_therapist_or_another_clinic_is_not_found(world, as_user, frozen) -> None:
    colleague = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST])
    other_admin = StaffMemberFactory(
        clinic=world.other_clinic, user=UserFactory(), roles=[Role.CLINIC_ADMIN]
    )
    therapist = as_user(world.therapist)
    assert therapist.get("/api/v1/caseload/", {"therapist": colleague.pk}).status_code == 404
    assert therapist.get("/api/v1/caseload/", {"therapist": world.therapist.pk}).status_code == 200
    assert (
        as_user(world.other_therapist)
        .get("/api/v1/caseload/", {"therapist": world.therapist.pk})
        .status_code
        == 404
    )
    assert (
        as_user(other_admin).get("/api/v1/caseload/", {"therapist": world.therapist.pk}).status_code
        == 404
    )


def test_bad_query_is_400(world, as_user, frozen) -> None:
    answer = as_user(world.therapist).get("/api/v1/caseload/", {"therapist": "x"})
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert list(answer.json()["errors"]) == ["therapist"]


def _seed(world: World, n: int, offset: int) -> None:
    """``n`` patients, each with every kind of thing the caseload reads."""
    for i in range(n):
        _, series, medicine = _patient_with_medicine(
            world, f"Seeded {offset + i:02}", 2 + offset + i
        )
        _linked_integration(medicine, 3 + offset + i, 3, SessionStatus.BOOKED)
        OutsideIntegrationFactory(medicine_session=medicine, held_on=dt.date(2026, 3, 1))
        _score(series, Instrument.PHQ9, Milestone.BASELINE, 12, "moderate", 1)
        _safety_event(series, 1)


def test_query_count_does_not_grow_with_the_caseload(
    world, as_user, frozen, django_assert_num_queries
) -> None:
    client = as_user(world.therapist)
    _seed(world, 1, 0)
    with django_assert_num_queries(15):
        small = client.get("/api/v1/caseload/")
    assert len(small.json()["results"]) == 1
    _seed(world, 9, 1)
    with django_assert_num_queries(15):
        large = client.get("/api/v1/caseload/")
    assert len(large.json()["results"]) == 10
    assert QuestionnaireResponse.objects.count() == 20
