"""Demo sessions for ``seed_demo``: a few weeks of series around today, some already completed."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator

from django.db import transaction
from django.utils import timezone

from clinic.errors import ResourceConflict, RuleViolation
from clinic.models import Clinic, Patient, StaffMember
from integration.demo import medicine_session_demo_complete
from integration.services import integration_links_sync, questionnaire_assignments_sync
from protocols.models import ProtocolVersion
from protocols.selectors import step_for_kind

from . import services
from .models import Session, TreatmentSeries

PROTOCOL_FOR_PATIENT = {
    **dict.fromkeys(range(0, 8), "IV ketamine infusion induction"),
    **dict.fromkeys(range(8, 16), "Ketamine-assisted psychotherapy"),
    **dict.fromkeys(range(16, 20), "Maintenance booster infusion"),
}


def _sequence(version: ProtocolVersion) -> list[tuple[str, int]]:
    """(kind, days after the previous session) for the whole series, in time order."""
    kinds = {step.kind: step.count for step in version.steps.all()}
    plan: list[tuple[str, int]] = [("screening", 0)] if "screening" in kinds else []
    plan += [("preparation", 1)] * kinds.get("preparation", 0)
    integrations = kinds.get("integration", 0)
    for n in range(kinds.get("medicine", 0)):
        plan.append(("medicine", 2))
        if n < integrations:
            plan.append(("integration", 1))
    return plan


def _days_from(start: dt.date) -> Iterator[dt.date]:
    day = start
    while True:
        if day.weekday() < 5:
            yield day
        day += dt.timedelta(days=1)


def _book_first_fit(patient: Patient, series: TreatmentSeries, kind: str, day: dt.date) -> Session:
    clinic = patient.clinic
    step = step_for_kind(series.protocol_version, kind)
    rooms = list(clinic.rooms.filter(kind=step.room_kind, is_active=True))
    choices = [
        list(StaffMember.objects.filter(clinic=clinic, role_grants__role=need.role, is_active=True))
        for need in step.roles
    ]
    for candidate_day in itertools.islice(_days_from(day), 10):
        for minutes in range(8 * 60, 16 * 60 + 1, 30):
            starts_at = dt.datetime.combine(
                candidate_day, dt.time(minutes // 60, minutes % 60), tzinfo=clinic.tz
            )
            for room in rooms:
                for staff in itertools.product(*choices):
                    try:
                        return services.session_create(
                            patient=patient,
                            kind=kind,
                            starts_at=starts_at,
                            room=room,
                            staff=list(staff),
                            series=series,
                        )
                    except (ResourceConflict, RuleViolation):
                        continue
    raise RuntimeError(f"No room for the demo {kind} session of {patient} near {day}")


def demo_sessions_book(clinic: Clinic, progress: Callable[[str], None]) -> int:
    """Book each demo patient's series once; patients who already have a series are left alone."""
    today = timezone.localdate(timezone=clinic.tz)
    now = timezone.now()
    booked = 0
    patients = list(clinic.patients.order_by("id"))
    for index, patient in enumerate(patients):
        if patient.series.exists() or index not in PROTOCOL_FOR_PATIENT:
            continue
        version = (
            ProtocolVersion.objects.filter(protocol__name=PROTOCOL_FOR_PATIENT[index])
            .order_by("-version")
            .first()
        )
        if version is None:
            continue
        with transaction.atomic():
            series = TreatmentSeries.objects.create(patient=patient, protocol_version=version)
            day = today - dt.timedelta(days=14) + dt.timedelta(days=index % 8 * 2)
            for kind, gap in _sequence(version):
                day += dt.timedelta(days=gap)
                session = _book_first_fit(patient, series, kind, day)
                day = timezone.localtime(session.starts_at, clinic.tz).date()
                if session.ends_at < now and kind == "medicine":
                    medicine_session_demo_complete(session)
                elif session.ends_at < now:
                    services.session_check_in(session, now=session.starts_at)
                    services.session_complete(session, now=session.ends_at)
                booked += 1
            integration_links_sync(patient)
            questionnaire_assignments_sync(series)
        progress(f"{patient.full_name}: {series.sessions.count()} sessions of {version}")
    return booked
