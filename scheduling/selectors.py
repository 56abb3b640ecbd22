"""Reads of sessions and series, shaped so that a list never issues one query per row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db.models import Prefetch, QuerySet

from clinic.models import Clinic, Room, StaffMember

from .models import Session, SessionStaff, TreatmentSeries


def sessions_with_details(sessions: QuerySet[Session]) -> QuerySet[Session]:
    """Sessions with their clinic, patient, room, escort and staff holds: two queries a page."""
    return sessions.select_related("clinic", "patient", "room", "escort").prefetch_related(
        Prefetch(
            "staff_holds",
            queryset=SessionStaff.objects.select_related("staff").order_by("starts_at", "id"),
        )
    )


def series_with_details(series: QuerySet[TreatmentSeries]) -> QuerySet[TreatmentSeries]:
    return series.select_related("patient__clinic", "protocol_version__protocol")


def series_with_sessions(series: QuerySet[TreatmentSeries]) -> QuerySet[TreatmentSeries]:
    return series_with_details(series).prefetch_related(
        Prefetch(
            "sessions",
            queryset=sessions_with_details(Session.objects.all()).order_by("starts_at", "id"),
        )
    )


def local_day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The instants a local calendar day starts and ends (23 or 25 hours on a DST change)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


@dataclass(frozen=True)
class RoomDay:
    room: Room
    sessions: list[Session]


@dataclass(frozen=True)
class StaffDay:
    staff: StaffMember
    holds: list[SessionStaff]


@dataclass(frozen=True)
class DaySheet:
    clinic: Clinic
    date: dt.date
    rooms: list[RoomDay]
    staff: list[StaffDay]


def day_sheet(clinic: Clinic, day: dt.date, sessions: QuerySet[Session]) -> DaySheet:
    """The clinic's local ``day`` per room and per staff member, from the ``sessions`` the caller
    may see (every status: the front desk sees a cancellation too). Four queries in all."""
    start, end = local_day_bounds(day, clinic.tz)
    todays = list(
        sessions_with_details(
            sessions.filter(clinic=clinic, starts_at__lt=end, ends_at__gt=start)
        ).order_by("starts_at", "id")
    )
    by_room: dict[int, list[Session]] = {}
    by_staff: dict[int, list[SessionStaff]] = {}
    members: dict[int, StaffMember] = {}
    for session in todays:
        by_room.setdefault(session.room_id, []).append(session)
        for hold in session.staff_holds.all():
            hold.session = session  # the hold's session is this one: no query to reach it
            by_staff.setdefault(hold.staff_id, []).append(hold)
            members[hold.staff_id] = hold.staff
    rooms = [
        RoomDay(room, by_room.get(room.pk, []))
        for room in Room.objects.filter(clinic=clinic).order_by("kind", "name", "id")
        if room.is_active or room.pk in by_room
    ]
    staff = [
        StaffDay(members[pk], sorted(holds, key=lambda hold: (hold.starts_at, hold.pk)))
        for pk, holds in sorted(by_staff.items(), key=lambda item: members[item[0]].full_name)
    ]
    return DaySheet(clinic=clinic, date=day, rooms=rooms, staff=staff)
