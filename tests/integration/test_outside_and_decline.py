"""Integration with the patient's own therapist, and integration declined."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.errors import InvalidInput, RuleViolation
from integration import clinical_selectors, services
from integration.models import IntegrationDecline, OutsideIntegration
from protocols.models import CareModel
from tests.factories import aware

pytestmark = pytest.mark.django_db

NOW = aware(2026, 3, 20, 12)


def _status(session, now=NOW):
    return clinical_selectors.integration_statuses([session], now=now)[session.pk]


def test_outside_integration_is_external_until_confirmed_then_done(place) -> None:
    medicine = place.run_medicine(place.book("medicine", aware(2026, 3, 2, 9)))

    record = services.outside_integration_record(
        medicine_session=medicine, held_on=dt.date(2026, 3, 4), now=aware(2026, 3, 2, 15)
    )
    external = _status(medicine)
    confirmed = services.outside_integration_confirm(
        record, confirmed_by="patient", now=aware(2026, 3, 5, 9)
    )
    again = services.outside_integration_confirm(
        record, confirmed_by="therapist", now=aware(2026, 3, 6, 9)
    )

    assert (record.therapist_name, record.therapist_email, record.therapist_phone) == (
        "Dr. Morgan Hale",
        "morgan.hale@example.org",
        "+14155550177",
    )
    assert (external.status, external.outside_ids) == ("external", (record.pk,))
    assert (confirmed.confirmed_by, confirmed.confirmed_at) == ("patient", aware(2026, 3, 5, 9))
    assert (again.confirmed_by, again.confirmed_at) == ("patient", aware(2026, 3, 5, 9))
    assert _status(medicine).status == "done"


def test_outside_integration_confirmed_when_recorded(place) -> None:
    medicine = place.run_medicine(place.book("medicine", aware(2026, 3, 2, 9)))

    record = services.outside_integration_record(
        medicine_session=medicine,
        held_on=dt.date(2026, 3, 4),
        therapist_name="Dr. Lane Ortiz",
        therapist_phone="+14155550123",
        confirmed_by="therapist",
        now=aware(2026, 3, 4, 18),
    )

    assert (record.therapist_name, record.therapist_email, record.therapist_phone) == (
        "Dr. Lane Ortiz",
        "",
        "+14155550123",
    )
    assert (record.confirmed_by, record.confirmed_at) == ("therapist", aware(2026, 3, 4, 18))
    assert _status(medicine).status == "done"


@pytest.mark.parametrize(
    ("kwargs", "errors"),
    [
        ({"held_on": dt.date(2026, 3, 1)}, {"held_on": ["On or after 2026-03-02."]}),
        (
            {"held_on": dt.date(2026, 3, 4), "therapist_name": "Dr. New"},
            {"therapist_email": ["An e-mail or a phone is required."]},
        ),
        (
            {"held_on": dt.date(2026, 3, 4), "confirmed_by": "friend"},
            {"confirmed_by": ["One of therapist, patient."]},
        ),
    ],
)
def test_outside_integration_refused_for_bad_input(place, kwargs, errors) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    with pytest.raises(InvalidInput) as caught:
        services.outside_integration_record(medicine_session=medicine, now=NOW, **kwargs)
    assert caught.value.errors == errors
    assert OutsideIntegration.objects.count() == 0


def test_outside_integration_needs_a_therapist_on_file_or_named(place) -> None:
    place.patient.outside_therapist_name = ""
    place.patient.save()
    medicine = place.book("medicine", aware(2026, 3, 2, 9))

    with pytest.raises(InvalidInput) as caught:
        services.outside_integration_record(
            medicine_session=medicine, held_on=dt.date(2026, 3, 4), now=NOW
        )

    assert caught.value.errors == {"therapist_name": ["Required: none on file."]}


def test_an_outside_integration_in_the_future_cannot_be_confirmed_yet(place) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    record = services.outside_integration_record(
        medicine_session=medicine, held_on=dt.date(2026, 3, 6), now=aware(2026, 3, 2, 15)
    )

    with pytest.raises(RuleViolation) as caught:
        services.outside_integration_confirm(
            record, confirmed_by="patient", now=aware(2026, 3, 5, 23, 59)
        )

    assert caught.value.violations[0]["rule"] == "outside_integration_not_yet_held"
    record.refresh_from_db()
    assert (record.confirmed_by, record.confirmed_at) == ("", None)
    confirmed = services.outside_integration_confirm(
        record, confirmed_by="patient", now=aware(2026, 3, 6, 0, 0)
    )
    assert confirmed.is_confirmed


def test_outside_integration_only_for_medicine_sessions(place) -> None:
    integration = place.book("integration", aware(2026, 3, 3, 9))
    with pytest.raises(RuleViolation) as caught:
        services.outside_integration_record(
            medicine_session=integration, held_on=dt.date(2026, 3, 4), now=NOW
        )
    assert caught.value.violations[0]["rule"] == "medicine_session_only"


def test_an_infusion_only_series_declines_integration_for_every_session(place) -> None:
    series = place.series(care_model=CareModel.INFUSION)
    first = place.run_medicine(place.book("medicine", aware(2026, 3, 2, 9), series=series))
    second = place.run_medicine(place.book("medicine", aware(2026, 3, 4, 9), series=series))
    unrelated = place.run_medicine(place.book("medicine", aware(2026, 3, 6, 9)))

    decline = services.integration_decline_record(
        series=series,
        reason="Chronic pain patient; offered integration therapy, prefers infusions only.",
        recorded_by=place.therapist,
        now=aware(2026, 3, 2, 12),
    )
    statuses = clinical_selectors.integration_statuses([first, second, unrelated], now=NOW)

    assert (decline.recorded_by, decline.recorded_at) == (place.therapist, aware(2026, 3, 2, 12))
    assert {pk: s.status for pk, s in statuses.items()} == {
        first.pk: "declined",
        second.pk: "declined",
        unrelated.pk: "overdue",
    }


def test_a_patient_who_changes_their_mind_books_integration(place) -> None:
    medicine = place.run_medicine(place.book("medicine", aware(2026, 3, 2, 9)))
    services.integration_decline_record(
        medicine_session=medicine,
        reason="Not now.",
        recorded_by=place.front_desk,
        now=aware(2026, 3, 2, 12),
    )
    assert _status(medicine).status == "declined"

    services.integration_link(place.book("integration", aware(2026, 3, 23, 10)))

    assert _status(medicine).status == "booked"


def test_kap_integration_cannot_be_declined(place) -> None:
    series = place.series(care_model=CareModel.KAP)
    medicine = place.book("medicine", aware(2026, 3, 2, 9), series=series)

    for target in ({"series": series}, {"medicine_session": medicine}):
        with pytest.raises(RuleViolation) as caught:
            services.integration_decline_record(
                reason="Does not want therapy.", recorded_by=place.therapist, now=NOW, **target
            )
        assert caught.value.violations[0]["rule"] == "integration_is_part_of_kap"
    assert IntegrationDecline.objects.count() == 0


def test_a_decline_needs_a_reason_one_target_and_is_recorded_once(place) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))

    with pytest.raises(InvalidInput) as no_reason:
        services.integration_decline_record(
            medicine_session=medicine, reason="  ", recorded_by=place.therapist, now=NOW
        )
    with pytest.raises(InvalidInput) as no_target:
        services.integration_decline_record(reason="x", recorded_by=place.therapist, now=NOW)
    services.integration_decline_record(
        medicine_session=medicine, reason="Not now.", recorded_by=place.therapist, now=NOW
    )
    with pytest.raises(InvalidInput) as twice:
        services.integration_decline_record(
            medicine_session=medicine, reason="Again.", recorded_by=place.therapist, now=NOW
        )

    assert no_reason.value.errors == {"reason": ["Required."]}
    assert list(no_target.value.errors) == ["medicine_session"]
    assert twice.value.errors == {"medicine_session": ["Integration already declined."]}
    assert list(IntegrationDecline.objects.values_list("reason", flat=True)) == ["Not now."]
