"""Demo series for ``seed_demo``: every demo patient's course booked through ``series_book``,
starting over the past two weeks, so some sessions are already done and most are ahead."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from clinic.models import Clinic
from integration.demo import medicine_session_demo_complete
from protocols.models import ProtocolVersion
from protocols.rules import day_start

from . import services
from .models import SessionKind

PROTOCOL_FOR_PATIENT = {
    **dict.fromkeys(range(0, 8), "IV ketamine infusion induction"),
    **dict.fromkeys(range(8, 16), "Ketamine-assisted psychotherapy"),
    **dict.fromkeys(range(16, 18), "KAP short course"),
    **dict.fromkeys(range(18, 20), "Maintenance booster infusion"),
}


def demo_sessions_book(clinic: Clinic, progress: Callable[[str], None]) -> int:
    """Book each demo patient's series once; patients who already have a series are left alone.
    Sessions that have already ended are walked through check-in to completion (a medicine
    session through its escort, vital signs, dose and discharge)."""
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
        start = today - dt.timedelta(days=14) + dt.timedelta(days=index % 8 * 2)
        with transaction.atomic():
            series = services.series_book(
                patient=patient,
                protocol_version=version,
                earliest_start=start,
                now=day_start(start, clinic.tz),
            )
            for session in series.sessions.order_by("starts_at"):
                if session.ends_at >= now:
                    continue
                if session.kind == SessionKind.MEDICINE:
                    medicine_session_demo_complete(session)
                else:
                    services.session_check_in(session, now=session.starts_at)
                    services.session_complete(session, now=session.ends_at)
            count = series.sessions.count()
        booked += count
        progress(f"{patient.full_name}: {count} sessions of {version}")
    return booked
