"""Booking use cases: create, move and cancel sessions, and walk them through their lifecycle.

Every caller (API view, admin, task, management command) goes through these functions. The
checks here give a good error message; the database is the guard (see ``scheduling.models``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from clinic.db import is_exclusion_violation
from clinic.errors import (
    IllegalTransition,
    InvalidInput,
    ResourceConflict,
    RuleViolation,
    TakenResource,
)
from clinic.models import Patient, Room, StaffMember, User
from protocols.models import SessionKind
from protocols.rules import Step
from protocols.selectors import step_for_kind

from .hooks import session_changed
from .models import LIVE_STATUSES, Escort, Session, SessionStaff, SessionStatus, TreatmentSeries

#: The longest single session the clinic books; anything longer is a typing mistake.
MAX_SESSION_LENGTH = dt.timedelta(hours=12)


@dataclass(frozen=True)
class StaffHoldSpec:
    staff: StaffMember
    role: str
    starts_at: dt.datetime
    ends_at: dt.datetime


# ---------------------------------------------------------------------------------------------
# Checks shared by create and move


def _require_aware(name: str, value: dt.datetime) -> None:
    if timezone.is_naive(value):
        raise InvalidInput(
            f"{name} must carry a UTC offset.",
            {name: ["Give an offset, e.g. 2026-03-09T09:00:00-07:00."]},
        )


def _validate_interval(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    _require_aware("starts_at", starts_at)
    _require_aware("ends_at", ends_at)
    if ends_at <= starts_at:
        raise InvalidInput(
            "ends_at must be after starts_at.", {"ends_at": ["Must be after starts_at."]}
        )
    if ends_at - starts_at > MAX_SESSION_LENGTH:
        raise InvalidInput(
            "A session cannot be longer than 12 hours.",
            {"ends_at": ["At most 12 hours after starts_at."]},
        )


def _local(moment: dt.datetime, patient: Patient) -> str:
    return timezone.localtime(moment, patient.clinic.tz).strftime("%Y-%m-%d %H:%M")


def staff_holds_for(
    step: Step, starts_at: dt.datetime, ends_at: dt.datetime, staff: Sequence[StaffMember]
) -> list[StaffHoldSpec]:
    """Give each chosen staff member the role of ``step`` they fill, for that role's minutes.

    Every role the step needs must be filled by exactly one of ``staff``, and every one of
    ``staff`` must fill a role: a medicine session needs its therapist and its nurse.
    """
    holds: list[StaffHoldSpec] = []
    unfilled = list(step.roles)
    unplaced: list[StaffMember] = []
    for member in staff:
        granted = set(member.roles)
        match = next((need for need in unfilled if need.role in granted), None)
        if match is None:
            unplaced.append(member)
            continue
        unfilled.remove(match)
        until = starts_at + dt.timedelta(minutes=match.minutes) if match.minutes else ends_at
        holds.append(StaffHoldSpec(member, match.role, starts_at, min(until, ends_at)))
    problems: dict[str, list[str]] = {}
    if unplaced:
        problems["staff"] = [
            f"{member.full_name} has none of the roles this {step.kind} session still needs."
            for member in unplaced
        ]
    if unfilled:
        problems.setdefault("staff", []).extend(
            f"This {step.kind} session needs a {need.role}." for need in unfilled
        )
    if problems:
        raise RuleViolation(
            [
                {"rule": "staff_roles", "message": message, "sessions": [], "suggested_fix": None}
                for message in problems["staff"]
            ]
        )
    return holds


def _peak_overlap(
    intervals: Iterable[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> int:
    """The most of ``intervals`` that overlap one another at any instant inside [start, end)."""
    events: list[tuple[dt.datetime, int]] = []
    for lower, upper in intervals:
        lower, upper = max(lower, start), min(upper, end)
        if lower < upper:
            events += [(lower, 1), (upper, -1)]
    events.sort(key=lambda event: (event[0], event[1]))  # an end at t frees before a start at t
    depth = peak = 0
    for _, step in events:
        depth += step
        peak = max(peak, depth)
    return peak


def _taken_resources(
    *,
    patient: Patient,
    room: Room,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    room_released_at: dt.datetime,
    holds: Sequence[StaffHoldSpec],
    exclude_session: int | None = None,
) -> list[TakenResource]:
    """What is already held at the proposed time, to name it in the conflict error."""
    live = Session.objects.filter(status__in=LIVE_STATUSES)
    staff_holds = SessionStaff.objects.filter(is_active=True)
    if exclude_session is not None:
        live = live.exclude(pk=exclude_session)
        staff_holds = staff_holds.exclude(session_id=exclude_session)
    taken: list[TakenResource] = []
    room_clash = live.filter(
        room=room, starts_at__lt=room_released_at, room_released_at__gt=starts_at
    ).first()
    if room_clash is not None:
        taken.append(
            TakenResource(
                "room",
                room.pk,
                f"{room.name} is held from {_local(room_clash.starts_at, patient)} to "
                f"{_local(room_clash.room_released_at, patient)} "
                f"(session {room_clash.pk}, turnover included).",
                (room_clash.pk,),
            )
        )
    patient_clash = live.filter(
        patient=patient, starts_at__lt=ends_at, ends_at__gt=starts_at
    ).first()
    if patient_clash is not None:
        taken.append(
            TakenResource(
                "patient",
                patient.pk,
                f"{patient.full_name} already has a {patient_clash.kind} session from "
                f"{_local(patient_clash.starts_at, patient)} to "
                f"{_local(patient_clash.ends_at, patient)} "
                f"(session {patient_clash.pk}).",
                (patient_clash.pk,),
            )
        )
    for hold in holds:
        overlapping = list(
            staff_holds.filter(
                staff=hold.staff, starts_at__lt=hold.ends_at, ends_at__gt=hold.starts_at
            ).values_list("starts_at", "ends_at", "session_id")
        )
        capacity = hold.staff.max_concurrent_patients
        if (
            _peak_overlap(((s, e) for s, e, _ in overlapping), hold.starts_at, hold.ends_at)
            >= capacity
        ):
            noun = (
                "is with another patient" if capacity == 1 else f"already has {capacity} patients"
            )
            taken.append(
                TakenResource(
                    "staff",
                    hold.staff.pk,
                    f"{hold.staff.full_name} {noun} between {_local(hold.starts_at, patient)} and "
                    f"{_local(hold.ends_at, patient)}.",
                    tuple(sorted({session_id for _, _, session_id in overlapping})),
                )
            )
    return taken


def _lock_shared_staff(holds: Sequence[StaffHoldSpec]) -> None:
    """Serialize bookings of staff who take several patients at once.

    A nurse with capacity 3 cannot be guarded by an exclusion constraint (three overlaps are
    allowed, a fourth is not), so concurrent bookings of that nurse queue on the nurse's row and
    the capacity count runs after the lock is held. Rows are locked in id order to avoid deadlock.
    """
    shared = sorted({hold.staff.pk for hold in holds if hold.staff.max_concurrent_patients > 1})
    if shared:
        list(
            StaffMember.objects.select_for_update()
            .filter(pk__in=shared)
            .order_by("pk")
            .values_list("pk")
        )


CONSTRAINT_RESOURCES = {
    "session_room_no_overlap": "room",
    "session_patient_no_overlap": "patient",
    "staffhold_single_capacity_no_overlap": "staff",
}


class _Clash(Exception):
    """An exclusion constraint refused the write: someone else booked the slot a moment ago."""

    def __init__(self, resource: str) -> None:
        super().__init__(resource)
        self.resource = resource


def _write_holds(session: Session, holds: Sequence[StaffHoldSpec], *, replace: bool) -> None:
    """Save ``session`` and its staff holds in a savepoint; an exclusion violation rolls back to it
    and raises ``_Clash`` so the caller can name what was taken."""
    is_new = session.pk is None
    try:
        with transaction.atomic():
            session.save()
            if replace:
                session.staff_holds.all().delete()
            SessionStaff.objects.bulk_create(
                SessionStaff(
                    session=session,
                    staff=hold.staff,
                    role=hold.role,
                    starts_at=hold.starts_at,
                    ends_at=hold.ends_at,
                    is_active=session.is_live,
                    is_exclusive=hold.staff.max_concurrent_patients == 1,
                )
                for hold in holds
            )
    except IntegrityError as error:
        if is_new:
            session.pk = None
        for constraint, resource in CONSTRAINT_RESOURCES.items():
            if is_exclusion_violation(error, constraint):
                raise _Clash(resource) from error
        raise


def _hold_or_conflict(session: Session, holds: Sequence[StaffHoldSpec], *, replace: bool) -> None:
    """Check, then write, under the locks; name what is taken either way."""

    def taken() -> list[TakenResource]:
        return _taken_resources(
            patient=session.patient,
            room=session.room,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            room_released_at=session.room_released_at,
            holds=holds,
            exclude_session=session.pk,
        )

    _lock_shared_staff(holds)
    found = taken()
    if found:
        raise ResourceConflict(found)
    try:
        _write_holds(session, holds, replace=replace)
    except _Clash as clash:
        found = taken() or [
            TakenResource(
                clash.resource, 0, f"The {clash.resource} was booked by someone else a moment ago."
            )
        ]
        raise ResourceConflict(found) from clash


def _check_placement(
    patient: Patient, step: Step, room: Room, staff: Sequence[StaffMember]
) -> None:
    """The chosen room and staff belong to the patient's clinic and suit the session."""
    problems: dict[str, list[str]] = {}
    if room.clinic_id != patient.clinic_id:
        problems["room"] = [f"{room.name} is not in {patient.clinic.name}."]
    elif not room.is_active:
        problems["room"] = [f"{room.name} is out of service."]
    for member in staff:
        if member.clinic_id != patient.clinic_id or not member.is_active:
            problems.setdefault("staff", []).append(
                f"{member.full_name} does not work at {patient.clinic.name}."
            )
    if problems:
        raise InvalidInput("The room or staff chosen do not belong to this clinic.", problems)
    if room.kind != step.room_kind:
        raise RuleViolation(
            [
                {
                    "rule": "room_kind",
                    "message": f"A {step.kind} session needs a room of kind {step.room_kind}; "
                    f"{room.name} is a {room.kind}.",
                    "sessions": [],
                    "suggested_fix": f"Choose a room of kind {step.room_kind}.",
                }
            ]
        )


