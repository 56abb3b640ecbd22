"""A session's status moves only along its lifecycle (FHIR Appointment statuses in brackets)."""

from __future__ import annotations

import datetime as dt

import pytest
from django_fsm import TransitionNotAllowed

from clinic.errors import IllegalTransition, RuleViolation
from scheduling import services
from scheduling.models import FHIR_APPOINTMENT_STATUS, Session, SessionStatus, TreatmentSeries
from tests.factories import SessionFactory, TreatmentSeriesFactory, aware

pytestmark = pytest.mark.django_db

NINE = aware(2026, 3, 9, 9)
ALL = list(SessionStatus.values)
LEGAL = {
    ("booked", "confirm"): "confirmed",
    ("booked", "check_in"): "checked_in",
    ("booked", "cancel"): "cancelled",
    ("booked", "late_cancel"): "late_cancelled",
    ("booked", "mark_no_show"): "no_show",
    ("confirmed", "check_in"): "checked_in",
    ("confirmed", "cancel"): "cancelled",
    ("confirmed", "late_cancel"): "late_cancelled",
    ("confirmed", "mark_no_show"): "no_show",
    ("checked_in", "complete"): "completed",
    ("checked_in", "cancel"): "cancelled",
}
ACTIONS = ["confirm", "check_in", "complete", "cancel", "late_cancel", "mark_no_show"]


@pytest.mark.parametrize("status", ALL)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_from_every_status(status: str, action: str) -> None:
    session = SessionFactory(starts_at=NINE)
    Session.objects.filter(pk=session.pk).update(status=status)
    session.refresh_from_db()

    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            getattr(session, action)()
        assert Session.objects.get(pk=session.pk).status == status
    else:
        getattr(session, action)()
        session.save()
        assert Session.objects.get(pk=session.pk).status == expected


def test_status_cannot_be_assigned_directly() -> None:
    session = SessionFactory(starts_at=NINE)
    with pytest.raises(AttributeError):
        session.status = SessionStatus.COMPLETED


def test_walk_through_a_day_with_the_services() -> None:
    session = SessionFactory(starts_at=NINE)

    services.session_confirm(session, now=NINE - dt.timedelta(days=1))
    services.session_check_in(session, now=NINE - dt.timedelta(minutes=5))
    done = services.session_complete(session, now=NINE + dt.timedelta(hours=1))

    assert (done.status, done.revision, done.fhir_status) == ("completed", 4, "fulfilled")
    with pytest.raises(IllegalTransition):
        services.session_cancel(done, reason="too late", now=NINE + dt.timedelta(hours=2))


def test_no_show_only_after_the_start() -> None:
    session = SessionFactory(starts_at=NINE)

    with pytest.raises(RuleViolation) as caught:
        services.session_mark_no_show(session, now=NINE - dt.timedelta(minutes=1))
    assert caught.value.violations[0]["rule"] == "no_show_before_start"

    assert (
        services.session_mark_no_show(session, now=NINE + dt.timedelta(minutes=30)).status
        == "no_show"
    )


def test_every_status_maps_to_a_fhir_appointment_status() -> None:
    assert FHIR_APPOINTMENT_STATUS == {
        "booked": "booked",
        "confirmed": "booked",
        "checked_in": "arrived",
        "completed": "fulfilled",
        "cancelled": "cancelled",
        "late_cancelled": "cancelled",
        "no_show": "noshow",
    }


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (["hold"], "on_hold"),
        (["hold", "resume"], "active"),
        (["complete"], "completed"),
        (["hold", "discontinue"], "discontinued"),
    ],
)
def test_series_lifecycle(steps: list[str], expected: str) -> None:
    series = TreatmentSeriesFactory()
    for step in steps:
        getattr(series, step)()
        series.save()
    assert TreatmentSeries.objects.get(pk=series.pk).status == expected


def test_completed_series_cannot_resume() -> None:
    series = TreatmentSeriesFactory()
    series.complete()
    series.save()
    with pytest.raises(TransitionNotAllowed):
        series.resume()
