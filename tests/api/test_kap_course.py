"""A whole ketamine-assisted psychotherapy course through the API, as the clinic lives it.

A new patient is registered, screened and cleared by the prescriber, and signs consent. A KAP
series (preparation, three medicine sessions, integration after each) runs over three weeks across
the spring DST change: each medicine session with its ride home, vital signs, dose record and
discharge; integration here after the first and third, and with the patient's own therapist after
the second (confirmed by the patient in the portal); a PHQ-9 at baseline, before each later
medicine session and at the end, falling from 20 to 5. At every step the therapist's caseload
shows exactly the expected integration statuses and scores.

The first course books session by session (its series row made with the factory); the second
books the standard KAP short course whole with ``POST /series/`` and lives it in the planned order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import Patient
from integration.models import QuestionnaireAssignment
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from tests.api.clinical import (
    book_integration,
    book_medicine,
    escort,
    post,
    record_medicine_session,
    tokens_outlive_the_test,
)
from tests.api.conftest import PASSWORD, World, book, client_for
from tests.factories import (
    ProtocolFactory,
    ProtocolRuleFactory,
    ProtocolVersionFactory,
    TreatmentSeriesFactory,
    aware,
)

pytestmark = pytest.mark.django_db

M1, M2, M3 = aware(2026, 3, 3, 10), aware(2026, 3, 10, 10), aware(2026, 3, 17, 10)


@pytest.fixture(autouse=True)
def _long_tokens(monkeypatch) -> None:
    tokens_outlive_the_test(monkeypatch)


class Course:
    """The course's actors and the checks made at each step."""

    def __init__(self, world: World, as_user: Any, frozen: Any) -> None:
        self.world, self.as_user, self.frozen = world, as_user, frozen
        self.patient: Patient

    def caseload_row(self) -> dict[str, Any]:
        answer = self.as_user(self.world.therapist).get("/api/v1/caseload/")
        assert answer.status_code == 200
        rows = [row for row in answer.json()["results"] if row["patient"] == self.patient.pk]
        assert len(rows) == 1
        return dict(rows[0])

    def statuses(self) -> list[tuple[str, int]]:
        return [
            (m["integration"]["status"], m["integration"]["days_overdue"])
            for m in self.caseload_row()["medicine_sessions"]
        ]

    def phq9(self) -> tuple[int, str, int | None] | None:
        score = self.caseload_row()["scores"]["phq9"]
        if score is None:
            return None
        return score["total_score"], score["severity"], score["change_from_baseline"]

    def portal(self) -> Any:
        return client_for(self.patient.user)

    def answer_phq9(self, milestone: str, answers: list[int], session: int | None = None) -> Any:
        assignment = QuestionnaireAssignment.objects.get(
            series__patient=self.patient,
            instrument="phq9",
            milestone=milestone,
            medicine_session_id=session,
        )
        open_now = [
            r["id"] for r in self.portal().get("/api/v1/me/questionnaires/").json()["results"]
        ]
        assert assignment.pk in open_now
        answer = post(
            self.portal(),
            f"/api/v1/me/questionnaires/{assignment.pk}/answers/",
            {"answers": answers},
        )
        assert answer.status_code == 201, answer.json()
        return answer.json()

    def integration_here(self, starts_at: dt.datetime, note: str) -> int:
        session_id = book_integration(self.world, self.as_user, starts_at, patient=self.patient)
        self.frozen.move_to(starts_at)
        desk, therapist = self.as_user(self.world.front_desk), self.as_user(self.world.therapist)
        assert post(desk, f"/api/v1/sessions/{session_id}/check-in/").status_code == 200
        written = post(therapist, f"/api/v1/sessions/{session_id}/notes/", {"body": note})
        assert written.status_code == 201
        assert post(therapist, f"/api/v1/sessions/{session_id}/complete/").status_code == 200
        return session_id

    def medicine(self, starts_at: dt.datetime, series: Any) -> int:
        session_id = book_medicine(
            self.world, self.as_user, starts_at, patient=self.patient, series=series.pk
        )
        escort(self.world, self.as_user, session_id)
        return session_id


