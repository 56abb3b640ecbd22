"""The clinic's rules, enforced around the clock: each scan is idempotent and acts through the
services (``session_mark_no_show``, ``staff_alert_raise``); a scan that runs twice, or twice at
once, changes nothing the second time (alerts are deduplicated by key, transitions are refused)."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from clinic.errors import DomainError
from clinic.models import Clinic, Role, Screening, ScreeningResult, StaffMember
from protocols import rules
from protocols.models import ProtocolRule, RuleType, SessionKind

from . import services
from .alerts.models import AlertKind
from .alerts.services import staff_alert_raise
from .models import LIVE_STATUSES, Escort, Session, SessionStaff, SessionStatus
from .supply import patient_gates

logger = logging.getLogger(__name__)

AWAITED = (SessionStatus.BOOKED, SessionStatus.CONFIRMED)
#: A completed medicine session older than this is no longer watched for its integration.
INTEGRATION_LOOKBACK = dt.timedelta(days=60)
#: Medicine sessions further ahead than this are not checked against screening expiry yet.
SCREENING_HORIZON = dt.timedelta(days=120)
#: When a protocol has no max_gap(medicine -> integration) rule.
DEFAULT_INTEGRATION_WINDOW = rules.Rule(
    type="max_gap", after=SessionKind.MEDICINE, before=SessionKind.INTEGRATION, days=7
)


def _local(moment: dt.datetime, clinic: Clinic) -> str:
    return moment.astimezone(clinic.tz).strftime("%Y-%m-%d %H:%M")


def no_shows_mark(*, now: dt.datetime | None = None) -> list[int]:
    """Mark as no-show every session not checked in ``Clinic.no_show_after_minutes`` after its
    start. Returns the ids marked. The service re-validates each one's series (see hooks)."""
    now = now or timezone.now()
    marked: list[int] = []
    for clinic in Clinic.objects.only("id", "no_show_after_minutes"):
        cutoff = now - dt.timedelta(minutes=clinic.no_show_after_minutes)
        overdue = Session.objects.filter(
            clinic=clinic, status__in=AWAITED, starts_at__lte=cutoff
        ).values_list("pk", flat=True)
        for session_id in list(overdue):
            try:
                services.session_mark_no_show(Session(pk=session_id), now=now)
            except DomainError as error:  # checked in or cancelled a moment ago
                logger.info("Session %s not marked no-show: %s", session_id, error.message)
                continue
            marked.append(session_id)
    return marked


def _integration_windows(version_ids: set[int]) -> dict[int, rules.Rule]:
    """Each version's max_gap(medicine -> integration) rule, as the engine's ``Rule``."""
    found = ProtocolRule.objects.filter(
        version_id__in=version_ids,
        type=RuleType.MAX_GAP,
        after=SessionKind.MEDICINE,
        before=SessionKind.INTEGRATION,
    )
    return {
        row.version_id: rules.Rule(
            type=row.type, after=row.after, before=row.before, days=row.days, hours=row.hours
        )
        for row in found
    }


def _integration_deadline(medicine: Session, rule: rules.Rule | None) -> dt.datetime:
    """The first instant an integration may no longer start, from the engine's own window."""
    _, deadline = rules.later_start_bounds(
        rule or DEFAULT_INTEGRATION_WINDOW, medicine.starts_at, medicine.ends_at, medicine.clinic.tz
    )
    assert deadline is not None  # a max_gap always bounds the later start
    return deadline


def integration_overdue_scan(*, now: dt.datetime | None = None) -> int:
    """Alert the therapist and the front desk about each completed medicine session that has no
    integration booked or done inside its protocol's max_gap(medicine -> integration) window
    (7 days when the protocol states none), and no outside integration or decline recorded for
    it. Returns how many new alerts were raised."""
    now = now or timezone.now()
    medicine_sessions = list(
        Session.objects.filter(
            kind=SessionKind.MEDICINE,
            status=SessionStatus.COMPLETED,
            ends_at__gte=now - INTEGRATION_LOOKBACK,
            ends_at__lte=now,
            # integration done with an outside therapist, or declined, is recorded, not overdue
            outside_integrations__isnull=True,
            integration_decline__isnull=True,
        )
        .select_related("clinic", "patient", "series__preferred_therapist")
        .prefetch_related(
            Prefetch(
                "staff_holds",
                queryset=SessionStaff.objects.filter(role=Role.THERAPIST).select_related("staff"),
                to_attr="therapist_holds",
            )
        )
    )
    if not medicine_sessions:
        return 0
    windows = _integration_windows(
        {m.series.protocol_version_id for m in medicine_sessions if m.series is not None}
    )
    integrations: dict[int, list[dt.datetime]] = defaultdict(list)
    for patient_id, starts_at in Session.objects.filter(
        patient_id__in={m.patient_id for m in medicine_sessions},
        kind=SessionKind.INTEGRATION,
        status__in=LIVE_STATUSES,
        starts_at__gte=min(m.starts_at for m in medicine_sessions),
    ).values_list("patient_id", "starts_at"):
        integrations[patient_id].append(starts_at)
    raised = 0
    for medicine in medicine_sessions:
        rule = windows.get(medicine.series.protocol_version_id) if medicine.series else None
        deadline = _integration_deadline(medicine, rule)
        if any(
            medicine.starts_at < start < deadline for start in integrations[medicine.patient_id]
        ):
            continue
        raised += _alert_integration_overdue(medicine, deadline)
    return raised