# ---------------------------------------------------------------------------------------------
# Use cases


def session_create(
    *,
    patient: Patient,
    kind: str,
    starts_at: dt.datetime,
    room: Room,
    staff: Sequence[StaffMember] = (),
    ends_at: dt.datetime | None = None,
    series: TreatmentSeries | None = None,
    route: str | None = None,
    created_by: User | None = None,
) -> Session:
    """Book one session, holding its room, its patient and its staff.

    ``ends_at`` defaults to the length of the kind's step in the series' protocol (or the kind's
    clinic default). Raises ``ResourceConflict`` naming what is taken, ``RuleViolation`` when the
    room or staff do not suit the session, ``InvalidInput`` for impossible times.
    """
    if kind not in SessionKind.values:
        raise InvalidInput(
            f"Unknown session kind {kind!r}.",
            {"kind": [f"One of {', '.join(SessionKind.values)}."]},
        )
    if series is not None and series.patient_id != patient.pk:
        raise InvalidInput(
            "That series belongs to another patient.", {"series": ["Not this patient's series."]}
        )
    step = step_for_kind(series.protocol_version if series else None, kind, route)
    _require_aware("starts_at", starts_at)
    ends_at = ends_at or starts_at + dt.timedelta(minutes=step.duration_minutes)
    _validate_interval(starts_at, ends_at)
    _check_placement(patient, step, room, staff)
    holds = staff_holds_for(step, starts_at, ends_at, staff)
    session = Session(
        series=series,
        patient=patient,
        clinic_id=patient.clinic_id,
        kind=kind,
        route=(route if route is not None else step.route) if kind == SessionKind.MEDICINE else "",
        room=room,
        starts_at=starts_at,
        ends_at=ends_at,
        room_released_at=ends_at + dt.timedelta(minutes=room.turnover_minutes),
        created_by=created_by,
    )
    with transaction.atomic():
        _hold_or_conflict(session, holds, replace=False)
        session_changed(session)
    return session


