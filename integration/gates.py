"""The safety gates of a medicine session: at check-in, and before it can be completed.

The decisions are pure functions over frozen facts (``check_in_violations``,
``completion_violations``); ``check_in_gate`` and ``completion_gate`` load the facts for one session
and raise ``RuleViolation`` naming every gate that fails. ``scheduling.services.session_check_in``
and ``session_complete`` call them under the session's row lock, so the API, the admin and the
workers all get the same gates.

The screening and consent gates use the rules engine's names and semantics (``screening_gate``,
``consent_gate`` in ``protocols.rules.gate_failures``): a screening cleared by a prescriber on or
before the session's local date and valid on it, and a consent signed on or before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Min

from clinic.errors import RuleViolation
from clinic.models import Consent, Role, Screening, ScreeningResult
from protocols.models import SessionKind
from scheduling.models import Escort, Session

from .models import DoseRecord, VitalSigns, VitalsPhase

SCREENING_GATE = "screening_gate"
CONSENT_GATE = "consent_gate"
ESCORT_GATE = "escort_gate"
DOSE_RECORD_GATE = "dose_record"
POST_SESSION_VITALS_GATE = "post_session_vitals"
DISCHARGE_GATE = "discharge"


@dataclass(frozen=True, slots=True)
class ClearedScreening:
    """A screening cleared by a prescriber on ``cleared_on``, valid through ``valid_until``."""

    cleared_on: dt.date
    valid_until: dt.date


@dataclass(frozen=True, slots=True)
class CheckInFacts:
    session_id: int
    day: dt.date
    screenings: tuple[ClearedScreening, ...]
    consent_signed_on: dt.date | None
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
    if not any(s.cleared_on <= facts.day <= s.valid_until for s in facts.screenings):
        found.append(
            _violation(
                SCREENING_GATE,
                f"No screening cleared by a prescriber is valid on {facts.day}.",
                sid,
                "Have a prescriber screen and clear the patient, or renew the clearance.",
            )
        )
    if facts.consent_signed_on is None or facts.consent_signed_on > facts.day:
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


def check_in_facts(session: Session) -> CheckInFacts:
    tz = session.clinic.tz
    screenings = tuple(
        ClearedScreening(cleared_on, valid_until)
        for cleared_on, valid_until in Screening.objects.filter(
            patient_id=session.patient_id,
            result=ScreeningResult.CLEARED,
            cleared_by__role_grants__role=Role.PRESCRIBER,
        ).values_list("screened_on", "valid_until")
    )
    first_signed = Consent.objects.filter(patient_id=session.patient_id).aggregate(
        first=Min("signed_at")
    )["first"]
    escort = Escort.objects.filter(session_id=session.pk).values_list("is_confirmed").first()
    return CheckInFacts(
        session_id=session.pk,
        day=session_local_date(session),
        screenings=screenings,
        consent_signed_on=first_signed.astimezone(tz).date() if first_signed else None,
        has_escort=escort is not None,
        is_escort_confirmed=bool(escort and escort[0]),
    )


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
