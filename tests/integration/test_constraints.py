"""The database refuses clinical records that must never exist, whatever code writes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from clinic.models import Role
from integration.models import DoseRecord
from tests.factories import (
    AdverseEventFactory,
    DoseRecordFactory,
    IntegrationDeclineFactory,
    IntegrationSafetyEventFactory,
    MedicineSessionFactory,
    OutsideIntegrationFactory,
    QuestionnaireAssignmentFactory,
    QuestionnaireResponseFactory,
    StaffMemberFactory,
    TreatmentSeriesFactory,
    VitalSignsFactory,
)

pytestmark = pytest.mark.django_db


def _refused(factory, **fields) -> str:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        factory(**fields)
    return caught.value.__cause__.diag.constraint_name


def test_one_dose_record_per_session() -> None:
    first = DoseRecordFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DoseRecordFactory(session=first.session)
    assert DoseRecord.objects.count() == 1


@pytest.mark.parametrize(
    ("mg", "kg", "per_kg", "holds"),
    [
        ("52.50", "70.0", "0.750", True),
        ("52.50", "70.0", "0.800", False),
        ("35.00", "68.3", "0.512", True),  # 0.51244 rounded
        ("35.00", "68.3", "0.513", False),
        ("1.01", "20.0", "0.051", True),  # 0.0505 rounded half up
        ("1.01", "20.0", "0.050", True),  # ... or down: both within half a unit
        ("1.01", "20.0", "0.052", False),
    ],
)
def test_mg_per_kg_must_be_mg_over_the_weight(mg, kg, per_kg, holds) -> None:
    fields = {"dose_mg": Decimal(mg), "weight_kg": Decimal(kg), "dose_mg_per_kg": Decimal(per_kg)}
    if holds:
        assert DoseRecordFactory(**fields).pk
    else:
        assert _refused(DoseRecordFactory, **fields) == "dose_mg_per_kg_is_mg_over_weight"


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {
                "dose_mg": Decimal("1001.00"),
                "weight_kg": Decimal("350.0"),
                "dose_mg_per_kg": Decimal("2.860"),
            },
            "dose_mg_plausible",
        ),
        ({"route": "oral"}, "dose_route_valid"),
        (
            {
                "weight_kg": Decimal("19.9"),
                "dose_mg": Decimal("10.00"),
                "dose_mg_per_kg": Decimal("0.503"),
            },
            "dose_weight_plausible",
        ),
        (
            {"dose_mg": Decimal("800.00"), "dose_mg_per_kg": Decimal("11.429")},
            "dose_mg_per_kg_plausible",
        ),
    ],
)
def test_dose_ranges(fields, constraint) -> None:
    assert _refused(DoseRecordFactory, **fields) == constraint


def test_a_dose_ends_after_it_starts() -> None:
    session = MedicineSessionFactory()
    started = session.starts_at + dt.timedelta(minutes=10)
    assert (
        _refused(DoseRecordFactory, session=session, started_at=started, ended_at=started)
        == "dose_ends_after_start"
    )


@pytest.mark.parametrize(
    ("overrides", "holds"),
    [
        ({}, True),
        ({"discharged_at": "dose end"}, False),
        ({"is_walking_steadily": False}, False),
        ({"escort_handoff_name": ""}, False),
        ({"discharged_by": None}, False),
        ({"ended_at": None}, False),
        ({"discharged_at": None, "discharged_by": None}, True),  # not yet discharged
    ],
    ids=[
        "a good discharge",
        "not after the end of the dose",
        "a criterion unmet",
        "no handoff",
        "by nobody",
        "dose not ended",
        "not discharged yet",
    ],
)
def test_a_discharge_after_the_dose_meeting_every_criterion(overrides, holds) -> None:
    session = MedicineSessionFactory()
    nurse = StaffMemberFactory(clinic=session.clinic, roles=[Role.NURSE])
    started = session.starts_at + dt.timedelta(minutes=10)
    fields = {
        "session": session,
        "administered_by": nurse,
        "started_at": started,
        "ended_at": started + dt.timedelta(minutes=1),
        "discharged_at": session.starts_at + dt.timedelta(minutes=110),
        "discharged_by": nurse,
        "escort_handoff_name": "Robin Nguyen",
        "is_alert_and_oriented": True,
        "are_vital_signs_stable": True,
        "is_walking_steadily": True,
        "is_nausea_controlled": True,
        "is_dissociation_resolved": True,
        **overrides,
    }
    if fields["discharged_at"] == "dose end":
        fields["discharged_at"] = fields["ended_at"]

    if holds:
        assert DoseRecordFactory(**fields).pk
    else:
        assert (
            _refused(DoseRecordFactory, **fields)
            == "dose_discharge_after_end_meeting_every_criterion"
        )


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"systolic_mmhg": 49, "diastolic_mmhg": 30}, "vitals_systolic_plausible"),
        ({"systolic_mmhg": 261}, "vitals_systolic_plausible"),
        ({"diastolic_mmhg": 19}, "vitals_diastolic_plausible"),
        ({"systolic_mmhg": 250, "diastolic_mmhg": 161}, "vitals_diastolic_plausible"),
        ({"systolic_mmhg": 90, "diastolic_mmhg": 90}, "vitals_diastolic_below_systolic"),
        ({"heart_rate_bpm": 19}, "vitals_heart_rate_plausible"),
        ({"heart_rate_bpm": 251}, "vitals_heart_rate_plausible"),
        ({"spo2_percent": 49}, "vitals_spo2_plausible"),
        ({"spo2_percent": 101}, "vitals_spo2_plausible"),
        ({"phase": "later"}, "vitals_phase_valid"),
    ],
)
def test_vital_signs_ranges(fields, constraint) -> None:
    assert _refused(VitalSignsFactory, **fields) == constraint


@pytest.mark.parametrize(
    "fields",
    [
        {"systolic_mmhg": 50, "diastolic_mmhg": 20, "heart_rate_bpm": 20, "spo2_percent": 50},
        {"systolic_mmhg": 260, "diastolic_mmhg": 160, "heart_rate_bpm": 250, "spo2_percent": 100},
    ],
)
def test_vital_signs_range_edges_are_allowed(fields) -> None:
    assert VitalSignsFactory(**fields).pk


@pytest.mark.parametrize(
    ("instrument", "total", "severity", "holds"),
    [
        ("phq9", 4, "minimal", True),
        ("phq9", 5, "minimal", False),
        ("phq9", 19, "moderately_severe", True),
        ("phq9", 27, "severe", True),
        ("phq9", 28, "severe", False),
        ("gad7", 15, "severe", True),
        ("gad7", 15, "moderately_severe", False),
        ("gad7", 22, "severe", False),
    ],
)
def test_a_stored_score_sits_in_its_instruments_band(instrument, total, severity, holds) -> None:
    fields = {
        "assignment__instrument": instrument,
        "total_score": total,
        "severity": severity,
    }
    if holds:
        assert QuestionnaireResponseFactory(**fields).pk
    else:
        assert (
            _refused(QuestionnaireResponseFactory, **fields)
            == "questionnaire_response_score_in_its_band"
        )


def test_one_assignment_per_series_milestone_instrument() -> None:
    series = TreatmentSeriesFactory()
    medicine = MedicineSessionFactory(patient=series.patient, series=series)
    QuestionnaireAssignmentFactory(series=series)
    QuestionnaireAssignmentFactory(series=series, instrument="gad7")
    QuestionnaireAssignmentFactory(
        series=series, milestone="before_medicine", medicine_session=medicine
    )

    assert _refused(QuestionnaireAssignmentFactory, series=series) == (
        "questionnaire_once_per_series_milestone"
    )
    assert _refused(
        QuestionnaireAssignmentFactory,
        series=series,
        milestone="before_medicine",
        medicine_session=medicine,
    ) == ("questionnaire_once_per_medicine_session")
    assert _refused(QuestionnaireAssignmentFactory, series=series, milestone="before_medicine") == (
        "questionnaire_session_only_before_medicine"
    )
    assert _refused(
        QuestionnaireAssignmentFactory,
        series=series,
        milestone="end_of_series",
        available_from=dt.datetime(2026, 3, 10, tzinfo=dt.UTC),
        due_at=dt.datetime(2026, 3, 9, tzinfo=dt.UTC),
    ) == ("questionnaire_available_before_due")


@pytest.mark.parametrize(
    ("factory", "fields", "constraint"),
    [
        (
            OutsideIntegrationFactory,
            {"confirmed_by": "patient"},
            "outside_integration_confirmed_by_whom_and_when",
        ),
        (
            OutsideIntegrationFactory,
            {"confirmed_at": dt.datetime(2026, 3, 12, tzinfo=dt.UTC)},
            "outside_integration_confirmed_by_whom_and_when",
        ),
        (OutsideIntegrationFactory, {"therapist_email": ""}, "outside_integration_has_contact"),
        (IntegrationDeclineFactory, {"reason": ""}, "integration_decline_has_reason"),
        (IntegrationSafetyEventFactory, {"answer": 0}, "safety_event_answer_above_zero"),
        (AdverseEventFactory, {"code": "other"}, "adverse_event_other_is_described"),
        (AdverseEventFactory, {"code": "euphoria"}, "adverse_event_code_valid"),
    ],
)
def test_record_invariants(factory, fields, constraint) -> None:
    assert _refused(factory, **fields) == constraint


def test_a_decline_is_for_a_session_or_a_series_not_both() -> None:
    series = TreatmentSeriesFactory()
    session = MedicineSessionFactory(patient=series.patient, series=series)
    assert (
        _refused(IntegrationDeclineFactory, medicine_session=session, series=series)
        == "integration_decline_session_or_series"
    )
    assert (
        _refused(
            IntegrationDeclineFactory,
            medicine_session=None,
            series=None,
            recorded_by=StaffMemberFactory(clinic=series.patient.clinic),
        )
        == "integration_decline_session_or_series"
    )
