"""What the planner needs from the database, loaded as its plain values.

One query per kind of thing (opening hours, closures, rooms, room holds, staff, roles, working
hours, time off, staff holds, the patient's sessions), whatever the number of rooms or staff, and
only inside the window being planned. Busy lists come back sorted by start, as the planner's
``bisect`` search requires.

Busy time is read as epoch microseconds (``clinic.db.EpochMicroseconds``, planner
``EpochIntervals``): a plan reads thousands of holds, and building a ``datetime`` for each was most
of the loading time. The reads are bounded from below by ``MAX_HOLD`` (a database check: no session
holds its room, and no staff hold lasts, longer), so ``starts_at >= window start - MAX_HOLD`` keeps
every hold that overlaps the window and lets the ``(room|staff|patient, starts_at)`` indexes scan
only the window instead of all history before it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from clinic.db import EpochMicroseconds
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

from .models import LIVE_STATUSES, MAX_HOLD, Session, SessionStaff
from .planner import (
    ClinicCalendar,
    EpochIntervals,
    Interval,
    RoomSupply,
    StaffSupply,
    WeeklyHours,
)


@dataclass(frozen=True)
class Supply:
    calendar: ClinicCalendar
    rooms: tuple[RoomSupply, ...]
    staff: tuple[StaffSupply, ...]
    patient_busy: EpochIntervals


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


def _held_in(holds: QuerySet, window: Interval, end_field: str) -> QuerySet:
    """Holds overlapping ``window``, found through an index range on ``starts_at`` only: nothing
    starting more than ``MAX_HOLD`` before the window can still run in it."""
    return holds.filter(
        starts_at__gte=window.start - MAX_HOLD,
        starts_at__lt=window.end,
        **{f"{end_field}__gt": window.start},
    )


def _without(holds: QuerySet, field: str, sessions: Collection[int]) -> QuerySet:
    return holds.exclude(**{f"{field}__in": sessions}) if sessions else holds


def _epoch_rows(holds: QuerySet, owner: str, end_field: str) -> Iterable[tuple[int, int, int]]:
    return holds.order_by("starts_at").values_list(
        owner, EpochMicroseconds("starts_at"), EpochMicroseconds(end_field)
    )


def _grouped_epochs(rows: Iterable[tuple[int, int, int]]) -> dict[int, EpochIntervals]:
    starts: dict[int, list[int]] = defaultdict(list)
    ends: dict[int, list[int]] = defaultdict(list)
    for owner, start, end in rows:
        starts[owner].append(start)
        ends[owner].append(end)
    return {owner: EpochIntervals(tuple(starts[owner]), tuple(ends[owner])) for owner in starts}


_NOTHING = EpochIntervals((), ())


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
    if not room_rows:
        return ()
    holds = _held_in(
        Session.objects.filter(room_id__in=[row[0] for row in room_rows], status__in=LIVE_STATUSES),
        window,
        "room_released_at",
    )
    busy = _grouped_epochs(
        _epoch_rows(_without(holds, "pk", exclude_sessions), "room_id", "room_released_at")
    )
    return tuple(
        RoomSupply(room_id, kind, turnover, busy.get(room_id, _NOTHING))
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
    if not member_rows:
        return ()
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
    holds = _held_in(
        SessionStaff.objects.filter(staff_id__in=ids, is_active=True), window, "ends_at"
    )
    busy = _grouped_epochs(
        _epoch_rows(_without(holds, "session_id", exclude_sessions), "staff_id", "ends_at")
    )
    return tuple(
        StaffSupply(
            id=staff_id,
            roles=frozenset(granted[staff_id]),
            capacity=capacity,
            working_hours=tuple(hours.get(staff_id, ())),
            time_off=tuple(time_off.get(staff_id, ())),
            busy=busy.get(staff_id, _NOTHING),
        )
        for staff_id, capacity in member_rows
    )


def patient_busy(
    patient: Patient, window: Interval, *, exclude_sessions: Collection[int] = ()
) -> EpochIntervals:
    holds = _held_in(
        Session.objects.filter(patient=patient, status__in=LIVE_STATUSES), window, "ends_at"
    )
    starts: list[int] = []
    ends: list[int] = []
    for start, end in (
        _without(holds, "pk", exclude_sessions)
        .order_by("starts_at")
        .values_list(EpochMicroseconds("starts_at"), EpochMicroseconds("ends_at"))
    ):
        starts.append(start)
        ends.append(end)
    return EpochIntervals(tuple(starts), tuple(ends))


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
