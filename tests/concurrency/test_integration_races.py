"""Clients acting at once on one patient's integration and clinical records: each integration
session claims a different medicine session, a questionnaire is answered once, a session gets one
dose record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from clinic.errors import RuleViolation
from integration import services
from integration.models import DoseRecord, IntegrationLink, QuestionnaireResponse
from scheduling.models import Session, SessionStatus
from tests.factories import (
    MedicineSessionFactory,
    PatientFactory,
    QuestionnaireAssignmentFactory,
    SessionFactory,
    StaffMemberFactory,
    VitalSignsFactory,
    aware,
)
from tests.races import at_once

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 8


def _race(attempt: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    return at_once(attempt, CLIENTS)


def test_integration_sessions_booked_at_once_claim_different_medicine_sessions() -> None:
    patient = PatientFactory()
    medicine = [
        MedicineSessionFactory(
            patient=patient, starts_at=aware(2026, 3, 2, 8) + dt.timedelta(hours=3 * n)
        )
        for n in range(CLIENTS)
    ]
    integration = [
        SessionFactory(
            patient=patient,
            kind="integration",
            starts_at=aware(2026, 3, 5, 8) + dt.timedelta(hours=2 * n),
        )
        for n in range(CLIENTS)
    ]

    results, refusals = _race(lambda i: services.integration_link(integration[i]))

    assert refusals == []
    assert len(results) == CLIENTS
    assert sorted(IntegrationLink.objects.values_list("medicine_session_id", flat=True)) == sorted(
        m.pk for m in medicine
    )


def test_a_questionnaire_is_answered_once() -> None:
    assignment = QuestionnaireAssignmentFactory(instrument="gad7")

    results, refusals = _race(
        lambda i: services.questionnaire_answer(
            assignment, answers=[i % 4] * 7, answered_by=None, now=aware(2026, 3, 5, 9)
        )
    )

    assert len(results) == 1
    assert [type(error) for error in refusals] == [RuleViolation] * (CLIENTS - 1)
    assert {error.violations[0]["rule"] for error in refusals} == {"questionnaire_answered"}
    assert QuestionnaireResponse.objects.count() == 1


def test_one_dose_record_per_session_under_concurrent_nurses() -> None:
    session = MedicineSessionFactory()
    Session.objects.filter(pk=session.pk).update(status=SessionStatus.CHECKED_IN)
    nurses = [StaffMemberFactory(clinic=session.clinic, roles=["nurse"]) for _ in range(CLIENTS)]
    VitalSignsFactory(session=session, recorded_by=nurses[0])
    started = session.starts_at + dt.timedelta(minutes=10)

    results, refusals = _race(
        lambda i: services.dose_record(
            session=session,
            route="im",
            dose_mg=Decimal(50 + i),
            weight_kg=Decimal("70.0"),
            started_at=started,
            administered_by=nurses[i],
            now=session.ends_at,
        )
    )

    assert len(results) == 1
    assert {error.violations[0]["rule"] for error in refusals} == {"dose_already_recorded"}
    assert DoseRecord.objects.count() == 1
