"""A small clinic world for the API tests, and clients that call the API with real tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from clinic.models import Clinic, Patient, Role, Room, RoomKind, StaffMember, User
from tests.factories import (
    ClinicFactory,
    ConsentFactory,
    PatientFactory,
    RoomFactory,
    ScreeningFactory,
    StaffMemberFactory,
    UserFactory,
    WorkingHoursFactory,
    aware,
)

#: Monday 2 March 2026, 09:00 in Los Angeles: a week before the spring DST change.
NOW = aware(2026, 3, 2, 9)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@dataclass
class World:
    clinic: Clinic
    other_clinic: Clinic
    dosing_room: Room
    therapy_room: Room
    chair: Room
    other_room: Room
    front_desk: StaffMember
    nurse: StaffMember
    prescriber: StaffMember
    therapist: StaffMember
    admin: StaffMember
    other_therapist: StaffMember
    other_front_desk: StaffMember
    patient_a: Patient
    patient_b: Patient
    other_patient: Patient
    superuser: User


def _staff(clinic: Clinic, username: str, roles: list[str], **extra: Any) -> StaffMember:
    return StaffMemberFactory(
        clinic=clinic,
        user=UserFactory(username=username),
        full_name=username.replace("_", " ").title(),
        roles=roles,
        **extra,
    )


def _patient(
    clinic: Clinic, username: str, name: str, prescriber: StaffMember | None = None
) -> Patient:
    """A patient with a portal login, cleared by a prescriber and with consent on file (the
    gates every medicine session checks)."""
    patient = PatientFactory(
        clinic=clinic,
        full_name=name,
        user=UserFactory(username=username),
        email=f"{username}@x.org",
    )
    if prescriber is not None:
        ScreeningFactory(patient=patient, cleared_by=prescriber)
        ConsentFactory(patient=patient)
    return patient


#: Open, and staffed, around the clock every day: tests choose their times freely (the DST night
#: included) without tripping the opening-hours and working-hours rules.
ALL_DAY = [(weekday, dt.time(0), dt.time(23, 59)) for weekday in range(7)]


def _all_day_hours(members: list[StaffMember]) -> None:
    for member in members:
        for weekday, start, end in ALL_DAY:
            WorkingHoursFactory(staff=member, weekday=weekday, start=start, end=end)


@pytest.fixture
def world(db: Any) -> World:
    clinic = ClinicFactory(name="Mesa Clinic", opening_hours=ALL_DAY)
    other = ClinicFactory(name="Harbor Clinic", opening_hours=ALL_DAY)
    prescriber = _staff(clinic, "prescriber", [Role.PRESCRIBER])
    other_prescriber = _staff(other, "harbor_prescriber", [Role.PRESCRIBER])
    built = World(
        clinic=clinic,
        other_clinic=other,
        dosing_room=RoomFactory(clinic=clinic, name="Dosing 1", kind=RoomKind.DOSING_ROOM),
        therapy_room=RoomFactory(clinic=clinic, name="Therapy 1", kind=RoomKind.THERAPY_ROOM),
        chair=RoomFactory(clinic=clinic, name="Chair 1", kind=RoomKind.INFUSION_CHAIR),
        other_room=RoomFactory(clinic=other, name="Harbor Therapy", kind=RoomKind.THERAPY_ROOM),
        front_desk=_staff(clinic, "front_desk", [Role.FRONT_DESK]),
        nurse=_staff(clinic, "nurse", [Role.NURSE], max_concurrent_patients=3),
        prescriber=prescriber,
        therapist=_staff(clinic, "therapist", [Role.THERAPIST]),
        admin=_staff(clinic, "clinic_admin", [Role.CLINIC_ADMIN]),
        other_therapist=_staff(other, "harbor_therapist", [Role.THERAPIST]),
        other_front_desk=_staff(other, "harbor_front_desk", [Role.FRONT_DESK]),
        patient_a=_patient(clinic, "patient_a", "Alex Rivera", prescriber),
        patient_b=_patient(clinic, "patient_b", "Blair Chen", prescriber),
        other_patient=_patient(other, "patient_c", "Casey Morgan", other_prescriber),
        superuser=User.objects.create_superuser("root", "root@x.org", PASSWORD),
    )
    _all_day_hours(list(StaffMember.objects.filter(clinic__in=[clinic, other])))
    return built


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def as_user() -> Callable[[Any], APIClient]:
    """``as_user(world.front_desk)`` (a staff member, a patient or a user) -> a client."""

    def make(who: Any) -> APIClient:
        user = who if isinstance(who, User) else who.user
        return client_for(user)

    return make


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def book(
    client: APIClient,
    patient: Patient,
    kind: str,
    starts_at: dt.datetime,
    room: Room,
    staff: list[StaffMember],
    **extra: Any,
) -> Any:
    return client.post(
        "/api/v1/sessions/",
        {
            "patient": patient.pk,
            "kind": kind,
            "starts_at": iso(starts_at),
            "room": room.pk,
            "staff": [member.pk for member in staff],
            **extra,
        },
        format="json",
    )
