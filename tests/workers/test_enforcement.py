"""The enforcement scans, with time frozen: no-shows, overdue integration, screening expiry,
unconfirmed rides home. Each is run twice to show that the second run changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from clinic.models import Role
from protocols.models import RuleType
from scheduling import enforcement, services
from scheduling.models import Reminder, Session, StaffAlert
from tests.factories import (
    ClearedPatientFactory,
    EscortFactory,
    IntegrationDeclineFactory,
    OutsideIntegrationFactory,
    ProtocolRuleFactory,
    TreatmentSeriesFactory,
    aware,
)
from tests.workers.support import book, run_medicine

pytestmark = pytest.mark.django_db
BOOKED_AT = aware(2026, 3, 2, 9)


def _book(patient, kind, starts_at, **extra) -> Session:
    with time_machine.travel(BOOKED_AT, tick=False):
        return book(patient, kind, starts_at, **extra)


def _completed(session: Session) -> Session:
    with time_machine.travel(session.ends_at, tick=False):
        return run_medicine(session)


def test_a_session_not_checked_in_in_time_is_marked_no_show_once():
    patient = ClearedPatientFactory(clinic__no_show_after_minutes=30)
    late = _book(patient, "integration", aware(2026, 3, 3, 10))
    arrived = _book(
        ClearedPatientFactory(clinic=patient.clinic), "integration", aware(2026, 3, 3, 10)
    )
    services.session_check_in(arrived, now=aware(2026, 3, 3, 10, 5))

    assert enforcement.no_shows_mark(now=aware(2026, 3, 3, 10, 29)) == []
    assert enforcement.no_shows_mark(now=aware(2026, 3, 3, 10, 31)) == [late.pk]
    assert enforcement.no_shows_mark(now=aware(2026, 3, 3, 10, 40)) == []

    late.refresh_from_db()
    arrived.refresh_from_db()
    assert (late.status, arrived.status) == ("no_show", "checked_in")
    assert late.status_changed_at == aware(2026, 3, 3, 10, 31)
    assert set(Reminder.objects.filter(session=late).values_list("status", flat=True)) <= {
        "cancelled",
        "sent",
    }


def test_a_completed_medicine_session_without_integration_alerts_its_therapist_and_the_front_desk():
    patient = ClearedPatientFactory(full_name="Ada Lovelace")
    medicine = _completed(_book(patient, "medicine", aware(2026, 3, 3, 9)))
    therapist = medicine.staff_holds.get(role=Role.THERAPIST).staff

    raised = enforcement.integration_overdue_scan(now=aware(2026, 3, 3, 12))
    again = enforcement.integration_overdue_scan(now=aware(2026, 3, 3, 12, 15))

    assert (raised, again) == (2, 0)
    alerts = StaffAlert.objects.order_by("target_role")
    assert [(a.kind, a.target_role, a.target_staff_id, a.session_id) for a in alerts] == [
        ("integration_overdue", "", therapist.pk, medicine.pk),
        ("integration_overdue", "front_desk", None, medicine.pk),
    ]
    assert alerts[0].message == (
        "Ada Lovelace had a medicine session on 2026-03-03 09:00 and has no integration session "
        "booked or done before 2026-03-11 00:00."
    )


def test_an_integration_booked_inside_the_window_means_no_alert_and_one_outside_it_does():
    inside = ClearedPatientFactory()
    _book(inside, "integration", aware(2026, 3, 10, 15))  # day 7: the last day of the window
    outside = ClearedPatientFactory(clinic=inside.clinic)
    _book(outside, "integration", aware(2026, 3, 11, 9))  # day 8
    _completed(_book(inside, "medicine", aware(2026, 3, 3, 9)))
    late = _completed(_book(outside, "medicine", aware(2026, 3, 3, 9)))

    enforcement.integration_overdue_scan(now=aware(2026, 3, 3, 12))

    assert set(StaffAlert.objects.values_list("session_id", flat=True)) == {late.pk}


def test_integration_with_an_outside_therapist_or_declined_is_not_overdue():
    outside = _completed(_book(ClearedPatientFactory(), "medicine", aware(2026, 3, 3, 9)))
    declined = _completed(_book(ClearedPatientFactory(), "medicine", aware(2026, 3, 4, 9)))
    OutsideIntegrationFactory(medicine_session=outside, held_on=dt.date(2026, 3, 5))
    IntegrationDeclineFactory(medicine_session=declined, recorded_by__clinic=declined.clinic)

    assert enforcement.integration_overdue_scan(now=aware(2026, 3, 4, 12)) == 0


def test_the_protocols_own_max_gap_sets_the_window():
    patient = ClearedPatientFactory()
    rule = ProtocolRuleFactory(
        type=RuleType.MAX_GAP,
        after="medicine",
        before="integration",
        days=3,
    )
    series = TreatmentSeriesFactory(patient=patient, protocol_version=rule.version)
    medicine = _completed(_book(patient, "medicine", aware(2026, 3, 3, 9), series=series))
    _book(patient, "integration", aware(2026, 3, 7, 9))  # day 4, booked outside the series

    enforcement.integration_overdue_scan(now=aware(2026, 3, 3, 12))

    alert = StaffAlert.objects.get(session=medicine, target_role="front_desk")
    assert alert.message.endswith("before 2026-03-07 00:00.")


def test_a_medicine_session_past_the_screening_is_flagged_once():
    # given medicine sessions booked while the clearance covered them, and then the prescriber
    # shortened it (a new finding) or it never came from a prescriber
    patient = ClearedPatientFactory(full_name="Ada Lovelace")
    covered = _book(patient, "medicine", aware(2026, 3, 9, 9))
    lapsed = _book(patient, "medicine", aware(2026, 3, 12, 9))
    other = ClearedPatientFactory(clinic=patient.clinic)
    unscreened = _book(other, "medicine", aware(2026, 3, 12, 9))
    patient.screenings.update(valid_until=dt.date(2026, 3, 9))
    other.screenings.all().delete()

    raised = enforcement.screening_expiry_scan(now=BOOKED_AT)
    again = enforcement.screening_expiry_scan(now=BOOKED_AT + dt.timedelta(hours=1))

    assert (raised, again) == (2, 0)
    messages = dict(StaffAlert.objects.values_list("session_id", "message"))
    assert covered.pk not in messages
    assert messages[lapsed.pk] == (
        "Ada Lovelace has a medicine session on 2026-03-12 09:00 but the screening is valid until "
        "2026-03-09: re-screen or move it."
    )
    assert messages[unscreened.pk].endswith(
        "but there is no cleared screening: re-screen or move it."
    )


def test_an_unconfirmed_ride_home_alerts_the_front_desk_hours_before(settings):
    settings.ESCORT_ALERT_HOURS_BEFORE = 18
    clinic_patient = ClearedPatientFactory(full_name="Ada Lovelace")
    nobody = _book(clinic_patient, "medicine", aware(2026, 3, 4, 10))
    unconfirmed = _book(
        ClearedPatientFactory(clinic=clinic_patient.clinic), "medicine", aware(2026, 3, 4, 10)
    )
    confirmed = _book(
        ClearedPatientFactory(clinic=clinic_patient.clinic), "medicine", aware(2026, 3, 4, 10)
    )
    EscortFactory(session=unconfirmed, name="Grace Hopper", is_confirmed=False)
    EscortFactory(session=confirmed, is_confirmed=True, confirmed_at=BOOKED_AT)

    early = enforcement.escort_unconfirmed_scan(now=aware(2026, 3, 3, 15))  # 19 h before
    raised = enforcement.escort_unconfirmed_scan(now=aware(2026, 3, 3, 17))  # 17 h before
    again = enforcement.escort_unconfirmed_scan(now=aware(2026, 3, 3, 18))

    assert (early, raised, again) == (0, 2, 0)
    messages = dict(StaffAlert.objects.values_list("session_id", "message"))
    assert messages == {
        nobody.pk: "Ride home for Ada Lovelace's medicine session on 2026-03-04 10:00: "
        "no one is recorded.",
        unconfirmed.pk: f"Ride home for {unconfirmed.patient.full_name}'s medicine session on "
        "2026-03-04 10:00: Grace Hopper is not confirmed.",
    }
    assert set(StaffAlert.objects.values_list("target_role", flat=True)) == {"front_desk"}
