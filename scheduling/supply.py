"""What the planner needs from the database, loaded as its plain values, in three queries
whatever the number of rooms or staff: the rooms and staff with their roles; opening hours, the
staff's working hours and the closures; and every busy interval inside the window
(``scheduling.busy``, shared with the availability search). Busy lists come back sorted by start,
as the planner's ``bisect`` search requires.

Busy time is read as epoch microseconds (planner ``EpochIntervals``): a plan reads thousands of
holds, and building a ``datetime`` for each was most of the loading time. The reads are written as
SQL: building ten querysets cost more than running them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Min
from django.utils import timezone

from clinic.models import (
    Clinic,
    Closure,
    Consent,
    OpeningHours,
    Patient,
    Room,
    Screening,
    StaffMember,
    StaffRole,
    WorkingHours,
)
from protocols.rules import PatientGates, ScreeningFact

from .busy import Busy, busy_time, in_list
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


_NOTHING = EpochIntervals((), ())


def _time(value: Any) -> dt.time:
    return dt.time.fromisoformat(value) if isinstance(value, str) else value


def _date(value: Any) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class _Resources:
    rooms: list[tuple[int, str, int]]
    staff: list[tuple[int, int, frozenset[str]]]


def _resources(
    clinic_id: int,
    *,
    rooms: bool,
    staff: bool,
    room_kinds: Collection[str] | None = None,
    room_ids: Collection[int] | None = None,
    roles: Collection[str] | None = None,
    staff_ids: Collection[int] | None = None,
) -> _Resources:
    """The clinic's active rooms (id, kind, turnover) and staff (id, capacity, every role they
    hold), filtered by kind, role and id, in one query."""
    parts: list[tuple[str, list[Any]]] = []
    if rooms:
        where, params = "clinic_id = %s AND is_active", [clinic_id]
        for column, values in (("kind", room_kinds), ("id", room_ids)):
            if values is not None:
                listed, more = in_list(values)
                where, params = f"{where} AND {column} IN {listed}", [*params, *more]
        parts.append(
            (
                f"SELECT 0, id, kind, turnover_minutes FROM {Room._meta.db_table} WHERE {where}",
                params,
            )
        )
    if staff:
        member, grant = StaffMember._meta.db_table, StaffRole._meta.db_table
        where, params = "s.clinic_id = %s AND s.is_active", [clinic_id]
        if staff_ids is not None:
            listed, more = in_list(staff_ids)
            where, params = f"{where} AND s.id IN {listed}", [*params, *more]
        if roles is not None:
            listed, more = in_list(roles)
            where += f" AND s.id IN (SELECT staff_id FROM {grant} WHERE role IN {listed})"
            params += more
        parts.append(
            (
                f"SELECT 1, s.id, g.role, s.max_concurrent_patients FROM {member} s "
                f"LEFT JOIN {grant} g ON g.staff_id = s.id WHERE {where}",
                params,
            )
        )
    found = _Resources([], [])
    if not parts:
        return found
    granted: dict[int, set[str]] = defaultdict(set)
    capacity: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(sql for sql, _ in parts) + " ORDER BY 1, 2",
            [param for _, params in parts for param in params],
        )
        for tag, owner, text, number in cursor.fetchall():
            if tag == 0:
                found.rooms.append((owner, text, number))
            else:
                capacity[owner] = number
                if text is not None:
                    granted[owner].add(text)
    found.staff.extend((owner, most, frozenset(granted[owner])) for owner, most in capacity.items())
    return found


@dataclass(frozen=True)
class _Hours:
    opening: tuple[WeeklyHours, ...]
    working: dict[int, list[WeeklyHours]]
    closures: frozenset[dt.date]


def _hours(
    clinic_id: int, staff_ids: Collection[int], first_day: dt.date, last_day: dt.date
) -> _Hours:
    """Opening hours, the staff's working hours and the closures between the two days, in one
    query."""
    staff_list, staff_params = in_list(staff_ids)
    opening = OpeningHours._meta.db_table
    working = WorkingHours._meta.db_table
    closure = Closure._meta.db_table
    sql = (
        f'SELECT 0, 0, weekday, start, "end", CAST(NULL AS date) FROM {opening} '
        "WHERE clinic_id = %s "
        f'UNION ALL SELECT 1, staff_id, weekday, start, "end", CAST(NULL AS date) FROM {working} '
        f"WHERE staff_id IN {staff_list} "
        "UNION ALL SELECT 2, 0, 0, CAST(NULL AS time), CAST(NULL AS time), date "
        f"FROM {closure} WHERE clinic_id = %s AND date BETWEEN %s AND %s "
        "ORDER BY 1, 2, 3, 4"
    )
    opening_hours: list[WeeklyHours] = []
    by_staff: dict[int, list[WeeklyHours]] = defaultdict(list)
    closures: set[dt.date] = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, [clinic_id, *staff_params, clinic_id, first_day, last_day])
        for tag, owner, weekday, start, end, day in cursor.fetchall():
            if tag == 0:
                opening_hours.append(WeeklyHours(weekday, _time(start), _time(end)))
            elif tag == 1:
                by_staff[owner].append(WeeklyHours(weekday, _time(start), _time(end)))
            else:
                closures.add(_date(day))
    return _Hours(tuple(opening_hours), by_staff, frozenset(closures))


def _intervals(epochs: tuple[list[int], list[int]] | None) -> EpochIntervals:
    return _NOTHING if epochs is None else EpochIntervals(tuple(epochs[0]), tuple(epochs[1]))


def _days(clinic: Clinic, window: Interval) -> tuple[dt.date, dt.date]:
    tz = clinic.tz
    return timezone.localtime(window.start, tz).date(), timezone.localtime(window.end, tz).date()


def _load(
    clinic: Clinic,
    window: Interval,
    *,
    rooms: bool = True,
    staff: bool = True,
    calendar: bool = True,
    patient_id: int | None = None,
    room_kinds: Collection[str] | None = None,
    room_ids: Collection[int] | None = None,
    roles: Collection[str] | None = None,
    staff_ids: Collection[int] | None = None,
    exclude_sessions: Collection[int] = (),
) -> Supply:
    resources = _resources(
        clinic.pk,
        rooms=rooms,
        staff=staff,
        room_kinds=room_kinds,
        room_ids=room_ids,
        roles=roles,
        staff_ids=staff_ids,
    )
    people = [member for member, _, _ in resources.staff]
    first_day, last_day = _days(clinic, window)
    hours = (
        _hours(clinic.pk, people, first_day, last_day)
        if staff or calendar
        else _Hours((), {}, frozenset())
    )
    busy = busy_time(
        rooms=[room for room, _, _ in resources.rooms],
        staff=people,
        patient_id=patient_id,
        window=(window.start, window.end),
        exclude_sessions=exclude_sessions,
    )
    return Supply(
        calendar=ClinicCalendar(clinic.tz, hours.opening, hours.closures),
        rooms=tuple(
            RoomSupply(room, kind, turnover, _intervals(busy.get((Busy.ROOM, room))))
            for room, kind, turnover in resources.rooms
        ),
        staff=tuple(
            StaffSupply(
                id=member,
                roles=granted,
                capacity=capacity,
                working_hours=tuple(hours.working.get(member, ())),
                time_off=tuple(_intervals(busy.get((Busy.TIME_OFF, member)))),
                busy=_intervals(busy.get((Busy.STAFF, member))),
            )
            for member, capacity, granted in resources.staff
        ),
        patient_busy=_intervals(busy.get((Busy.PATIENT, patient_id)))
        if patient_id is not None
        else _NOTHING,
    )


def clinic_calendar(clinic: Clinic, first_day: dt.date, last_day: dt.date) -> ClinicCalendar:
    hours = _hours(clinic.pk, (), first_day, last_day)
    return ClinicCalendar(clinic.tz, hours.opening, hours.closures)


def room_supply(
    clinic: Clinic,
    window: Interval,
    *,
    kinds: Collection[str] | None = None,
    ids: Collection[int] | None = None,
    exclude_sessions: Collection[int] = (),
) -> tuple[RoomSupply, ...]:
    return _load(
        clinic,
        window,
        staff=False,
        calendar=False,
        room_kinds=kinds,
        room_ids=ids,
        exclude_sessions=exclude_sessions,
    ).rooms


def staff_supply(
    clinic: Clinic,
    window: Interval,
    *,
    roles: Collection[str] | None = None,
    ids: Collection[int] | None = None,
    exclude_sessions: Collection[int] = (),
) -> tuple[StaffSupply, ...]:
    return _load(
        clinic, window, rooms=False, roles=roles, staff_ids=ids, exclude_sessions=exclude_sessions
    ).staff


def patient_busy(
    patient: Patient, window: Interval, *, exclude_sessions: Collection[int] = ()
) -> EpochIntervals:
    busy = busy_time(
        rooms=(),
        staff=(),
        patient_id=patient.pk,
        window=(window.start, window.end),
        exclude_sessions=exclude_sessions,
    )
    return _intervals(busy.get((Busy.PATIENT, patient.pk)))


def supply_for(
    patient: Patient,
    window: Interval,
    *,
    room_kinds: Collection[str] | None = None,
    roles: Collection[str] | None = None,
    room_ids: Collection[int] | None = None,
    staff_ids: Collection[int] | None = None,
    exclude_sessions: Collection[int] = (),
) -> Supply:
    """Everything a plan for ``patient`` inside ``window`` depends on, in three queries; only the
    rooms and staff in ``room_ids`` and ``staff_ids`` when the caller has already chosen them."""
    return _load(
        patient.clinic,
        window,
        patient_id=patient.pk,
        room_kinds=room_kinds,
        room_ids=room_ids,
        roles=roles,
        staff_ids=staff_ids,
        exclude_sessions=exclude_sessions,
    )


def patient_gates(patient: Patient) -> PatientGates:
    """The screening and consent gates of medicine sessions, as the rules engine reads them.

    Only a clearance given by a prescriber counts (DESIGN.md: screening gate).
    """
    return patients_gates([patient.pk], patient.clinic.tz)[patient.pk]


def patients_gates(patient_ids: Collection[int], zone: ZoneInfo) -> dict[int, PatientGates]:
    """``patient_gates`` of several patients of one clinic (in its ``zone``): two queries."""
    screenings: dict[int, list[ScreeningFact]] = defaultdict(list)
    for patient_id, valid_until, screened_on in Screening.objects.filter(
        patient_id__in=patient_ids, result="cleared", cleared_by__role_grants__role="prescriber"
    ).values_list("patient_id", "valid_until", "screened_on"):
        screenings[patient_id].append(
            ScreeningFact(is_cleared=True, valid_until=valid_until, cleared_on=screened_on)
        )
    first_consents = dict(
        Consent.objects.filter(patient_id__in=patient_ids)
        .values("patient_id")
        .annotate(first=Min("signed_at"))
        .values_list("patient_id", "first")
    )
    return {
        patient_id: PatientGates(
            screenings=tuple(screenings[patient_id]),
            consent_signed_on=timezone.localtime(first_consents[patient_id], zone).date()
            if patient_id in first_consents
            else None,
        )
        for patient_id in patient_ids
    }
