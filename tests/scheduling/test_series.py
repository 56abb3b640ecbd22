"""Planning, booking and moving whole treatment series through the services."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from clinic.errors import IllegalTransition, InvalidInput, ResourceConflict, RuleViolation
from clinic.models import Role
from protocols.rules import evaluate
from protocols.selectors import protocol_spec
from scheduling import services
from scheduling.models import Session, TreatmentSeries
from scheduling.planner import Preferences
from scheduling.supply import patient_gates
from tests.factories import PatientFactory, SessionFactory, TimeOffFactory, aware

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")

MONDAY = dt.date(2026, 3, 2)

KAP_FROM_MONDAY = [
    ("screening", "2026-03-02T08:00:00-08:00"),
    ("preparation", "2026-03-02T09:00:00-08:00"),
    ("preparation", "2026-03-02T10:00:00-08:00"),
    ("medicine", "2026-03-03T08:00:00-08:00"),
    ("integration", "2026-03-04T08:00:00-08:00"),
    ("medicine", "2026-03-05T08:00:00-08:00"),
    ("integration", "2026-03-06T08:00:00-08:00"),
    ("medicine", "2026-03-07T09:00:00-08:00"),  # Saturday, opening at 09:00
    ("integration", "2026-03-09T08:00:00-07:00"),  # the Monday after the DST change
    ("medicine", "2026-03-10T08:00:00-07:00"),  # at most 3 in 7 days: not on the 9th
    ("integration", "2026-03-11T08:00:00-07:00"),
    ("medicine", "2026-03-12T08:00:00-07:00"),
    ("integration", "2026-03-13T08:00:00-07:00"),
    ("medicine", "2026-03-14T09:00:00-07:00"),
    ("integration", "2026-03-16T08:00:00-07:00"),
]


def _local(moment: dt.datetime) -> str:
    """An instant as the clinic's local time with its offset, as the API shows it."""
    return moment.astimezone(LA).isoformat()


def _plan(site, patient, version, **kwargs):
    return services.series_plan(
        patient=patient,
        protocol_version=version,
        earliest_start=MONDAY,
        now=aware(2026, 3, 1, 12),
        **kwargs,
    )


def _book(site, patient, version, **kwargs):
    return services.series_book(
        patient=patient,
        protocol_version=version,
        earliest_start=MONDAY,
        now=aware(2026, 3, 1, 12),
        **kwargs,
    )


def test_kap_plan_in_an_empty_clinic(site) -> None:
    patient = site.patient()

    plan = _plan(site, patient, site.kap)

    assert plan.violations == ()
    assert [(s.kind, _local(s.starts_at)) for s in plan.sessions] == KAP_FROM_MONDAY
    therapists = {h.staff_id for s in plan.sessions for h in s.staff if h.role == Role.THERAPIST}
    assert therapists == {site.lee.pk}
    medicine = [s for s in plan.sessions if s.kind == "medicine"]
    assert {(h.role, h.end - h.start) for s in medicine for h in s.staff} == {
        ("therapist", dt.timedelta(minutes=90)),
        ("nurse", dt.timedelta(minutes=30)),
    }
    assert {s.room_id for s in medicine} == {site.dosing[0].pk}
    assert Session.objects.count() == 0


def test_infusion_induction_plan(site) -> None:
    plan = _plan(site, site.patient(), site.infusion)

    assert [(s.kind, _local(s.starts_at), _local(s.ends_at)) for s in plan.sessions] == [
        ("screening", "2026-03-02T08:00:00-08:00", "2026-03-02T09:00:00-08:00"),
        ("medicine", "2026-03-02T09:00:00-08:00", "2026-03-02T10:40:00-08:00"),
        ("medicine", "2026-03-03T08:00:00-08:00", "2026-03-03T09:40:00-08:00"),
        ("medicine", "2026-03-04T08:00:00-08:00", "2026-03-04T09:40:00-08:00"),
        ("medicine", "2026-03-05T08:00:00-08:00", "2026-03-05T09:40:00-08:00"),
        ("medicine", "2026-03-06T08:00:00-08:00", "2026-03-06T09:40:00-08:00"),
        ("medicine", "2026-03-07T09:00:00-08:00", "2026-03-07T10:40:00-08:00"),
    ]
    assert {s.room_id for s in plan.sessions if s.kind == "medicine"} == {site.chairs[0].pk}


