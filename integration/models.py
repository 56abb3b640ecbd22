"""What follows a medicine session, and the clinical record around it.

* Integration: each medicine session links to the integration that follows it, whether booked
  here (``IntegrationLink`` to a Session of kind integration), done by the patient's outside
  therapist (``OutsideIntegration``) or declined (``IntegrationDecline``). Its status is computed by
  ``integration.status.integration_status`` from plain values.
* Integration notes, written by the session's therapist (``IntegrationNote``).
* Outcome measures: PHQ-9 and GAD-7 assignments at protocol milestones and their scored answers
  (``QuestionnaireAssignment``, ``QuestionnaireResponse``); a PHQ-9 item 9 answer above zero is an
  ``IntegrationSafetyEvent``.
* The dose record of a medicine session, with its vitals, adverse events and discharge
  (``DoseRecord``, ``VitalSigns``, ``AdverseEvent``).

The database holds the invariants a clinician must be able to rely on (check constraints on
plausible ranges, one dose record per session, mg/kg consistent with mg and weight, discharge after
the end of the dose); the services check first to give a good error message.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Abs
from django.db.models.lookups import LessThanOrEqual

from clinic.models import Patient, StaffMember
from protocols.models import Route
from scheduling.models import Session, TreatmentSeries

# ---------------------------------------------------------------------------------------------
# Integration after a medicine session


class IntegrationLink(models.Model):
    """An integration session booked here that follows ``medicine_session``.

    An integration session follows exactly one medicine session (one link per integration
    session); a medicine session may be followed by several. Links are written by
    ``integration.services.integration_link``; see there for the rule.
    """

    medicine_session = models.ForeignKey(
        Session, on_delete=models.PROTECT, related_name="integration_links"
    )
    integration_session = models.OneToOneField(
        Session, on_delete=models.PROTECT, related_name="integration_link"
    )
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["medicine_session", "integration_session"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(medicine_session=F("integration_session")),
                name="integration_link_two_sessions",
            )
        ]

    def __str__(self) -> str:
        return (
            f"integration {self.integration_session_id} after medicine {self.medicine_session_id}"
        )


class OutsideConfirmer(models.TextChoices):
    THERAPIST = "therapist", "The outside therapist"
    PATIENT = "patient", "The patient"


class OutsideIntegration(models.Model):
    """Integration done by the patient's own therapist outside the clinic. The clinic still tracks
    that it happened: it counts as done once the outside therapist or the patient confirms it."""

    medicine_session = models.ForeignKey(
        Session, on_delete=models.PROTECT, related_name="outside_integrations"
    )
    therapist_name = models.CharField(max_length=200)
    therapist_email = models.EmailField(blank=True)
    therapist_phone = models.CharField(max_length=32, blank=True)
    held_on = models.DateField(help_text="The local date of the outside integration session.")
    confirmed_by = models.CharField(max_length=20, choices=OutsideConfirmer.choices, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["medicine_session", "held_on", "id"]
        verbose_name = "outside integration"
        constraints = [
            models.CheckConstraint(
                condition=(Q(confirmed_by="") & Q(confirmed_at__isnull=True))
                | (Q(confirmed_by__in=OutsideConfirmer.values) & Q(confirmed_at__isnull=False)),
                name="outside_integration_confirmed_by_whom_and_when",
            ),
            models.CheckConstraint(
                condition=~Q(therapist_name=""), name="outside_integration_has_therapist"
            ),
            models.CheckConstraint(
                condition=~Q(therapist_email="") | ~Q(therapist_phone=""),
                name="outside_integration_has_contact",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.therapist_name} on {self.held_on} (medicine {self.medicine_session_id})"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class IntegrationDecline(models.Model):
    """The patient chose no integration therapy after it was offered: for one medicine session, or
    for every medicine session of a series (an infusion-only patient). Pain patients are offered
    it too; the decline records who recorded the choice and why."""

    medicine_session = models.OneToOneField(
        Session,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="integration_decline",
    )
    series = models.OneToOneField(
        TreatmentSeries,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="integration_decline",
    )
    reason = models.TextField()
    recorded_by = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name = "integration decline"
        constraints = [
            models.CheckConstraint(
                condition=Q(medicine_session__isnull=True, series__isnull=False)
                | Q(medicine_session__isnull=False, series__isnull=True),
                name="integration_decline_session_or_series",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="integration_decline_has_reason"),
        ]

    def __str__(self) -> str:
        scope = (
            f"medicine session {self.medicine_session_id}"
            if self.medicine_session_id
            else f"series {self.series_id}"
        )
        return f"integration declined for {scope}"


class IntegrationNote(models.Model):
    """A therapist's note on an integration session. Written by the session's therapist only, read
    by that therapist and clinical supervisors only, and every read is audited
    (``integration.services.note_read``). Notes are not edited: an addendum is a new note."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="integration_notes")
    author = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["session", "created_at", "id"]
        verbose_name = "integration note"
        constraints = [
            models.CheckConstraint(condition=~Q(body=""), name="integration_note_has_body"),
        ]

    def __str__(self) -> str:
        return f"note {self.pk} on session {self.session_id}"