def test_a_whole_kap_course(world, as_user, frozen) -> None:
    course = Course(world, as_user, frozen)
    desk = as_user(world.front_desk)

    # Registration, screening by the prescriber, consent.
    registered = post(
        desk,
        "/api/v1/patients/",
        {
            "clinic": world.clinic.pk,
            "full_name": "Jordan Avery",
            "date_of_birth": "1984-07-12",
            "email": "jordan@example.org",
            "phone": "+14155550123",
            "preferred_channel": "email",
            "username": "jordan",
            "password": PASSWORD,
        },
    )
    assert registered.status_code == 201, registered.json()
    course.patient = Patient.objects.get(pk=registered.json()["id"])
    screened = post(
        as_user(world.prescriber),
        f"/api/v1/patients/{course.patient.pk}/screenings/",
        {"result": "cleared", "valid_until": "2026-09-01", "contraindications": []},
    )
    assert screened.status_code == 201, screened.json()
    consented = post(
        desk,
        f"/api/v1/patients/{course.patient.pk}/consents/",
        {"signed_at": "2026-03-02T08:30:00-08:00", "document_version": "kap-2026"},
    )
    assert consented.status_code == 201, consented.json()

    version = ProtocolVersionFactory(
        protocol=ProtocolFactory(name="KAP short course", care_model="kap")
    )
    ProtocolRuleFactory(version=version, type="max_gap", days=7)
    series = TreatmentSeriesFactory(patient=course.patient, protocol_version=version)

    # Preparation today: the patient joins the caseload, with no medicine session yet.
    preparation = book(
        desk,
        course.patient,
        "preparation",
        aware(2026, 3, 2, 13),
        world.therapy_room,
        [world.therapist],
        series=series.pk,
    )
    assert preparation.status_code == 201, preparation.json()
    row = course.caseload_row()
    assert (row["medicine_sessions"], row["next_session"]["kind"]) == ([], "preparation")
    assert row["series"] == [
        {
            "id": series.pk,
            "protocol_name": "KAP short course",
            "care_model": "kap",
            "status": "active",
        }
    ]
    frozen.move_to(aware(2026, 3, 2, 13))
    prep_id = preparation.json()["id"]
    assert post(desk, f"/api/v1/sessions/{prep_id}/check-in/").status_code == 200
    assert (
        post(as_user(world.therapist), f"/api/v1/sessions/{prep_id}/complete/").status_code == 200
    )

    # First medicine session booked: the baseline PHQ-9 opens; the patient answers 20 (severe).
    m1 = course.medicine(M1, series)
    baseline = course.answer_phq9("baseline", [3, 3, 3, 3, 2, 2, 2, 2, 0])
    assert (baseline["total_score"], baseline["severity"]) == (20, "severe")
    assert course.phq9() == (20, "severe", 0)

    record_medicine_session(world, as_user, frozen, m1, M1)
    assert course.statuses() == [("none", 0)]
    i1 = course.integration_here(aware(2026, 3, 4, 14), "Named the fear of losing control.")
    assert course.statuses() == [("done", 0)]
    assert course.caseload_row()["medicine_sessions"][0]["integration"]["sessions"] == [i1]

    # Second medicine session (after the DST change): before it, PHQ-9 at 14.
    m2 = course.medicine(M2, series)
    frozen.move_to(aware(2026, 3, 8, 12))
    course.answer_phq9("before_medicine", [2, 2, 2, 2, 2, 2, 1, 1, 0], session=m2)
    assert course.phq9() == (14, "moderate", -6)
    record_medicine_session(world, as_user, frozen, m2, M2)
    assert course.statuses() == [("done", 0), ("none", 0)]
    assert course.caseload_row()["medicine_sessions"][1]["starts_at"] == "2026-03-10T10:00:00-07:00"

    # Integration with the patient's own therapist, confirmed by the patient in the portal.
    outside = post(
        as_user(world.therapist),
        f"/api/v1/sessions/{m2}/outside-integration/",
        {
            "held_on": "2026-03-12",
            "therapist_name": "Dr. Morgan Hale",
            "therapist_email": "morgan.hale@example.org",
        },
    )
    assert outside.status_code == 201
    assert course.statuses() == [("done", 0), ("external", 0)]
    frozen.move_to(aware(2026, 3, 12, 19))
    confirmed = post(
        course.portal(), f"/api/v1/me/outside-integrations/{outside.json()['id']}/confirm/"
    )
    assert confirmed.status_code == 200
    assert course.statuses() == [("done", 0), ("done", 0)]

    # Third medicine session: PHQ-9 at 8 before it.
    m3 = course.medicine(M3, series)
    frozen.move_to(aware(2026, 3, 15, 12))
    course.answer_phq9("before_medicine", [1, 1, 1, 1, 1, 1, 1, 1, 0], session=m3)
    assert course.phq9() == (8, "mild", -12)
    record_medicine_session(world, as_user, frozen, m3, M3)
    assert course.statuses() == [("done", 0), ("done", 0), ("none", 0)]

    # Integration not arranged within 7 days (due 24 March): overdue from the 25th.
    frozen.move_to(aware(2026, 3, 24, 23, 59))
    assert course.statuses() == [("done", 0), ("done", 0), ("none", 0)]
    frozen.move_to(aware(2026, 3, 25, 9))
    assert course.statuses() == [("done", 0), ("done", 0), ("overdue", 1)]
    assert course.caseload_row()["days_overdue"] == 1
    i3 = book_integration(world, as_user, aware(2026, 3, 26, 14), patient=course.patient)
    assert course.statuses() == [("done", 0), ("done", 0), ("booked", 0)]
    assert course.caseload_row()["next_session"]["id"] == i3
    frozen.move_to(aware(2026, 3, 26, 14))
    assert post(desk, f"/api/v1/sessions/{i3}/check-in/").status_code == 200
    assert post(as_user(world.therapist), f"/api/v1/sessions/{i3}/complete/").status_code == 200
    assert course.statuses() == [("done", 0), ("done", 0), ("done", 0)]

    # End of series: PHQ-9 at 5, fifteen points below baseline.
    frozen.move_to(aware(2026, 3, 27, 10))
    course.answer_phq9("end_of_series", [1, 1, 1, 1, 1, 0, 0, 0, 0])
    assert course.phq9() == (5, "mild", -15)
    trend = as_user(world.therapist).get(f"/api/v1/series/{series.pk}/scores/").json()
    phq9 = trend["trends"][0]
    assert [(p["milestone"], p["total_score"]) for p in phq9["points"]] == [
        ("baseline", 20),
        ("before_medicine", 14),
        ("before_medicine", 8),
        ("end_of_series", 5),
    ]
    row = course.caseload_row()
    assert (row["days_overdue"], row["open_safety_events"], row["next_session"]) == (0, [], None)


