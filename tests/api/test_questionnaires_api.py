"""Outcome measures through the API: the portal lists what is open, answers are scored on the
server, a PHQ-9 item 9 answer above zero alerts the therapist and the prescriber, the patient sees
their scores; clinicians enter paper answers and read the series' trend."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import AuditEvent
from integration.models import IntegrationSafetyEvent, QuestionnaireAssignment
from integration.models import QuestionnaireResponse as Response
from scheduling.alerts.models import StaffAlert
from tests.api.clinical import book_medicine, post, tokens_outlive_the_test
from tests.api.conftest import World
from tests.factories import ProtocolVersionFactory, TreatmentSeriesFactory, aware

pytestmark = pytest.mark.django_db

FIRST, SECOND = aware(2026, 3, 4, 10), aware(2026, 3, 9, 10)
#: 2+2+2+2+2+2+1+1+0 = 14: moderate, nothing on item 9.
MODERATE = [2, 2, 2, 2, 2, 2, 1, 1, 0]


@pytest.fixture(autouse=True)
def _long_tokens(monkeypatch) -> None:
    tokens_outlive_the_test(monkeypatch)


def _series(world: World, as_user: Any, patient: Any = None) -> Any:
    """A series with two medicine sessions booked through the API: a baseline PHQ-9 and GAD-7
    open now, before-medicine ones for the second session, and end-of-series ones."""
    series = TreatmentSeriesFactory(
        patient=patient or world.patient_a, protocol_version=ProtocolVersionFactory()
    )
    for starts_at in (FIRST, SECOND):
        book_medicine(world, as_user, starts_at, patient=series.patient, series=series.pk)
    return series


def _assignment(series: Any, instrument: str, milestone: str = "baseline") -> Any:
    return QuestionnaireAssignment.objects.get(
        series=series, instrument=instrument, milestone=milestone
    )


def test_the_portal_lists_what_is_open_now(world, as_user, frozen) -> None:
    series = _series(world, as_user)

    answer = as_user(world.patient_a).get("/api/v1/me/questionnaires/")

    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert [(r["instrument"], r["milestone"], r["is_answered"]) for r in rows] == [
        ("gad7", "baseline", False),
        ("phq9", "baseline", False),
    ]
    phq9 = rows[1]
    assert {key: phq9[key] for key in ("id", "series", "medicine_session", "due_at")} == {
        "id": _assignment(series, "phq9").pk,
        "series": series.pk,
        "medicine_session": None,
        "due_at": "2026-03-04T10:00:00-08:00",
    }
    assert phq9["questionnaire"]["code"] == "phq9"
    assert len(phq9["questionnaire"]["items"]) == 9
    assert [o["value"] for o in phq9["questionnaire"]["options"]] == [0, 1, 2, 3]
    row = AuditEvent.objects.get(object_type="questionnaire_assignment")
    assert (row.action, row.patient_ids) == ("list", [world.patient_a.pk])


def test_the_patient_answers_and_the_server_scores(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    phq9 = _assignment(series, "phq9")
    portal = as_user(world.patient_a)

    answer = post(portal, f"/api/v1/me/questionnaires/{phq9.pk}/answers/", {"answers": MODERATE})

    assert answer.status_code == 201
    assert answer.json() == {
        "id": Response.objects.get().pk,
        "assignment": phq9.pk,
        "series": series.pk,
        "instrument": "phq9",
        "milestone": "baseline",
        "answers": MODERATE,
        "total_score": 14,
        "severity": "moderate",
        "answered_at": "2026-03-02T09:00:00-08:00",
        "safety_alert_raised": False,
    }
    assert IntegrationSafetyEvent.objects.count() == 0
    left = portal.get("/api/v1/me/questionnaires/").json()["results"]
    assert [r["instrument"] for r in left] == ["gad7"]
    again = post(portal, f"/api/v1/me/questionnaires/{phq9.pk}/answers/", {"answers": MODERATE})
    assert again.status_code == 422
    assert [v["rule"] for v in again.json()["violations"]] == ["questionnaire_answered"]
    assert Response.objects.count() == 1


def test_item_nine_above_zero_alerts_the_therapist_and_the_prescriber(
    world, as_user, frozen
) -> None:
    series = _series(world, as_user)
    phq9 = _assignment(series, "phq9")

    answer = post(
        as_user(world.patient_a),
        f"/api/v1/me/questionnaires/{phq9.pk}/answers/",
        {"answers": [1, 1, 1, 1, 1, 1, 1, 1, 1]},
    )

    assert answer.status_code == 201
    assert (answer.json()["total_score"], answer.json()["safety_alert_raised"]) == (9, True)
    event = IntegrationSafetyEvent.objects.get()
    assert (event.patient_id, event.item_number, event.answer) == (world.patient_a.pk, 9, 1)
    assert (event.therapist_id, event.prescriber_id) == (world.therapist.pk, world.prescriber.pk)
    alerted = sorted(
        StaffAlert.objects.filter(kind="phq9_self_harm").values_list("target_staff_id", flat=True)
    )
    assert alerted == sorted([world.therapist.pk, world.prescriber.pk])
    caseload = as_user(world.therapist).get("/api/v1/caseload/").json()["results"]
    assert [(row["patient"], len(row["open_safety_events"])) for row in caseload] == [
        (world.patient_a.pk, 1)
    ]


def test_bad_answers_are_400(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    path = f"/api/v1/me/questionnaires/{_assignment(series, 'phq9').pk}/answers/"
    portal = as_user(world.patient_a)

    out_of_scale = post(portal, path, {"answers": [4, 0, 0, 0, 0, 0, 0, 0, 0]})
    too_few = post(portal, path, {"answers": [0, 0, 0]})
    unknown = post(portal, path, {"answers": MODERATE, "total": 3})

    assert [a.status_code for a in (out_of_scale, too_few, unknown)] == [400, 400, 400]
    assert list(out_of_scale.json()["errors"]) == ["answers.0"]
    assert list(too_few.json()["errors"]) == ["answers"]
    assert unknown.json()["errors"] == {"total": ["Unknown field."]}
    assert too_few["Content-Type"] == "application/problem+json"
    assert Response.objects.count() == 0


def test_not_open_yet_is_422(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    later = QuestionnaireAssignment.objects.get(
        series=series, instrument="phq9", milestone="before_medicine"
    )
    answer = post(
        as_user(world.nurse), f"/api/v1/questionnaires/{later.pk}/answers/", {"answers": MODERATE}
    )
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["questionnaire_not_open"]
    assert Response.objects.count() == 0
    # It does not show in the portal either.
    listed = as_user(world.patient_a).get("/api/v1/me/questionnaires/").json()["results"]
    assert later.pk not in [r["id"] for r in listed]


def test_a_clinician_enters_paper_answers(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    gad7 = _assignment(series, "gad7")

    answer = post(
        as_user(world.nurse),
        f"/api/v1/questionnaires/{gad7.pk}/answers/",
        {"answers": [3, 3, 3, 3, 3, 0, 0]},
    )

    assert answer.status_code == 201
    assert (answer.json()["total_score"], answer.json()["severity"]) == (15, "severe")
    assert Response.objects.get().answered_by_id == world.nurse.user_id
    front_desk = post(
        as_user(world.front_desk),
        f"/api/v1/questionnaires/{_assignment(series, 'phq9').pk}/answers/",
        {"answers": MODERATE},
    )
    assert front_desk.status_code == 403
    assert Response.objects.count() == 1


def test_scores_in_the_portal_and_the_series_trend(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    post(
        as_user(world.patient_a),
        f"/api/v1/me/questionnaires/{_assignment(series, 'phq9').pk}/answers/",
        {"answers": MODERATE},
    )
    expected = {
        "series": series.pk,
        "trends": [
            {
                "instrument": "phq9",
                "baseline": 14,
                "points": [
                    {
                        "assignment": _assignment(series, "phq9").pk,
                        "milestone": "baseline",
                        "medicine_session": None,
                        "answered_at": "2026-03-02T09:00:00-08:00",
                        "total_score": 14,
                        "severity": "moderate",
                        "change_from_baseline": 0,
                    }
                ],
            },
            {"instrument": "gad7", "baseline": None, "points": []},
        ],
    }

    mine = as_user(world.patient_a).get("/api/v1/me/scores/")
    trend = as_user(world.therapist).get(f"/api/v1/series/{series.pk}/scores/")

    assert mine.status_code == 200
    assert mine.json()["results"] == [expected]
    assert trend.status_code == 200
    assert trend.json() == expected
    assert as_user(world.front_desk).get(f"/api/v1/series/{series.pk}/scores/").status_code == 403
    assert as_user(world.patient_b).get("/api/v1/me/scores/").json()["results"] == []


def test_the_series_questionnaires_for_staff(world, as_user, frozen) -> None:
    series = _series(world, as_user)
    post(
        as_user(world.nurse),
        f"/api/v1/questionnaires/{_assignment(series, 'gad7').pk}/answers/",
        {"answers": [0, 0, 0, 0, 0, 0, 0]},
    )
    listed = as_user(world.therapist).get(f"/api/v1/series/{series.pk}/questionnaires/")
    assert listed.status_code == 200
    assert [
        (r["instrument"], r["milestone"], r["is_answered"]) for r in listed.json()["results"]
    ] == [
        ("gad7", "baseline", True),
        ("phq9", "baseline", False),
        ("gad7", "before_medicine", False),
        ("phq9", "before_medicine", False),
        ("gad7", "end_of_series", False),
        ("phq9", "end_of_series", False),
    ]


def _more_series(world: World, n: int) -> None:
    """``n`` more series of patient A, each with an open PHQ-9 answered on paper."""
    for _ in range(n):
        series = TreatmentSeriesFactory(  # past: a patient has one open series per care model
            patient=world.patient_a, protocol_version=ProtocolVersionFactory(), status="completed"
        )
        for instrument in ("phq9", "gad7"):
            QuestionnaireAssignment.objects.create(
                series=series,
                instrument=instrument,
                milestone="baseline",
                available_from=aware(2026, 3, 1),
                due_at=aware(2026, 3, 20),
            )
        Response.objects.create(
            assignment=QuestionnaireAssignment.objects.get(series=series, instrument="gad7"),
            instrument="gad7",
            answers=[1, 1, 1, 1, 1, 0, 0],
            total_score=5,
            severity="mild",
            answered_at=aware(2026, 3, 1, 12),
        )


@pytest.mark.parametrize(
    ("path", "queries"),
    [("/api/v1/me/questionnaires/", 4), ("/api/v1/me/scores/", 5)],
)
def test_portal_lists_do_not_grow_in_queries(
    world, as_user, frozen, django_assert_num_queries, path, queries
) -> None:
    portal = as_user(world.patient_a)
    _more_series(world, 1)
    with django_assert_num_queries(queries):
        small = portal.get(path)
    _more_series(world, 6)
    with django_assert_num_queries(queries):
        large = portal.get(path)
    assert (small.json()["count"], large.json()["count"]) == (1, 7)