def test_preferences_are_hard_filters_and_the_therapist_a_wish(site) -> None:
    plan = _plan(
        site,
        site.patient(),
        site.short,
        preferences=Preferences(
            weekdays=frozenset({1, 3}), earliest_time=dt.time(13), therapist_id=site.kim.pk
        ),
    )

    assert [(s.kind, _local(s.starts_at)) for s in plan.sessions] == [
        ("preparation", "2026-03-03T13:00:00-08:00"),
        ("medicine", "2026-03-05T13:00:00-08:00"),
        ("integration", "2026-03-10T13:00:00-07:00"),
        ("medicine", "2026-03-12T13:00:00-07:00"),
        ("integration", "2026-03-17T13:00:00-07:00"),
        ("medicine", "2026-03-19T13:00:00-07:00"),
        ("integration", "2026-03-24T13:00:00-07:00"),
    ]
    assert {h.staff_id for s in plan.sessions for h in s.staff if h.role == "therapist"} == {
        site.kim.pk
    }


def test_book_writes_every_session_and_the_series_keeps_every_rule(site) -> None:
    patient = site.patient()

    series = _book(site, patient, site.kap, preferences=Preferences(therapist_id=site.kim.pk))

    sessions = list(series.sessions.order_by("starts_at"))
    assert [(s.kind, s.starts_at.astimezone(patient.clinic.tz).isoformat()) for s in sessions] == (
        KAP_FROM_MONDAY
    )
    assert (series.status, series.preferred_therapist_id) == ("active", site.kim.pk)
    facts = [services._session_fact(s) for s in sessions]
    spec = protocol_spec(series.protocol_version)
    assert (
        evaluate(
            facts, spec, patient.clinic.tz, gates=patient_gates(patient), require_complete=True
        )
        == []
    )
    assert set(
        Session.objects.filter(series=series, kind="integration").values_list(
            "staff_holds__staff_id", flat=True
        )
    ) == {site.kim.pk}


def test_a_second_patient_is_planned_around_the_first(site) -> None:
    _book(site, site.patient(), site.kap)

    plan = _plan(site, site.patient(), site.kap)

    first_medicine = next(s for s in plan.sessions if s.kind == "medicine")
    assert _local(first_medicine.starts_at) == "2026-03-03T08:00:00-08:00"
    assert first_medicine.room_id == site.dosing[1].pk  # dosing A is taken, B is free
    therapist = {h.staff_id for h in first_medicine.staff if h.role == "therapist"}
    assert therapist == {site.kim.pk}  # Lee sits with the first patient


def test_uncleared_patient_gets_no_medicine_sessions(site) -> None:
    patient = PatientFactory(clinic=site.clinic)

    with pytest.raises(RuleViolation) as caught:
        _book(site, patient, site.kap)

    assert {v["rule"] for v in caught.value.violations} == {"screening_gate", "consent_gate"}
    assert (TreatmentSeries.objects.count(), Session.objects.count()) == (0, 0)


def test_plan_names_the_missing_resource(site) -> None:
    for room in site.dosing:
        room.is_active = False
        room.save()

    plan = _plan(site, site.patient(), site.kap)

    assert plan.sessions == ()
    assert [v.rule for v in plan.violations] == ["room_unavailable"]
    assert (
        plan.violations[0].message == "The clinic has no dosing room; medicine sessions need one."
    )


def test_plan_in_the_past_is_invalid(site) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.series_plan(
            patient=site.patient(),
            protocol_version=site.kap,
            earliest_start=MONDAY,
            now=aware(2026, 3, 3, 9),
        )
    assert list(caught.value.errors) == ["earliest_start"]


# ------------------------------------------------------------------------------ single bookings


def test_room_and_staff_are_chosen_when_left_out(site) -> None:
    session = services.session_create(
        patient=site.patient(), kind="integration", starts_at=aware(2026, 3, 9, 9)
    )

    assert session.room_id == site.therapy[0].pk
    assert list(session.staff_holds.values_list("staff_id", "role")) == [(site.lee.pk, "therapist")]


