"""The therapist's integration caseload: for each patient, their recent medicine sessions and
whether each one's integration is booked, done, overdue or not booked yet.

An integration "belongs" to a medicine session when it is the patient's first integration after
that session and before their next medicine session (each medicine session is followed by its own
integration: the ``each_followed_by`` rule). It is overdue when none is done or booked and the
series' protocol's ``max_gap(medicine, integration)`` (7 days when the protocol has none) has
passed, counted in calendar days in the clinic's zone. ``external`` (integration with an outside
therapist) comes with the outside-therapist records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from django.db.models import QuerySet
from django.utils import timezone

from clinic.models import Patient, StaffMember
from protocols.models import ProtocolRule, RuleType, SessionKind
from scheduling.models import LIVE_STATUSES, Session, SessionStaff, SessionStatus

DEFAULT_MAX_GAP_DAYS = 7
RECENT_DAYS = 90


class IntegrationStatus(StrEnum):
    BOOKED = "booked"
    DONE = "done"
    OVERDUE = "overdue"
    EXTERNAL = "external"
    NONE = "none"


@dataclass(frozen=True)
class MedicineSessionIntegration:
    medicine: Session
    status: IntegrationStatus
    integration: Session | None
    due_by: dt.date


@dataclass
class CaseloadPatient:
    patient: Patient
    medicine_sessions: list[MedicineSessionIntegration] = field(default_factory=list)


def _max_gap_days(version_ids: set[int]) -> dict[int, int]:
    rules = ProtocolRule.objects.filter(
        version_id__in=version_ids,
        type=RuleType.MAX_GAP,
        after=SessionKind.MEDICINE,
        before=SessionKind.INTEGRATION,
        days__isnull=False,
    ).values_list("version_id", "days")
    return {version_id: days for version_id, days in rules if days is not None}


def caseload_for_therapist(
    therapist: StaffMember,
    *,
    now: dt.datetime | None = None,
    patients: QuerySet[Patient] | None = None,
    recent_days: int = RECENT_DAYS,
) -> list[CaseloadPatient]:
    """Four queries whatever the size of the caseload."""
    now = now or timezone.now()
    since = now - dt.timedelta(days=recent_days)
    caseload = SessionStaff.objects.filter(staff=therapist).values("session__patient_id")
    scope = Session.objects.filter(patient_id__in=caseload)
    if patients is not None:
        scope = scope.filter(patient__in=patients)
    medicine = list(
        scope.filter(
            kind=SessionKind.MEDICINE,
            status__in=[SessionStatus.CHECKED_IN, SessionStatus.COMPLETED],
            starts_at__gte=since,
            starts_at__lte=now,
        )
        .select_related("patient__clinic", "series")
        .order_by("patient__full_name", "patient_id", "starts_at", "id")
    )
    patient_ids = {session.patient_id for session in medicine}
    later: dict[int, list[Session]] = {}
    for session in (
        Session.objects.filter(
            patient_id__in=patient_ids,
            kind__in=[SessionKind.MEDICINE, SessionKind.INTEGRATION],
            starts_at__gte=since,
        )
        .exclude(status__in=[SessionStatus.CANCELLED, SessionStatus.LATE_CANCELLED])
        .order_by("starts_at", "id")
    ):
        later.setdefault(session.patient_id, []).append(session)
    gaps = _max_gap_days({s.series.protocol_version_id for s in medicine if s.series is not None})
    rows: dict[int, CaseloadPatient] = {}
    for session in medicine:
        row = rows.setdefault(session.patient_id, CaseloadPatient(session.patient))
        zone = session.patient.clinic.tz
        gap = (
            gaps.get(session.series.protocol_version_id, DEFAULT_MAX_GAP_DAYS)
            if session.series is not None
            else DEFAULT_MAX_GAP_DAYS
        )
        due_by = timezone.localtime(session.starts_at, zone).date() + dt.timedelta(days=gap)
        integration = _integration_after(session, later.get(session.patient_id, []))
        row.medicine_sessions.append(
            MedicineSessionIntegration(
                medicine=session,
                status=_status(integration, due_by, timezone.localtime(now, zone).date()),
                integration=integration,
                due_by=due_by,
            )
        )
    return list(rows.values())


def _integration_after(medicine: Session, sessions: list[Session]) -> Session | None:
    for candidate in sessions:
        if candidate.starts_at <= medicine.starts_at or candidate.pk == medicine.pk:
            continue
        if candidate.kind == SessionKind.MEDICINE:
            return None  # the next medicine session came first
        if candidate.status != SessionStatus.NO_SHOW:
            return candidate
    return None


def _status(integration: Session | None, due_by: dt.date, today: dt.date) -> IntegrationStatus:
    if integration is not None and integration.status == SessionStatus.COMPLETED:
        return IntegrationStatus.DONE
    if integration is not None and integration.status in LIVE_STATUSES:
        return IntegrationStatus.BOOKED
    return IntegrationStatus.OVERDUE if today > due_by else IntegrationStatus.NONE
