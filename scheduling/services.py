"""Booking use cases: create, move and cancel sessions, and walk them through their lifecycle.

Every caller (API view, admin, task, management command) goes through these functions. The
checks here give a good error message; the database is the guard (see ``scheduling.models``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from clinic.db import is_constraint_violation, is_deadlock, is_exclusion_violation
from clinic.errors import (
    IllegalTransition,
    InvalidInput,
    ResourceConflict,
    RuleViolation,
    TakenResource,
)
from clinic.models import Patient, Room, StaffMember, User
from integration import gates as safety_gates
from integration import services as integration_services
from protocols.models import ProtocolVersion, SessionKind
from protocols.rules import (
    PatientGates,
    SessionFact,
    Step,
    StepRole,
    Violation,
    day_start,
    evaluate,
    gate_failures,
    local_date,
    steps_done,
)
from protocols.selectors import protocol_spec, protocol_versions, step_for_kind, version_spec

from .hooks import session_changed
from .models import (
    LIVE_STATUSES,
    OPEN_SERIES_STATUSES,
    Escort,
    SeriesStatus,
    Session,
    SessionStaff,
    SessionStatus,
    TreatmentSeries,
)
from .planner import (
    EpochIntervals,
    Interval,
    Plan,
    PlannedSession,
    PlanRequest,
    Preferences,
    place_session,
    plan_series,
    replan_after,
)
from .revalidation import series_revalidate
from .supply import Supply, patient_gates, supply_for

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


def _patient_clash(
    patient: Patient, starts_at: dt.datetime, ends_at: dt.datetime, exclude: Collection[int]
) -> TakenResource | None:
    """The patient's own live session overlapping ``[starts_at, ends_at)``, named."""
    live = Session.objects.filter(patient=patient, status__in=LIVE_STATUSES).exclude(pk__in=exclude)
    clash = live.filter(starts_at__lt=ends_at, ends_at__gt=starts_at).order_by("starts_at").first()
    if clash is None:
        return None
    return TakenResource(
        "patient",
        patient.pk,
        f"{patient.full_name} already has a {clash.kind} session from "
        f"{_local(clash.starts_at, patient)} to {_local(clash.ends_at, patient)} "
        f"(session {clash.pk}).",
        (clash.pk,),
    )


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
    patient_clash = _patient_clash(
        patient, starts_at, ends_at, () if exclude_session is None else (exclude_session,)
    )
    if patient_clash is not None:
        taken.append(patient_clash)
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
            StaffMember.objects.select_for_update(of=("self",))
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


#: Writes of one booking after PostgreSQL broke a deadlock between it and a rival booking.
WRITE_ATTEMPTS = 3


def _write_holds(session: Session, holds: Sequence[StaffHoldSpec], *, replace: bool) -> None:
    """Save ``session`` and its staff holds in a savepoint; an exclusion violation rolls back to it
    and raises ``_Clash`` so the caller can name what was taken.

    Two bookings of the same slot that insert at the same moment can each find the other's row
    while checking an exclusion constraint and wait for each other; PostgreSQL then aborts one of
    them with a deadlock error. That one rolls back to its savepoint and writes again: by then the
    rival has committed (an exclusion violation names it) or rolled back (the slot is free)."""
    is_new = session.pk is None
    for attempt in range(1, WRITE_ATTEMPTS + 1):
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
            return
        except OperationalError as error:
            if is_new:
                session.pk = None
            if not is_deadlock(error) or attempt == WRITE_ATTEMPTS:
                raise
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
    # On PostgreSQL, rooms, patients and single-capacity staff are guarded by exclusion
    # constraints, which name the clash below; staff who take several patients at once are counted
    # here, under the lock. The embedded SQLite default has no such constraints: it always checks.
    if connection.vendor != "postgresql" or any(
        hold.staff.max_concurrent_patients > 1 for hold in holds
    ):
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
    patient: Patient, step: Step, room: Room | None, staff: Sequence[StaffMember]
) -> None:
    """The chosen room and staff belong to the patient's clinic and suit the session."""
    problems: dict[str, list[str]] = {}
    if room is not None and room.clinic_id != patient.clinic_id:
        problems["room"] = [f"{room.name} is not in {patient.clinic.name}."]
    elif room is not None and not room.is_active:
        problems["room"] = [f"{room.name} is out of service."]
    for member in staff:
        if member.clinic_id != patient.clinic_id or not member.is_active:
            problems.setdefault("staff", []).append(
                f"{member.full_name} does not work at {patient.clinic.name}."
            )
    if problems:
        raise InvalidInput("The room or staff chosen do not belong to this clinic.", problems)
    if room is not None and room.kind != step.room_kind:
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


