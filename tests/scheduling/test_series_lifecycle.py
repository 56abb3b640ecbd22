"""A series' own lifecycle: one open series per care model, hold and resume, discontinue (its
sessions still to come cancelled), completion by its last needed session or by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from clinic.errors import RuleViolation
from protocols.services import protocol_version_create
from scheduling import services
from scheduling.models import Reminder, Session, TreatmentSeries
from tests.factories import TreatmentSeriesFactory, aware
from tests.races import at_once

pytestmark = pytest.mark.django_db

MONDAY = dt.date(2026, 3, 2)
NOW = aware(2026, 3, 1, 12)

TWO_TALKS = {
    "name": "Two talks",
    "care_model": "kap",
    "steps": [
        {
            "kind": "preparation",
            "count": 1,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "therapist"}],
        },
        {
            "kind": "integration",
            "count": 1,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "therapist"}],
        },
    ],
    "rules": [{"type": "min_gap", "after": "preparation", "before": "integration", "days": 1}],
}


def _book(patient, version) -> TreatmentSeries:
    return services.series_book(
        patient=patient, protocol_version=version, earliest_start=MONDAY, now=NOW
    )


def _refusal(error: pytest.ExceptionInfo[RuleViolation]) -> list[tuple[str, str, str | None]]:
    return [(v["rule"], v["message"], v["suggested_fix"]) for v in error.value.violations]


def _statuses(series: TreatmentSeries) -> list[tuple[str, str]]:
    return [(s.kind, s.status) for s in series.sessions.order_by("starts_at")]


def test_a_second_open_series_of_the_same_care_model_is_refused(site) -> None:
    patient = site.patient(full_name="Ada Lovelace")
    kap = _book(patient, site.kap)

    plan = services.series_plan(
        patient=patient, protocol_version=site.short, earliest_start=MONDAY, now=NOW
    )
    with pytest.raises(RuleViolation) as refused:
        _book(patient, site.short)  # also a KAP course

    assert _refusal(refused) == [
        (
            "series_open",
            f"Ada Lovelace already has an open Ketamine-assisted psychotherapy series "
            f"(series {kap.pk}, active).",
            f"Book into series {kap.pk}, or complete or discontinue it first.",
        )
    ]
    assert plan.sessions == ()
    assert [v.as_dict() for v in plan.violations] == refused.value.violations
    assert TreatmentSeries.objects.filter(patient=patient).count() == 1
    assert Session.objects.filter(patient=patient).count() == 15
    # another care model is another course
    infusions = _book(patient, site.infusion)
    assert infusions.status == "active"
    # a discontinued course leaves room for a new one
    services.series_discontinue(kap, reason="Moving away", now=NOW)
    assert _book(patient, site.short).status == "active"


def test_the_database_refuses_a_second_open_series_itself(site) -> None:
    patient = site.patient()
    first = TreatmentSeriesFactory(patient=patient, protocol_version=site.kap)

    with (
        pytest.raises(IntegrityError, match="already has an open kap series"),
        transaction.atomic(),
    ):
        TreatmentSeriesFactory(patient=patient, protocol_version=site.short)
    with (
        pytest.raises(IntegrityError, match="already has an open kap series"),
        transaction.atomic(),
    ):
        TreatmentSeriesFactory(patient=patient, protocol_version=site.kap, status="on_hold")
    past = TreatmentSeriesFactory(patient=patient, protocol_version=site.kap, status="completed")
    other_model = TreatmentSeriesFactory(patient=patient, protocol_version=site.infusion)

    with (
        pytest.raises(IntegrityError, match="already has an open kap series"),
        transaction.atomic(),
    ):
        TreatmentSeries.objects.filter(pk=past.pk).update(status="active")  # reopened by hand

    assert sorted(TreatmentSeries.objects.filter(patient=patient).values_list("pk", flat=True)) == [
        first.pk,
        past.pk,
        other_model.pk,
    ]
    assert TreatmentSeries.objects.get(pk=past.pk).status == "completed"


def test_on_hold_nothing_is_booked_into_the_series_until_it_resumes(site) -> None:
    patient = site.patient()
    series = _book(patient, site.kap)

    held = services.series_hold(series, reason="Unwell", now=NOW)
    with pytest.raises(RuleViolation) as refused:
        services.session_create(
            patient=patient, kind="integration", starts_at=aware(2026, 3, 20, 9), series=series
        )
    with pytest.raises(RuleViolation) as twice:
        services.series_hold(series, now=NOW)

    assert (held.status, held.status_reason, held.status_changed_at) == ("on_hold", "Unwell", NOW)
    assert _refusal(refused) == [
        (
            "series_not_active",
            f"Series {series.pk} is on hold; no session can be booked into it.",
            "Resume the series first.",
        )
    ]
    assert _refusal(twice)[0][:2] == (
        "status_transition",
        f"Series {series.pk} is on hold; it cannot be put on hold.",
    )
    assert Session.objects.filter(patient=patient).count() == 15  # nothing written, nothing lost

    resumed = services.series_resume(series, now=NOW)
    booked = services.session_create(
        patient=patient, kind="integration", starts_at=aware(2026, 3, 20, 9), series=series
    )
    assert (resumed.status, resumed.status_reason) == ("active", "")
    assert booked.series_id == series.pk


def test_discontinuing_cancels_the_sessions_still_to_come_and_their_reminders(site) -> None:
    patient = site.patient()
    series = _book(patient, site.kap)
    first_three = list(series.sessions.order_by("starts_at")[:3])  # screening, two preparations
    for session in first_three:
        services.session_check_in(session, now=session.starts_at)
        services.session_complete(session, now=session.starts_at + dt.timedelta(minutes=50))
    # the day of the first medicine session, inside the 24-hour late-cancellation window
    stop_at = aware(2026, 3, 2, 17)

    stopped, cancelled = services.series_discontinue(
        series, reason=" Patient withdrew consent ", now=stop_at
    )

    assert (stopped.status, stopped.status_reason, stopped.status_changed_at) == (
        "discontinued",
        "Patient withdrew consent",
        stop_at,
    )
    assert len(cancelled) == 12
    assert _statuses(series) == [
        ("screening", "completed"),
        ("preparation", "completed"),
        ("preparation", "completed"),
    ] + [(kind, "cancelled") for kind in ["medicine", "integration"] * 6]
    assert set(
        Session.objects.filter(pk__in=[s.pk for s in cancelled]).values_list(
            "cancel_reason", flat=True
        )
    ) == {"Series discontinued. Patient withdrew consent"}
    assert not Reminder.objects.filter(
        session__in=cancelled, status__in=["pending", "sending"]
    ).exists()
    with pytest.raises(RuleViolation) as again:
        services.series_discontinue(series, reason="", now=stop_at)
    assert (
        _refusal(again)[0][1] == f"Series {series.pk} is discontinued; it cannot be discontinued."
    )


def test_the_last_needed_session_completes_the_series(site) -> None:
    version = protocol_version_create(TWO_TALKS)
    series = _book(site.patient(), version)
    preparation, integration = series.sessions.order_by("starts_at")

    services.session_check_in(preparation, now=preparation.starts_at)
    services.session_complete(preparation, now=preparation.ends_at)
    series.refresh_from_db()
    assert series.status == "active"

    services.session_check_in(integration, now=integration.starts_at)
    services.session_complete(integration, now=integration.ends_at)
    series.refresh_from_db()
    assert (series.status, series.status_changed_at) == ("completed", integration.ends_at)


def test_a_series_with_a_repeatable_step_stays_open_for_more(site) -> None:
    """Like maintenance boosters: more sessions of a repeatable step join the series later."""
    check_ins = {
        **TWO_TALKS,
        "name": "Monthly check-ins",
        "care_model": "maintenance",
        "steps": [{**TWO_TALKS["steps"][1], "kind": "follow_up", "repeatable": True}],
        "rules": [],
    }
    series = _book(site.patient(), protocol_version_create(check_ins))
    (follow_up,) = series.sessions.all()

    services.session_check_in(follow_up, now=follow_up.starts_at)
    services.session_complete(follow_up, now=follow_up.ends_at)

    series.refresh_from_db()
    assert (series.status, _statuses(series)) == ("active", [("follow_up", "completed")])


def test_completing_by_hand_waits_for_the_sessions_to_come(site) -> None:
    series = _book(site.patient(), protocol_version_create(TWO_TALKS))
    preparation, integration = series.sessions.order_by("starts_at")

    with pytest.raises(RuleViolation) as refused:
        services.series_complete(series, now=NOW)
    services.session_cancel(integration, reason="Sees her own therapist", now=NOW)
    services.session_check_in(preparation, now=preparation.starts_at)
    services.session_complete(preparation, now=preparation.ends_at)
    done = services.series_complete(series, reason="Integration outside", now=preparation.ends_at)

    assert _refusal(refused) == [
        (
            "series_sessions_to_come",
            f"Series {series.pk} still has 2 session(s) booked or in progress.",
            "Complete or cancel them first, or discontinue the series.",
        )
    ]
    assert (done.status, done.status_reason) == ("completed", "Integration outside")


@pytest.mark.django_db(transaction=True)
def test_clients_booking_a_course_for_one_patient_at_once_book_it_once(site) -> None:
    """A second click on "book" from another screen: the database's trigger makes the later
    bookings wait for the first and refuse, even when both passed the service's check."""
    patient = site.patient()
    clients = 6

    def book(index: int) -> int:
        return services.series_book(  # weeks apart: no session of one meets another's
            patient=patient,
            protocol_version=site.kap if index % 2 else site.short,
            earliest_start=MONDAY + dt.timedelta(weeks=3 * index),
            now=NOW,
        ).pk

    booked, refused = at_once(book, clients)

    assert len(booked) == 1
    assert [(type(e).__name__, e.violations[0]["rule"]) for e in refused] == [  # type: ignore[attr-defined]
        ("RuleViolation", "series_open")
    ] * (clients - 1)
    assert (
        list(TreatmentSeries.objects.filter(patient=patient).values_list("pk", flat=True)) == booked
    )
