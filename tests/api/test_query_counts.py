"""Every list endpoint issues the same number of queries for a page of 2 rows as for a page of 12:
no query per row. The counts include authentication's lookups of the caller and the audit row."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from clinic.models import Role
from scheduling.models import SessionStatus
from tests.api.conftest import World
from tests.factories import (
    ClinicFactory,
    ConsentFactory,
    PatientFactory,
    ProtocolRuleFactory,
    ProtocolStepFactory,
    ProtocolStepRoleFactory,
    ProtocolVersionFactory,
    RoomFactory,
    ScreeningFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    TimeOffFactory,
    TreatmentSeriesFactory,
    WorkingHoursFactory,
    aware,
)

pytestmark = pytest.mark.django_db


_slot = itertools.count()


def _sessions(world: World, n: int, **extra: Any) -> None:
    """``n`` sessions on Monday 2 March (in the day sheet), each in its own 20-minute slot."""
    series = TreatmentSeriesFactory(  # past: a patient has one open series per care model
        patient=world.patient_a, protocol_version=ProtocolVersionFactory(), status="completed"
    )
    for _ in range(n):
        starts_at = aware(2026, 3, 2, 6) + dt.timedelta(minutes=20 * next(_slot))
        session = SessionFactory(
            patient=world.patient_a,
            room=world.therapy_room,
            series=series,
            starts_at=starts_at,
            ends_at=starts_at + dt.timedelta(minutes=10),
            room_released_at=starts_at + dt.timedelta(minutes=15),
            **extra,
        )
        SessionStaffFactory(session=session, staff=world.therapist)
        SessionStaffFactory(session=session, staff=world.nurse, role=Role.NURSE)


def _medicine_with_integration(world: World, n: int) -> None:
    for _ in range(n):
        patient = PatientFactory(clinic=world.clinic)
        version = ProtocolVersionFactory()
        ProtocolRuleFactory(version=version, type="max_gap", days=7)
        series = TreatmentSeriesFactory(patient=patient, protocol_version=version)
        medicine = SessionFactory(
            patient=patient,
            series=series,
            kind="medicine",
            route="im",
            room=world.dosing_room,
            starts_at=aware(2026, 2, 20, 9) - dt.timedelta(hours=3 * next(_slot)),
            status=SessionStatus.COMPLETED,
        )
        SessionStaffFactory(session=medicine, staff=world.therapist)
        SessionFactory(
            patient=patient,
            series=series,
            kind="integration",
            room=world.therapy_room,
            starts_at=aware(2026, 2, 22, 9) - dt.timedelta(hours=3 * next(_slot)),
        )


def _protocols(world: World, n: int) -> None:
    for _ in range(n):
        version = ProtocolVersionFactory()
        step = ProtocolStepFactory(version=version)
        ProtocolStepRoleFactory(step=step)
        ProtocolRuleFactory(version=version)


def _staff(world: World, n: int) -> None:
    for _ in range(n):
        member = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST, Role.NURSE])
        WorkingHoursFactory(staff=member)
        TimeOffFactory(staff=member)


def _series(world: World, n: int) -> None:
    for _ in range(n):
        TreatmentSeriesFactory(
            patient=PatientFactory(clinic=world.clinic), protocol_version=ProtocolVersionFactory()
        )


def _own_series(world: World, n: int) -> None:
    for _ in range(n):
        TreatmentSeriesFactory(  # past: a patient has one open series per care model
            patient=world.patient_a, protocol_version=ProtocolVersionFactory(), status="completed"
        )


LISTS: dict[str, tuple[str, str, Callable[..., Any], int]] = {
    # name: (caller, path, seed(world, n), queries)
    "clinics": (
        "superuser",
        "/api/v1/clinics/",
        lambda w, n: [ClinicFactory() for _ in range(n)],
        4,
    ),
    "rooms": (
        "front_desk",
        "/api/v1/rooms/",
        lambda w, n: [RoomFactory(clinic=w.clinic) for _ in range(n)],
        4,
    ),
    "staff": ("front_desk", "/api/v1/staff/", _staff, 7),
    "patients": (
        "front_desk",
        "/api/v1/patients/",
        lambda w, n: [PatientFactory(clinic=w.clinic) for _ in range(n)],
        5,
    ),
    "screenings": (
        "nurse",
        "/api/v1/patients/{patient_a}/screenings/",
        lambda w, n: [
            ScreeningFactory(patient=w.patient_a, cleared_by=w.prescriber) for _ in range(n)
        ],
        6,
    ),
    "consents": (
        "nurse",
        "/api/v1/patients/{patient_a}/consents/",
        lambda w, n: [
            ConsentFactory(patient=w.patient_a, document_version=f"v{next(_slot)}")
            for _ in range(n)
        ],
        6,
    ),
    "protocols": ("front_desk", "/api/v1/protocols/", _protocols, 7),
    "sessions": ("front_desk", "/api/v1/sessions/", _sessions, 6),
    "series": ("front_desk", "/api/v1/series/", _series, 5),
    "me_sessions": ("patient_a", "/api/v1/me/sessions/", _sessions, 5),
    "me_series": ("patient_a", "/api/v1/me/series/", _own_series, 4),
    "day_sheet": ("front_desk", "/api/v1/day-sheet/?date=2026-03-02", _sessions, 7),
    "caseload": ("therapist", "/api/v1/caseload/", _medicine_with_integration, 14),
    "calendar": ("patient_a", "/api/v1/me/calendar.ics", _sessions, 3),
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_list_query_count_is_flat(world, as_user, frozen, django_assert_num_queries, name) -> None:
    caller, path, seed, queries = LISTS[name]
    path = path.format(patient_a=world.patient_a.pk)
    client = as_user(getattr(world, caller))
    seed(world, 2)
    with django_assert_num_queries(queries):
        small = client.get(path)
    assert small.status_code == 200
    seed(world, 10)
    with django_assert_num_queries(queries):
        large = client.get(path)
    assert large.status_code == 200
    assert len(large.content) > len(small.content)
