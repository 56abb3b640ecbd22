"""The safety gates of a medicine session: at check-in, and before it can be completed.

The decisions are pure functions over frozen facts (``check_in_violations``,
``completion_violations``); ``check_in_gate`` and ``completion_gate`` load the facts for one session
and raise ``RuleViolation`` naming every gate that fails. ``scheduling.services.session_check_in``
and ``session_complete`` call them under the session's row lock, so the API, the admin and the
workers all get the same gates.

The screening and consent gates are the rules engine's (``protocols.rules.gate_failures`` over
``scheduling.supply.patient_gates``): a screening cleared by a prescriber on or before the
session's local date and valid on it, and a consent signed on or before it. Booking checks the same
function, so a gate never means one thing at booking and another at check-in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django_fsm import can_proceed

from clinic.errors import RuleViolation
from protocols.models import SessionKind
from protocols.rules import PatientGates, gate_failures
from scheduling.models import Escort, Session
from scheduling.supply import patient_gates, patients_gates

from .models import DoseRecord, VitalSigns, VitalsPhase

SCREENING_GATE = "screening_gate"
CONSENT_GATE = "consent_gate"
ESCORT_GATE = "escort_gate"
DOSE_RECORD_GATE = "dose_record"
POST_SESSION_VITALS_GATE = "post_session_vitals"
DISCHARGE_GATE = "discharge"


@dataclass(frozen=True, slots=True)
class CheckInFacts:
    session_id: int
    day: dt.date
    gates: PatientGates
    has_escort: bool
    is_escort_confirmed: bool


@dataclass(frozen=True, slots=True)
class CompletionFacts:
    session_id: int
    has_dose_record: bool
    has_dose_end: bool
    has_post_session_vitals: bool
    is_discharged: bool


def _violation(rule: str, message: str, session_id: int, fix: str) -> dict[str, Any]:
    return {"rule": rule, "message": message, "sessions": [session_id], "suggested_fix": fix}


def check_in_violations(facts: CheckInFacts) -> list[dict[str, Any]]:
    """Why a medicine session on ``facts.day`` cannot be checked in (empty: it can)."""
    found: list[dict[str, Any]] = []
    sid = facts.session_id
    failures = gate_failures(facts.day, facts.gates)
    if SCREENING_GATE in failures:
        found.append(
            _violation(
                SCREENING_GATE,
                f"No screening cleared by a prescriber is valid on {facts.day}.",
                sid,
                "Have a prescriber screen and clear the patient, or renew the clearance.",
            )
        )
    if CONSENT_GATE in failures:
        found.append(
            _violation(
                CONSENT_GATE,
                f"No consent signed on or before {facts.day} is on file.",
                sid,
                "Record the patient's signed consent.",
            )
        )
    if not facts.is_escort_confirmed:
        found.append(
            _violation(
                ESCORT_GATE,
                "The ride home is recorded but not confirmed."
                if facts.has_escort
                else "No ride home is recorded.",
                sid,
                "Confirm who takes the patient home: no driving until the next day.",
            )
        )
    return found


def completion_violations(facts: CompletionFacts) -> list[dict[str, Any]]:
    """What is missing before a medicine session can be completed (empty: nothing)."""
    found: list[dict[str, Any]] = []
    sid = facts.session_id
    if not facts.has_dose_record:
        found.append(
            _violation(DOSE_RECORD_GATE, "No dose is recorded.", sid, "Record the dose given.")
        )
    elif not facts.has_dose_end:
        found.append(
            _violation(
                DOSE_RECORD_GATE,
                "The dose has no end time.",
                sid,
                "Record when the dose (infusion) ended.",
            )
        )
    if not facts.has_post_session_vitals:
        found.append(
            _violation(
                POST_SESSION_VITALS_GATE,
                "No vital signs after the dose are recorded.",
                sid,
                "Record blood pressure, heart rate and SpO2 after the dose.",
            )
        )
    if not facts.is_discharged:
        found.append(
            _violation(
                DISCHARGE_GATE,
                "The patient's discharge is not recorded.",
                sid,
                "Record who discharged the patient, when, to whom, and that the criteria are met.",
            )
        )
    return found


# ---------------------------------------------------------------------------------------------
# Loading the facts of one session


def session_local_date(session: Session) -> dt.date:
    return session.starts_at.astimezone(session.clinic.tz).date()


def _check_in_facts(
    session: Session, gates: PatientGates, escort_confirmed: bool | None
) -> CheckInFacts:
    """``escort_confirmed`` None: no ride home recorded."""
    return CheckInFacts(
        session_id=session.pk,
        day=session_local_date(session),
        gates=gates,
        has_escort=escort_confirmed is not None,
        is_escort_confirmed=bool(escort_confirmed),
    )


def check_in_facts(session: Session) -> CheckInFacts:
    escort = Escort.objects.filter(session_id=session.pk).values_list("is_confirmed").first()
    return _check_in_facts(
        session, patient_gates(session.patient), escort[0] if escort is not None else None
    )


def check_in_blockers(sessions: Sequence[Session]) -> dict[int, list[dict[str, Any]]]:
    """What would refuse the check-in of each medicine session still to check in, read for all of
    ``sessions`` (one clinic's, with their escorts selected) at once: two queries, none when no
    such session is among them. The same facts and decisions as ``check_in_gate``."""
    waiting = [
        session
        for session in sessions
        if session.kind == SessionKind.MEDICINE and can_proceed(session.check_in)
    ]
    if not waiting:
        return {}
    gates = patients_gates({session.patient_id for session in waiting}, waiting[0].clinic.tz)
    blockers = {}
    for session in waiting:
        escort: Escort | None = getattr(session, "escort", None)
        confirmed = escort.is_confirmed if escort is not None else None
        facts = _check_in_facts(session, gates[session.patient_id], confirmed)
        blockers[session.pk] = check_in_violations(facts)
    return blockers


def completion_facts(session: Session) -> CompletionFacts:
    dose = (
        DoseRecord.objects.filter(session_id=session.pk)
        .values_list("ended_at", "discharged_at")
        .first()
    )
    return CompletionFacts(
        session_id=session.pk,
        has_dose_record=dose is not None,
        has_dose_end=bool(dose and dose[0]),
        has_post_session_vitals=VitalSigns.objects.filter(
            session_id=session.pk, phase=VitalsPhase.AFTER
        ).exists(),
        is_discharged=bool(dose and dose[1]),
    )


def check_in_gate(session: Session) -> None:
    """Refuse to check in a medicine session without a valid prescriber clearance, a signed consent
    and a confirmed ride home (DESIGN.md, "Screening gate" and "Safety around a dose")."""
    if session.kind != SessionKind.MEDICINE:
        return
    violations = check_in_violations(check_in_facts(session))
    if violations:
        raise RuleViolation(violations)


def completion_gate(session: Session) -> None:
    """Refuse to complete a medicine session until the dose, the vital signs after it and the
    discharge are recorded ("Vitals before and after. Discharge only when criteria are met.")."""
    if session.kind != SessionKind.MEDICINE:
        return
    violations = completion_violations(completion_facts(session))
    if violations:
        raise RuleViolation(violations)
