"""The therapist's integration caseload: for each of the therapist's patients, their series, their
recent medicine sessions with each one's integration status (``integration.status``: booked, done,
overdue, external, declined, none), how long overdue, the next session, the latest PHQ-9 and GAD-7
with their change from baseline, and the open safety events.

A therapist's patients are those the therapist holds a session with (starting at most
``RECENT_DAYS`` ago, or later) and those whose live series names them as the preferred therapist.
"Recent" medicine sessions are the ones that took place (checked in or completed) in the last
``RECENT_DAYS``.

A safety event (PHQ-9 item 9 above zero) is open while any of the staff alerts it raised is not
acknowledged.

Sorted by urgency, most urgent first:

1. an open safety event;
2. the most days overdue (the largest ``days_overdue`` of the patient's medicine sessions);
3. the most medicine sessions with overdue integration;
4. the most medicine sessions whose integration is still to be arranged (``none``);
5. the soonest next session (none: last);
6. the patient's name, then id.

The read costs a fixed number of queries however many patients there are (one per kind of thing).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import CharField, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from clinic.models import Patient, StaffMember
from protocols.models import SessionKind
from scheduling.alerts.models import AlertKind, StaffAlert
from scheduling.models import (
    LIVE_STATUSES,
    OPEN_SERIES_STATUSES,
    Session,
    SessionStaff,
    TreatmentSeries,
)

from .clinical_selectors import ScorePoint, integration_statuses, score_trends
from .gates import CompletionFacts, completion_violations
from .models import (
    SAFETY_ALERT_KEY_PREFIX,
    AdverseEvent,
    DoseRecord,
    Instrument,
    IntegrationSafetyEvent,
    VitalSigns,
    VitalsPhase,
)
from .status import NONE, OVERDUE, TOOK_PLACE, IntegrationStatus

RECENT_DAYS = 90


@dataclass(frozen=True, slots=True)
class CaseloadMedicine:
    session: Session
    integration: IntegrationStatus


@dataclass(frozen=True, slots=True)
class LatestScore:
    """The patient's latest answer to one instrument, with its series' baseline."""

    series_id: int
    baseline: int | None
    point: ScorePoint


@dataclass
class CaseloadPatient:
    patient: Patient
    series: list[TreatmentSeries] = field(default_factory=list)
    medicine_sessions: list[CaseloadMedicine] = field(default_factory=list)
    next_session: Session | None = None
    latest_scores: dict[str, LatestScore | None] = field(default_factory=dict)
    open_safety_events: list[IntegrationSafetyEvent] = field(default_factory=list)

    @property
    def days_overdue(self) -> int:
        return max((m.integration.days_overdue for m in self.medicine_sessions), default=0)

    def count(self, status: str) -> int:
        return sum(1 for m in self.medicine_sessions if m.integration.status == status)

    def urgency(self) -> tuple[Any, ...]:
        """The sort key, most urgent first (see the module docstring)."""
        next_start = self.next_session.starts_at if self.next_session is not None else None
        return (
            not self.open_safety_events,
            -self.days_overdue,
            -self.count(OVERDUE),
            -self.count(NONE),
            next_start is None,
            next_start or dt.datetime.min.replace(tzinfo=dt.UTC),
            self.patient.full_name,
            self.patient.pk,
        )


def caseload_patients(therapist: StaffMember, *, now: dt.datetime) -> list[Patient]:
    """The therapist's patients, each with ``next_session_id`` annotated; one query."""
    since = now - dt.timedelta(days=RECENT_DAYS)
    held = SessionStaff.objects.filter(staff_id=therapist.pk, session__starts_at__gte=since).values(
        "session__patient_id"
    )
    preferred = TreatmentSeries.objects.filter(
        preferred_therapist_id=therapist.pk, status__in=OPEN_SERIES_STATUSES
    ).values("patient_id")
    next_session = (
        Session.objects.filter(
            patient_id=OuterRef("pk"), status__in=LIVE_STATUSES, starts_at__gte=now
        )
        .order_by("starts_at", "pk")
        .values("pk")[:1]
    )
    return list(
        Patient.objects.filter(clinic_id=therapist.clinic_id)
        .filter(Q(pk__in=held) | Q(pk__in=preferred))
        .select_related("clinic")
        .annotate(next_session_id=Subquery(next_session))
        .order_by("full_name", "pk")
    )


