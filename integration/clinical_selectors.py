"""Reads of the integration app: integration statuses, notes a user may read, questionnaires and
score trends, the dose record of a medicine session.

The caseload and the clinical record of a session, built from these, are in
``integration/selectors.py``. Each read is shaped so a list costs a fixed number of queries, not
one per row.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from clinic.models import Clinic, Role, StaffMember, User
from protocols.models import ProtocolRule, RuleType, SessionKind
from scheduling.models import Session, SessionStaff, TreatmentSeries

from .models import (
    DoseRecord,
    IntegrationDecline,
    IntegrationLink,
    IntegrationNote,
    Milestone,
    OutsideIntegration,
    QuestionnaireAssignment,
    QuestionnaireResponse,
)
from .status import (
    IntegrationStatus,
    IntegrationWindow,
    LinkedSessionFact,
    MedicineFact,
    OutsideFact,
    integration_status,
)

# ---------------------------------------------------------------------------------------------
# Who is who


def staff_of(user: User | None) -> StaffMember | None:
    """The active staff member behind a login, with roles prefetched (None for patients)."""
    if user is None or not user.is_authenticated:
        return None
    return (
        StaffMember.objects.filter(user_id=user.pk, is_active=True)
        .prefetch_related("role_grants")
        .first()
    )


def is_clinical_supervisor(user: User, clinic_id: int) -> bool:
    """A clinic admin of that clinic, or a superuser (who may do whatever a clinic admin may)."""
    if user.is_superuser:
        return True
    member = staff_of(user)
    return (
        member is not None and member.clinic_id == clinic_id and member.has_role(Role.CLINIC_ADMIN)
    )


# ---------------------------------------------------------------------------------------------
# Integration status


def integration_window(rules: Iterable[ProtocolRule]) -> IntegrationWindow:
    """The protocol's max_gap(after=medicine, before=integration), or the 7-day default."""
    for rule in rules:
        if (
            rule.type == RuleType.MAX_GAP
            and rule.after == SessionKind.MEDICINE
            and rule.before == SessionKind.INTEGRATION
        ):
            return IntegrationWindow(days=rule.days, hours=rule.hours)
    return IntegrationWindow()


def integration_statuses(
    medicine_sessions: Sequence[Session], *, now: dt.datetime
) -> dict[int, IntegrationStatus]:
    """The integration status of each medicine session, keyed by session id, in at most five
    queries however many sessions are asked about (one more when their clinics are not loaded)."""
    sessions = [s for s in medicine_sessions if s.kind == SessionKind.MEDICINE]
    if not sessions:
        return {}
    ids = [s.pk for s in sessions]
    linked: dict[int, list[LinkedSessionFact]] = defaultdict(list)
    for medicine_id, session_id, status, starts_at in IntegrationLink.objects.filter(
        medicine_session_id__in=ids
    ).values_list(
        "medicine_session_id",
        "integration_session_id",
        "integration_session__status",
        "integration_session__starts_at",
    ):
        linked[medicine_id].append(LinkedSessionFact(session_id, status, starts_at))
    outside: dict[int, list[OutsideFact]] = defaultdict(list)
    for record_id, medicine_id, held_on, confirmed_at in OutsideIntegration.objects.filter(
        medicine_session_id__in=ids
    ).values_list("pk", "medicine_session_id", "held_on", "confirmed_at"):
        outside[medicine_id].append(OutsideFact(record_id, held_on, confirmed_at is not None))
    series_ids = {s.series_id for s in sessions if s.series_id}
    declined_sessions: set[int] = set()
    declined_series: set[int] = set()
    for session_id, series_id in IntegrationDecline.objects.filter(
        Q(medicine_session_id__in=ids) | Q(series_id__in=series_ids)
    ).values_list("medicine_session_id", "series_id"):
        if session_id is not None:
            declined_sessions.add(session_id)
        if series_id is not None:
            declined_series.add(series_id)
    windows = _windows_by_series(series_ids)
    zones = {s.clinic_id: s.clinic.tz for s in sessions if Session.clinic.is_cached(s)}
    missing = {s.clinic_id for s in sessions} - set(zones)
    if missing:
        zones.update(
            (pk, ZoneInfo(name))
            for pk, name in Clinic.objects.filter(pk__in=missing).values_list("pk", "timezone")
        )
    return {
        s.pk: integration_status(
            MedicineFact(s.pk, s.status, s.starts_at, s.ends_at),
            linked[s.pk],
            outside[s.pk],
            is_declined=s.pk in declined_sessions or s.series_id in declined_series,
            window=windows.get(s.series_id or 0, IntegrationWindow()),
            tz=zones[s.clinic_id],
            now=now,
        )
        for s in sessions
    }


