"""Shapes of the caseload, the clinical record of a medicine session, integration and outcome
measures. Input serializers check shape only; the services decide. Times are given in the clinic's
zone (the ``zone`` in the serializer context)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.api.fields import OffsetDateTimeField, StrictDateField
from clinic.api.serializers import StrictSerializer
from protocols.models import Route

from ..clinical_selectors import ScoreTrend
from ..models import (
    AdverseEvent,
    AdverseEventCode,
    DoseRecord,
    Instrument,
    IntegrationDecline,
    IntegrationNote,
    IntegrationSafetyEvent,
    Milestone,
    OutsideConfirmer,
    OutsideIntegration,
    QuestionnaireAssignment,
    QuestionnaireResponse,
    Severity,
    VitalSigns,
    VitalsPhase,
)
from ..services import DISCHARGE_CRITERIA
from ..status import STATUSES

# ---------------------------------------------------------------------------------------------
# The caseload


class CaseloadQuerySerializer(StrictSerializer):
    therapist = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    page = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)


class IntegrationStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(STATUSES))
    due_on = serializers.DateField(
        allow_null=True, help_text="The last local date integration may start on."
    )
    overdue_from = OffsetDateTimeField(help_text="The first instant integration is overdue.")
    days_overdue = serializers.IntegerField(help_text="0 unless overdue.")
    sessions = serializers.ListField(
        child=serializers.IntegerField(),
        source="session_ids",
        help_text="The integration sessions here that decided the status.",
    )
    outside_integrations = serializers.ListField(
        child=serializers.IntegerField(),
        source="outside_ids",
        help_text="The outside-therapist records that decided the status.",
    )


class CaseloadMedicineSerializer(serializers.Serializer):
    session = serializers.IntegerField(source="session.pk")
    series = serializers.IntegerField(source="session.series_id", allow_null=True)
    starts_at = OffsetDateTimeField(source="session.starts_at")
    status = serializers.CharField(source="session.status")
    route = serializers.CharField(source="session.route")
    integration = IntegrationStatusSerializer()


class CaseloadSeriesSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    protocol_name = serializers.CharField(source="protocol_version.protocol.name")
    care_model = serializers.CharField(source="protocol_version.protocol.care_model")
    status = serializers.CharField()


class NextSessionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    starts_at = OffsetDateTimeField()


class LatestScoreSerializer(serializers.Serializer):
    series = serializers.IntegerField(source="series_id")
    total_score = serializers.IntegerField(source="point.total_score")
    severity = serializers.ChoiceField(choices=Severity.choices, source="point.severity")
    milestone = serializers.ChoiceField(choices=Milestone.choices, source="point.milestone")
    answered_at = OffsetDateTimeField(source="point.answered_at")
    baseline = serializers.IntegerField(allow_null=True)
    change_from_baseline = serializers.IntegerField(
        source="point.change_from_baseline",
        allow_null=True,
        help_text="Score minus baseline (negative: better); null without a baseline.",
    )


class SafetyEventSerializer(serializers.ModelSerializer):
    raised_at = OffsetDateTimeField()

    class Meta:
        model = IntegrationSafetyEvent
        fields = ["id", "item_number", "answer", "raised_at", "therapist", "prescriber"]


class CaseloadScoresSerializer(serializers.Serializer):
    phq9 = LatestScoreSerializer(allow_null=True)
    gad7 = LatestScoreSerializer(allow_null=True)


class CaseloadPatientSerializer(serializers.Serializer):
    patient = serializers.IntegerField(source="patient.pk")
    patient_name = serializers.CharField(source="patient.full_name")
    days_overdue = serializers.IntegerField(
        help_text="The most days any of the patient's integrations is overdue."
    )
    series = CaseloadSeriesSerializer(many=True)
    medicine_sessions = CaseloadMedicineSerializer(many=True)
    next_session = NextSessionSerializer(allow_null=True)
    scores = CaseloadScoresSerializer(source="latest_scores")
    open_safety_events = SafetyEventSerializer(many=True)


class CaseloadSerializer(serializers.Serializer):
    """A page of the caseload (API.md: lists are paginated), with the therapist it belongs to."""

    therapist = serializers.IntegerField()
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CaseloadPatientSerializer(many=True)


# ---------------------------------------------------------------------------------------------
# The clinical record of a medicine session


class DoseInputSerializer(StrictSerializer):
    route = serializers.ChoiceField(choices=Route.choices)
    dose_mg = serializers.DecimalField(max_digits=7, decimal_places=2)
    weight_kg = serializers.DecimalField(
        max_digits=5, decimal_places=1, help_text="The weight the dose was calculated for."
    )
    started_at = OffsetDateTimeField()
    ended_at = OffsetDateTimeField(required=False)


class DoseEndInputSerializer(StrictSerializer):
    ended_at = OffsetDateTimeField()


class VitalSignsInputSerializer(StrictSerializer):
    phase = serializers.ChoiceField(choices=VitalsPhase.choices)
    measured_at = OffsetDateTimeField()
    systolic_mmhg = serializers.IntegerField(min_value=0, max_value=1000)
    diastolic_mmhg = serializers.IntegerField(min_value=0, max_value=1000)
    heart_rate_bpm = serializers.IntegerField(min_value=0, max_value=1000)
    spo2_percent = serializers.IntegerField(min_value=0, max_value=100)


class AdverseEventInputSerializer(StrictSerializer):
    code = serializers.ChoiceField(choices=AdverseEventCode.choices)
    noted_at = OffsetDateTimeField()
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class DischargeCriteriaSerializer(StrictSerializer):
    is_alert_and_oriented = serializers.BooleanField()
    are_vital_signs_stable = serializers.BooleanField()
    is_walking_steadily = serializers.BooleanField()
    is_nausea_controlled = serializers.BooleanField()
    is_dissociation_resolved = serializers.BooleanField()


assert set(DischargeCriteriaSerializer().fields) == set(DISCHARGE_CRITERIA)


class DischargeInputSerializer(StrictSerializer):
    discharged_at = OffsetDateTimeField()
    escort_handoff_name = serializers.CharField(
        max_length=200, help_text="Who takes the patient home (no driving until the next day)."
    )
    criteria = DischargeCriteriaSerializer()


class VitalSignsSerializer(serializers.ModelSerializer):
    measured_at = OffsetDateTimeField()

    class Meta:
        model = VitalSigns
        fields = [
            "id",
            "session",
            "phase",
            "measured_at",
            "systolic_mmhg",
            "diastolic_mmhg",
            "heart_rate_bpm",
            "spo2_percent",
            "recorded_by",
        ]


class AdverseEventSerializer(serializers.ModelSerializer):
    noted_at = OffsetDateTimeField()

    class Meta:
        model = AdverseEvent
        fields = ["id", "code", "notes", "noted_at", "recorded_by"]


class DischargeSerializer(serializers.Serializer):
    discharged_at = OffsetDateTimeField()
    discharged_by = serializers.IntegerField(source="discharged_by_id")
    escort_handoff_name = serializers.CharField()
    criteria = serializers.SerializerMethodField()

    @extend_schema_field(DischargeCriteriaSerializer)
    def get_criteria(self, dose: DoseRecord) -> dict[str, bool]:
        return {name: bool(getattr(dose, name)) for name in DISCHARGE_CRITERIA}


class DoseRecordSerializer(serializers.ModelSerializer):
    started_at = OffsetDateTimeField()
    ended_at = OffsetDateTimeField(allow_null=True)
    discharge = serializers.SerializerMethodField()

    class Meta:
        model = DoseRecord
        fields = [
            "id",
            "session",
            "route",
            "dose_mg",
            "weight_kg",
            "dose_mg_per_kg",
            "started_at",
            "ended_at",
            "administered_by",
            "discharge",
        ]

    @extend_schema_field(DischargeSerializer(allow_null=True))
    def get_discharge(self, dose: DoseRecord) -> dict[str, Any] | None:
        if not dose.is_discharged:
            return None
        return DischargeSerializer(dose, context=self.context).data


class MissingForCompletionSerializer(serializers.Serializer):
    rule = serializers.CharField()
    message = serializers.CharField()
    sessions = serializers.ListField(child=serializers.IntegerField())
    suggested_fix = serializers.CharField(allow_null=True)


class ClinicalRecordSerializer(serializers.Serializer):
    session = serializers.IntegerField()
    patient = serializers.IntegerField()
    status = serializers.CharField()
    dose = DoseRecordSerializer(allow_null=True)
    vital_signs = VitalSignsSerializer(many=True)
    adverse_events = AdverseEventSerializer(many=True)
    can_complete = serializers.BooleanField(
        help_text="True when the dose, the vital signs after it and the discharge are recorded."
    )
    missing_for_completion = MissingForCompletionSerializer(many=True)


# ---------------------------------------------------------------------------------------------
# Integration


class OutsideIntegrationInputSerializer(StrictSerializer):
    held_on = StrictDateField(help_text="The local date of the outside session.")
    therapist_name = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Default: the one on file."
    )
    therapist_email = serializers.EmailField(required=False, allow_blank=True)
    therapist_phone = serializers.CharField(required=False, allow_blank=True, max_length=32)
    confirmed_by = serializers.ChoiceField(
        choices=OutsideConfirmer.choices,
        required=False,
        help_text="Who confirmed it took place, if someone already did.",
    )


class OutsideConfirmInputSerializer(StrictSerializer):
    confirmed_by = serializers.ChoiceField(choices=OutsideConfirmer.choices)


class OutsideIntegrationSerializer(serializers.ModelSerializer):
    confirmed_at = OffsetDateTimeField(allow_null=True)
    is_confirmed = serializers.BooleanField()

    class Meta:
        model = OutsideIntegration
        fields = [
            "id",
            "medicine_session",
            "therapist_name",
            "therapist_email",
            "therapist_phone",
            "held_on",
            "is_confirmed",
            "confirmed_by",
            "confirmed_at",
        ]


class DeclineInputSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000)


class IntegrationDeclineSerializer(serializers.ModelSerializer):
    recorded_at = OffsetDateTimeField()

    class Meta:
        model = IntegrationDecline
        fields = ["id", "medicine_session", "series", "reason", "recorded_by", "recorded_at"]


class NoteInputSerializer(StrictSerializer):
    body = serializers.CharField(max_length=20_000)


class IntegrationNoteSerializer(serializers.ModelSerializer):
    author_name = serializers.CharField(source="author.full_name")
    created_at = OffsetDateTimeField()

    class Meta:
        model = IntegrationNote
        fields = ["id", "session", "author", "author_name", "body", "created_at"]


# ---------------------------------------------------------------------------------------------
# Outcome measures


class AnswersInputSerializer(StrictSerializer):
    answers = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=3),
        min_length=1,
        max_length=20,
        help_text="One answer 0-3 per item, in the published order (9 for PHQ-9, 7 for GAD-7).",
    )


class QuestionItemSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    text = serializers.CharField()


class QuestionOptionSerializer(serializers.Serializer):
    value = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]


class QuestionnaireTextSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    stem = serializers.CharField()
    items = QuestionItemSerializer(many=True)
    options = QuestionOptionSerializer(many=True)


class QuestionnaireAssignmentSerializer(serializers.ModelSerializer):
    available_from = OffsetDateTimeField()
    due_at = OffsetDateTimeField()
    is_answered = serializers.SerializerMethodField()
    questionnaire = serializers.SerializerMethodField()

    class Meta:
        model = QuestionnaireAssignment
        fields = [
            "id",
            "series",
            "instrument",
            "milestone",
            "medicine_session",
            "available_from",
            "due_at",
            "is_answered",
            "questionnaire",
        ]

    def get_is_answered(self, assignment: QuestionnaireAssignment) -> bool:
        return bool(getattr(assignment, "is_answered", False))

    @extend_schema_field(QuestionnaireTextSerializer)
    def get_questionnaire(self, assignment: QuestionnaireAssignment) -> dict[str, Any]:
        from ..measures import QUESTIONNAIRES

        text = QUESTIONNAIRES[assignment.instrument].as_dict()
        return {key: text[key] for key in ("code", "name", "stem", "items", "options")}


class QuestionnaireResponseSerializer(serializers.ModelSerializer):
    series = serializers.IntegerField(source="assignment.series_id")
    milestone = serializers.CharField(source="assignment.milestone")
    answered_at = OffsetDateTimeField()
    answers = serializers.ListField(child=serializers.IntegerField())
    safety_alert_raised = serializers.SerializerMethodField()

    class Meta:
        model = QuestionnaireResponse
        fields = [
            "id",
            "assignment",
            "series",
            "instrument",
            "milestone",
            "answers",
            "total_score",
            "severity",
            "answered_at",
            "safety_alert_raised",
        ]

    def get_safety_alert_raised(self, response: QuestionnaireResponse) -> bool:
        return IntegrationSafetyEvent.objects.filter(response_id=response.pk).exists()


class ScorePointSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(source="assignment_id")
    milestone = serializers.ChoiceField(choices=Milestone.choices)
    medicine_session = serializers.IntegerField(source="medicine_session_id", allow_null=True)
    answered_at = OffsetDateTimeField()
    total_score = serializers.IntegerField()
    severity = serializers.ChoiceField(choices=Severity.choices)
    change_from_baseline = serializers.IntegerField(allow_null=True)


class ScoreTrendSerializer(serializers.Serializer):
    instrument = serializers.ChoiceField(choices=Instrument.choices)
    baseline = serializers.IntegerField(allow_null=True)
    points = ScorePointSerializer(many=True)


class SeriesScoresSerializer(serializers.Serializer):
    series = serializers.IntegerField()
    trends = ScoreTrendSerializer(many=True)


def trends_of(series_id: int, trends: dict[str, ScoreTrend]) -> dict[str, Any]:
    """Both instruments, in a fixed order, answered or not."""
    return {
        "series": series_id,
        "trends": [
            trends.get(instrument) or ScoreTrend(instrument, None, ())
            for instrument in Instrument.values
        ],
    }
