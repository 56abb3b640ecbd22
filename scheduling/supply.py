"""What the planner needs from the database, loaded as its plain values.

One query per kind of thing (opening hours, closures, rooms, room holds, staff, roles, working
hours, time off, staff holds, the patient's sessions), whatever the number of rooms or staff, and
only inside the window being planned. Busy lists come back sorted by start, as the planner's
``bisect`` search requires.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from django.utils import timezone

from clinic.models import (
    Clinic,
    Consent,
    Patient,
    Room,
    Screening,
    StaffMember,
    StaffRole,
    TimeOff,
    WorkingHours,
)
from protocols.rules import PatientGates, ScreeningFact

from .models import LIVE_STATUSES, Session, SessionStaff
from .planner import ClinicCalendar, Interval, RoomSupply, StaffSupply, WeeklyHours


@dataclass(frozen=True)
class Supply:
    calendar: ClinicCalendar
    rooms: tuple[RoomSupply, ...]
    staff: tuple[StaffSupply, ...]
    patient_busy: tuple[Interval, ...]


def clinic_calendar(clinic: Clinic, first_day: dt.date, last_day: dt.date) -> ClinicCalendar:
    return ClinicCalendar(
        tz=clinic.tz,
        opening_hours=tuple(
            WeeklyHours(weekday, start, end)
            for weekday, start, end in clinic.opening_hours.values_list("weekday", "start", "end")
        ),
        closures=frozenset(
            clinic.closures.filter(date__range=(first_day, last_day)).values_list("date", flat=True)
        ),
    )


def _grouped(rows: Iterable[tuple[int, dt.datetime, dt.datetime]]) -> dict[int, list[Interval]]:
    grouped: dict[int, list[Interval]] = defaultdict(list)
    for owner, start, end in rows:
        grouped[owner].append(Interval(start, end))
    return grouped


def room_supply(
    clinic: Clinic,
    window: Interval,
    *,
    kinds: Collection[str] | None = None,
    exclude_sessions: Collection[int] = (),
) -> tuple[RoomSupply, ...]:
    rooms = Room.objects.filter(clinic=clinic, is_active=True)
    if kinds is not None:
        rooms = rooms.filter(kind__in=kinds)
    room_rows = list(rooms.order_by("id").values_list("id", "kind", "turnover_minutes"))
    holds = (
        Session.objects.filter(
            room_id__in=[row[0] for row in room_rows],
            status__in=LIVE_STATUSES,
            starts_at__lt=window.end,
            room_released_at__gt=window.start,
        )
        .exclude(pk__in=exclude_sessions)
        .order_by("starts_at")
        .values_list("room_id", "starts_at", "room_released_at")
    )
    busy = _grouped(holds)
    return tuple(
        RoomSupply(room_id, kind, turnover, tuple(busy.get(room_id, ())))
        for room_id, kind, turnover in room_rows
    )


def staff_supply(
    clinic: Clinic,
    window: Interval,
    *,
    roles: Collection[str] | None = None,
    exclude_sessions: Collection[int] = (),
) -> tuple[StaffSupply, ...]:
    members = StaffMember.objects.filter(clinic=clinic, is_active=True)
    if roles is not None:
        members = members.filter(role_grants__role__in=roles).distinct()
    member_rows = list(members.order_by("id").values_list("id", "max_concurrent_patients"))
    ids = [row[0] for row in member_rows]
    granted: dict[int, set[str]] = defaultdict(set)
    for staff_id, role in StaffRole.objects.filter(staff_id__in=ids).values_list(
        "staff_id", "role"
    ):
        granted[staff_id].add(role)
    hours: dict[int, list[WeeklyHours]] = defaultdict(list)
    for staff_id, weekday, start, end in WorkingHours.objects.filter(staff_id__in=ids).values_list(
        "staff_id", "weekday", "start", "end"
    ):
        hours[staff_id].append(WeeklyHours(weekday, start, end))
    time_off = _grouped(
        TimeOff.objects.filter(staff_id__in=ids, starts_at__lt=window.end, ends_at__gt=window.start)
        .order_by("starts_at")
        .values_list("staff_id", "starts_at", "ends_at")
    )
    busy = _grouped(
        SessionStaff.objects.filter(
            staff_id__in=ids, is_active=True, starts_at__lt=window.end, ends_at__gt=window.start
        )
        .exclude(session_id__in=exclude_sessions)
        .order_by("starts_at")
        .values_list("staff_id", "starts_at", "ends_at")
    )
    return tuple(
        StaffSupply(
            id=staff_id,
            roles=frozenset(granted[staff_id]),
            capacity=capacity,
            working_hours=tuple(hours.get(staff_id, ())),
            time_off=tuple(time_off.get(staff_id, ())),
            busy=tuple(busy.get(staff_id, ())),
        )
        for staff_id, capacity in member_rows
    )


def patient_busy(
    patient: Patient, window: Interval, *, exclude_sessions: Collection[int] = ()
) -> tuple[Interval, ...]:
    rows = (
        Session.objects.filter(
            patient=patient,
            status__in=LIVE_STATUSES,
            starts_at__lt=window.end,
            ends_at__gt=window.start,
        )
        .exclude(pk__in=exclude_sessions)
        .order_by("starts_at")
        .values_list("starts_at", "ends_at")
    )
    return tuple(Interval(start, end) for start, end in rows)


def supply_for(
    patient: Patient,
    window: Interval,
    *,
    room_kinds: Collection[str] | None = None,
    roles: Collection[str] | None = None,
    exclude_sessions: Collection[int] = (),
) -> Supply:
    """Everything a plan for ``patient`` inside ``window`` depends on."""
    clinic = patient.clinic
    tz = clinic.tz
    first_day = timezone.localtime(window.start, tz).date()
    last_day = timezone.localtime(window.end, tz).date()
    return Supply(
        calendar=clinic_calendar(clinic, first_day, last_day),
        rooms=room_supply(clinic, window, kinds=room_kinds, exclude_sessions=exclude_sessions),
        staff=staff_supply(clinic, window, roles=roles, exclude_sessions=exclude_sessions),
        patient_busy=patient_busy(patient, window, exclude_sessions=exclude_sessions),
    )


def patient_gates(patient: Patient) -> PatientGates:
    """The screening and consent gates of medicine sessions, as the rules engine reads them.

    Only a clearance given by a prescriber counts (DESIGN.md: screening gate).
    """
    screenings = tuple(
        ScreeningFact(is_cleared=True, valid_until=valid_until, cleared_on=screened_on)
        for valid_until, screened_on in Screening.objects.filter(
            patient=patient, result="cleared", cleared_by__role_grants__role="prescriber"
        ).values_list("valid_until", "screened_on")
    )
    first_consent = (
        Consent.objects.filter(patient=patient)
        .order_by("signed_at")
        .values_list("signed_at", flat=True)
        .first()
    )
    return PatientGates(
        screenings=screenings,
        consent_signed_on=timezone.localtime(first_consent, patient.clinic.tz).date()
        if first_consent is not None
        else None,
    )
