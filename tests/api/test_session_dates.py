"""GET /sessions/?date_from&date_to reads dates in a clinic's time zone: the filtered clinic's or
the caller's; a superuser listing every clinic gets each session by its own clinic's calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import Clinic
from tests.factories import SessionFactory

from .conftest import World

pytestmark = pytest.mark.django_db
ON_THE_3RD = {"date_from": "2026-03-03", "date_to": "2026-03-03"}


def _at(clinic: Clinic, room: Any, patient: Any, day: int, hour: int, minute: int = 0) -> int:
    """A session at a local time in March 2026 in ``clinic``'s zone."""
    starts_at = dt.datetime(2026, 3, day, hour, minute, tzinfo=clinic.tz)
    return SessionFactory(patient=patient, clinic=clinic, room=room, starts_at=starts_at).pk


@pytest.fixture
def sessions(world: World) -> dict[str, int]:
    """Mesa in Los Angeles (UTC-8 in March), Harbor in Auckland (UTC+13): 3 March 23:00 in Los
    Angeles is 4 March 07:00 UTC; 3 March 08:00 in Auckland is 2 March 19:00 UTC."""
    Clinic.objects.filter(pk=world.other_clinic.pk).update(timezone="Pacific/Auckland")
    world.other_clinic.refresh_from_db()
    mesa, harbor = world.clinic, world.other_clinic
    return {
        "mesa 2nd 23:00": _at(mesa, world.therapy_room, world.patient_a, 2, 23),
        "mesa 3rd 00:30": _at(mesa, world.therapy_room, world.patient_a, 3, 0, 30),
        "mesa 3rd 23:00": _at(mesa, world.therapy_room, world.patient_a, 3, 23),
        "harbor 3rd 08:00": _at(harbor, world.other_room, world.other_patient, 3, 8),
        "harbor 3rd 22:00": _at(harbor, world.other_room, world.other_patient, 3, 22),
        "harbor 4th 09:00": _at(harbor, world.other_room, world.other_patient, 4, 9),
    }


def _listed(client: Any, sessions: dict[str, int], **params: Any) -> list[str]:
    answer = client.get("/api/v1/sessions/", {**ON_THE_3RD, **params})
    assert answer.status_code == 200, answer.json()
    names = {pk: name for name, pk in sessions.items()}
    return sorted(names[row["id"]] for row in answer.json()["results"])


def test_a_superuser_across_clinics_gets_each_clinics_own_day(world, as_user, sessions) -> None:
    root = as_user(world.superuser)

    assert _listed(root, sessions) == [
        "harbor 3rd 08:00",
        "harbor 3rd 22:00",
        "mesa 3rd 00:30",
        "mesa 3rd 23:00",
    ]
    assert _listed(root, sessions, clinic=world.other_clinic.pk) == [
        "harbor 3rd 08:00",
        "harbor 3rd 22:00",
    ]


def test_staff_read_dates_in_their_own_clinics_zone(world, as_user, sessions) -> None:
    assert _listed(as_user(world.front_desk), sessions) == ["mesa 3rd 00:30", "mesa 3rd 23:00"]
    assert _listed(as_user(world.other_front_desk), sessions) == [
        "harbor 3rd 08:00",
        "harbor 3rd 22:00",
    ]


def test_only_an_upper_bound_is_read_per_clinic_too(world, as_user, sessions) -> None:
    root = as_user(world.superuser)

    answer = root.get("/api/v1/sessions/", {"date_to": "2026-03-02"})

    names = {pk: name for name, pk in sessions.items()}
    assert [names[row["id"]] for row in answer.json()["results"]] == ["mesa 2nd 23:00"]
