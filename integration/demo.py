"""Demo records for ``seed_demo``: a past medicine session walked through its safety steps."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from clinic.models import Role
from protocols.models import Route
from scheduling import services as scheduling_services
from scheduling.models import Session

from . import services

DEMO_WEIGHT_KG = Decimal("70.0")
DEMO_DOSE_MG_PER_KG = {
    Route.IV: Decimal("0.5"),
    Route.IM: Decimal("0.75"),
    Route.SUBLINGUAL: Decimal("3"),
    Route.INTRANASAL: Decimal("0.8"),
}


def medicine_session_demo_complete(session: Session) -> Session:
    """Escort, check-in, vital signs, dose, discharge and completion of a past medicine session,
    through the same services and gates as a real one."""
    patient = session.patient
    nurse = next(
        hold.staff
        for hold in session.staff_holds.select_related("staff")
        if hold.role in (Role.NURSE, Role.PRESCRIBER)
    )
    starts, ends = session.starts_at, session.ends_at
    minute = dt.timedelta(minutes=1)
    scheduling_services.session_escort_set(
        session,
        name=patient.escort_name or "Family member",
        phone=patient.escort_phone or patient.phone or "+14155550100",
        is_confirmed=True,
        now=starts - dt.timedelta(days=1),
    )
    scheduling_services.session_check_in(session, now=starts)
    vitals = {"systolic_mmhg": 122, "diastolic_mmhg": 78, "heart_rate_bpm": 70, "spo2_percent": 98}
    services.vital_signs_record(
        session=session,
        phase="before",
        measured_at=starts + 5 * minute,
        recorded_by=nurse,
        now=ends,
        **vitals,
    )
    route = session.route or Route.IM
    dose_start = starts + 10 * minute
    dose_end = dose_start + (40 if route == Route.IV else 1) * minute
    services.dose_record(
        session=session,
        route=route,
        dose_mg=DEMO_DOSE_MG_PER_KG[Route(route)] * DEMO_WEIGHT_KG,
        weight_kg=DEMO_WEIGHT_KG,
        started_at=dose_start,
        ended_at=dose_end,
        administered_by=nurse,
        now=ends,
    )
    services.vital_signs_record(
        session=session,
        phase="after",
        measured_at=ends - 20 * minute,
        recorded_by=nurse,
        now=ends,
        **vitals,
    )
    services.discharge_record(
        session=session,
        discharged_by=nurse,
        discharged_at=ends - 5 * minute,
        escort_handoff_name=patient.escort_name or "Family member",
        criteria=dict.fromkeys(services.DISCHARGE_CRITERIA, True),
        now=ends,
    )
    return scheduling_services.session_complete(session, now=ends)