#: Planner findings that mean "something is taken" (409) rather than "a rule says no" (422).
RESOURCE_RULES = {
    "patient_busy": "patient",
    "room_unavailable": "room",
    "staff_unavailable": "staff",
    "staff_capacity": "staff",
}


def _step_lasting(step: Step, length: dt.timedelta) -> Step:
    """``step`` for a session of ``length`` (a front desk may book a longer or shorter one)."""
    minutes = max(1, int(length.total_seconds() // 60))
    roles = tuple(
        StepRole(role.role, min(role.minutes, minutes) if role.minutes else None)
        for role in step.roles
    )
    return replace(step, duration_minutes=minutes, roles=roles)


def _around(starts_at: dt.datetime, ends_at: dt.datetime) -> Interval:
    return Interval(starts_at - dt.timedelta(days=1), ends_at + dt.timedelta(days=1))


def _placement(
    *,
    patient: Patient,
    step: Step,
    starts_at: dt.datetime,
    room: Room | None,
    staff: Sequence[StaffMember],
    preferred_therapist: int | None = None,
    exclude_sessions: Sequence[int] = (),
) -> PlannedSession:
    """Where one session goes at ``starts_at``: the given room and staff when free, else free
    ones of the right kind and roles, and every clinic rule checked (opening hours, closures,
    staff hours and time off, capacity). Raises ``ResourceConflict`` or ``RuleViolation``."""
    ends_at = starts_at + dt.timedelta(minutes=step.duration_minutes)
    chosen_staff = {member.pk for member in staff}
    supply = supply_for(
        patient,
        _around(starts_at, ends_at),
        room_kinds={step.room_kind},
        roles={role.role for role in step.roles},
        # A chosen room is the only one used; chosen staff who fill every role are the only ones.
        room_ids=None if room is None else {room.pk},
        staff_ids=chosen_staff if chosen_staff and len(chosen_staff) >= len(step.roles) else None,
        exclude_sessions=exclude_sessions,
    )
    found = place_session(
        step,
        starts_at,
        supply.calendar,
        supply.rooms,
        supply.staff,
        patient_busy=supply.patient_busy,
        staff_ids=[member.pk for member in staff] or None,
        room_id=room.pk if room is not None else None,
        preferred_therapist=preferred_therapist,
    )
    if isinstance(found, PlannedSession):
        return found
    clinic_rules = [v for v in found if v.rule not in RESOURCE_RULES]
    if clinic_rules:
        raise RuleViolation([v.as_dict() for v in found])
    taken = []
    for v in found:
        # The patient's own clash is one session: name it (rooms and staff may be many).
        clash = (
            _patient_clash(patient, starts_at, ends_at, exclude_sessions)
            if v.rule == "patient_busy"
            else None
        )
        taken.append(
            clash
            or TakenResource(
                RESOURCE_RULES[v.rule],
                patient.pk
                if v.rule == "patient_busy"
                else room.pk
                if room and "room" in v.rule
                else 0,
                v.message,
            )
        )
    raise ResourceConflict(taken)


def _session_fact(session: Session, *, with_resources: bool = False) -> SessionFact:
    """The rules engine's view of a session; with its room and clinicians for the planner,
    which keeps a re-placed session with them when they are still free."""
    if not with_resources:
        return SessionFact(session.pk, session.kind, session.starts_at, session.ends_at)
    return SessionFact(
        session.pk,
        session.kind,
        session.starts_at,
        session.ends_at,
        room_id=session.room_id,
        staff_ids=tuple(hold.staff_id for hold in session.staff_holds.all()),
    )


def _series_violations_involving(
    series: TreatmentSeries,
    changed: Mapping[int | str, SessionFact],
    *,
    gates: PatientGates,
) -> list[dict[str, object]]:
    """The rules the series would break with ``changed`` applied that it did not break before.

    ``changed`` maps a session id (or ``"new"``) to its proposed place. Old findings are left to
    the background re-check: a front desk fixing one problem is not blocked by another.
    """
    version = protocol_versions().get(pk=series.protocol_version_id)
    spec = protocol_spec(version)
    tz = series.patient.clinic.tz
    current = [
        _session_fact(session)
        for session in series.sessions.filter(status__in=LIVE_STATUSES).order_by("starts_at")
    ]
    before = {_violation_key(v) for v in evaluate(current, spec, tz, gates=gates)}
    proposed = [changed.get(fact.ref, fact) for fact in current]
    proposed += [fact for ref, fact in changed.items() if ref not in {f.ref for f in current}]
    return [
        v.as_dict()
        for v in evaluate(proposed, spec, tz, gates=gates)
        if _violation_key(v) not in before
    ]


def _violation_key(violation: Violation) -> tuple[str, str]:
    return violation.rule, violation.message


def _gate_check(patient: Patient, kind: str, starts_at: dt.datetime, ref: int | str) -> None:
    """No medicine session for a patient who is not cleared, or whose clearance has lapsed,
    or who has not signed consent, on that day (DESIGN.md: the screening gate)."""
    if kind != SessionKind.MEDICINE:
        return
    day = local_date(starts_at, patient.clinic.tz)
    failures = gate_failures(day, patient_gates(patient))
    messages = {
        "screening_gate": f"{patient.full_name} has no prescriber clearance valid on {day}.",
        "consent_gate": f"{patient.full_name} has no signed consent on file by {day}.",
    }
    fixes = {
        "screening_gate": "Record a screening cleared by a prescriber, then book.",
        "consent_gate": "Record the signed consent, then book.",
    }
    if failures:
        raise RuleViolation(
            [
                {
                    "rule": rule,
                    "message": messages[rule],
                    "sessions": [ref],
                    "suggested_fix": fixes[rule],
                }
                for rule in failures
            ]
        )


def _holds_from(
    planned: PlannedSession, staff_by_id: Mapping[int, StaffMember]
) -> list[StaffHoldSpec]:
    return [
        StaffHoldSpec(staff_by_id[hold.staff_id], hold.role, hold.start, hold.end)
        for hold in planned.staff
    ]


def _staff_by_id(
    planned: Iterable[PlannedSession], known: Iterable[StaffMember] = ()
) -> dict[int, StaffMember]:
    """The staff members ``planned`` holds, read from the database unless already ``known``."""
    ids = {hold.staff_id for session in planned for hold in session.staff}
    found = {member.pk: member for member in known if member.pk in ids}
    if missing := ids - found.keys():
        found.update(StaffMember.objects.in_bulk(missing))
    return found


def _rooms_by_id(planned: Iterable[PlannedSession]) -> dict[int, Room]:
    return Room.objects.in_bulk({session.room_id for session in planned})


def _after_booking_change(
    patient: Patient, series: TreatmentSeries | None, *, now: dt.datetime | None = None
) -> None:
    """What follows any booking, move or cancellation, inside the same transaction: each
    integration session linked to the medicine session it follows, and the series' outcome
    questionnaires due at its milestones as booked now."""
    integration_services.integration_links_sync(patient)
    if series is not None:
        integration_services.questionnaire_assignments_sync(series, now=now)


# ---------------------------------------------------------------------------------------------
# Use cases


def session_create(
    *,
    patient: Patient,
    kind: str,
    starts_at: dt.datetime,
    room: Room | None = None,
    staff: Sequence[StaffMember] = (),
    ends_at: dt.datetime | None = None,
    series: TreatmentSeries | None = None,
    route: str | None = None,
    created_by: User | None = None,
) -> Session:
    """Book one session, holding its room, its patient and its staff.

    ``ends_at`` defaults to the length of the kind's step in the series' protocol (or the kind's
    clinic default). A room and staff left out are chosen among the free ones of the right kind
    and roles; staff given must each fill one of the roles the session needs. Raises
    ``ResourceConflict`` naming what is taken, ``RuleViolation`` for a clinic, protocol or
    safety rule (opening hours, staff hours, the series' spacing rules, the screening and
    consent gates), ``InvalidInput`` for impossible input.
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
    step = _step_lasting(step, ends_at - starts_at)
    with transaction.atomic():
        try:
            _gate_check(patient, kind, starts_at, "new")
            planned = _placement(
                patient=patient,
                step=step,
                starts_at=starts_at,
                room=room,
                staff=staff,
                preferred_therapist=series.preferred_therapist_id if series else None,
            )
        except (ResourceConflict, RuleViolation):
            if room is not None and staff:
                # Both chosen by hand: what is taken comes first, named with the session holding it.
                taken = _taken_resources(
                    patient=patient,
                    room=room,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    room_released_at=ends_at + dt.timedelta(minutes=room.turnover_minutes),
                    holds=staff_holds_for(step, starts_at, ends_at, staff),
                )
                if taken:
                    raise ResourceConflict(taken) from None
            raise
        if series is not None:
            violations = _series_violations_involving(
                series,
                {"new": SessionFact("new", kind, starts_at, ends_at)},
                gates=patient_gates(patient),
            )
            if violations:
                raise RuleViolation(violations)
        chosen_room = room or Room.objects.get(pk=planned.room_id)
        session = Session(
            series=series,
            patient=patient,
            clinic_id=patient.clinic_id,
            kind=kind,
            route=(route if route is not None else step.route)
            if kind == SessionKind.MEDICINE
            else "",
            room=chosen_room,
            starts_at=starts_at,
            ends_at=ends_at,
            room_released_at=ends_at + dt.timedelta(minutes=chosen_room.turnover_minutes),
            created_by=created_by,
        )
        holds = _holds_from(planned, _staff_by_id([planned], staff))
        _hold_or_conflict(session, holds, replace=False)
        if series is not None:
            # Read after the insert: the session's key lock on the series row makes a
            # discontinuation either wait for this booking (and cancel it) or be seen here.
            _require_active(TreatmentSeries.objects.only("status").get(pk=series.pk))
        session_changed(session)
        _after_booking_change(patient, series)
    return session


def _require_active(series: TreatmentSeries) -> None:
    if series.status != SeriesStatus.ACTIVE:
        raise RuleViolation(
            [
                {
                    "rule": "series_not_active",
                    "message": f"Series {series.pk} is {series.get_status_display().lower()}; "
                    "no session can be booked into it.",
                    "sessions": [],
                    "suggested_fix": "Resume the series first."
                    if series.status == SeriesStatus.ON_HOLD
                    else "Book the session outside the series, or book a new series.",
                }
            ]
        )


def _locked(session: Session) -> Session:
    """The session re-read under a row lock, so two clients acting at once act one after another."""
    return (
        Session.objects.select_for_update(of=("self",))
        .select_related("clinic", "patient")
        .get(pk=session.pk)
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
        _after_booking_change(current.patient, current.series, now=now)
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
        current = _locked(session)
        if can_proceed(current.check_in):
            safety_gates.check_in_gate(current)  # medicine: screening, consent, ride home
        return _apply_transition(
            current, "check_in", "checked in", now=now or timezone.now(), by=by
        )


def session_complete(
    session: Session, *, by: User | None = None, now: dt.datetime | None = None
) -> Session:
    """The session took place; the last session its protocol needs completes the series."""
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked(session)
        if can_proceed(current.complete):
            safety_gates.completion_gate(current)  # medicine: dose, vitals after, discharge
        _apply_transition(current, "complete", "completed", now=now, by=by)
        if current.series_id is not None:
            _complete_series_when_done(current.series_id, now=now, by=by)
        return current


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


# ---------------------------------------------------------------------------------------------
# A series' own lifecycle: active -> on hold -> active, -> completed, -> discontinued


def _locked_series(series: TreatmentSeries) -> TreatmentSeries:
    return (
        TreatmentSeries.objects.select_for_update(of=("self",))
        .select_related("patient", "protocol_version__protocol")
        .get(pk=series.pk)
    )


def _series_transition(
    series: TreatmentSeries,
    action: str,
    verb: str,
    *,
    reason: str = "",
    now: dt.datetime,
    by: User | None,
) -> TreatmentSeries:
    method = getattr(series, action)
    if not can_proceed(method):
        current = series.get_status_display().lower()
        raise IllegalTransition(series.pk, current, verb, noun="Series")
    method()
    series.status_changed_at = now
    series.status_changed_by = by
    series.status_reason = reason.strip()[:500]
    series.save(update_fields=["status", "status_changed_at", "status_changed_by", "status_reason"])
    return series


def series_hold(
    series: TreatmentSeries,
    *,
    reason: str = "",
    by: User | None = None,
    now: dt.datetime | None = None,
) -> TreatmentSeries:
    """Pause a series (the patient is unwell, travelling, awaiting a new screening). Its booked
    sessions stay booked; nothing new is booked into it until it is resumed."""
    with transaction.atomic():
        return _series_transition(
            _locked_series(series),
            "hold",
            "put on hold",
            reason=reason,
            now=now or timezone.now(),
            by=by,
        )


def series_resume(
    series: TreatmentSeries, *, by: User | None = None, now: dt.datetime | None = None
) -> TreatmentSeries:
    with transaction.atomic():
        return _series_transition(
            _locked_series(series), "resume", "resumed", now=now or timezone.now(), by=by
        )


def series_discontinue(
    series: TreatmentSeries, *, reason: str, by: User | None = None, now: dt.datetime | None = None
) -> tuple[TreatmentSeries, list[Session]]:
    """Stop a series before its end: its booked sessions that have not started are cancelled (by
    the clinic, so never late-cancelled), their reminders with them; one under way or past keeps
    its own outcome (check-in, no-show). Returns the series and the sessions cancelled."""
    now = now or timezone.now()
    with transaction.atomic():
        current = _series_transition(
            _locked_series(series), "discontinue", "discontinued", reason=reason, now=now, by=by
        )
        to_cancel = (
            current.sessions.select_for_update(of=("self",))
            .select_related("clinic", "patient")
            .filter(status__in=MOVABLE_STATUSES, starts_at__gte=now)
            .order_by("starts_at", "id")
        )
        cancelled = []
        for session in to_cancel:  # locked together, in one query
            session.cancel_reason = f"Series discontinued. {current.status_reason}".strip()[:500]
            cancelled.append(_apply_transition(session, "cancel", "cancelled", now=now, by=by))
        _after_booking_change(current.patient, current, now=now)
    return current, cancelled


def series_complete(
    series: TreatmentSeries,
    *,
    reason: str = "",
    by: User | None = None,
    now: dt.datetime | None = None,
) -> TreatmentSeries:
    """Close a series by hand (e.g. integration done with an outside therapist); refused while
    it has sessions still to come."""
    now = now or timezone.now()
    with transaction.atomic():
        current = _locked_series(series)
        coming = list(
            current.sessions.filter(status__in=LIVE_STATUSES)
            .exclude(status=SessionStatus.COMPLETED)
            .order_by("starts_at", "id")
            .values_list("pk", flat=True)
        )
        if coming:
            raise RuleViolation(
                [
                    {
                        "rule": "series_sessions_to_come",
                        "message": f"Series {current.pk} still has {len(coming)} session(s) "
                        "booked or in progress.",
                        "sessions": coming,
                        "suggested_fix": "Complete or cancel them first, or discontinue the "
                        "series.",
                    }
                ]
            )
        return _series_transition(current, "complete", "completed", reason=reason, now=now, by=by)


def _complete_series_when_done(series_id: int, *, now: dt.datetime, by: User | None) -> None:
    """Complete an active series once its completed sessions meet its protocol's step counts
    (``protocols.rules.steps_done``)."""
    series = TreatmentSeries.objects.select_for_update(of=("self",)).get(pk=series_id)
    if series.status != SeriesStatus.ACTIVE:
        return
    completed = series.sessions.filter(status=SessionStatus.COMPLETED).values_list(
        "kind", flat=True
    )
    if steps_done(version_spec(series.protocol_version_id), completed):
        _series_transition(series, "complete", "completed", now=now, by=by)


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
        member = StaffMember.objects.select_for_update(of=("self",)).get(pk=staff.pk)
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
        escort, _ = Escort.objects.select_for_update(of=("self",)).get_or_create(
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


# ---------------------------------------------------------------------------------------------
# Whole series: plan, book, move


#: A series is planned inside the first of these horizons (days from its earliest start) that
#: holds a plan. A KAP series takes about 16-18 days and an infusion induction 6-7, so nearly every
#: plan reads and searches only four weeks of busy time; a plan inside a short horizon is also the
#: earliest-finishing one inside a longer one, so trying the short one first changes no answer.
PLAN_HORIZONS_DAYS = (28, 42, 120)
BOOK_ATTEMPTS = 3


def _plan_window(patient: Patient, first_day: dt.date, horizon_days: int) -> Interval:
    tz = patient.clinic.tz
    return Interval(
        day_start(first_day, tz), day_start(first_day + dt.timedelta(days=horizon_days + 1), tz)
    )


def series_plan(
    *,
    patient: Patient,
    protocol_version: ProtocolVersion,
    earliest_start: dt.date,
    preferences: Preferences | None = None,
    now: dt.datetime | None = None,
) -> Plan:
    """The earliest-finishing schedule for a whole series that keeps every rule; writes nothing.

    No session is planned before ``now``. When no schedule exists, the plan's violations say
    which rule or resource blocked it (an open series of the same care model among them).
    """
    now = now or timezone.now()
    today = local_date(now, patient.clinic.tz)
    if earliest_start < today:
        raise InvalidInput(
            "earliest_start is in the past.", {"earliest_start": [f"On or after {today}."]}
        )
    open_series = _open_series(patient, protocol_version)
    if open_series is not None:
        return Plan((), (open_series,))
    spec = version_spec(protocol_version.pk)
    gates = patient_gates(patient)
    preferences = preferences or Preferences()
    plan = Plan((), ())
    for horizon in PLAN_HORIZONS_DAYS:
        supply = supply_for(
            patient,
            _plan_window(patient, earliest_start, horizon),
            room_kinds={step.room_kind for step in spec.steps},
            roles={role.role for step in spec.steps for role in step.roles},
        )
        request = PlanRequest(
            protocol=spec,
            earliest_start=earliest_start,
            patient_busy=supply.patient_busy,
            preferences=preferences,
            gates=gates,
            horizon_days=horizon,
            not_before=now,
        )
        plan = plan_series(request, supply.calendar, supply.rooms, supply.staff)
        if not plan.violations:
            return plan
    return plan


def _book_planned(
    series: TreatmentSeries,
    planned: Sequence[PlannedSession],
    *,
    created_by: User | None,
) -> list[Session]:
    rooms = _rooms_by_id(planned)
    staff = _staff_by_id(planned)
    booked = []
    for item in sorted(planned, key=lambda p: p.starts_at):
        room = rooms[item.room_id]
        session = Session(
            series=series,
            patient=series.patient,
            clinic_id=series.patient.clinic_id,
            kind=item.kind,
            route=item.route if item.kind == SessionKind.MEDICINE else "",
            room=room,
            starts_at=item.starts_at,
            ends_at=item.ends_at,
            room_released_at=item.ends_at + dt.timedelta(minutes=room.turnover_minutes),
            created_by=created_by,
        )
        _hold_or_conflict(session, _holds_from(item, staff), replace=False)
        session_changed(session)
        booked.append(session)
    return booked


def series_book(
    *,
    patient: Patient,
    protocol_version: ProtocolVersion,
    earliest_start: dt.date,
    preferences: Preferences | None = None,
    created_by: User | None = None,
    now: dt.datetime | None = None,
) -> TreatmentSeries:
    """Plan and book a whole series in one transaction: every session or none.

    Another booking may take a planned slot between the plan and the write; the database then
    refuses the overlap, the transaction rolls back to its savepoint and the series is planned
    again around the new booking (up to ``BOOK_ATTEMPTS`` times).
    """
    conflict: ResourceConflict | None = None
    for _ in range(BOOK_ATTEMPTS):
        try:
            with transaction.atomic():
                plan = series_plan(
                    patient=patient,
                    protocol_version=protocol_version,
                    earliest_start=earliest_start,
                    preferences=preferences,
                    now=now,
                )
                if plan.violations:
                    raise RuleViolation([v.as_dict() for v in plan.violations])
                try:
                    with transaction.atomic():
                        series = TreatmentSeries.objects.create(
                            patient=patient,
                            protocol_version=protocol_version,
                            preferred_therapist_id=(
                                preferences.therapist_id if preferences else None
                            ),
                            created_by=created_by,
                        )
                except IntegrityError as error:
                    # Another booking for this patient committed one a moment ago.
                    taken = is_constraint_violation(error, ONE_OPEN_SERIES)
                    violation = _open_series(patient, protocol_version) if taken else None
                    if violation is None:
                        raise
                    raise RuleViolation([violation.as_dict()]) from error
                _book_planned(series, plan.sessions, created_by=created_by)
                _after_booking_change(patient, series)
                return series
        except ResourceConflict as error:
            conflict = error
    assert conflict is not None
    raise conflict


#: The database's guard behind ``_open_series`` (scheduling migration 0007).
ONE_OPEN_SERIES = "series_one_open_per_care_model"


def _open_series(patient: Patient, protocol_version: ProtocolVersion) -> Violation | None:
    """A patient has at most one open (active or on hold) series per care model: the one that
    stands in the way of another, as a violation."""
    care_model = protocol_version.protocol.care_model
    other = (
        TreatmentSeries.objects.filter(
            patient=patient,
            status__in=OPEN_SERIES_STATUSES,
            protocol_version__protocol__care_model=care_model,
        )
        .select_related("protocol_version__protocol")
        .order_by("id")
        .first()
    )
    if other is None:
        return None
    return Violation(
        "series_open",
        f"{patient.full_name} already has an open {other.protocol_version.protocol.name} series "
        f"(series {other.pk}, {other.get_status_display().lower()}).",
        (),
        f"Book into series {other.pk}, or complete or discontinue it first.",
    )


MOVABLE_STATUSES = (SessionStatus.BOOKED, SessionStatus.CONFIRMED)


def _movable(session: Session, now: dt.datetime) -> bool:
    return session.status in MOVABLE_STATUSES and session.starts_at > now


def _with_holds(supply: Supply, planned: PlannedSession, turnover: int) -> Supply:
    """``supply`` with a pinned session's new holds added to its room's and staff's busy lists."""
    room_end = planned.ends_at + dt.timedelta(minutes=turnover)
    rooms = tuple(
        replace(room, busy=_inserted(room.busy, Interval(planned.starts_at, room_end)))
        if room.id == planned.room_id
        else room
        for room in supply.rooms
    )
    staff = list(supply.staff)
    for hold in planned.staff:
        staff = [
            replace(member, busy=_inserted(member.busy, Interval(hold.start, hold.end)))
            if member.id == hold.staff_id
            else member
            for member in staff
        ]
    busy = _inserted(supply.patient_busy, Interval(planned.starts_at, planned.ends_at))
    return replace(supply, rooms=rooms, staff=tuple(staff), patient_busy=busy)


def _inserted(intervals: Sequence[Interval], interval: Interval) -> EpochIntervals:
    epochs = intervals if isinstance(intervals, EpochIntervals) else EpochIntervals.of(intervals)
    return epochs.inserted(interval)


def _move(
    session: Session, planned: PlannedSession, room: Room, staff: Mapping[int, StaffMember]
) -> None:
    session.starts_at = planned.starts_at
    session.ends_at = planned.ends_at
    session.room = room
    session.room_released_at = planned.ends_at + dt.timedelta(minutes=room.turnover_minutes)
    session.revision += 1
    _hold_or_conflict(session, _holds_from(planned, staff), replace=True)
    session_changed(session)


def session_reschedule(
    session: Session,
    *,
    starts_at: dt.datetime,
    cascade: bool = False,
    by: User | None = None,
    now: dt.datetime | None = None,
) -> list[Session]:
    """Move a session, re-validating its whole series. Returns every session that moved; the
    series' stored violations are re-checked in the same transaction, so whoever moved it reads
    them at once (the task after commit finds nothing new).

    The moved session keeps its room and clinicians when they are free at the new time, and
    otherwise gets free ones. When the move breaks a rule of the series (an integration now
    less than a day after its medicine session), it is refused with the violations, unless
    ``cascade``: then the later sessions of the series move as little as needed to keep every
    rule (``planner.replan_after``), or the whole move is refused with what blocked it.
    """
    now = now or timezone.now()
    _require_aware("starts_at", starts_at)
    if starts_at <= now:
        raise InvalidInput(
            "A session cannot be moved into the past.", {"starts_at": ["Must be in the future."]}
        )
    with transaction.atomic():
        current = _locked(session)
        if not _movable(current, now):
            raise IllegalTransition(current.pk, current.status, "moved")
        series = current.series
        siblings: list[Session] = []
        if series is not None:
            siblings = list(
                Session.objects.select_for_update(of=("self",))
                .filter(series=series, status__in=LIVE_STATUSES)
                .exclude(pk=current.pk)
                .order_by("starts_at", "pk")
            )
        version = protocol_versions().get(pk=series.protocol_version_id) if series else None
        step = _step_lasting(
            step_for_kind(version, current.kind, current.route or None),
            current.ends_at - current.starts_at,
        )
        ends_at = starts_at + (current.ends_at - current.starts_at)
        _gate_check(current.patient, current.kind, starts_at, current.pk)
        holds = list(current.staff_holds.all())
        planned = _place_moved(current, step, starts_at, holds)
        if series is None:
            _move(current, planned, Room.objects.get(pk=planned.room_id), _staff_by_id([planned]))
            _after_booking_change(current.patient, series, now=now)
            return [current]
        gates = patient_gates(current.patient)
        moved_fact = SessionFact(current.pk, current.kind, starts_at, ends_at)
        violations = _series_violations_involving(series, {current.pk: moved_fact}, gates=gates)
        if not violations:
            _move(current, planned, Room.objects.get(pk=planned.room_id), _staff_by_id([planned]))
            _after_booking_change(current.patient, series, now=now)
            series_revalidate(series, now=now)
            return [current]
        if not cascade:
            raise RuleViolation(violations)
        later = [s for s in siblings if s.starts_at > current.starts_at and _movable(s, now)]
        fixed = [s for s in siblings if s not in later]
        assert version is not None
        spec = protocol_spec(version)
        moving_ids = [current.pk, *(s.pk for s in later)]
        last = max([ends_at, *(s.ends_at for s in later)])
        window = Interval(
            min(now, starts_at) - dt.timedelta(days=1),
            last + dt.timedelta(days=PLAN_HORIZONS_DAYS[-1]),
        )
        supply = _with_holds(
            supply_for(
                current.patient,
                window,
                room_kinds={s.room_kind for s in spec.steps},
                roles={role.role for s in spec.steps for role in s.roles},
                exclude_sessions=moving_ids,
            ),
            planned,
            Room.objects.get(pk=planned.room_id).turnover_minutes,
        )
        request = PlanRequest(
            protocol=spec,
            earliest_start=local_date(now, current.patient.clinic.tz),
            patient_busy=supply.patient_busy,
            preferences=Preferences(therapist_id=series.preferred_therapist_id),
            gates=gates,
            horizon_days=PLAN_HORIZONS_DAYS[-1],
            not_before=now,
            fixed=tuple(_session_fact(s) for s in fixed),
        )
        replanned = replan_after(
            request,
            supply.calendar,
            supply.rooms,
            supply.staff,
            moved=moved_fact,
            later=[_session_fact(s, with_resources=True) for s in later],
        )
        if replanned.violations:
            raise RuleViolation([v.as_dict() for v in replanned.violations])
        moves = [(current, planned)] + [
            (later[item.index], item)
            for item in replanned.sessions
            if (item.starts_at, item.room_id)
            != (later[item.index].starts_at, later[item.index].room_id)
            or {(h.staff_id, h.start, h.end) for h in item.staff}
            != set(later[item.index].staff_holds.values_list("staff_id", "starts_at", "ends_at"))
        ]
        rooms = _rooms_by_id(p for _, p in moves)
        staff = _staff_by_id(p for _, p in moves)
        # The latest new start moves first: every session then moves into time that no
        # not-yet-moved session of the series still holds, so no overlap exists even for an
        # instant (the exclusion constraints check each row as it is written).
        for moving, target in sorted(moves, key=lambda pair: pair[1].starts_at, reverse=True):
            _move(moving, target, rooms[target.room_id], staff)
        _after_booking_change(current.patient, series, now=now)
        series_revalidate(series, now=now)
        return [moving for moving, _ in moves]


def _place_moved(
    session: Session, step: Step, starts_at: dt.datetime, holds: Sequence[SessionStaff]
) -> PlannedSession:
    """The moved session's room and clinicians: its own when they are free, else free ones."""
    own_staff = list(StaffMember.objects.filter(pk__in=[hold.staff_id for hold in holds]))
    try:
        return _placement(
            patient=session.patient,
            step=step,
            starts_at=starts_at,
            room=session.room,
            staff=own_staff,
            exclude_sessions=[session.pk],
        )
    except ResourceConflict:
        therapist = next((h.staff_id for h in holds if h.role == "therapist"), None)
        return _placement(
            patient=session.patient,
            step=step,
            starts_at=starts_at,
            room=None,
            staff=(),
            preferred_therapist=therapist,
            exclude_sessions=[session.pk],
        )
