"""PHQ-9 and GAD-7 at the protocol's milestones: assignments, server-side scoring, the item 9
safety event, and the score trend of a series."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from clinic.errors import InvalidInput, RuleViolation
from clinic.models import Role
from integration import clinical_selectors, services
from integration.errors import NotPermitted
from integration.models import (
    IntegrationSafetyEvent,
    QuestionnaireAssignment,
    QuestionnaireResponse,
)
from scheduling import services as scheduling_services
from scheduling.alerts.models import StaffAlert
from scheduling.models import Session
from tests.factories import PatientFactory, StaffMemberFactory, UserFactory, aware

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(place):
    """A KAP series: medicine on 2, 5 and 9 March, each followed by integration the next day."""
    series = place.series()
    sessions = {
        name: place.book(kind, aware(2026, 3, day, hour), series=series)
        for name, kind, day, hour in [
            ("m1", "medicine", 2, 9),
            ("i1", "integration", 3, 10),
            ("m2", "medicine", 5, 9),
            ("i2", "integration", 6, 10),
            ("m3", "medicine", 9, 9),
            ("i3", "integration", 10, 10),
        ]
    }
    return series, sessions


def _rows(series) -> list[tuple]:
    return list(
        QuestionnaireAssignment.objects.filter(series=series)
        .order_by("due_at", "instrument")
        .values_list(
            "milestone",
            "instrument",
            "medicine_session_id",
            "available_from",
            "due_at",
            "withdrawn_at",
        )
    )


def _assignment(series, milestone, instrument, session=None) -> QuestionnaireAssignment:
    return QuestionnaireAssignment.objects.get(
        series=series, milestone=milestone, instrument=instrument, medicine_session=session
    )


def test_assignments_at_each_milestone(course) -> None:
    series, s = course

    in_force = services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))

    baseline = (aware(2026, 2, 20, 9), aware(2026, 3, 2, 9))
    before_m2 = (aware(2026, 3, 2, 11), aware(2026, 3, 5, 9))  # opens when M1 ends
    before_m3 = (aware(2026, 3, 6, 8), aware(2026, 3, 9, 9))  # 72 hours before, across DST
    end = (aware(2026, 3, 10, 11), aware(2026, 3, 17, 11))  # from the end of the last session
    assert _rows(series) == [
        ("baseline", "gad7", None, *baseline, None),
        ("baseline", "phq9", None, *baseline, None),
        ("before_medicine", "gad7", s["m2"].pk, *before_m2, None),
        ("before_medicine", "phq9", s["m2"].pk, *before_m2, None),
        ("before_medicine", "gad7", s["m3"].pk, *before_m3, None),
        ("before_medicine", "phq9", s["m3"].pk, *before_m3, None),
        ("end_of_series", "gad7", None, *end, None),
        ("end_of_series", "phq9", None, *end, None),
    ]
    assert len(in_force) == 8


def test_assignments_are_idempotent(course) -> None:
    series, _ = course
    first = services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    rows = _rows(series)

    second = services.questionnaire_assignments_sync(series, now=aware(2026, 2, 22, 9))

    assert [a.pk for a in second] == [a.pk for a in first]
    assert _rows(series) == rows


def test_a_cancelled_medicine_session_withdraws_its_questionnaires(course) -> None:
    series, s = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))

    scheduling_services.session_cancel(s["m2"], reason="unwell", now=aware(2026, 2, 25, 9))
    in_force = services.questionnaire_assignments_sync(series, now=aware(2026, 2, 25, 10))

    withdrawn = QuestionnaireAssignment.objects.filter(withdrawn_at__isnull=False)
    # Withdrawn by the cancellation itself, in its transaction.
    assert sorted(withdrawn.values_list("medicine_session_id", "instrument", "withdrawn_at")) == [
        (s["m2"].pk, "gad7", aware(2026, 2, 25, 9)),
        (s["m2"].pk, "phq9", aware(2026, 2, 25, 9)),
    ]
    assert len(in_force) == 6
    # M3 now follows M1: its questionnaire opens when M1 ends... or 72 hours before, the later.
    assert _assignment(series, "before_medicine", "phq9", s["m3"]).available_from == aware(
        2026, 3, 6, 8
    )


def test_a_moved_session_moves_unanswered_questionnaires_only(place, course) -> None:
    series, s = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    answered = _assignment(series, "before_medicine", "phq9", s["m3"])
    services.questionnaire_answer(
        answered, answers=[1] * 9, answered_by=place.patient.user, now=aware(2026, 3, 7, 9)
    )
    moved_start = aware(2026, 3, 10, 13)
    Session.objects.filter(pk=s["m3"].pk).update(
        starts_at=moved_start,
        ends_at=moved_start + dt.timedelta(hours=2),
        room_released_at=moved_start + dt.timedelta(hours=2, minutes=15),
    )

    services.questionnaire_assignments_sync(series, now=aware(2026, 3, 7, 10))

    assert _assignment(series, "before_medicine", "phq9", s["m3"]).due_at == aware(2026, 3, 9, 9)
    assert _assignment(series, "before_medicine", "gad7", s["m3"]).due_at == moved_start


def test_answers_are_scored_on_the_server(place, course) -> None:
    series, _ = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    assignment = _assignment(series, "baseline", "phq9")

    response = services.questionnaire_answer(
        assignment,
        answers=[3, 2, 2, 2, 1, 2, 2, 1, 0],
        answered_by=place.patient.user,
        now=aware(2026, 2, 25, 19),
    )

    response.refresh_from_db()
    assert (
        response.instrument,
        response.answers,
        response.total_score,
        response.severity,
        response.answered_at,
        response.answered_by,
    ) == (
        "phq9",
        [3, 2, 2, 2, 1, 2, 2, 1, 0],
        15,
        "moderately_severe",
        aware(2026, 2, 25, 19),
        place.patient.user,
    )
    assert IntegrationSafetyEvent.objects.count() == 0


def test_bad_answers_are_refused_and_nothing_is_written(place, course) -> None:
    series, _ = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    assignment = _assignment(series, "baseline", "gad7")

    with pytest.raises(InvalidInput) as caught:
        services.questionnaire_answer(
            assignment, answers=[0] * 9, answered_by=place.patient.user, now=aware(2026, 2, 25)
        )

    assert caught.value.errors == {"answers": ["GAD-7 has 7 items; got 9 answers."]}
    assert QuestionnaireResponse.objects.count() == 0


def test_not_yet_open_withdrawn_or_already_answered(place, course) -> None:
    series, s = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    before_m2 = _assignment(series, "before_medicine", "phq9", s["m2"])
    baseline = _assignment(series, "baseline", "phq9")
    user = place.patient.user

    with pytest.raises(RuleViolation) as not_open:
        services.questionnaire_answer(
            before_m2, answers=[0] * 9, answered_by=user, now=aware(2026, 3, 2, 10, 59)
        )
    services.questionnaire_answer(
        before_m2, answers=[0] * 9, answered_by=user, now=aware(2026, 3, 2, 11)
    )
    with pytest.raises(RuleViolation) as answered:
        services.questionnaire_answer(
            before_m2, answers=[1] * 9, answered_by=user, now=aware(2026, 3, 3, 9)
        )
    QuestionnaireAssignment.objects.filter(pk=baseline.pk).update(withdrawn_at=aware(2026, 2, 22))
    with pytest.raises(RuleViolation) as withdrawn:
        services.questionnaire_answer(
            baseline, answers=[0] * 9, answered_by=user, now=aware(2026, 2, 25)
        )

    assert not_open.value.violations[0]["rule"] == "questionnaire_not_open"
    assert answered.value.violations[0]["rule"] == "questionnaire_answered"
    assert withdrawn.value.violations[0]["rule"] == "questionnaire_withdrawn"
    assert list(QuestionnaireResponse.objects.values_list("total_score", flat=True)) == [0]


def test_only_the_patient_or_the_clinics_staff_answer(place, course) -> None:
    series, _ = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    assignment = _assignment(series, "baseline", "gad7")
    someone_else = PatientFactory(clinic=place.clinic, user=UserFactory(username="blake"))
    other_clinic_nurse = StaffMemberFactory(roles=[Role.NURSE])

    for user in (someone_else.user, other_clinic_nurse.user):
        with pytest.raises(NotPermitted):
            services.questionnaire_answer(
                assignment, answers=[0] * 7, answered_by=user, now=aware(2026, 2, 25)
            )
    assert QuestionnaireResponse.objects.count() == 0

    on_paper = services.questionnaire_answer(
        assignment, answers=[0] * 7, answered_by=place.front_desk.user, now=aware(2026, 2, 25)
    )
    assert on_paper.answered_by == place.front_desk.user


def test_item_nine_above_zero_alerts_the_therapist_and_the_prescriber(
    place, course, caplog
) -> None:
    series, _ = course
    place.clear()
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    assignment = _assignment(series, "baseline", "phq9")
    caplog.set_level(logging.CRITICAL, logger="clinic.alerts")

    response = services.questionnaire_answer(
        assignment,
        answers=[1, 1, 1, 1, 0, 0, 0, 0, 2],
        answered_by=place.patient.user,
        now=aware(2026, 2, 25, 21, 30),
    )
    again = services.safety_alert_raise(
        response=response, item_number=9, answer=2, now=aware(2026, 2, 25, 22)
    )

    event = IntegrationSafetyEvent.objects.get()
    assert again == event
    assert (
        event.patient,
        event.response,
        event.item_number,
        event.answer,
        event.raised_at,
        event.therapist,
        event.prescriber,
    ) == (
        place.patient,
        response,
        9,
        2,
        aware(2026, 2, 25, 21, 30),
        place.therapist,
        place.prescriber,
    )
    assert (response.total_score, response.severity) == (6, "mild")
    assert [r.getMessage() for r in caplog.records if r.name == "clinic.alerts"] == [
        f"urgent phq9_self_harm patient={place.patient.pk} event={event.pk} answer=2 "
        f"therapist={place.therapist.pk} prescriber={place.prescriber.pk}"
    ]
    alerts = StaffAlert.objects.order_by("dedupe_key")
    assert list(alerts.values_list("kind", "target_staff_id", "series_id", "dedupe_key")) == [
        ("phq9_self_harm", place.prescriber.pk, series.pk, f"phq9_self_harm:{event.pk}:prescriber"),
        ("phq9_self_harm", place.therapist.pk, series.pk, f"phq9_self_harm:{event.pk}:therapist"),
    ]
    assert alerts[0].message == (
        f"URGENT: {place.patient.full_name} answered 2 to PHQ-9 item 9 (thoughts of being better "
        "off dead or of self-harm). Contact the patient today."
    )


def test_without_a_preferred_therapist_the_last_sessions_therapist_is_alerted(place) -> None:
    series = place.series()
    series.preferred_therapist = None
    series.save()
    place.book("integration", aware(2026, 2, 23, 10), therapist=place.other_therapist)
    place.book("medicine", aware(2026, 3, 2, 9), series=series)
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))

    services.questionnaire_answer(
        _assignment(series, "baseline", "phq9"),
        answers=[0] * 8 + [1],
        answered_by=place.patient.user,
        now=aware(2026, 2, 25, 9),
    )

    event = IntegrationSafetyEvent.objects.get()
    assert (event.therapist, event.prescriber) == (place.other_therapist, None)


def test_no_safety_event_for_item_nine_at_zero_or_for_the_gad7(place, course) -> None:
    series, _ = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))

    services.questionnaire_answer(
        _assignment(series, "baseline", "phq9"),
        answers=[3] * 8 + [0],
        answered_by=place.patient.user,
        now=aware(2026, 2, 25),
    )
    services.questionnaire_answer(
        _assignment(series, "baseline", "gad7"),
        answers=[3] * 7,
        answered_by=place.patient.user,
        now=aware(2026, 2, 25),
    )

    assert IntegrationSafetyEvent.objects.count() == 0


def test_open_questionnaires_and_the_score_trend(place, course, django_assert_num_queries) -> None:
    series, s = course
    services.questionnaire_assignments_sync(series, now=aware(2026, 2, 21, 9))
    user = place.patient.user
    phq = {
        ("baseline", None): ([3, 2, 2, 2, 2, 2, 2, 3, 0], aware(2026, 2, 25, 9)),  # 18
        ("before_medicine", s["m2"]): ([2, 2, 2, 2, 1, 2, 2, 1, 0], aware(2026, 3, 4, 9)),  # 14
        ("before_medicine", s["m3"]): ([2, 2, 1, 2, 1, 1, 1, 1, 0], aware(2026, 3, 8, 9)),  # 11
        ("end_of_series", None): ([1, 1, 1, 1, 1, 1, 1, 0, 0], aware(2026, 3, 12, 9)),  # 7
    }
    gad = {
        ("baseline", None): ([2, 2, 2, 2, 1, 2, 1], aware(2026, 2, 25, 9)),  # 12
        ("end_of_series", None): ([1, 1, 1, 1, 0, 1, 0], aware(2026, 3, 12, 9)),  # 5
    }
    for instrument, answers in (("phq9", phq), ("gad7", gad)):
        for (milestone, session), (values, at) in answers.items():
            services.questionnaire_answer(
                _assignment(series, milestone, instrument, session),
                answers=values,
                answered_by=user,
                now=at,
            )

    open_now = clinical_selectors.questionnaires_open_for(
        place.patient.pk, now=aware(2026, 3, 4, 9)
    )
    with django_assert_num_queries(1):
        trend = clinical_selectors.score_trend(series)

    assert [(a.milestone, a.instrument) for a in open_now] == [("before_medicine", "gad7")]
    assert trend["phq9"].baseline == 18
    assert [
        (p.milestone, p.total_score, p.severity, p.change_from_baseline)
        for p in trend["phq9"].points
    ] == [
        ("baseline", 18, "moderately_severe", 0),
        ("before_medicine", 14, "moderate", -4),
        ("before_medicine", 11, "moderate", -7),
        ("end_of_series", 7, "mild", -11),
    ]
    assert [(p.total_score, p.change_from_baseline) for p in trend["gad7"].points] == [
        (12, 0),
        (5, -7),
    ]
    assert trend["gad7"].latest.severity == "mild"