def test_outside_opening_hours_is_a_clinic_rule(site) -> None:
    with pytest.raises(RuleViolation) as caught:
        services.session_create(
            patient=site.patient(), kind="integration", starts_at=aware(2026, 3, 9, 17, 30)
        )
    assert [v["rule"] for v in caught.value.violations] == ["clinic_closed"]
    assert Session.objects.count() == 0


def test_staff_time_off_is_a_clinic_rule(site) -> None:
    TimeOffFactory(staff=site.lee, starts_at=aware(2026, 3, 9, 0), ends_at=aware(2026, 3, 10, 0))
    with pytest.raises(RuleViolation) as caught:
        services.session_create(
            patient=site.patient(),
            kind="integration",
            starts_at=aware(2026, 3, 9, 9),
            staff=[site.lee],
        )
    assert [v["rule"] for v in caught.value.violations] == ["staff_time_off"]


def test_medicine_needs_clearance_and_consent(site) -> None:
    patient = PatientFactory(clinic=site.clinic, full_name="Eli Khan")
    with pytest.raises(RuleViolation) as caught:
        services.session_create(patient=patient, kind="medicine", starts_at=aware(2026, 3, 9, 9))
    assert caught.value.violations == [
        {
            "rule": "screening_gate",
            "message": "Eli Khan has no prescriber clearance valid on 2026-03-09.",
            "sessions": ["new"],
            "suggested_fix": "Record a screening cleared by a prescriber, then book.",
        },
        {
            "rule": "consent_gate",
            "message": "Eli Khan has no signed consent on file by 2026-03-09.",
            "sessions": ["new"],
            "suggested_fix": "Record the signed consent, then book.",
        },
    ]


def test_adding_to_a_series_keeps_its_rules(site) -> None:
    patient = site.patient()
    series = _book(site, patient, site.kap)
    medicine = series.sessions.filter(kind="medicine").order_by("starts_at").first()

    with pytest.raises(RuleViolation) as caught:
        services.session_create(
            patient=patient,
            kind="integration",
            series=series,
            starts_at=medicine.ends_at + dt.timedelta(hours=1),
        )

    assert {v["rule"] for v in caught.value.violations} >= {"min_gap", "not_same_day"}
    assert series.sessions.count() == 15


# ------------------------------------------------------------------------------ moving


def _sessions(series):
    return list(series.sessions.order_by("starts_at"))


def test_move_that_keeps_every_rule_moves_only_that_session(site) -> None:
    series = _book(site, site.patient(), site.kap)
    first_integration = series.sessions.filter(kind="integration").order_by("starts_at").first()
    before = {s.pk: s.starts_at for s in _sessions(series)}

    moved = services.session_reschedule(
        first_integration, starts_at=aware(2026, 3, 4, 14), now=aware(2026, 3, 1, 12)
    )

    assert [s.pk for s in moved] == [first_integration.pk]
    after = {s.pk: s.starts_at for s in _sessions(series)}
    assert after[first_integration.pk] == aware(2026, 3, 4, 14)
    assert {pk: t for pk, t in after.items() if pk != first_integration.pk} == {
        pk: t for pk, t in before.items() if pk != first_integration.pk
    }
    first_integration.refresh_from_db()
    assert first_integration.revision == 2


def test_move_that_breaks_a_rule_is_refused_without_cascade(site) -> None:
    series = _book(site, site.patient(), site.kap)
    second_medicine = series.sessions.filter(kind="medicine").order_by("starts_at")[1]
    before = [(s.pk, s.starts_at) for s in _sessions(series)]

    with pytest.raises(RuleViolation) as caught:
        services.session_reschedule(
            second_medicine, starts_at=aware(2026, 3, 6, 10), now=aware(2026, 3, 1, 12)
        )

    assert {v["rule"] for v in caught.value.violations} >= {"each_followed_by"}
    assert [(s.pk, s.starts_at) for s in _sessions(series)] == before


