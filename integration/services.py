"""Integration use cases: linking integration to its medicine session, outside therapists and
declines, integration notes, outcome measures, and the dose record of a medicine session.

Every caller (API view, admin, task) goes through these functions. The checks here give a good
error message; the database constraints in ``integration.models`` are the guard.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from clinic.errors import InvalidInput, RuleViolation
from clinic.models import Patient, Role, Screening, ScreeningResult, StaffMember, User
from protocols.models import CareModel, Route, SessionKind
from scheduling.alerts.models import AlertKind
from scheduling.alerts.services import staff_alert_raise
from scheduling.models import LIVE_STATUSES, Session, SessionStaff, SessionStatus, TreatmentSeries

from . import clinical_selectors, measures
from .errors import NotPermitted
from .gates import session_local_date
from .models import (
    AdverseEvent,
    AdverseEventCode,
    DoseRecord,
    Instrument,
    IntegrationDecline,
    IntegrationLink,
    IntegrationNote,
    IntegrationSafetyEvent,
    Milestone,
    OutsideConfirmer,
    OutsideIntegration,
    QuestionnaireAssignment,
    QuestionnaireResponse,
    VitalSigns,
    VitalsPhase,
    safety_alert_key,
)

audit_log = logging.getLogger("clinic.audit")
alert_log = logging.getLogger("clinic.alerts")

#: How far ahead of "now" a clinician's clock may be when they enter a time.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: A before-medicine questionnaire opens this long before its medicine session.
QUESTIONNAIRE_OPENS_BEFORE = dt.timedelta(days=3)
#: The end-of-series questionnaire is due this long after the series' last session.
END_OF_SERIES_DUE_AFTER = dt.timedelta(days=7)
NOTE_MAX_LENGTH = 20_000


def _violation(rule: str, message: str, sessions: Sequence[int], fix: str | None = None) -> Any:
    return {"rule": rule, "message": message, "sessions": list(sessions), "suggested_fix": fix}


def _refuse(rule: str, message: str, sessions: Sequence[int], fix: str | None = None) -> None:
    raise RuleViolation([_violation(rule, message, sessions, fix)])


def _require_aware(name: str, value: dt.datetime) -> None:
    if timezone.is_naive(value):
        raise InvalidInput(f"{name} must carry a UTC offset.", {name: ["Give an offset."]})


def _require_not_future(name: str, value: dt.datetime, now: dt.datetime) -> None:
    _require_aware(name, value)
    if value > now + CLOCK_SKEW:
        raise InvalidInput(f"{name} is in the future.", {name: ["Cannot be in the future."]})


def _require_medicine(session: Session) -> None:
    if session.kind != SessionKind.MEDICINE:
        _refuse(
            "medicine_session_only",
            f"Session {session.pk} is a {session.kind} session; this is recorded for medicine "
            "sessions.",
            [session.pk],
        )


def _locked_session(session: Session) -> Session:
    return (
        Session.objects.select_for_update(of=("self",))
        .select_related("clinic", "patient")
        .get(pk=session.pk)
    )


def _require_staff_of_clinic(
    member: StaffMember, session: Session, roles: Sequence[str], field: str
) -> None:
    if member.clinic_id != session.clinic_id or not member.is_active:
        raise InvalidInput(
            f"{member.full_name} does not work at this clinic.", {field: ["Not this clinic's."]}
        )
    if not set(member.roles) & set(roles):
        raise NotPermitted(
            f"{member.full_name} is not a {' or '.join(roles)}; only they may record this."
        )


# ---------------------------------------------------------------------------------------------
# Linking integration sessions to the medicine session they follow


def integration_link(integration_session: Session) -> IntegrationLink | None:
    """Link a booked integration session to the medicine session it follows. Idempotent.

    The rule: among the patient's live medicine sessions that start before the integration session
    (in the same series, when the integration session belongs to one), take the latest one that
    lacks integration, meaning no live integration session is linked to it and no outside
    integration is recorded for it; when every one of them has integration, take the latest (a
    second integration for the same medicine session). No preceding medicine session: no link.
    A cancelled or no-show integration session is not linked; once a linked one is cancelled, its
    medicine session lacks integration again and the next booking links to it.

    Links of one patient are written one at a time (a row lock on the patient), so two integration
    sessions booked at once never both claim the same medicine session.
    """
    if integration_session.kind != SessionKind.INTEGRATION:
        raise InvalidInput(
            f"Session {integration_session.pk} is not an integration session.",
            {"session": ["An integration session."]},
        )
    with transaction.atomic():
        list(
            Patient.objects.select_for_update(of=("self",))
            .filter(pk=integration_session.patient_id)
            .order_by()
            .values_list("pk")
        )
        existing = IntegrationLink.objects.filter(integration_session=integration_session).first()
        if existing is not None:
            return existing
        current = Session.objects.get(pk=integration_session.pk)
        if current.status not in LIVE_STATUSES:
            return None
        medicine = _medicine_session_followed_by(current)
        if medicine is None:
            return None
        return IntegrationLink.objects.create(
            medicine_session=medicine, integration_session=current
        )


def _medicine_session_followed_by(integration: Session) -> Session | None:
    candidates = Session.objects.filter(
        patient_id=integration.patient_id,
        kind=SessionKind.MEDICINE,
        status__in=LIVE_STATUSES,
        starts_at__lt=integration.starts_at,
    )
    if integration.series_id is not None:
        candidates = candidates.filter(series_id=integration.series_id)
    has_integration = Exists(
        IntegrationLink.objects.filter(
            medicine_session_id=OuterRef("pk"), integration_session__status__in=LIVE_STATUSES
        )
    ) | Exists(OutsideIntegration.objects.filter(medicine_session_id=OuterRef("pk")))
    latest_first = candidates.annotate(has_integration=has_integration).order_by(
        "-starts_at", "-pk"
    )
    return latest_first.filter(has_integration=False).first() or latest_first.first()


def integration_links_sync(patient: Patient) -> list[IntegrationLink]:
    """Link every live, unlinked integration session of ``patient``, oldest first (so a series
    booked whole pairs each integration with the medicine session before it). Idempotent: for a
    periodic re-check, or after a series is booked. Returns the links written now."""
    earlier_medicine = Session.objects.filter(
        patient_id=OuterRef("patient_id"),
        kind=SessionKind.MEDICINE,
        status__in=LIVE_STATUSES,
        starts_at__lt=OuterRef("starts_at"),
    )
    # Only sessions with a medicine session to follow (in their own series, when in one): a
    # patient's many unlinkable integration sessions are passed over in this one query.
    unlinked = (
        Session.objects.filter(
            patient=patient,
            kind=SessionKind.INTEGRATION,
            status__in=LIVE_STATUSES,
            integration_link__isnull=True,
        )
        .annotate(
            follows_any=Exists(earlier_medicine),
            follows_own_series=Exists(earlier_medicine.filter(series_id=OuterRef("series_id"))),
        )
        .filter(
            Q(series__isnull=True, follows_any=True)
            | Q(series__isnull=False, follows_own_series=True)
        )
        .order_by("starts_at", "pk")
    )
    written = []
    for session in unlinked:
        link = integration_link(session)
        if link is not None:
            written.append(link)
    return written


# ---------------------------------------------------------------------------------------------
# Outside therapists and declines


def outside_integration_record(
    *,
    medicine_session: Session,
    held_on: dt.date,
    therapist_name: str = "",
    therapist_email: str = "",
    therapist_phone: str = "",
    confirmed_by: str = "",
    recorded_by: User | None = None,
    now: dt.datetime | None = None,
) -> OutsideIntegration:
    """Record that the patient's own therapist does (or did) the integration of a medicine session.

    The therapist's name and contact default to the outside therapist on the patient's file. It
    counts as done once confirmed by that therapist or the patient (``confirmed_by``, now or later
    with ``outside_integration_confirm``).
    """
    now = now or timezone.now()
    _require_medicine(medicine_session)
    patient = medicine_session.patient
    name = therapist_name.strip() or patient.outside_therapist_name
    email = therapist_email.strip() or (
        "" if therapist_name.strip() else patient.outside_therapist_email
    )
    phone = therapist_phone.strip() or (
        "" if therapist_name.strip() else patient.outside_therapist_phone
    )
    if not name:
        raise InvalidInput(
            "Name the outside therapist.", {"therapist_name": ["Required: none on file."]}
        )
    if not email and not phone:
        raise InvalidInput(
            "Give the outside therapist's e-mail or phone.",
            {"therapist_email": ["An e-mail or a phone is required."]},
        )
    medicine_day = session_local_date(medicine_session)
    if held_on < medicine_day:
        raise InvalidInput(
            f"The outside integration is dated before the medicine session ({medicine_day}).",
            {"held_on": [f"On or after {medicine_day}."]},
        )
    if confirmed_by:
        _check_confirmable(held_on, confirmed_by, medicine_session, now)
    return OutsideIntegration.objects.create(
        medicine_session=medicine_session,
        therapist_name=name,
        therapist_email=email,
        therapist_phone=phone,
        held_on=held_on,
        confirmed_by=confirmed_by,
        confirmed_at=now if confirmed_by else None,
        recorded_by=recorded_by,
    )


def _check_confirmable(
    held_on: dt.date, confirmed_by: str, medicine_session: Session, now: dt.datetime
) -> None:
    if confirmed_by not in OutsideConfirmer.values:
        raise InvalidInput(
            "Confirmed by the therapist or the patient.",
            {"confirmed_by": [f"One of {', '.join(OutsideConfirmer.values)}."]},
        )
    today = timezone.localdate(now, timezone=medicine_session.clinic.tz)
    if held_on > today:
        _refuse(
            "outside_integration_not_yet_held",
            f"The outside integration on {held_on} has not happened yet; it cannot be confirmed.",
            [medicine_session.pk],
            f"Confirm it on or after {held_on}.",
        )


def outside_integration_confirm(
    record: OutsideIntegration,
    *,
    confirmed_by: str,
    now: dt.datetime | None = None,
) -> OutsideIntegration:
    """The outside therapist or the patient confirms the outside integration took place.
    Idempotent: a record already confirmed keeps its first confirmation."""
    now = now or timezone.now()
    with transaction.atomic():
        current = (
            OutsideIntegration.objects.select_for_update(of=("self",))
            .select_related("medicine_session__clinic")
            .get(pk=record.pk)
        )
        if current.is_confirmed:
            return current
        _check_confirmable(current.held_on, confirmed_by, current.medicine_session, now)
        current.confirmed_by = confirmed_by
        current.confirmed_at = now
        current.save(update_fields=["confirmed_by", "confirmed_at"])
    return current


def integration_decline_record(
    *,
    recorded_by: StaffMember,
    reason: str,
    medicine_session: Session | None = None,
    series: TreatmentSeries | None = None,
    now: dt.datetime | None = None,
) -> IntegrationDecline:
    """Record that the patient, offered integration therapy, chose none: after one medicine session,
    or for a whole infusion series. KAP is psychotherapy by definition; a KAP series cannot decline
    its integration (hold or discontinue the series instead)."""
    now = now or timezone.now()
    if (medicine_session is None) == (series is None):
        raise InvalidInput(
            "Decline integration for one medicine session or for one series.",
            {"medicine_session": ["Give a medicine session or a series, not both."]},
        )
    if not reason.strip():
        raise InvalidInput("Say why the patient declined.", {"reason": ["Required."]})
    if medicine_session is not None:
        _require_medicine(medicine_session)
    target_series: TreatmentSeries | None
    if series is not None:
        target_series, patient = series, series.patient
    else:
        assert medicine_session is not None
        target_series, patient = medicine_session.series, medicine_session.patient
    if recorded_by.clinic_id != patient.clinic_id:
        raise InvalidInput(
            f"{recorded_by.full_name} does not work at this clinic.",
            {"recorded_by": ["Not this clinic's."]},
        )
    if (
        target_series is not None
        and target_series.protocol_version.protocol.care_model == CareModel.KAP
    ):
        _refuse(
            "integration_is_part_of_kap",
            "Integration is part of ketamine-assisted psychotherapy; it cannot be declined in a "
            "KAP series.",
            [medicine_session.pk] if medicine_session else [],
            "Hold or discontinue the series, or move the patient to an infusion-only protocol.",
        )
    try:
        with transaction.atomic():
            return IntegrationDecline.objects.create(
                medicine_session=medicine_session,
                series=series,
                reason=reason.strip(),
                recorded_by=recorded_by,
                recorded_at=now,
            )
    except IntegrityError as error:
        field = "medicine_session" if medicine_session is not None else "series"
        raise InvalidInput(
            "A decline is already on file.", {field: ["Integration already declined."]}
        ) from error


# ---------------------------------------------------------------------------------------------
# Integration notes


def _audit_phi_access(action: str, note: IntegrationNote, user: User) -> None:
    """The one place integration notes are audited.

    AUDIT: when the API's append-only audit table lands in ``clinic``, this body becomes its one
    call, e.g. ``audit_record(actor=user, action=action, obj=note, patient_id=...)``.
    """
    audit_log.info(
        "phi %s integration_note=%s session=%s patient=%s user=%s",
        action,
        note.pk,
        note.session_id,
        note.session.patient_id,
        user.pk,
    )


def integration_note_write(
    *, session: Session, author: StaffMember, body: str, now: dt.datetime | None = None
) -> IntegrationNote:
    """A note on an integration session, by that session's therapist only, once the session has
    begun (checked in or completed). Notes are not edited; an addendum is another note."""
    now = now or timezone.now()
    if session.kind != SessionKind.INTEGRATION:
        _refuse(
            "integration_session_only",
            f"Session {session.pk} is a {session.kind} session; integration notes belong to "
            "integration sessions.",
            [session.pk],
        )
    is_session_therapist = SessionStaff.objects.filter(
        session_id=session.pk, staff_id=author.pk, role=Role.THERAPIST
    ).exists()
    if not is_session_therapist or not author.is_active:
        raise NotPermitted(
            f"Only the therapist of session {session.pk} may write its integration notes."
        )
    text = body.strip()
    if not text or len(text) > NOTE_MAX_LENGTH:
        raise InvalidInput(
            "A note has text, at most 20,000 characters.",
            {"body": [f"1 to {NOTE_MAX_LENGTH} characters."]},
        )
    current = Session.objects.select_related("patient").get(pk=session.pk)
    if current.status not in (SessionStatus.CHECKED_IN, SessionStatus.COMPLETED):
        _refuse(
            "note_before_session",
            f"Session {current.pk} is {current.status}; notes are written once it has begun.",
            [current.pk],
        )
    note = IntegrationNote.objects.create(session=current, author=author, body=text, created_at=now)
    _audit_phi_access("write", note, author.user)
    return note


def note_read(note: IntegrationNote, reader: User) -> IntegrationNote:
    """Return ``note`` to ``reader`` if they may read it (the session's therapist, a clinical
    supervisor of the clinic, a superuser), recording the read; ``NotPermitted`` otherwise."""
    readable = clinical_selectors.integration_notes_readable_by(reader).filter(pk=note.pk).first()
    if readable is None:
        raise NotPermitted("Integration notes are read by the session's therapist and supervisors.")
    _audit_phi_access("read", readable, reader)
    return readable


def session_notes_read(session: Session, reader: User) -> list[IntegrationNote]:
    """Every note on ``session`` that ``reader`` may read, each read recorded."""
    notes = list(
        clinical_selectors.integration_notes_readable_by(reader).filter(session_id=session.pk)
    )
    for note in notes:
        _audit_phi_access("read", note, reader)
    return notes


# ---------------------------------------------------------------------------------------------
# Outcome measures


def _milestones(
    series: TreatmentSeries,
) -> dict[tuple[str, int | None], tuple[dt.datetime, dt.datetime]]:
    """(milestone, medicine session) -> (available_from, due_at) for the series as booked now.

    Baseline: before the first medicine session, open from the booking of the series. Before each
    later medicine session: open three days before it (not before the previous one ends). End of
    series: open when the last session of the series ends, due a week later.
    """
    live = list(
        series.sessions.filter(status__in=LIVE_STATUSES)
        .order_by("starts_at", "pk")
        .values_list("pk", "kind", "starts_at", "ends_at")
    )
    medicine = [(pk, starts, ends) for pk, kind, starts, ends in live if kind == "medicine"]
    if not medicine:
        return {}
    _, first_start, _ = medicine[0]
    wanted: dict[tuple[str, int | None], tuple[dt.datetime, dt.datetime]] = {
        (Milestone.BASELINE.value, None): (min(series.created_at, first_start), first_start),
    }
    for (_, _, previous_end), (pk, starts_at, _) in itertools.pairwise(medicine):
        opens = min(max(previous_end, starts_at - QUESTIONNAIRE_OPENS_BEFORE), starts_at)
        wanted[(Milestone.BEFORE_MEDICINE.value, pk)] = (opens, starts_at)
    last_end = max(ends for _, _, _, ends in live)
    wanted[(Milestone.END_OF_SERIES.value, None)] = (last_end, last_end + END_OF_SERIES_DUE_AFTER)
    return wanted


def questionnaire_assignments_sync(
    series: TreatmentSeries, *, now: dt.datetime | None = None
) -> list[QuestionnaireAssignment]:
    """Ask for a PHQ-9 and a GAD-7 at each milestone of the series as booked now. Idempotent.

    Creates the assignments that are missing (one per series, milestone, instrument and, before a
    later medicine session, that session), moves the dates of unanswered ones when sessions moved,
    and withdraws unanswered ones whose medicine session is no longer live. Answered assignments
    are never changed. Returns the series' assignments in force, by due date.
    """
    now = now or timezone.now()
    with transaction.atomic():
        list(
            TreatmentSeries.objects.select_for_update(of=("self",))
            .filter(pk=series.pk)
            .values_list("pk")
        )
        wanted = _milestones(series)
        existing = {
            (a.milestone, a.medicine_session_id, a.instrument): a
            for a in QuestionnaireAssignment.objects.filter(series=series).annotate(
                is_answered=Exists(QuestionnaireResponse.objects.filter(assignment=OuterRef("pk")))
            )
        }
        for (milestone, session_id), (opens, due) in wanted.items():
            for instrument in Instrument.values:
                found = existing.pop((milestone, session_id, instrument), None)
                if found is None:
                    QuestionnaireAssignment.objects.create(
                        series=series,
                        instrument=instrument,
                        milestone=milestone,
                        medicine_session_id=session_id,
                        available_from=opens,
                        due_at=due,
                    )
                elif not found.is_answered and (
                    (found.available_from, found.due_at, found.withdrawn_at) != (opens, due, None)
                ):
                    found.available_from, found.due_at, found.withdrawn_at = opens, due, None
                    found.save(update_fields=["available_from", "due_at", "withdrawn_at"])
        for stale in existing.values():
            if not stale.is_answered and stale.withdrawn_at is None:
                stale.withdrawn_at = now
                stale.save(update_fields=["withdrawn_at"])
    return list(
        QuestionnaireAssignment.objects.filter(series=series, withdrawn_at__isnull=True).order_by(
            "due_at", "instrument", "id"
        )
    )


def questionnaire_answer(
    assignment: QuestionnaireAssignment,
    *,
    answers: Sequence[object],
    answered_by: User | None,
    now: dt.datetime | None = None,
) -> QuestionnaireResponse:
    """Score the patient's answers on the server and store them. A PHQ-9 item 9 answer above
    zero raises a safety alert for the therapist and the prescriber in the same transaction.

    ``answered_by`` is the patient's own login (the portal) or a staff member of the clinic
    entering a paper form; anyone else is refused.
    """
    now = now or timezone.now()
    try:
        scored = measures.score(assignment.instrument, answers)
    except measures.AnswerError as error:
        raise InvalidInput(str(error), error.errors) from error
    with transaction.atomic():
        current = (
            QuestionnaireAssignment.objects.select_for_update(of=("self",))
            .select_related("series__patient")
            .get(pk=assignment.pk)
        )
        patient = current.series.patient
        _require_may_answer(answered_by, patient)
        if current.withdrawn_at is not None:
            _refuse("questionnaire_withdrawn", "This questionnaire is no longer asked.", [])
        if now < current.available_from:
            _refuse(
                "questionnaire_not_open",
                f"This questionnaire opens at {current.available_from.isoformat()}.",
                [],
            )
        if QuestionnaireResponse.objects.filter(assignment=current).exists():
            _refuse("questionnaire_answered", "This questionnaire is already answered.", [])
        response = QuestionnaireResponse.objects.create(
            assignment=current,
            instrument=scored.instrument,
            answers=list(scored.answers),
            total_score=scored.total,
            severity=scored.severity,
            answered_at=now,
            answered_by=answered_by,
        )
        if scored.has_self_harm_thoughts:
            item = measures.PHQ9_SELF_HARM_ITEM
            safety_alert_raise(
                response=response, item_number=item, answer=scored.answers[item - 1], now=now
            )
    return response


def _require_may_answer(user: User | None, patient: Patient) -> None:
    if user is None:
        return  # a worker importing answers; the caller vouches
    if user.is_superuser or (patient.user_id is not None and user.pk == patient.user_id):
        return
    member = clinical_selectors.staff_of(user)
    if member is None or member.clinic_id != patient.clinic_id:
        raise NotPermitted("Only the patient or the clinic's staff may answer this questionnaire.")


def _responsible_clinicians(
    patient: Patient, series: TreatmentSeries | None, now: dt.datetime
) -> tuple[StaffMember | None, StaffMember | None]:
    """The therapist (the series' preferred therapist, else the therapist of the patient's most
    recent session that had one) and the prescriber (who cleared the latest screening)."""
    therapist = series.preferred_therapist if series is not None else None
    if therapist is None:
        hold = (
            SessionStaff.objects.filter(
                session__patient=patient,
                session__status__in=LIVE_STATUSES,
                role=Role.THERAPIST,
                session__starts_at__lte=now,
            )
            .select_related("staff")
            .order_by("-session__starts_at")
            .first()
        ) or (
            SessionStaff.objects.filter(
                session__patient=patient, session__status__in=LIVE_STATUSES, role=Role.THERAPIST
            )
            .select_related("staff")
            .order_by("session__starts_at")
            .first()
        )
        therapist = hold.staff if hold is not None else None
    screening = (
        Screening.objects.filter(
            patient=patient, result=ScreeningResult.CLEARED, cleared_by__isnull=False
        )
        .select_related("cleared_by")
        .order_by("-screened_on", "-pk")
        .first()
    )
    return therapist, screening.cleared_by if screening is not None else None


def safety_alert_raise(
    *,
    response: QuestionnaireResponse,
    item_number: int,
    answer: int,
    now: dt.datetime | None = None,
) -> IntegrationSafetyEvent:
    """Record a safety event (PHQ-9 item 9 above zero) and alert the patient's therapist and
    prescriber at once. Idempotent: one event per response.

    The event is the clinical record (which answer, which patient, when, who was alerted); the
    alert itself goes through ``_staff_alert_send``, the one line to wire to the StaffAlert model.
    """
    now = now or timezone.now()
    series = response.assignment.series
    patient = series.patient
    therapist, prescriber = _responsible_clinicians(patient, series, now)
    event, created = IntegrationSafetyEvent.objects.get_or_create(
        response=response,
        defaults={
            "patient": patient,
            "item_number": item_number,
            "answer": answer,
            "raised_at": now,
            "therapist": therapist,
            "prescriber": prescriber,
        },
    )
    if created:
        _staff_alert_send(event)
    return event


def _staff_alert_send(event: IntegrationSafetyEvent) -> None:
    """Alert the patient's therapist and prescriber at once, each by name (the clinic's admins
    when either is unknown), through the staff alerts every scan uses: one alert per event and
    person however often this runs, e-mailed after the transaction commits."""
    alert_log.critical(
        "urgent phq9_self_harm patient=%s event=%s answer=%s therapist=%s prescriber=%s",
        event.patient_id,
        event.pk,
        event.answer,
        event.therapist_id,
        event.prescriber_id,
    )
    message = (
        f"URGENT: {event.patient.full_name} answered {event.answer} to PHQ-9 item 9 "
        "(thoughts of being better off dead or of self-harm). Contact the patient today."
    )
    series_id = event.response.assignment.series_id
    for role, person in ((Role.THERAPIST, event.therapist), (Role.PRESCRIBER, event.prescriber)):
        staff_alert_raise(
            clinic=event.patient.clinic_id,
            kind=AlertKind.PHQ9_SELF_HARM,
            message=message,
            dedupe_key=safety_alert_key(event.pk, role),
            target_role="" if person is not None else Role.CLINIC_ADMIN,
            target_staff=person,
            series_id=series_id,
        )


# ---------------------------------------------------------------------------------------------
# The dose record of a medicine session

DOSING_ROLES = (Role.NURSE, Role.PRESCRIBER)
CLINICAL_ROLES = (Role.NURSE, Role.PRESCRIBER, Role.THERAPIST)


def _require_checked_in(session: Session, what: str) -> None:
    if session.status != SessionStatus.CHECKED_IN:
        _refuse(
            "session_not_checked_in",
            f"Session {session.pk} is {session.status}; {what} is recorded while the patient is "
            "checked in.",
            [session.pk],
        )


def _require_on_session_day(name: str, value: dt.datetime, session: Session) -> None:
    day = session_local_date(session)
    if value.astimezone(session.clinic.tz).date() != day:
        raise InvalidInput(
            f"{name} is not on the session's day ({day}).", {name: [f"On {day}, local time."]}
        )


def _decimal(name: str, value: object, places: int, low: Decimal, high: Decimal) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as error:
        raise InvalidInput(f"{name} is not a number.", {name: ["A number."]}) from error
    if isinstance(value, bool) or not number.is_finite():
        raise InvalidInput(f"{name} is not a number.", {name: ["A number."]})
    step = Decimal(1).scaleb(-places)
    if number != number.quantize(step):
        raise InvalidInput(
            f"{name} has more than {places} decimal places.", {name: [f"At most {places}."]}
        )
    if not low <= number <= high:
        raise InvalidInput(f"{name} is out of range.", {name: [f"Between {low} and {high}."]})
    return number.quantize(step)


def dose_mg_per_kg(dose_mg: Decimal, weight_kg: Decimal) -> Decimal:
    """mg/kg to three decimals, half up: computed here, never taken from the caller."""
    return (dose_mg / weight_kg).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def dose_record(
    *,
    session: Session,
    route: str,
    dose_mg: Decimal | int | str,
    weight_kg: Decimal | int | str,
    started_at: dt.datetime,
    administered_by: StaffMember,
    ended_at: dt.datetime | None = None,
    recorded_by: User | None = None,
    now: dt.datetime | None = None,
) -> DoseRecord:
    """Record the dose given in a checked-in medicine session, once, after the vital signs before
    it. ``dose_mg_per_kg`` is computed from the dose and the weight used."""
    now = now or timezone.now()
    _require_medicine(session)
    if route not in Route.values:
        raise InvalidInput("Unknown route.", {"route": [f"One of {', '.join(Route.values)}."]})
    mg = _decimal("dose_mg", dose_mg, 2, Decimal("0.01"), Decimal(1000))
    kg = _decimal("weight_kg", weight_kg, 1, Decimal(20), Decimal(350))
    per_kg = dose_mg_per_kg(mg, kg)
    if per_kg > 10:
        raise InvalidInput(
            f"{per_kg} mg/kg is not a plausible ketamine dose; check the units.",
            {"dose_mg": ["At most 10 mg/kg."]},
        )
    _require_not_future("started_at", started_at, now)
    if ended_at is not None:
        _require_not_future("ended_at", ended_at, now)
        if ended_at <= started_at:
            raise InvalidInput("ended_at must be after started_at.", {"ended_at": ["After start."]})
    with transaction.atomic():
        current = _locked_session(session)
        _require_staff_of_clinic(administered_by, current, DOSING_ROLES, "administered_by")
        _require_checked_in(current, "a dose")
        _require_on_session_day("started_at", started_at, current)
        if DoseRecord.objects.filter(session=current).exists():
            _refuse(
                "dose_already_recorded",
                f"Session {current.pk} already has its dose record.",
                [current.pk],
            )
        before = VitalSigns.objects.filter(session=current, phase=VitalsPhase.BEFORE)
        if not before.exists():
            _refuse(
                "vitals_before_dose",
                "No vital signs before the dose are recorded.",
                [current.pk],
                "Record blood pressure, heart rate and SpO2 before dosing.",
            )
        if before.filter(measured_at__gt=started_at).exists():
            raise InvalidInput(
                "The dose starts before the vital signs taken before it.",
                {"started_at": ["After the pre-dose vital signs."]},
            )
        return DoseRecord.objects.create(
            session=current,
            route=route,
            dose_mg=mg,
            weight_kg=kg,
            dose_mg_per_kg=per_kg,
            started_at=started_at,
            ended_at=ended_at,
            administered_by=administered_by,
            recorded_by=recorded_by,
        )


def dose_end_record(
    *,
    session: Session,
    ended_at: dt.datetime,
    recorded_by: StaffMember,
    now: dt.datetime | None = None,
) -> DoseRecord:
    """Record when the dose (an infusion) ended. Once."""
    now = now or timezone.now()
    _require_not_future("ended_at", ended_at, now)
    with transaction.atomic():
        current = _locked_session(session)
        _require_staff_of_clinic(recorded_by, current, DOSING_ROLES, "recorded_by")
        dose = _dose_of(current)
        _require_checked_in(current, "the end of the dose")
        if dose.ended_at is not None:
            _refuse("dose_end_recorded", "The end of the dose is already recorded.", [current.pk])
        if ended_at <= dose.started_at:
            raise InvalidInput("ended_at must be after the start.", {"ended_at": ["After start."]})
        dose.ended_at = ended_at
        dose.save(update_fields=["ended_at", "updated_at"])
    return dose


def _dose_of(session: Session) -> DoseRecord:
    dose = DoseRecord.objects.select_for_update(of=("self",)).filter(session=session).first()
    if dose is None:
        _refuse(
            "dose_record",
            f"Session {session.pk} has no dose record yet.",
            [session.pk],
            "Record the dose first.",
        )
    assert dose is not None
    return dose


def vital_signs_record(
    *,
    session: Session,
    phase: str,
    measured_at: dt.datetime,
    systolic_mmhg: int,
    diastolic_mmhg: int,
    heart_rate_bpm: int,
    spo2_percent: int,
    recorded_by: StaffMember,
    now: dt.datetime | None = None,
) -> VitalSigns:
    """Record one set of vital signs before, during or after the dose of a checked-in medicine
    session. Times must agree with the dose: before it starts, while it runs, after it ends."""
    now = now or timezone.now()
    _require_medicine(session)
    if phase not in VitalsPhase.values:
        raise InvalidInput("Unknown phase.", {"phase": ["before, during or after."]})
    readings = {
        "systolic_mmhg": (systolic_mmhg, 50, 260),
        "diastolic_mmhg": (diastolic_mmhg, 20, 160),
        "heart_rate_bpm": (heart_rate_bpm, 20, 250),
        "spo2_percent": (spo2_percent, 50, 100),
    }
    errors = {
        name: [f"An integer {low} to {high}."]
        for name, (value, low, high) in readings.items()
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
    }
    if not errors and diastolic_mmhg >= systolic_mmhg:
        errors["diastolic_mmhg"] = ["Below the systolic pressure."]
    if errors:
        raise InvalidInput("Implausible vital signs; check the readings.", errors)
    _require_not_future("measured_at", measured_at, now)
    with transaction.atomic():
        current = _locked_session(session)
        _require_staff_of_clinic(recorded_by, current, DOSING_ROLES, "recorded_by")
        _require_checked_in(current, "vital signs")
        _require_on_session_day("measured_at", measured_at, current)
        dose = DoseRecord.objects.filter(session=current).first()
        _check_phase_order(phase, measured_at, dose, current)
        return VitalSigns.objects.create(
            session=current,
            phase=phase,
            measured_at=measured_at,
            systolic_mmhg=systolic_mmhg,
            diastolic_mmhg=diastolic_mmhg,
            heart_rate_bpm=heart_rate_bpm,
            spo2_percent=spo2_percent,
            recorded_by=recorded_by,
        )


def _check_phase_order(
    phase: str, measured_at: dt.datetime, dose: DoseRecord | None, session: Session
) -> None:
    """Before: ahead of the dose. During: from the start of the dose, through the medicine phase
    (an IM or sublingual dose takes a minute; its effects last the session). After: once the dose
    has ended and after every reading taken during it. None once the patient is discharged."""

    def refuse(message: str, fix: str | None = None) -> None:
        _refuse("vitals_phase_order", message, [session.pk], fix)

    if dose is not None and dose.discharged_at is not None:
        refuse("The patient is discharged; no more vital signs are recorded for this session.")
    if phase == VitalsPhase.BEFORE:
        if dose is not None and measured_at > dose.started_at:
            refuse(
                "Vital signs before the dose are taken before it starts.",
                "Record them as during or after the dose.",
            )
        return
    if dose is None:
        refuse(f"Vital signs {phase} the dose need the dose recorded first.", "Record the dose.")
        return
    if phase == VitalsPhase.DURING and measured_at < dose.started_at:
        refuse("Vital signs during the dose are taken once it has started.")
    if phase == VitalsPhase.AFTER:
        if dose.ended_at is None:
            refuse(
                "Vital signs after the dose are taken once it has ended.",
                "Record the end of the dose first.",
            )
        elif (
            measured_at < dose.ended_at
            or VitalSigns.objects.filter(
                session=session, phase=VitalsPhase.DURING, measured_at__gt=measured_at
            ).exists()
        ):
            refuse(
                "Vital signs after the dose are taken after it ended and after every reading "
                "during it."
            )


def adverse_event_record(
    *,
    session: Session,
    code: str,
    noted_at: dt.datetime,
    recorded_by: StaffMember,
    notes: str = "",
    now: dt.datetime | None = None,
) -> AdverseEvent:
    """Record an adverse event of the dose: a coded event, with free text (required for
    ``other``). Also after the session is completed (the patient calls the next day)."""
    now = now or timezone.now()
    _require_medicine(session)
    if code not in AdverseEventCode.values:
        raise InvalidInput(
            "Unknown adverse event code.",
            {"code": [f"One of {', '.join(AdverseEventCode.values)}."]},
        )
    if code == AdverseEventCode.OTHER and not notes.strip():
        raise InvalidInput("Describe the adverse event.", {"notes": ["Required for other."]})
    _require_not_future("noted_at", noted_at, now)
    with transaction.atomic():
        current = _locked_session(session)
        _require_staff_of_clinic(recorded_by, current, CLINICAL_ROLES, "recorded_by")
        dose = _dose_of(current)
        if noted_at < dose.started_at:
            raise InvalidInput(
                "An adverse event of the dose is noted after it starts.",
                {"noted_at": ["After the dose started."]},
            )
        return AdverseEvent.objects.create(
            dose=dose, code=code, notes=notes.strip(), noted_at=noted_at, recorded_by=recorded_by
        )


#: The discharge criteria a clinician attests, in the order they are checked.
DISCHARGE_CRITERIA: dict[str, str] = {
    "is_alert_and_oriented": "alert and oriented",
    "are_vital_signs_stable": "vital signs stable",
    "is_walking_steadily": "walking steadily without help",
    "is_nausea_controlled": "nausea controlled",
    "is_dissociation_resolved": "dissociative effects resolved",
}


def discharge_record(
    *,
    session: Session,
    discharged_by: StaffMember,
    discharged_at: dt.datetime,
    escort_handoff_name: str,
    criteria: dict[str, bool],
    now: dt.datetime | None = None,
) -> DoseRecord:
    """Discharge the patient after the dose: after the vital signs after it, only when every
    criterion is met, into the care of the person taking them home (no driving until the next
    day)."""
    now = now or timezone.now()
    _require_medicine(session)
    unknown = sorted(set(criteria) - set(DISCHARGE_CRITERIA))
    if unknown:
        raise InvalidInput(
            "Unknown discharge criteria.", {"criteria": [f"Unknown: {', '.join(unknown)}."]}
        )
    handoff = escort_handoff_name.strip()
    if not handoff:
        raise InvalidInput(
            "Name who takes the patient home.", {"escort_handoff_name": ["Required."]}
        )
    _require_not_future("discharged_at", discharged_at, now)
    with transaction.atomic():
        current = _locked_session(session)
        _require_staff_of_clinic(discharged_by, current, DOSING_ROLES, "discharged_by")
        _require_checked_in(current, "a discharge")
        dose = _dose_of(current)
        problems = []
        if dose.is_discharged:
            problems.append(
                _violation("discharge_recorded", "The discharge is already recorded.", [current.pk])
            )
        if dose.ended_at is None:
            problems.append(
                _violation(
                    "dose_record",
                    "The dose has no end time.",
                    [current.pk],
                    "Record when the dose ended.",
                )
            )
        elif discharged_at <= dose.ended_at:
            raise InvalidInput(
                "The discharge is before the end of the dose.",
                {"discharged_at": ["After the dose ended."]},
            )
        if not VitalSigns.objects.filter(session=current, phase=VitalsPhase.AFTER).exists():
            problems.append(
                _violation(
                    "post_session_vitals",
                    "No vital signs after the dose are recorded.",
                    [current.pk],
                    "Record vital signs after the dose before discharge.",
                )
            )
        unmet = [
            label for name, label in DISCHARGE_CRITERIA.items() if criteria.get(name) is not True
        ]
        if unmet:
            problems.append(
                _violation(
                    "discharge_criteria",
                    f"Discharge criteria not met: {', '.join(unmet)}.",
                    [current.pk],
                    "Keep the patient in recovery until every criterion is met.",
                )
            )
        if problems:
            raise RuleViolation(problems)
        dose.discharged_at = discharged_at
        dose.discharged_by = discharged_by
        dose.escort_handoff_name = handoff
        for name in DISCHARGE_CRITERIA:
            setattr(dose, name, True)
        dose.save()
    return dose
