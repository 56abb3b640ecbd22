from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import authenticate

from clinic import services
from clinic.errors import InvalidInput
from clinic.models import Clinic, OpeningHours, Patient, Role, StaffMember, User
from tests.factories import ClinicFactory, PatientFactory, StaffMemberFactory

pytestmark = pytest.mark.django_db


def test_clinic_with_opening_hours() -> None:
    clinic = services.clinic_create(
        name="Bay Clinic",
        timezone_name="America/Los_Angeles",
        opening_hours=[
            {"weekday": 0, "start": dt.time(8), "end": dt.time(12)},
            {"weekday": 0, "start": dt.time(13), "end": dt.time(18)},
        ],
    )
    assert list(
        OpeningHours.objects.filter(clinic=clinic).values_list("weekday", "start", "end")
    ) == [(0, dt.time(8), dt.time(12)), (0, dt.time(13), dt.time(18))]
    assert str(clinic.tz) == "America/Los_Angeles"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timezone_name": "Mars/Olympus"}, "timezone"),
        (
            {"opening_hours": [{"weekday": 7, "start": dt.time(8), "end": dt.time(9)}]},
            "opening_hours",
        ),
        (
            {"opening_hours": [{"weekday": 1, "start": dt.time(9), "end": dt.time(8)}]},
            "opening_hours",
        ),
        (
            {
                "opening_hours": [
                    {"weekday": 1, "start": dt.time(8), "end": dt.time(12)},
                    {"weekday": 1, "start": dt.time(11), "end": dt.time(14)},
                ]
            },
            "opening_hours",
        ),
    ],
)
def test_clinic_bad_input_writes_nothing(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.clinic_create(**{"name": "X", "timezone_name": "UTC", **kwargs})
    assert list(caught.value.errors) == [field]
    assert Clinic.objects.count() == 0


def test_staff_member_with_login_and_roles() -> None:
    clinic = ClinicFactory()
    member = services.staff_create(
        clinic=clinic,
        username="nurse.nia",
        password="Infusion-Chair-42",
        full_name="Nia Okafor, RN",
        roles=[Role.NURSE],
        max_concurrent_patients=3,
    )
    assert member.roles == ["nurse"]
    assert authenticate(username="nurse.nia", password="Infusion-Chair-42") == member.user
    assert member.user.is_staff is False


def test_clinic_admin_gets_the_admin_site() -> None:
    member = services.staff_create(
        clinic=ClinicFactory(),
        username="casey",
        password="Clinic-Admin-42",
        full_name="Casey",
        roles=[Role.CLINIC_ADMIN],
    )
    assert member.user.is_staff is True
    assert member.user.has_perm("scheduling.view_session") is True
    assert member.user.has_perm("clinic.change_patient") is True
    assert member.user.has_perm("auth.change_user") is False


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"roles": ["wizard"]}, "roles"),
        ({"roles": []}, "roles"),
        ({"password": "123"}, "password"),
        ({"max_concurrent_patients": 0}, "max_concurrent_patients"),
    ],
)
def test_staff_bad_input_writes_nothing(kwargs: dict[str, object], field: str) -> None:
    clinic = ClinicFactory()
    with pytest.raises(InvalidInput) as caught:
        services.staff_create(
            **{
                "clinic": clinic,
                "username": "x",
                "password": "Long-Enough-Pass-1",
                "full_name": "X",
                "roles": ["nurse"],
                **kwargs,
            }
        )
    assert list(caught.value.errors) == [field]
    assert (StaffMember.objects.count(), User.objects.count()) == (0, 0)


def test_username_taken_case_insensitively() -> None:
    StaffMemberFactory(user__username="Jordan")
    with pytest.raises(InvalidInput) as caught:
        services.staff_create(
            clinic=ClinicFactory(),
            username="jordan",
            password="Long-Enough-Pass-1",
            full_name="J",
            roles=["therapist"],
        )
    assert caught.value.errors == {"username": ["This username is taken."]}


def test_overlapping_working_hours_refused() -> None:
    member = StaffMemberFactory()
    services.working_hours_add(staff=member, weekday=2, start=dt.time(8), end=dt.time(12))
    with pytest.raises(InvalidInput):
        services.working_hours_add(staff=member, weekday=2, start=dt.time(11), end=dt.time(15))
    later = services.working_hours_add(staff=member, weekday=2, start=dt.time(12), end=dt.time(15))
    assert (later.start, later.end) == (dt.time(12), dt.time(15))


def test_patient_with_portal_login() -> None:
    patient = services.patient_create(
        clinic=ClinicFactory(),
        full_name="Avery Nguyen",
        date_of_birth=dt.date(1990, 4, 2),
        phone="+14155550101",
        preferred_channel="sms",
        username="avery",
        password="Portal-Pass-2026",
    )
    assert patient.user is not None
    assert patient.user.check_password("Portal-Pass-2026")
    assert patient.tz.key == "America/Los_Angeles"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"preferred_channel": "sms", "phone": ""}, "phone"),
        ({"preferred_channel": "email", "email": ""}, "email"),
        ({"date_of_birth": dt.date(2999, 1, 1)}, "date_of_birth"),
        ({"username": "only-name"}, "password"),
    ],
)
def test_patient_bad_input_writes_nothing(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.patient_create(
            **{
                "clinic": ClinicFactory(),
                "full_name": "P",
                "date_of_birth": dt.date(1990, 1, 1),
                "email": "p@example.org",
                "phone": "+14155550100",
                **kwargs,
            }
        )
    assert list(caught.value.errors) == [field]
    assert (Patient.objects.count(), User.objects.count()) == (0, 0)


def test_only_a_prescriber_clears_a_screening() -> None:
    patient = PatientFactory()
    therapist = StaffMemberFactory(clinic=patient.clinic, roles=[Role.THERAPIST])
    prescriber = StaffMemberFactory(clinic=patient.clinic, roles=[Role.PRESCRIBER])
    with pytest.raises(InvalidInput):
        services.screening_record(
            patient=patient,
            result="cleared",
            valid_until=dt.date(2027, 1, 1),
            cleared_by=therapist,
            screened_on=dt.date(2026, 11, 1),
        )
    screening = services.screening_record(
        patient=patient,
        result="cleared",
        valid_until=dt.date(2027, 1, 1),
        cleared_by=prescriber,
        screened_on=dt.date(2026, 11, 1),
        contraindications=[],
    )
    assert screening.is_valid_on(dt.date(2027, 1, 1)) is True
    assert screening.is_valid_on(dt.date(2027, 1, 2)) is False
    assert screening.is_valid_on(dt.date(2026, 10, 31)) is False


def test_consent_once_per_document_version() -> None:
    patient = PatientFactory()
    signed = dt.datetime(2026, 11, 2, 17, tzinfo=dt.UTC)
    services.consent_record(patient=patient, signed_at=signed, document_version="v1")
    with pytest.raises(InvalidInput):
        services.consent_record(patient=patient, signed_at=signed, document_version="v1")
    assert patient.consents.count() == 1