def test_a_kap_short_course_booked_in_one_step(world, as_user, frozen) -> None:
    """The standard KAP short course booked whole with ``POST /series/``, then lived session by
    session in the planned order; the caseload follows each medicine session's integration."""
    protocols_load_standard()
    version = ProtocolVersion.objects.get(protocol__name="KAP short course")
    course = Course(world, as_user, frozen)
    course.patient = world.patient_a
    desk, therapist = as_user(world.front_desk), as_user(world.therapist)
    booked = post(
        desk,
        "/api/v1/series/",
        {
            "patient": world.patient_a.pk,
            "protocol": version.pk,
            "earliest_start": "2026-03-02",
            "preferences": {
                "earliest_time": "08:00",
                "latest_start": "16:00",
                "therapist": world.therapist.pk,
            },
        },
    )
    assert booked.status_code == 201, booked.json()
    sessions = sorted(booked.json()["sessions"], key=lambda item: item["starts_at"])
    assert [item["kind"] for item in sessions] == [
        "preparation",
        "medicine",
        "integration",
        "medicine",
        "integration",
        "medicine",
        "integration",
    ]
    course.answer_phq9("baseline", [3, 3, 3, 3, 2, 2, 2, 2, 0])
    expected: list[tuple[str, int]] = []
    falling = iter([[2, 2, 2, 2, 2, 2, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0]])
    for item in sessions:
        starts_at = dt.datetime.fromisoformat(item["starts_at"])
        if item["kind"] == "medicine":
            if expected:  # a later medicine session: its PHQ-9 opened (at most) 3 days before
                frozen.move_to(starts_at - dt.timedelta(hours=1))
                course.answer_phq9("before_medicine", next(falling), session=item["id"])
            escort(world, as_user, item["id"])
            record_medicine_session(world, as_user, frozen, item["id"], starts_at)
            expected.append(("booked", 0))  # its integration was booked with the series
        else:
            frozen.move_to(starts_at)
            assert post(desk, f"/api/v1/sessions/{item['id']}/check-in/").status_code == 200
            done = post(therapist, f"/api/v1/sessions/{item['id']}/complete/")
            assert done.status_code == 200, done.json()
            if item["kind"] == "integration":
                expected[-1] = ("done", 0)
        assert course.statuses() == expected
    assert expected == [("done", 0)] * 3
    frozen.move_to(dt.datetime.fromisoformat(sessions[-1]["ends_at"]) + dt.timedelta(hours=1))
    course.answer_phq9("end_of_series", [1, 1, 1, 1, 1, 0, 0, 0, 0])
    assert course.phq9() == (5, "mild", -15)
    trend = therapist.get(f"/api/v1/series/{booked.json()['id']}/scores/").json()
    assert [p["total_score"] for p in trend["trends"][0]["points"]] == [20, 14, 8, 5]
