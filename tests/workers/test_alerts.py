"""Staff alerts: raised once per key, e-mailed once to the people they target, acknowledged."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail

from clinic.models import Role
from scheduling import tasks
from scheduling.alerts.selectors import staff_alerts, staff_alerts_for
from scheduling.alerts.services import (
    staff_alert_acknowledge,
    staff_alert_notify,
    staff_alert_raise,
)
from scheduling.models import StaffAlert
from tests.factories import ClinicFactory, StaffMemberFactory
from tests.workers.support import front_desk

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _raise(clinic, key="k1", **target):
    target = target or {"target_role": Role.FRONT_DESK}
    return staff_alert_raise(
        clinic=clinic,
        kind="escort_unconfirmed",
        message="Ride home not confirmed.",
        dedupe_key=key,
        **target,
    )


def test_an_alert_is_raised_once_per_dedupe_key():
    clinic = ClinicFactory()

    first, created = _raise(clinic)
    again, created_again = _raise(clinic)

    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert StaffAlert.objects.count() == 1


def test_an_alert_needs_a_target():
    with pytest.raises(ValueError, match="target"):
        staff_alert_raise(clinic=ClinicFactory(), kind="x", message="m", dedupe_key="k")
    assert StaffAlert.objects.count() == 0


def test_an_alert_for_a_role_is_emailed_once_to_that_roles_active_staff_at_that_clinic():
    clinic = ClinicFactory()
    front_desk(clinic, "ana@example.org")
    front_desk(clinic, "ben@example.org")
    gone = front_desk(clinic, "gone@example.org")
    gone.is_active = False
    gone.save()
    front_desk(ClinicFactory(), "elsewhere@example.org")
    StaffMemberFactory(clinic=clinic, roles=[Role.NURSE]).user.email = "nurse@example.org"
    alert, _ = _raise(clinic)

    with time_machine.travel(NOW, tick=False):
        assert staff_alert_notify(alert) == 2
        assert staff_alert_notify(alert) == 0

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ana@example.org", "ben@example.org"]
    assert mail.outbox[0].subject == f"[{clinic.name}] Ride home not confirmed."
    assert mail.outbox[0].extra_headers["Message-ID"] == (
        f"<alert-{alert.pk}@reminders.ketamine-clinic.invalid>"
    )
    alert.refresh_from_db()
    assert alert.notified_at == NOW


def test_an_alert_for_one_staff_member_goes_to_that_member_only():
    clinic = ClinicFactory()
    front_desk(clinic, "desk@example.org")
    therapist = front_desk(clinic, "therapist@example.org")
    alert, _ = _raise(clinic, target_staff=therapist)

    staff_alert_notify(alert)

    assert [message.to for message in mail.outbox] == [["therapist@example.org"]]


def test_alerts_whose_email_was_lost_are_sent_by_the_sweep():
    clinic = ClinicFactory()
    front_desk(clinic, "desk@example.org")
    with time_machine.travel(NOW, tick=False):
        _raise(clinic, key="a")
        _raise(clinic, key="b")

    with time_machine.travel(NOW + dt.timedelta(minutes=1), tick=False):
        assert (
            tasks.staff_alerts_notify_pending() == 0
        )  # too fresh: their own task may be on its way
    with time_machine.travel(NOW + dt.timedelta(minutes=3), tick=False):
        assert tasks.staff_alerts_notify_pending() == 2
        assert tasks.staff_alerts_notify_pending() == 0

    assert len(mail.outbox) == 2


def test_acknowledging_keeps_the_first_time_and_person():
    clinic = ClinicFactory()
    desk = front_desk(clinic)
    other = front_desk(clinic, "other@example.org")
    alert, _ = _raise(clinic)

    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        staff_alert_acknowledge(alert, by=desk.user)
    with time_machine.travel(NOW + dt.timedelta(hours=2), tick=False):
        staff_alert_acknowledge(alert, by=other.user)

    alert.refresh_from_db()
    assert alert.acknowledged_by == desk.user
    assert alert.is_acknowledged


def test_a_staff_member_sees_open_alerts_for_their_roles_and_themselves(django_assert_num_queries):
    clinic = ClinicFactory()
    desk = front_desk(clinic)
    for_role, _ = _raise(clinic, key="role")
    for_me, _ = _raise(clinic, key="me", target_staff=desk)
    _raise(clinic, key="nurses", target_role=Role.NURSE)
    _raise(ClinicFactory(), key="elsewhere")
    done, _ = _raise(clinic, key="done")
    staff_alert_acknowledge(done, by=desk.user)

    with django_assert_num_queries(2):  # the member's roles, then the page
        seen = list(staff_alerts_for(desk))

    assert {alert.pk for alert in seen} == {for_role.pk, for_me.pk}
    assert list(staff_alerts(clinic_id=clinic.pk, is_open=False)) == [done]