def _windows_by_series(series_ids: set[int]) -> dict[int, IntegrationWindow]:
    if not series_ids:
        return {}
    rules: dict[int, list[ProtocolRule]] = defaultdict(list)
    versions = dict(
        TreatmentSeries.objects.filter(pk__in=series_ids).values_list("pk", "protocol_version_id")
    )
    for rule in ProtocolRule.objects.filter(
        version_id__in=set(versions.values()), type=RuleType.MAX_GAP
    ):
        rules[rule.version_id].append(rule)
    return {series: integration_window(rules[version]) for series, version in versions.items()}


def medicine_sessions_of(patient_id: int) -> QuerySet[Session]:
    """A patient's medicine sessions, oldest first, ready for ``integration_statuses``."""
    return Session.objects.filter(patient_id=patient_id, kind=SessionKind.MEDICINE).select_related(
        "clinic"
    )


# ---------------------------------------------------------------------------------------------
# Integration notes


def integration_notes_readable_by(reader: User) -> QuerySet[IntegrationNote]:
    """The notes ``reader`` may read: their own and those of sessions where they are the therapist,
    or every note of their clinic for a clinic admin (a clinical supervisor), or all for a
    superuser. Nothing for the front desk, nurses, prescribers or a patient's login."""
    notes = IntegrationNote.objects.select_related("session", "author")
    if reader.is_superuser:
        return notes
    member = staff_of(reader)
    if member is None:
        return notes.none()
    if member.has_role(Role.CLINIC_ADMIN):
        return notes.filter(session__clinic_id=member.clinic_id)
    if member.has_role(Role.THERAPIST):
        is_session_therapist = SessionStaff.objects.filter(
            session_id=OuterRef("session_id"), staff_id=member.pk, role=Role.THERAPIST
        )
        return notes.filter(Q(author_id=member.pk) | Exists(is_session_therapist))
    return notes.none()


# ---------------------------------------------------------------------------------------------
# Outcome measures


def questionnaires_open_for(
    patient_id: int, *, now: dt.datetime
) -> QuerySet[QuestionnaireAssignment]:
    """What the patient can answer in the portal now: open, not withdrawn, not yet answered."""
    return (
        QuestionnaireAssignment.objects.filter(
            series__patient_id=patient_id,
            withdrawn_at__isnull=True,
            available_from__lte=now,
            response__isnull=True,
        )
        .select_related("series")
        .order_by("due_at", "instrument", "id")
    )


@dataclass(frozen=True, slots=True)
class ScorePoint:
    assignment_id: int
    milestone: str
    medicine_session_id: int | None
    answered_at: dt.datetime
    total_score: int
    severity: str
    #: ``total_score`` minus the baseline score (negative: better); None without a baseline.
    change_from_baseline: int | None


@dataclass(frozen=True, slots=True)
class ScoreTrend:
    instrument: str
    baseline: int | None
    points: tuple[ScorePoint, ...]

    @property
    def latest(self) -> ScorePoint | None:
        return self.points[-1] if self.points else None


def score_trends(series_ids: Sequence[int]) -> dict[int, dict[str, ScoreTrend]]:
    """Per series and instrument: the baseline score (the answer at the baseline milestone), every
    answered score in time order, and each one's change from baseline. One query."""
    responses = (
        QuestionnaireResponse.objects.filter(assignment__series_id__in=series_ids)
        .select_related("assignment")
        .order_by("answered_at", "id")
    )
    grouped: dict[int, dict[str, list[QuestionnaireResponse]]] = {
        series_id: defaultdict(list) for series_id in series_ids
    }
    for response in responses:
        grouped[response.assignment.series_id][response.instrument].append(response)
    trends: dict[int, dict[str, ScoreTrend]] = {}
    for series_id, by_instrument in grouped.items():
        trends[series_id] = {}
        for instrument, answered in by_instrument.items():
            baseline = next(
                (r.total_score for r in answered if r.assignment.milestone == Milestone.BASELINE),
                None,
            )
            trends[series_id][instrument] = ScoreTrend(
                instrument,
                baseline,
                tuple(
                    ScorePoint(
                        r.assignment_id,
                        r.assignment.milestone,
                        r.assignment.medicine_session_id,
                        r.answered_at,
                        r.total_score,
                        r.severity,
                        None if baseline is None else r.total_score - baseline,
                    )
                    for r in answered
                ),
            )
    return trends


def score_trend(series: TreatmentSeries) -> dict[str, ScoreTrend]:
    """The score trend of one series, per instrument (``phq9``, ``gad7``)."""
    return score_trends([series.pk])[series.pk]


# ---------------------------------------------------------------------------------------------
# The dose record


def dose_record_of(session_id: int) -> DoseRecord | None:
    """A medicine session's dose record with its adverse events, and the session's vital signs
    in time order on ``session.vital_signs.all()``; three queries."""
    return (
        DoseRecord.objects.filter(session_id=session_id)
        .select_related("session", "administered_by", "discharged_by")
        .prefetch_related(
            "adverse_events",
            Prefetch("session__vital_signs"),
        )
        .first()
    )