def test_cascade_moves_later_sessions_as_little_as_needed(site) -> None:
    series = _book(site, site.patient(), site.kap)
    second_medicine = series.sessions.filter(kind="medicine").order_by("starts_at")[1]

    moved = services.session_reschedule(
        second_medicine,
        starts_at=aware(2026, 3, 6, 10),  # Thursday 08:00 -> Friday 10:00
        cascade=True,
        now=aware(2026, 3, 1, 12),
    )

    tz = series.patient.clinic.tz
    assert [(s.kind, s.starts_at.astimezone(tz).isoformat()) for s in _sessions(series)] == [
        *KAP_FROM_MONDAY[:5],
        ("medicine", "2026-03-06T10:00:00-08:00"),
        ("integration", "2026-03-07T09:00:00-08:00"),
        ("medicine", "2026-03-09T08:00:00-07:00"),
        ("integration", "2026-03-10T08:00:00-07:00"),
        ("medicine", "2026-03-11T08:00:00-07:00"),
        ("integration", "2026-03-12T08:00:00-07:00"),
        ("medicine", "2026-03-13T08:00:00-07:00"),
        ("integration", "2026-03-14T09:00:00-07:00"),
        ("medicine", "2026-03-16T08:00:00-07:00"),
        ("integration", "2026-03-17T08:00:00-07:00"),
    ]
    assert len(moved) == 10
    facts = [services._session_fact(s) for s in _sessions(series)]
    spec = protocol_spec(series.protocol_version)
    assert (
        evaluate(facts, spec, tz, gates=patient_gates(series.patient), require_complete=True) == []
    )


def test_cascade_refused_when_the_rest_cannot_fit(site) -> None:
    patient = site.patient()
    series = _book(site, patient, site.kap)
    last_integration = series.sessions.filter(kind="integration").order_by("-starts_at").first()
    # Every day after the series is closed for the next four months.
    for offset in range(1, 130):
        site.clinic.closures.create(date=dt.date(2026, 3, 16) + dt.timedelta(days=offset))
    last_medicine = series.sessions.filter(kind="medicine").order_by("-starts_at").first()
    before = [(s.pk, s.starts_at) for s in _sessions(series)]

    with pytest.raises(RuleViolation):
        services.session_reschedule(
            last_medicine, starts_at=aware(2026, 3, 16, 10), cascade=True, now=aware(2026, 3, 1, 12)
        )

    assert [(s.pk, s.starts_at) for s in _sessions(series)] == before
    assert last_integration.pk in {pk for pk, _ in before}


def test_move_into_the_past_is_invalid(site) -> None:
    session = services.session_create(
        patient=site.patient(), kind="integration", starts_at=aware(2026, 3, 9, 9)
    )
    with pytest.raises(InvalidInput):
        services.session_reschedule(
            session, starts_at=aware(2026, 3, 2, 9), now=aware(2026, 3, 3, 9)
        )


def test_checked_in_session_cannot_move(site) -> None:
    session = services.session_create(
        patient=site.patient(), kind="integration", starts_at=aware(2026, 3, 9, 9)
    )
    services.session_check_in(session, now=aware(2026, 3, 9, 8, 55))
    with pytest.raises(IllegalTransition):
        services.session_reschedule(
            session, starts_at=aware(2026, 3, 10, 9), now=aware(2026, 3, 9, 8, 56)
        )


def test_move_onto_a_taken_room_picks_another(site) -> None:
    first = services.session_create(
        patient=site.patient(), kind="integration", starts_at=aware(2026, 3, 9, 9)
    )
    other = SessionFactory(
        patient=site.patient(), room=site.therapy[0], starts_at=aware(2026, 3, 10, 9)
    )

    services.session_reschedule(first, starts_at=aware(2026, 3, 10, 9), now=aware(2026, 3, 1, 9))

    first.refresh_from_db()
    assert (first.room_id, first.starts_at) == (site.therapy[1].pk, aware(2026, 3, 10, 9))
    assert other.room_id == site.therapy[0].pk


def test_move_onto_the_patient_own_session_is_a_conflict(site) -> None:
    patient = site.patient()
    first = services.session_create(
        patient=patient, kind="integration", starts_at=aware(2026, 3, 9, 9)
    )
    services.session_create(patient=patient, kind="preparation", starts_at=aware(2026, 3, 10, 9))

    with pytest.raises(ResourceConflict) as caught:
        services.session_reschedule(
            first, starts_at=aware(2026, 3, 10, 9, 30), now=aware(2026, 3, 1, 9)
        )

    assert [t.resource for t in caught.value.taken] == ["patient"]
