"""The day sheet shows, for each medicine session still to check in, what would refuse its
check-in now (the same gates as POST /sessions/{id}/check-in/): the nurse sees a lapsed
clearance or an unconfirmed ride home before the patient arrives."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.models import Screening
from tests.factories import aware

from .clinical import book_integration, book_medicine

pytestmark = pytest.mark.django_db


def _blockers(sheet: dict) -> dict[int, list[tuple[str, str]]]:
    return {
        session["id"]: [(b["rule"], b["message"]) for b in session["check_in_blockers"]]
        for room in sheet["rooms"]
        for session in room["sessions"]
    }


def test_the_day_sheet_names_what_would_refuse_each_check_in(world, as_user, frozen) -> None:
    no_ride = book_medicine(world, as_user, aware(2026, 3, 2, 10))
    lapsed = book_medicine(world, as_user, aware(2026, 3, 2, 13), patient=world.patient_b)
    talk = book_integration(world, as_user, aware(2026, 3, 2, 16))
    desk = as_user(world.front_desk)
    ride = desk.post(
        f"/api/v1/sessions/{lapsed}/escort/",
        {"name": "Sam Chen", "phone": "+14155550100", "confirmed": True},
        format="json",
    )
    assert ride.status_code == 200
    Screening.objects.filter(patient=world.patient_b).update(valid_until=dt.date(2026, 3, 1))
    arrived = book_medicine(world, as_user, aware(2026, 3, 2, 18))
    for path, body in (
        ("escort", {"name": "Ana Ruiz", "phone": "+14155550101", "confirmed": True}),
        ("check-in", {}),
    ):
        answer = desk.post(f"/api/v1/sessions/{arrived}/{path}/", body, format="json")
        assert answer.status_code == 200, answer.json()

    sheet = as_user(world.nurse).get("/api/v1/day-sheet/", {"date": "2026-03-02"})

    assert sheet.status_code == 200
    assert _blockers(sheet.json()) == {
        arrived: [],  # checked in already
        no_ride: [("escort_gate", "No ride home is recorded.")],
        lapsed: [
            ("screening_gate", "No screening cleared by a prescriber is valid on 2026-03-02.")
        ],
    }
    assert talk not in _blockers(sheet.json())  # a nurse's sheet: medicine sessions only
    front = _blockers(
        as_user(world.front_desk).get("/api/v1/day-sheet/", {"date": "2026-03-02"}).json()
    )
    assert front[talk] == []