# ---------------------------------------------------------------------------------------------
# Outcome measures


class Instrument(models.TextChoices):
    PHQ9 = "phq9", "PHQ-9"
    GAD7 = "gad7", "GAD-7"


class Milestone(models.TextChoices):
    BASELINE = "baseline", "Baseline, before the first medicine session"
    BEFORE_MEDICINE = "before_medicine", "Before a later medicine session"
    END_OF_SERIES = "end_of_series", "End of series"


class Severity(models.TextChoices):
    MINIMAL = "minimal", "Minimal"
    MILD = "mild", "Mild"
    MODERATE = "moderate", "Moderate"
    MODERATELY_SEVERE = "moderately_severe", "Moderately severe"
    SEVERE = "severe", "Severe"


class QuestionnaireAssignment(models.Model):
    """A questionnaire the patient is asked to answer at a protocol milestone, in the portal from
    ``available_from``; ``due_at`` is when it should be answered by (the medicine session's start
    for the baseline and before-medicine milestones)."""

    series = models.ForeignKey(
        TreatmentSeries, on_delete=models.PROTECT, related_name="questionnaire_assignments"
    )
    instrument = models.CharField(max_length=10, choices=Instrument.choices)
    milestone = models.CharField(max_length=20, choices=Milestone.choices)
    medicine_session = models.ForeignKey(
        Session,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="questionnaire_assignments",
        help_text="The medicine session a before-medicine questionnaire precedes.",
    )
    available_from = models.DateTimeField()
    due_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text="No longer asked: its medicine session was cancelled."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["series", "due_at", "instrument", "id"]
        verbose_name = "questionnaire assignment"
        indexes = [models.Index(fields=["due_at"], name="questionnaire_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "milestone", "instrument"],
                condition=Q(medicine_session__isnull=True),
                name="questionnaire_once_per_series_milestone",
            ),
            models.UniqueConstraint(
                fields=["series", "milestone", "instrument", "medicine_session"],
                condition=Q(medicine_session__isnull=False),
                name="questionnaire_once_per_medicine_session",
            ),
            models.CheckConstraint(
                condition=Q(milestone="before_medicine", medicine_session__isnull=False)
                | (~Q(milestone="before_medicine") & Q(medicine_session__isnull=True)),
                name="questionnaire_session_only_before_medicine",
            ),
            models.CheckConstraint(
                condition=Q(instrument__in=Instrument.values), name="questionnaire_instrument_valid"
            ),
            models.CheckConstraint(
                condition=Q(milestone__in=Milestone.values), name="questionnaire_milestone_valid"
            ),
            models.CheckConstraint(
                condition=Q(available_from__lte=F("due_at")),
                name="questionnaire_available_before_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_instrument_display()} at {self.milestone} (series {self.series_id})"


def _band(instrument: str, severity: str, low: int, high: int) -> Q:
    return Q(instrument=instrument, severity=severity, total_score__gte=low, total_score__lte=high)


class QuestionnaireResponse(models.Model):
    """The patient's answers to one assignment, scored on the server (``integration.measures``)."""

    assignment = models.OneToOneField(
        QuestionnaireAssignment, on_delete=models.PROTECT, related_name="response"
    )
    instrument = models.CharField(max_length=10, choices=Instrument.choices)
    answers = models.JSONField(help_text="One integer 0-3 per item, in the published order.")
    total_score = models.PositiveSmallIntegerField()
    severity = models.CharField(max_length=20, choices=Severity.choices)
    answered_at = models.DateTimeField()
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["answered_at", "id"]
        verbose_name = "questionnaire response"
        constraints = [
            # The published bands (Kroenke 2001; Spitzer 2006): a score outside its instrument's
            # range, or a band that does not match the score, cannot be stored.
            models.CheckConstraint(
                condition=_band("phq9", "minimal", 0, 4)
                | _band("phq9", "mild", 5, 9)
                | _band("phq9", "moderate", 10, 14)
                | _band("phq9", "moderately_severe", 15, 19)
                | _band("phq9", "severe", 20, 27)
                | _band("gad7", "minimal", 0, 4)
                | _band("gad7", "mild", 5, 9)
                | _band("gad7", "moderate", 10, 14)
                | _band("gad7", "severe", 15, 21),
                name="questionnaire_response_score_in_its_band",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_instrument_display()} {self.total_score} ({self.severity})"


#: The start of the dedupe key of every staff alert a safety event raises:
#: ``phq9_self_harm:<event id>:<role>``, written by ``services.safety_alert_raise`` and matched by
#: ``selectors.open_safety_events``.
SAFETY_ALERT_KEY_PREFIX = "phq9_self_harm:"


def safety_alert_key(event_id: int, role: str) -> str:
    return f"{SAFETY_ALERT_KEY_PREFIX}{event_id}:{role}"


class IntegrationSafetyEvent(models.Model):
    """A PHQ-9 item 9 answer above zero ("thoughts that you would be better off dead, or of hurting
    yourself"): part of the clinical record (which answer, which patient, when, who was alerted).
    Raised by ``integration.services.safety_alert_raise``."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="safety_events")
    response = models.OneToOneField(
        QuestionnaireResponse, on_delete=models.PROTECT, related_name="safety_event"
    )
    item_number = models.PositiveSmallIntegerField()
    answer = models.PositiveSmallIntegerField()
    raised_at = models.DateTimeField()
    therapist = models.ForeignKey(
        StaffMember, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    prescriber = models.ForeignKey(
        StaffMember, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-raised_at", "-id"]
        verbose_name = "integration safety event"
        constraints = [
            models.CheckConstraint(
                condition=Q(answer__gte=1, answer__lte=3), name="safety_event_answer_above_zero"
            ),
            models.CheckConstraint(
                condition=Q(item_number__gte=1, item_number__lte=9),
                name="safety_event_item_number_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient}: item {self.item_number} answered {self.answer}"


# ---------------------------------------------------------------------------------------------
# The dose record of a medicine session

#: Half a unit in the last place of ``dose_mg_per_kg`` (3 decimals), times the weight, is how far
#: mg/kg x kg may be from mg; the tiny extra absorbs binary rounding on backends without NUMERIC.
MG_PER_KG_TOLERANCE = Decimal("0.0005")


class DoseRecord(models.Model):
    """The medicine given in one medicine session, and the patient's discharge afterwards.

    ``dose_mg_per_kg`` is computed by the service from ``dose_mg`` and ``weight_kg`` (the weight
    used for the calculation); the database refuses a value that is not that quotient within its
    rounding. The discharge lives on the same row so that "discharge after the end of the dose" and
    "a discharge meets every criterion" are row constraints the database can enforce.
    """

    session = models.OneToOneField(Session, on_delete=models.PROTECT, related_name="dose_record")
    route = models.CharField(max_length=20, choices=Route.choices)
    dose_mg = models.DecimalField(max_digits=7, decimal_places=2)
    weight_kg = models.DecimalField(max_digits=5, decimal_places=1)
    dose_mg_per_kg = models.DecimalField(max_digits=6, decimal_places=3)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    administered_by = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Discharge: who, when, to whom, and the criteria they attest were met.
    discharged_at = models.DateTimeField(null=True, blank=True)
    discharged_by = models.ForeignKey(
        StaffMember, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    escort_handoff_name = models.CharField(
        max_length=200, blank=True, help_text="Who took the patient home."
    )
    is_alert_and_oriented = models.BooleanField(default=False)
    are_vital_signs_stable = models.BooleanField(default=False)
    is_walking_steadily = models.BooleanField(default=False)
    is_nausea_controlled = models.BooleanField(default=False)
    is_dissociation_resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["started_at", "id"]
        verbose_name = "dose record"
        constraints = [
            models.CheckConstraint(condition=Q(route__in=Route.values), name="dose_route_valid"),
            models.CheckConstraint(
                condition=Q(dose_mg__gt=0, dose_mg__lte=1000), name="dose_mg_plausible"
            ),
            models.CheckConstraint(
                condition=Q(weight_kg__gte=20, weight_kg__lte=350), name="dose_weight_plausible"
            ),
            models.CheckConstraint(
                condition=Q(dose_mg_per_kg__gt=0, dose_mg_per_kg__lte=10),
                name="dose_mg_per_kg_plausible",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(
                    Abs(F("dose_mg_per_kg") * F("weight_kg") - F("dose_mg")),
                    F("weight_kg") * Value(MG_PER_KG_TOLERANCE) + Value(Decimal("0.00001")),
                ),
                name="dose_mg_per_kg_is_mg_over_weight",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gt=F("started_at")),
                name="dose_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(discharged_at__isnull=True, discharged_by__isnull=True)
                | Q(
                    discharged_at__isnull=False,
                    discharged_by__isnull=False,
                    ended_at__isnull=False,
                    discharged_at__gt=F("ended_at"),
                    is_alert_and_oriented=True,
                    are_vital_signs_stable=True,
                    is_walking_steadily=True,
                    is_nausea_controlled=True,
                    is_dissociation_resolved=True,
                )
                & ~Q(escort_handoff_name=""),
                name="dose_discharge_after_end_meeting_every_criterion",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dose_mg} mg {self.route} ({self.dose_mg_per_kg} mg/kg)"

    @property
    def is_discharged(self) -> bool:
        return self.discharged_at is not None


class VitalsPhase(models.TextChoices):
    BEFORE = "before", "Before the dose"
    DURING = "during", "During the dose"
    AFTER = "after", "After the dose"


class VitalSigns(models.Model):
    """One set of vital signs around a medicine session. The ranges below are what a monitor can
    plausibly read, not what is normal: they catch a typing mistake, not a clinical concern."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="vital_signs")
    phase = models.CharField(max_length=10, choices=VitalsPhase.choices)
    measured_at = models.DateTimeField()
    systolic_mmhg = models.PositiveSmallIntegerField()
    diastolic_mmhg = models.PositiveSmallIntegerField()
    heart_rate_bpm = models.PositiveSmallIntegerField()
    spo2_percent = models.PositiveSmallIntegerField()
    recorded_by = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "measured_at", "id"]
        verbose_name = "vital signs"
        verbose_name_plural = "vital signs"
        indexes = [models.Index(fields=["session", "phase"], name="vitals_session_phase_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(phase__in=VitalsPhase.values), name="vitals_phase_valid"
            ),
            models.CheckConstraint(
                condition=Q(systolic_mmhg__gte=50, systolic_mmhg__lte=260),
                name="vitals_systolic_plausible",
            ),
            models.CheckConstraint(
                condition=Q(diastolic_mmhg__gte=20, diastolic_mmhg__lte=160),
                name="vitals_diastolic_plausible",
            ),
            models.CheckConstraint(
                condition=Q(diastolic_mmhg__lt=F("systolic_mmhg")),
                name="vitals_diastolic_below_systolic",
            ),
            models.CheckConstraint(
                condition=Q(heart_rate_bpm__gte=20, heart_rate_bpm__lte=250),
                name="vitals_heart_rate_plausible",
            ),
            models.CheckConstraint(
                condition=Q(spo2_percent__gte=50, spo2_percent__lte=100),
                name="vitals_spo2_plausible",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.phase}: {self.systolic_mmhg}/{self.diastolic_mmhg} mmHg, "
            f"{self.heart_rate_bpm} bpm, SpO2 {self.spo2_percent}%"
        )


class AdverseEventCode(models.TextChoices):
    """The adverse events of ketamine at antidepressant doses, as reported in the trials (Short et
    al., Lancet Psychiatry 2018, doi:10.1016/S2215-0366(17)30272-9)."""

    NAUSEA = "nausea", "Nausea"
    VOMITING = "vomiting", "Vomiting"
    HEADACHE = "headache", "Headache"
    DIZZINESS = "dizziness", "Dizziness"
    DISTRESSING_DISSOCIATION = "distressing_dissociation", "Distressing dissociation"
    ANXIETY = "anxiety", "Anxiety or panic"
    AGITATION = "agitation", "Agitation"
    CONFUSION = "confusion", "Confusion"
    HALLUCINATIONS = "hallucinations", "Hallucinations"
    EXCESSIVE_SEDATION = "excessive_sedation", "Excessive sedation"
    BLURRED_VISION = "blurred_vision", "Blurred or double vision"
    HYPERTENSION = "hypertension", "Blood pressure rise needing attention"
    TACHYCARDIA = "tachycardia", "Tachycardia"
    BRADYCARDIA = "bradycardia", "Bradycardia"
    DESATURATION = "desaturation", "Oxygen desaturation"
    HYPERSALIVATION = "hypersalivation", "Hypersalivation"
    INJECTION_SITE_REACTION = "injection_site_reaction", "Injection or infusion site reaction"
    OTHER = "other", "Other (described in the notes)"


class AdverseEvent(models.Model):
    dose = models.ForeignKey(DoseRecord, on_delete=models.PROTECT, related_name="adverse_events")
    code = models.CharField(max_length=30, choices=AdverseEventCode.choices)
    notes = models.TextField(blank=True)
    noted_at = models.DateTimeField()
    recorded_by = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["dose", "noted_at", "id"]
        verbose_name = "adverse event"
        constraints = [
            models.CheckConstraint(
                condition=Q(code__in=AdverseEventCode.values), name="adverse_event_code_valid"
            ),
            models.CheckConstraint(
                condition=~Q(code="other") | ~Q(notes=""),
                name="adverse_event_other_is_described",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_code_display()} (dose {self.dose_id})"