def _alert_integration_overdue(medicine: Session, deadline: dt.datetime) -> int:
    clinic = medicine.clinic
    outside = medicine.patient.outside_therapist_name
    message = (
        f"{medicine.patient.full_name} had a medicine session on "
        f"{_local(medicine.starts_at, clinic)} and has no integration session booked or done "
        f"before {_local(deadline, clinic)}."
        + (f" Outside therapist: {outside}." if outside else "")
    )
    therapists: list[StaffMember] = [
        hold.staff for hold in getattr(medicine, "therapist_holds", [])
    ]
    if not therapists and medicine.series and medicine.series.preferred_therapist:
        therapists = [medicine.series.preferred_therapist]
    targets: list[tuple[StaffMember | None, str, str]] = [
        (therapist, "", f"integration_overdue:{medicine.pk}:staff:{therapist.pk}")
        for therapist in therapists
    ]
    targets.append((None, Role.FRONT_DESK, f"integration_overdue:{medicine.pk}:front_desk"))
    raised = 0
    for staff, role, key in targets:
        _, created = staff_alert_raise(
            clinic=clinic,
            kind=AlertKind.INTEGRATION_OVERDUE,
            message=message,
            dedupe_key=key,
            target_role=role,
            target_staff=staff,
            series_id=medicine.series_id,
            session_id=medicine.pk,
        )
        raised += created
    return raised


def screening_expiry_scan(*, now: dt.datetime | None = None) -> int:
    """Flag each upcoming medicine session on a day the patient's screening does not cover (it
    lapsed, or the patient was never cleared). Returns how many new alerts were raised."""
    now = now or timezone.now()
    upcoming = (
        Session.objects.filter(
            kind=SessionKind.MEDICINE,
            status__in=AWAITED,
            starts_at__gt=now,
            starts_at__lte=now + SCREENING_HORIZON,
        )
        .select_related("clinic", "patient__clinic")
        .prefetch_related(
            Prefetch("patient__screenings", queryset=Screening.objects.order_by("-valid_until"))
        )
    )
    raised = 0
    gates_of: dict[int, rules.PatientGates] = {}
    for session in upcoming:
        day = session.starts_at.astimezone(session.clinic.tz).date()
        if session.patient_id not in gates_of:
            gates_of[session.patient_id] = patient_gates(session.patient)
        gates = gates_of[session.patient_id]
        if "screening_gate" not in rules.gate_failures(day, gates):
            continue
        screenings = list(session.patient.screenings.all())
        latest = screenings[0] if screenings else None
        why = (
            f"the screening is valid until {latest.valid_until}"
            if latest is not None and latest.result == ScreeningResult.CLEARED
            else "there is no cleared screening"
        )
        _, created = staff_alert_raise(
            clinic=session.clinic,
            kind=AlertKind.SCREENING_EXPIRED,
            message=f"{session.patient.full_name} has a medicine session on "
            f"{_local(session.starts_at, session.clinic)} but {why}: re-screen or move it.",
            dedupe_key=f"screening_expired:{session.pk}:{day.isoformat()}:"
            f"{latest.pk if latest else 0}",
            target_role=Role.FRONT_DESK,
            session_id=session.pk,
            series_id=session.series_id,
        )
        raised += created
    return raised


def escort_unconfirmed_scan(*, now: dt.datetime | None = None) -> int:
    """Alert the front desk about each medicine session starting within
    ``ESCORT_ALERT_HOURS_BEFORE`` hours whose ride home is not confirmed (no driving until the
    next day). Returns how many new alerts were raised."""
    now = now or timezone.now()
    horizon = now + dt.timedelta(hours=settings.ESCORT_ALERT_HOURS_BEFORE)
    soon = Session.objects.filter(
        kind=SessionKind.MEDICINE, status__in=AWAITED, starts_at__gt=now, starts_at__lte=horizon
    ).select_related("clinic", "patient", "escort")
    raised = 0
    for session in soon:
        escort: Escort | None = getattr(session, "escort", None)
        if escort is not None and escort.is_confirmed:
            continue
        state = f"{escort.name} is not confirmed" if escort else "no one is recorded"
        _, created = staff_alert_raise(
            clinic=session.clinic,
            kind=AlertKind.ESCORT_UNCONFIRMED,
            message=f"Ride home for {session.patient.full_name}'s medicine session on "
            f"{_local(session.starts_at, session.clinic)}: {state}.",
            dedupe_key=f"escort_unconfirmed:{session.pk}:{session.starts_at:%Y%m%dT%H%M}",
            target_role=Role.FRONT_DESK,
            session_id=session.pk,
            series_id=session.series_id,
        )
        raised += created
    return raised