def _locked(session: Session) -> Session:
    """The session re-read under a row lock, so two clients acting at once act one after another."""
    return (
        Session.objects.select_for_update().select_related("clinic", "patient").get(pk=session.pk)
    )


def _apply_transition(
    session: Session, action: str, verb: str, *, now: dt.datetime, by: User | None
) -> Session:
    method = getattr(session, action)
    if not can_proceed(method):
        raise IllegalTransition(session.pk, session.status, verb)
    method()
    session.status_changed_at = now
    session.status_changed_by = by
    session.revision += 1
    session.save()
    if not session.is_live:
        SessionStaff.objects.filter(session=session).update(is_active=False)
    session_changed(session, now=now)
    return session


def session_cancel(
    session: Session, *, reason: str, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    """Cancel a session and free its room, patient and staff.

    Inside the clinic's late-cancellation window (``Clinic.late_cancel_hours`` before the start)
    the session becomes ``late_cancelled``; a checked-in session that is stopped is ``cancelled``.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(session)
        window = dt.timedelta(hours=current.clinic.late_cancel_hours)
        is_late = current.status != SessionStatus.CHECKED_IN and current.starts_at - now < window
        current.cancel_reason = reason.strip()[:500]
        _apply_transition(
            current, "late_cancel" if is_late else "cancel", "cancelled", now=now, by=by
        )
    return current


def session_confirm(
    session: Session, *, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    with transaction.atomic():
        return _apply_transition(
            _locked(session), "confirm", "confirmed", now=now or timezone.now(), by=by
        )


def session_check_in(
    session: Session, *, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    with transaction.atomic():
        return _apply_transition(
            _locked(session), "check_in", "checked in", now=now or timezone.now(), by=by
        )


def session_complete(
    session: Session, *, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    with transaction.atomic():
        return _apply_transition(
            _locked(session), "complete", "completed", now=now or timezone.now(), by=by
        )


def session_mark_no_show(
    session: Session, *, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(session)
        if current.starts_at > now:
            raise RuleViolation(
                [
                    {
                        "rule": "no_show_before_start",
                        "message": f"Session {current.pk} has not started yet; "
                        "it cannot be a no-show.",
                        "sessions": [current.pk],
                        "suggested_fix": None,
                    }
                ]
            )
        return _apply_transition(current, "mark_no_show", "marked a no-show", now=now, by=by)


def staff_capacity_set(staff: StaffMember, capacity: int) -> StaffMember:
    """Change how many patients a staff member takes at once, keeping the overlap guard in step.

    Lowering the capacity to one while overlapping holds exist would break the invariant the
    exclusion constraint protects, so it is refused with the sessions to move first.
    """
    if capacity < 1:
        raise InvalidInput(
            "Capacity must be at least 1.", {"max_concurrent_patients": ["At least 1."]}
        )
    with transaction.atomic():
        member = StaffMember.objects.select_for_update().get(pk=staff.pk)
        if capacity == 1 and member.max_concurrent_patients > 1:
            active = SessionStaff.objects.filter(staff=member, is_active=True).order_by("starts_at")
            previous: SessionStaff | None = None
            for hold in active.only("starts_at", "ends_at", "session_id"):
                if previous is not None and hold.starts_at < previous.ends_at:
                    raise RuleViolation(
                        [
                            {
                                "rule": "staff_capacity",
                                "message": f"{member.full_name} has overlapping patients booked; "
                                "move them before lowering the capacity to one.",
                                "sessions": [previous.session_id, hold.session_id],
                                "suggested_fix": "Reassign one of the overlapping sessions.",
                            }
                        ]
                    )
                if previous is None or hold.ends_at > previous.ends_at:
                    previous = hold
        member.max_concurrent_patients = capacity
        member.save(update_fields=["max_concurrent_patients"])
        SessionStaff.objects.filter(Q(staff=member)).update(is_exclusive=capacity == 1)
    return member


def session_escort_set(
    session: Session,
    *,
    name: str,
    phone: str,
    is_confirmed: bool,
    by: User | None = None,
    now: dt.datetime | None = None,
) -> Escort:
    """Record (or change) the ride home for a medicine session."""
    if session.kind != SessionKind.MEDICINE:
        raise RuleViolation(
            [
                {
                    "rule": "escort_for_medicine_only",
                    "message": f"Session {session.pk} is a {session.kind} session; "
                    "a ride home is recorded for medicine sessions.",
                    "sessions": [session.pk],
                    "suggested_fix": None,
                }
            ]
        )
    if not name.strip() or not phone.strip():
        raise InvalidInput("An escort needs a name and a phone number.", {"name": ["Required."]})
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(session)
        escort, _ = Escort.objects.select_for_update().get_or_create(
            session=current, defaults={"name": name.strip(), "phone": phone.strip()}
        )
        was_confirmed = escort.is_confirmed
        escort.name, escort.phone, escort.is_confirmed = name.strip(), phone.strip(), is_confirmed
        escort.confirmed_at = (
            (escort.confirmed_at if was_confirmed else now) if is_confirmed else None
        )
        escort.recorded_by = by
        escort.save()
        current.revision += 1
        current.save(update_fields=["revision", "updated_at"])
    return escort
