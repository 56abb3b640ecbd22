"""The therapist's caseload: each recent medicine session and its integration's status."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.models import Role
from scheduling.models import SessionStatus
from tests.factories import (
    PatientFactory,
    ProtocolRuleFactory,
    ProtocolVersionFactory,
    RoomFactory,
    SessionFactory,
    SessionStaffFactory,
    TreatmentSeriesFactory,
    aware,
)

pytestmark = pytest.mark.django_db


def _medicine(world, patient, day: int, series=None, hour: int = 9):
    session = SessionFactory(
        patient=patient,
        series=series,
        kind="medicine",
        route="im",
        room=RoomFactory(clinic=world.clinic, kind="dosing_room"),
        starts_at=aware(2026, 2, day, hour),
        status=SessionStatus.COMPLETED,
    )
    SessionStaffFactory(session=session, staff=world.therapist, role=Role.THERAPIST)
    return session


def _integration(world, patient, day: int, status: str):
    return SessionFactory(
        patient=patient,
        kind="integration",
        room=RoomFactory(clinic=world.clinic),
        starts_at=aware(2026, 2, day, 14),
        status=status,
    )


def test_integration_status_per_medicine_session(world, as_user, frozen) -> None:
    # Now is Monday 2 March. A protocol with max_gap 3 days for Dana; the default 7 for the rest.
    done, booked, overdue, pending, dana = (
        PatientFactory(clinic=world.clinic, full_name=name)
        for name in ("A Done", "B Booked", "C Overdue", "D Pending", "E Short gap")
    )
    m_done = _medicine(world, done, 20)
    i_done = _integration(world, done, 21, SessionStatus.COMPLETED)
    m_booked = _medicine(world, booked, 27)
    i_booked = SessionFactory(
        patient=booked, kind="integration", room=world.therapy_room, starts_at=aware(2026, 3, 4, 14)
    )
    m_overdue = _medicine(world, overdue, 20, hour=11)
    _integration(world, overdue, 22, SessionStatus.LATE_CANCELLED)
    m_pending = _medicine(world, pending, 26)
    series = TreatmentSeriesFactory(patient=dana, protocol_version=ProtocolVersionFactory())
    ProtocolRuleFactory(version=series.protocol_version, type="max_gap", days=3)
    m_dana = _medicine(world, dana, 26, series=series, hour=11)

    answer = as_user(world.therapist).get("/api/v1/caseload/")
    assert answer.status_code == 200
    rows = {
        row["patient_name"]: [(m["session"], m["integration"]) for m in row["medicine_sessions"]]
        for row in answer.json()["patients"]
    }
    assert rows == {
        "A Done": [(m_done.pk, {"status": "done", "session": i_done.pk, "due_by": "2026-02-27"})],
        "B Booked": [
            (m_booked.pk, {"status": "booked", "session": i_booked.pk, "due_by": "2026-03-06"})
        ],
        "C Overdue": [
            (m_overdue.pk, {"status": "overdue", "session": None, "due_by": "2026-02-27"})
        ],
        "D Pending": [(m_pending.pk, {"status": "none", "session": None, "due_by": "2026-03-05"})],
        "E Short gap": [
            (m_dana.pk, {"status": "overdue", "session": None, "due_by": "2026-03-01"})
        ],
    }
    assert answer.json()["therapist"] == world.therapist.pk
    assert (
        answer.json()["patients"][0]["medicine_sessions"][0]["starts_at"]
        == "2026-02-20T09:00:00-08:00"
    )


def test_front_desk_reads_a_therapists_caseload_but_not_another_clinics(world, as_user) -> None:
    assert (
        as_user(world.front_desk)
        .get("/api/v1/caseload/", {"therapist": world.therapist.pk})
        .status_code
        == 200
    )
    assert (
        as_user(world.nurse).get("/api/v1/caseload/", {"therapist": world.therapist.pk}).status_code
        == 404
    )
    assert (
        as_user(world.other_front_desk)
        .get("/api/v1/caseload/", {"therapist": world.therapist.pk})
        .status_code
        == 404
    )
    assert dt.date(2026, 3, 2).weekday() == 0
