"""The safety gates of a medicine session, enforced by the services: no check-in without a
prescriber's clearance, a consent and a confirmed ride home; a dose record with vital signs before
and after; no completion without them and a discharge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from clinic.errors import IllegalTransition, InvalidInput, RuleViolation
from clinic.models import Role
from integration import clinical_selectors, services
from integration.errors import NotPermitted
from integration.models import AdverseEvent, DoseRecord, VitalSigns
from scheduling import services as scheduling_services
from scheduling.models import Session
from tests.factories import ConsentFactory, ScreeningFactory, StaffMemberFactory, aware

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
START = aware(2026, 3, 9, 9)  # Monday 9 March, 09:00 PDT
DONE = START + dt.timedelta(hours=2)
CRITERIA = dict.fromkeys(services.DISCHARGE_CRITERIA, True)


def _rules(caught) -> list[str]:
    return [v["rule"] for v in caught.value.violations]


def _state(session: Session) -> tuple[str, int]:
    current = Session.objects.get(pk=session.pk)
    return current.status, current.revision


# ---------------------------------------------------------------------------------------------
# Check-in


def test_check_in_refused_naming_every_failed_gate_then_allowed(place) -> None:
    session = place.book("medicine", START)
    before = _state(session)

    with pytest.raises(RuleViolation) as nothing_on_file:
        scheduling_services.session_check_in(session, now=START)
    assert _rules(nothing_on_file) == ["screening_gate", "consent_gate", "escort_gate"]
    assert nothing_on_file.value.violations[2]["message"] == "No ride home is recorded."
    assert nothing_on_file.value.violations[0]["sessions"] == [session.pk]
    assert _state(session) == before

    place.clear()
    place.escort(session, confirmed=False)
    escort_revision = _state(session)
    with pytest.raises(RuleViolation) as unconfirmed:
        scheduling_services.session_check_in(session, now=START)
    assert _rules(unconfirmed) == ["escort_gate"]
    assert unconfirmed.value.violations[0]["message"] == (
        "The ride home is recorded but not confirmed."
    )
    assert _state(session) == escort_revision

    place.escort(session, confirmed=True)
    checked_in = scheduling_services.session_check_in(session, now=START)
    assert checked_in.status == "checked_in"


@pytest.mark.parametrize(
    ("screening", "passes"),
    [
        ({"screened_on": dt.date(2026, 1, 5), "valid_until": dt.date(2026, 3, 9)}, True),
        ({"screened_on": dt.date(2026, 1, 5), "valid_until": dt.date(2026, 3, 8)}, False),
        ({"screened_on": dt.date(2026, 3, 9), "valid_until": dt.date(2026, 9, 9)}, True),
        ({"screened_on": dt.date(2026, 3, 10), "valid_until": dt.date(2026, 9, 9)}, False),
        ({"result": "not_cleared", "cleared_by": None}, False),
        ({"cleared_by": "therapist"}, False),
    ],
    ids=[
        "valid through the session day",
        "lapsed the day before",
        "cleared that morning",
        "cleared the day after",
        "not cleared",
        "cleared by someone who is not a prescriber",
    ],
)
def test_screening_gate(place, screening, passes) -> None:
    session = place.book("medicine", START)
    ConsentFactory(patient=place.patient, signed_at=aware(2026, 1, 5, 10))
    place.escort(session)
    fields = {"cleared_by": place.prescriber, **screening}
    if fields["cleared_by"] == "therapist":
        fields["cleared_by"] = place.therapist
    ScreeningFactory(patient=place.patient, **fields)

    if passes:
        assert scheduling_services.session_check_in(session, now=START).status == "checked_in"
    else:
        with pytest.raises(RuleViolation) as caught:
            scheduling_services.session_check_in(session, now=START)
        assert _rules(caught) == ["screening_gate"]
        assert _state(session)[0] == "booked"


def test_the_gates_count_the_clinics_local_day(place) -> None:
    late = aware(2026, 3, 9, 20)  # 10 March 03:00 UTC
    session = place.book("medicine", late)
    ScreeningFactory(
        patient=place.patient,
        cleared_by=place.prescriber,
        screened_on=dt.date(2026, 1, 5),
        valid_until=dt.date(2026, 3, 9),
    )
    ConsentFactory(patient=place.patient, signed_at=aware(2026, 3, 9, 19))
    place.escort(session)

    assert scheduling_services.session_check_in(session, now=late).status == "checked_in"


def test_consent_signed_after_the_session_day_does_not_count(place) -> None:
    session = place.book("medicine", START)
    ScreeningFactory(patient=place.patient, cleared_by=place.prescriber)
    ConsentFactory(patient=place.patient, signed_at=aware(2026, 3, 10, 8))
    place.escort(session)

    with pytest.raises(RuleViolation) as caught:
        scheduling_services.session_check_in(session, now=START)

    assert _rules(caught) == ["consent_gate"]


def test_other_sessions_have_no_medicine_gates(place) -> None:
    integration = place.book("integration", START)
    assert scheduling_services.session_check_in(integration, now=START).status == "checked_in"
    assert scheduling_services.session_complete(integration, now=DONE).status == "completed"


def test_an_illegal_transition_is_reported_as_such_not_as_a_gate(place) -> None:
    session = place.book("medicine", START)
    scheduling_services.session_cancel(session, reason="unwell", now=aware(2026, 3, 1))
    with pytest.raises(IllegalTransition):
        scheduling_services.session_check_in(session, now=START)


# ---------------------------------------------------------------------------------------------
# The dose record and completion


@pytest.fixture
def checked_in(place) -> Session:
    session = place.book("medicine", START)
    place.clear()
    place.escort(session)
    return scheduling_services.session_check_in(session, now=START)


def _dose(place, session, **overrides):
    fields = {
        "session": session,
        "route": "im",
        "dose_mg": Decimal("52.50"),
        "weight_kg": Decimal("70.0"),
        "started_at": START + 10 * MINUTE,
        "administered_by": place.nurse,
        "now": DONE,
    }
    fields.update(overrides)
    return services.dose_record(**fields)


def _discharge(place, session, **overrides):
    fields = {
        "session": session,
        "discharged_by": place.nurse,
        "discharged_at": START + 110 * MINUTE,
        "escort_handoff_name": "Robin Nguyen",
        "criteria": CRITERIA,
        "now": DONE,
    }
    fields.update(overrides)
    return services.discharge_record(**fields)


def test_completion_blocked_until_dose_vitals_and_discharge(place, checked_in) -> None:
    session = checked_in

    def refused() -> list[tuple[str, str]]:
        with pytest.raises(RuleViolation) as caught:
            scheduling_services.session_complete(session, now=DONE)
        assert _state(session)[0] == "checked_in"
        return [(v["rule"], v["message"]) for v in caught.value.violations]

    assert refused() == [
        ("dose_record", "No dose is recorded."),
        ("post_session_vitals", "No vital signs after the dose are recorded."),
        ("discharge", "The patient's discharge is not recorded."),
    ]
    place.vitals(session, "before", START + 5 * MINUTE, systolic_mmhg=132, diastolic_mmhg=84)
    _dose(place, session)
    assert refused()[0] == ("dose_record", "The dose has no end time.")

    services.dose_end_record(
        session=session, ended_at=START + 11 * MINUTE, recorded_by=place.nurse, now=DONE
    )
    place.vitals(session, "during", START + 30 * MINUTE, heart_rate_bpm=88)
    assert [rule for rule, _ in refused()] == ["post_session_vitals", "discharge"]

    place.vitals(session, "after", START + 90 * MINUTE)
    assert [rule for rule, _ in refused()] == ["discharge"]

    _discharge(place, session)
    completed = scheduling_services.session_complete(session, now=DONE)

    assert completed.status == "completed"
    record = clinical_selectors.dose_record_of(session.pk)
    assert record is not None
    assert (
        record.route,
        record.dose_mg,
        record.weight_kg,
        record.dose_mg_per_kg,
        record.started_at,
        record.ended_at,
        record.discharged_at,
        record.discharged_by,
        record.escort_handoff_name,
    ) == (
        "im",
        Decimal("52.50"),
        Decimal("70.0"),
        Decimal("0.750"),
        START + 10 * MINUTE,
        START + 11 * MINUTE,
        START + 110 * MINUTE,
        place.nurse,
        "Robin Nguyen",
    )
    assert [
        (v.phase, v.systolic_mmhg, v.diastolic_mmhg, v.heart_rate_bpm, v.spo2_percent)
        for v in record.session.vital_signs.all()
    ] == [("before", 132, 84, 72, 98), ("during", 124, 78, 88, 98), ("after", 124, 78, 72, 98)]


@pytest.mark.parametrize(
    ("mg", "kg", "per_kg"),
    [
        ("52.50", "70.0", "0.750"),
        ("35", "68.3", "0.512"),  # 0.51244...
        ("1.01", "20.0", "0.051"),  # 0.0505, half up
        ("100", "30.0", "3.333"),
        ("300.00", "60", "5.000"),
    ],
)
def test_mg_per_kg_is_computed_on_the_server(place, checked_in, mg, kg, per_kg) -> None:
    place.vitals(checked_in, "before", START + 5 * MINUTE)
    dose = _dose(place, checked_in, dose_mg=mg, weight_kg=kg)
    dose.refresh_from_db()
    assert dose.dose_mg_per_kg == Decimal(per_kg)


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"dose_mg": "52.505"}, {"dose_mg": ["At most 2."]}),
        ({"dose_mg": "0"}, {"dose_mg": ["Between 0.01 and 1000."]}),
        ({"dose_mg": "abc"}, {"dose_mg": ["A number."]}),
        ({"dose_mg": "NaN"}, {"dose_mg": ["A number."]}),
        ({"weight_kg": "70.25"}, {"weight_kg": ["At most 1."]}),
        ({"weight_kg": "12"}, {"weight_kg": ["Between 20 and 350."]}),
        ({"dose_mg": "800", "weight_kg": "70"}, {"dose_mg": ["At most 10 mg/kg."]}),
        ({"route": "oral"}, {"route": ["One of iv, im, sublingual, intranasal."]}),
        ({"started_at": DONE + 6 * MINUTE}, {"started_at": ["Cannot be in the future."]}),
        ({"started_at": aware(2026, 3, 8, 9)}, {"started_at": ["On 2026-03-09, local time."]}),
        ({"started_at": START, "ended_at": START}, {"ended_at": ["After start."]}),
    ],
)
def test_dose_input_refused(place, checked_in, overrides, errors) -> None:
    place.vitals(checked_in, "before", START - 10 * MINUTE)
    with pytest.raises(InvalidInput) as caught:
        _dose(place, checked_in, **overrides)
    assert caught.value.errors == errors
    assert DoseRecord.objects.count() == 0


def test_dose_rules(place, checked_in) -> None:
    with pytest.raises(RuleViolation) as no_vitals:
        _dose(place, checked_in)
    place.vitals(checked_in, "before", START + 5 * MINUTE)
    with pytest.raises(NotPermitted):
        _dose(place, checked_in, administered_by=place.therapist)
    with pytest.raises(InvalidInput) as before_vitals:
        _dose(place, checked_in, started_at=START + 4 * MINUTE)
    _dose(place, checked_in)
    with pytest.raises(RuleViolation) as twice:
        _dose(place, checked_in, dose_mg="60")

    assert _rules(no_vitals) == ["vitals_before_dose"]
    assert before_vitals.value.errors == {"started_at": ["After the pre-dose vital signs."]}
    assert _rules(twice) == ["dose_already_recorded"]
    assert list(DoseRecord.objects.values_list("dose_mg", flat=True)) == [Decimal("52.50")]


def test_a_dose_needs_a_checked_in_medicine_session_and_staff_of_the_clinic(place) -> None:
    booked = place.book("medicine", START)
    integration = place.book("integration", START + dt.timedelta(days=1))
    elsewhere = StaffMemberFactory(roles=[Role.NURSE])

    with pytest.raises(RuleViolation) as not_checked_in:
        _dose(place, booked)
    with pytest.raises(RuleViolation) as not_medicine:
        _dose(place, integration)
    with pytest.raises(InvalidInput) as other_clinic:
        _dose(place, booked, administered_by=elsewhere)

    assert _rules(not_checked_in) == ["session_not_checked_in"]
    assert _rules(not_medicine) == ["medicine_session_only"]
    assert other_clinic.value.errors == {"administered_by": ["Not this clinic's."]}
    assert DoseRecord.objects.count() == 0


def test_implausible_vitals_are_refused_and_nothing_is_written(place, checked_in) -> None:
    with pytest.raises(InvalidInput) as caught:
        place.vitals(
            checked_in,
            "before",
            START + 5 * MINUTE,
            systolic_mmhg=300,
            diastolic_mmhg=19,
            heart_rate_bpm=251,
            spo2_percent=101,
        )
    with pytest.raises(InvalidInput) as inverted:
        place.vitals(checked_in, "before", START + 5 * MINUTE, systolic_mmhg=80, diastolic_mmhg=80)

    assert caught.value.errors == {
        "systolic_mmhg": ["An integer 50 to 260."],
        "diastolic_mmhg": ["An integer 20 to 160."],
        "heart_rate_bpm": ["An integer 20 to 250."],
        "spo2_percent": ["An integer 50 to 100."],
    }
    assert inverted.value.errors == {"diastolic_mmhg": ["Below the systolic pressure."]}
    assert VitalSigns.objects.count() == 0


def test_vitals_agree_with_the_dose_times(place, checked_in) -> None:
    def refused(phase: str, at: dt.datetime) -> str:
        with pytest.raises(RuleViolation) as caught:
            place.vitals(checked_in, phase, at)
        assert VitalSigns.objects.filter(measured_at=at, phase=phase).count() == 0
        return caught.value.violations[0]["message"]

    no_dose = "Vital signs {} the dose need the dose recorded first."
    assert refused("during", START + 5 * MINUTE) == no_dose.format("during")
    assert refused("after", START + 5 * MINUTE) == no_dose.format("after")
    place.vitals(checked_in, "before", START + 5 * MINUTE)
    _dose(place, checked_in)  # an IM injection at 09:10, its end not yet recorded
    assert refused("before", START + 11 * MINUTE) == (
        "Vital signs before the dose are taken before it starts."
    )
    assert refused("during", START + 9 * MINUTE) == (
        "Vital signs during the dose are taken once it has started."
    )
    assert refused("after", START + 60 * MINUTE) == (
        "Vital signs after the dose are taken once it has ended."
    )
    services.dose_end_record(
        session=checked_in, ended_at=START + 11 * MINUTE, recorded_by=place.nurse, now=DONE
    )
    place.vitals(checked_in, "during", START + 45 * MINUTE)  # the medicine phase outlasts the shot
    assert refused("after", START + 40 * MINUTE) == (
        "Vital signs after the dose are taken after it ended and after every reading during it."
    )
    place.vitals(checked_in, "after", START + 90 * MINUTE)
    _discharge(place, checked_in)
    assert refused("after", START + 115 * MINUTE) == (
        "The patient is discharged; no more vital signs are recorded for this session."
    )
    assert list(VitalSigns.objects.values_list("phase", flat=True)) == ["before", "during", "after"]


def test_discharge_refused_until_every_criterion_is_met(place, checked_in) -> None:
    place.vitals(checked_in, "before", START + 5 * MINUTE)
    _dose(place, checked_in, ended_at=START + 11 * MINUTE)

    with pytest.raises(RuleViolation) as caught:
        _discharge(
            place,
            checked_in,
            criteria={**CRITERIA, "is_walking_steadily": False, "is_nausea_controlled": False},
        )

    assert [(v["rule"], v["message"]) for v in caught.value.violations] == [
        ("post_session_vitals", "No vital signs after the dose are recorded."),
        (
            "discharge_criteria",
            "Discharge criteria not met: walking steadily without help, nausea controlled.",
        ),
    ]
    assert DoseRecord.objects.get().discharged_at is None

    place.vitals(checked_in, "after", START + 90 * MINUTE)
    with pytest.raises(InvalidInput) as before_end:
        _discharge(place, checked_in, discharged_at=START + 11 * MINUTE)
    with pytest.raises(InvalidInput) as nobody:
        _discharge(place, checked_in, escort_handoff_name=" ")
    with pytest.raises(InvalidInput) as unknown:
        _discharge(place, checked_in, criteria={**CRITERIA, "is_happy": True})
    with pytest.raises(NotPermitted):
        _discharge(place, checked_in, discharged_by=place.front_desk)
    _discharge(place, checked_in)
    with pytest.raises(RuleViolation) as twice:
        _discharge(place, checked_in, discharged_at=START + 115 * MINUTE)

    assert before_end.value.errors == {"discharged_at": ["After the dose ended."]}
    assert nobody.value.errors == {"escort_handoff_name": ["Required."]}
    assert unknown.value.errors == {"criteria": ["Unknown: is_happy."]}
    assert _rules(twice) == ["discharge_recorded"]
    assert DoseRecord.objects.get().discharged_at == START + 110 * MINUTE


def test_adverse_events_coded_with_free_text_also_after_completion(place) -> None:
    session = place.run_medicine(place.book("medicine", START))

    nausea = services.adverse_event_record(
        session=session,
        code="nausea",
        noted_at=START + 40 * MINUTE,
        recorded_by=place.nurse,
        now=DONE,
    )
    next_day = services.adverse_event_record(
        session=session,
        code="other",
        notes="Vivid dreams the following night; resolved.",
        noted_at=START + dt.timedelta(days=1),
        recorded_by=place.therapist,
        now=START + dt.timedelta(days=1, hours=1),
    )
    with pytest.raises(InvalidInput) as undescribed:
        services.adverse_event_record(
            session=session, code="other", noted_at=DONE, recorded_by=place.nurse, now=DONE
        )
    with pytest.raises(InvalidInput) as unknown:
        services.adverse_event_record(
            session=session, code="euphoria", noted_at=DONE, recorded_by=place.nurse, now=DONE
        )
    with pytest.raises(InvalidInput) as before_dose:
        services.adverse_event_record(
            session=session, code="headache", noted_at=START, recorded_by=place.nurse, now=DONE
        )

    assert list(AdverseEvent.objects.values_list("code", "notes", "recorded_by")) == [
        ("nausea", "", place.nurse.pk),
        ("other", "Vivid dreams the following night; resolved.", place.therapist.pk),
    ]
    assert (nausea.dose, next_day.dose) == (session.dose_record, session.dose_record)
    assert undescribed.value.errors == {"notes": ["Required for other."]}
    assert list(unknown.value.errors) == ["code"]
    assert before_dose.value.errors == {"noted_at": ["After the dose started."]}