def open_safety_events(patient_ids: list[int]) -> list[IntegrationSafetyEvent]:
    """The patients' safety events that still have an unacknowledged alert; one query."""
    unacknowledged = StaffAlert.objects.filter(
        kind=AlertKind.PHQ9_SELF_HARM,
        acknowledged_at__isnull=True,
        dedupe_key__startswith=Concat(
            Value(SAFETY_ALERT_KEY_PREFIX),
            Cast(OuterRef("pk"), output_field=CharField()),
            Value(":"),
            output_field=CharField(),
        ),
    )
    return list(
        IntegrationSafetyEvent.objects.filter(patient_id__in=patient_ids)
        .filter(Exists(unacknowledged))
        .order_by("-raised_at", "-pk")
    )


def caseload(therapist: StaffMember, *, now: dt.datetime | None = None) -> list[CaseloadPatient]:
    """The therapist's caseload, most urgent first; a fixed number of queries (eleven)."""
    now = now or timezone.now()
    patients = caseload_patients(therapist, now=now)
    rows = {patient.pk: CaseloadPatient(patient) for patient in patients}
    ids = list(rows)
    next_ids = [p.next_session_id for p in patients if p.next_session_id is not None]  # type: ignore[attr-defined]
    next_sessions = Session.objects.select_related("clinic").in_bulk(next_ids)
    for patient in patients:
        rows[patient.pk].next_session = next_sessions.get(patient.next_session_id)  # type: ignore[attr-defined]
    series = list(
        TreatmentSeries.objects.filter(patient_id__in=ids)
        .select_related("protocol_version__protocol")
        .order_by("-created_at", "-pk")
    )
    for item in series:
        rows[item.patient_id].series.append(item)
    medicine = list(
        Session.objects.filter(
            patient_id__in=ids,
            kind=SessionKind.MEDICINE,
            status__in=TOOK_PLACE,
            starts_at__gte=now - dt.timedelta(days=RECENT_DAYS),
        )
        .select_related("clinic")
        .order_by("starts_at", "pk")
    )
    statuses = integration_statuses(medicine, now=now)
    for session in medicine:
        rows[session.patient_id].medicine_sessions.append(
            CaseloadMedicine(session, statuses[session.pk])
        )
    _attach_latest_scores(rows, series)
    for event in open_safety_events(ids):
        rows[event.patient_id].open_safety_events.append(event)
    return sorted(rows.values(), key=CaseloadPatient.urgency)


def _attach_latest_scores(rows: dict[int, CaseloadPatient], series: list[TreatmentSeries]) -> None:
    patient_of = {item.pk: item.patient_id for item in series}
    latest: dict[int, dict[str, LatestScore]] = defaultdict(dict)
    for series_id, trends in score_trends(list(patient_of)).items():
        for instrument, trend in trends.items():
            point = trend.latest
            if point is None:
                continue
            found = latest[patient_of[series_id]].get(instrument)
            if found is None or (found.point.answered_at, found.point.assignment_id) < (
                point.answered_at,
                point.assignment_id,
            ):
                latest[patient_of[series_id]][instrument] = LatestScore(
                    series_id, trend.baseline, point
                )
    for patient_id, row in rows.items():
        row.latest_scores = {
            instrument: latest[patient_id].get(instrument) for instrument in Instrument.values
        }


# ---------------------------------------------------------------------------------------------
# The clinical record of a medicine session


@dataclass(frozen=True, slots=True)
class ClinicalRecord:
    session: Session
    dose: DoseRecord | None
    vital_signs: list[VitalSigns]
    adverse_events: list[AdverseEvent]

    @property
    def missing_for_completion(self) -> list[dict[str, Any]]:
        """What the completion gate would refuse, from what is loaded (no query)."""
        return completion_violations(
            CompletionFacts(
                session_id=self.session.pk,
                has_dose_record=self.dose is not None,
                has_dose_end=self.dose is not None and self.dose.ended_at is not None,
                has_post_session_vitals=any(
                    vitals.phase == VitalsPhase.AFTER for vitals in self.vital_signs
                ),
                is_discharged=self.dose is not None and self.dose.is_discharged,
            )
        )


def clinical_record(session: Session) -> ClinicalRecord:
    """The dose, vital signs (in time order) and adverse events of a medicine session; three
    queries."""
    return ClinicalRecord(
        session=session,
        dose=DoseRecord.objects.filter(session_id=session.pk).first(),
        vital_signs=list(
            VitalSigns.objects.filter(session_id=session.pk).order_by("measured_at", "pk")
        ),
        adverse_events=list(
            AdverseEvent.objects.filter(dose__session_id=session.pk).order_by("noted_at", "pk")
        ),
    )
