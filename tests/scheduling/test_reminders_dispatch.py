"""The dispatcher, in this process, against the real channel backends: the file outbox and an
SMTP sink. The kill-and-restart proofs with real worker processes are in tests/workers."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from email import message_from_string
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from scheduling import services
from scheduling.links import session_action_from_token
from scheduling.models import Reminder, Session, StaffAlert
from scheduling.notifications.files import safe_name
from scheduling.reminders.services import reminder_retry, reminders_dispatch_due
from tests.factories import ClearedPatientFactory, EscortFactory, ReminderPolicyFactory, aware
from tests.workers.support import (
    book,
    front_desk,
    outbox_attempts,
    outbox_files,
    run_medicine,
    smtp_sink,
)

pytestmark = pytest.mark.django_db
BOOKED_AT = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)
UTC = dt.UTC


@pytest.fixture
def outbox(settings, tmp_path: Path) -> Path:
    settings.REMINDER_OUTBOX_DIR = tmp_path
    settings.EMAIL_BACKEND = "scheduling.notifications.email.FileOutboxEmailBackend"
    settings.SMS_BACKEND = "scheduling.notifications.sms.FileSmsBackend"
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    return tmp_path


def _booked_medicine(**patient: object) -> Session:
    with time_machine.travel(BOOKED_AT, tick=False):
        return book(ClearedPatientFactory(**patient), "medicine", aware(2026, 3, 10, 10))


def test_due_reminders_are_sent_once_each_and_recorded(outbox: Path) -> None:
    session = _booked_medicine()
    day_before = Reminder.objects.filter(session=session, offset_minutes=1440)

    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):
        first = reminders_dispatch_due()
        second = reminders_dispatch_due()

    assert (first.sent, second.sent, second.batches) == (3, 0, 0)
    keys = sorted(day_before.values_list("key", flat=True))
    assert outbox_files(outbox) == {
        "email": sorted(
            safe_name(k)
            for k in Reminder.objects.filter(channel="email").values_list("key", flat=True)
        ),
        "sms": [safe_name(k) for k in keys if "-sms-" in k],
    }
    sms = day_before.get(channel="sms")
    assert (sms.status, sms.attempts, sms.recipient) == ("sent", 1, session.patient.phone)
    assert sms.provider_message_id == f"file:{safe_name(sms.key)}"
    assert sms.sent_at == aware(2026, 3, 9, 10, 1).astimezone(UTC)
    assert sms.lease_token is None
    email = day_before.get(channel="email")
    assert email.provider_message_id == f"<{email.key}@reminders.ketamine-clinic.invalid>"


def test_reminders_not_yet_due_stay_pending(outbox: Path) -> None:
    _booked_medicine()

    with time_machine.travel(aware(2026, 3, 9, 9, 59), tick=False):
        report = reminders_dispatch_due()

    assert report.sent == 1  # only the 72 h one
    assert sorted(Reminder.objects.values_list("offset_minutes", "status")) == [
        (1440, "pending"),
        (1440, "pending"),
        (4320, "sent"),
    ]


def _links(text: str) -> list[tuple[int, str]]:
    """The signed links in a message, as (session id, action)."""
    tokens = re.findall(r"https://portal\.example\.org/r/([^/\s]+)/", text)
    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):  # when it was sent
        return [
            (found.session.pk, found.action)
            for found in (session_action_from_token(token) for token in tokens)
        ]


def test_a_medicine_reminder_says_fast_no_driving_confirm_the_ride_in_the_patients_zone(
    outbox: Path,
) -> None:
    session = _booked_medicine(timezone="America/New_York", full_name="Ada Lovelace")
    with time_machine.travel(BOOKED_AT, tick=False):
        EscortFactory(session=session, name="Grace Hopper", is_confirmed=False)

    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):
        reminders_dispatch_due()

    email_key = Reminder.objects.get(channel="email", offset_minutes=1440).key
    raw = (outbox / "email" / f"{safe_name(email_key)}.eml").read_text()
    assert "Subject: Your medicine session at " in raw
    assert "Tuesday 10 March 2026, 1:00 PM EDT" in raw  # 10:00 in Los Angeles
    assert "Dear Ada Lovelace" in raw
    assert "Do not eat for 4 hours" in raw
    assert "No driving until the next day." in raw
    assert "we have Grace Hopper down as your ride home; please confirm" in raw
    assert _links(raw) == [(session.pk, "confirm"), (session.pk, "cancel")]
    parsed = message_from_string(raw)
    assert (
        "".join(parsed["Message-ID"].split()) == f"<{email_key}@reminders.ketamine-clinic.invalid>"
    )
    sms_key = Reminder.objects.get(channel="sms").key
    sms = json.loads((outbox / "sms" / f"{safe_name(sms_key)}.json").read_text())
    assert sms["to"] == session.patient.phone
    assert sms["key"] == sms_key
    assert sms["body"].startswith(f"{session.clinic.name}: medicine session Tuesday 10 March 2026")
    assert "No driving until the next day: confirm your ride home with us." in sms["body"]


def test_a_confirmed_session_is_reminded_without_a_confirm_link(outbox: Path) -> None:
    session = _booked_medicine()
    with time_machine.travel(BOOKED_AT, tick=False):
        services.session_confirm(session)

    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):
        reminders_dispatch_due()

    key = Reminder.objects.get(channel="email", offset_minutes=1440).key
    raw = (outbox / "email" / f"{safe_name(key)}.eml").read_text()
    assert _links(raw) == [(session.pk, "cancel")]


def test_after_a_medicine_session_the_patient_is_told_the_integration_date(outbox: Path) -> None:
    with time_machine.travel(BOOKED_AT, tick=False):
        patient = ClearedPatientFactory(preferred_channel="sms")
        medicine = book(patient, "medicine", aware(2026, 3, 3, 9))
        book(patient, "integration", aware(2026, 3, 5, 11))
    with time_machine.travel(aware(2026, 3, 3, 11, 0), tick=False):
        run_medicine(medicine)

    with time_machine.travel(aware(2026, 3, 3, 14, 1), tick=False):
        report = reminders_dispatch_due()

    assert report.sent == 1
    after = Reminder.objects.get(purpose="after_medicine")
    body = json.loads((outbox / "sms" / f"{safe_name(after.key)}.json").read_text())["body"]
    assert "your integration session is Thursday 5 March 2026, 11:00 AM PST." in body
    assert "No driving until tomorrow." in body


def test_a_session_moved_without_its_reminders_synced_is_caught_when_claimed(outbox: Path) -> None:
    # given a code path that moved the session row and forgot the hook
    session = _booked_medicine()
    Session.objects.filter(pk=session.pk).update(
        starts_at=aware(2026, 3, 11, 10),
        ends_at=aware(2026, 3, 11, 12),
        room_released_at=aware(2026, 3, 11, 12, 15),
    )

    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):
        report = reminders_dispatch_due()

    assert (report.sent, report.cancelled) == (0, 3)
    assert outbox_files(outbox) == {"email": [], "sms": []}
    assert set(Reminder.objects.values_list("status", "last_error")) == {
        ("cancelled", "Session moved to 2026-03-11T17:00:00+00:00.")
    }


def test_a_reminder_not_sent_before_the_session_fails_and_the_front_desk_is_alerted(
    outbox: Path,
) -> None:
    session = _booked_medicine()
    front_desk(session.clinic)

    with time_machine.travel(aware(2026, 3, 10, 10, 0), tick=False):
        report = reminders_dispatch_due()

    assert (report.sent, report.failed) == (0, 3)
    assert set(Reminder.objects.values_list("status", "last_error")) == {
        ("failed", "Not sent before the session started.")
    }
    alerts = StaffAlert.objects.filter(kind="reminder_failed", target_role="front_desk")
    assert alerts.count() == 3
    assert alerts.filter(session=session).count() == 3


def test_a_reminder_whose_worker_died_is_sent_again_under_the_same_key_and_delivered_once(
    outbox: Path,
) -> None:
    # given a worker that claimed the 72 h reminder, handed it to the provider, and died before
    # it could mark the row sent
    session = _booked_medicine()
    reminder = Reminder.objects.get(session=session, offset_minutes=4320)
    with time_machine.travel(aware(2026, 3, 7, 9, 1), tick=False):
        reminders_dispatch_due()
    Reminder.objects.filter(pk=reminder.pk).update(
        status="sending",
        sent_at=None,
        lease_token=uuid.uuid4(),
        leased_until=aware(2026, 3, 7, 9, 6),
    )

    with time_machine.travel(aware(2026, 3, 7, 9, 5), tick=False):
        early = reminders_dispatch_due()
    with time_machine.travel(aware(2026, 3, 7, 9, 7), tick=False):
        late = reminders_dispatch_due()

    assert (early.sent, late.sent) == (0, 1)  # the lease protects the row until it runs out
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("sent", 2)
    assert outbox_files(outbox)["email"] == [safe_name(reminder.key)]
    assert outbox_attempts(outbox) == [
        ("accepted", safe_name(reminder.key)),
        ("duplicate", safe_name(reminder.key)),
    ]


def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_owner(outbox: Path) -> None:
    session = _booked_medicine()
    with time_machine.travel(aware(2026, 3, 7, 9, 1), tick=False):
        reminder = Reminder.objects.get(session=session, offset_minutes=4320)
        Reminder.objects.filter(pk=reminder.pk).update(
            status="sending", lease_token=uuid.uuid4(), leased_until=aware(2026, 3, 7, 9, 6)
        )
        stale_claim = Reminder.objects.get(pk=reminder.pk)
        stale_claim.lease_token = uuid.uuid4()  # the token an earlier, expired claim held
        from scheduling.notifications.sms import sms_backend
        from scheduling.reminders.services import DispatchReport, _deliver

        report = DispatchReport()
        _deliver(stale_claim, sms_backend(), report)

    assert (report.sent, report.lease_lost) == (0, 1)
    assert Reminder.objects.get(pk=reminder.pk).status == "sending"


def test_delivery_failures_retry_with_backoff_then_succeed(settings) -> None:
    session = _booked_medicine(preferred_channel="email")
    ReminderPolicyFactory(clinic=session.clinic)
    with smtp_sink() as (sink, port):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        sink.refuse = lambda n: "451 4.3.0 Try again later" if n <= 2 else None

        moments = [aware(2026, 3, 7, 9, 1), aware(2026, 3, 7, 9, 2), aware(2026, 3, 7, 9, 6)]
        results = []
        for moment in moments:
            with time_machine.travel(moment, tick=False):
                report = reminders_dispatch_due()
                results.append((report.sent, report.retried))
            reminder = Reminder.objects.get(offset_minutes=4320)
            results.append((reminder.status, reminder.attempts, reminder.next_attempt_at))

        assert results == [
            (0, 1),
            ("pending", 1, aware(2026, 3, 7, 9, 2).astimezone(UTC)),
            (0, 1),
            ("pending", 2, aware(2026, 3, 7, 9, 6).astimezone(UTC)),
            (1, 0),
            ("sent", 3, aware(2026, 3, 7, 9, 6).astimezone(UTC)),
        ]
        assert sink.message_ids() == [f"<{reminder.key}@reminders.ketamine-clinic.invalid>"]
        assert reminder.last_error == ""


def test_a_refused_address_fails_at_once_alerts_the_front_desk_and_can_be_retried(settings) -> None:
    session = _booked_medicine(preferred_channel="email")
    front_desk(session.clinic, email="desk@example.org")
    with smtp_sink() as (sink, port):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        sink.refuse = lambda n: "550 5.1.1 No such mailbox"

        with time_machine.travel(aware(2026, 3, 7, 9, 1), tick=False):
            report = reminders_dispatch_due()

        reminder = Reminder.objects.get(offset_minutes=4320)
        assert (report.failed, reminder.status, reminder.attempts) == (1, "failed", 1)
        assert reminder.last_error.startswith("SMTP 550:")
        alert = StaffAlert.objects.get(kind="reminder_failed")
        assert alert.session_id == session.pk
        assert alert.dedupe_key == f"reminder_failed:{reminder.pk}"

        sink.refuse = lambda n: None
        reminder_retry(reminder, now=aware(2026, 3, 7, 9, 30))
        with time_machine.travel(aware(2026, 3, 7, 9, 31), tick=False):
            again = reminders_dispatch_due()

    reminder.refresh_from_db()
    assert (again.sent, reminder.status, reminder.attempts) == (1, "sent", 1)
    assert len(mail.outbox) == 0  # the alert e-mail goes from a worker after commit


def test_a_reminder_gives_up_after_its_last_attempt(settings, outbox: Path) -> None:
    settings.REMINDER_MAX_ATTEMPTS = 2
    session = _booked_medicine(preferred_channel="sms", phone="+14155550100")
    Reminder.objects.filter(session=session).exclude(offset_minutes=4320).delete()
    settings.SMS_BACKEND = "scheduling.notifications.sms.FileSmsBackend"
    (outbox / "sms").write_text("a file where the directory should be: every write fails")

    for minute in (1, 2, 7):
        with time_machine.travel(aware(2026, 3, 7, 9, minute), tick=False):
            reminders_dispatch_due()

    reminder = Reminder.objects.get()
    assert (reminder.status, reminder.attempts) == ("failed", 2)
    assert "FileExistsError" in reminder.last_error or "NotADirectoryError" in reminder.last_error


def _claimed_at(moment: dt.datetime) -> list[Reminder]:
    from scheduling.reminders.services import DispatchReport, _claim

    with time_machine.travel(moment, tick=False):
        _, leased = _claim(timezone.now(), 10, DispatchReport())
    return leased


def test_a_reminder_claimed_just_before_its_session_is_cancelled_is_not_sent(outbox: Path) -> None:
    # given a worker that claimed the due reminders, and a cancellation that commits before the
    # worker reaches them in its batch
    session = _booked_medicine()
    claimed = _claimed_at(aware(2026, 3, 9, 10, 1))
    assert len(claimed) == 3
    services.session_cancel(session, reason="Patient unwell", now=aware(2026, 3, 9, 10, 1))

    from scheduling.notifications.sms import sms_backend
    from scheduling.reminders.services import DispatchReport, _deliver

    report = DispatchReport()
    with time_machine.travel(aware(2026, 3, 9, 10, 2), tick=False):
        for reminder in claimed:
            _deliver(reminder, sms_backend(), report)

    assert (report.sent, report.cancelled) == (0, 3)
    assert outbox_files(outbox) == {"email": [], "sms": []}
    assert set(Reminder.objects.values_list("status", "last_error")) == {
        ("cancelled", "Session is late_cancelled.")
    }


def test_a_message_already_on_its_way_when_the_session_is_cancelled_is_recorded_as_sent(
    outbox: Path,
) -> None:
    from scheduling.notifications.sms import sms_backend
    from scheduling.reminders.services import _record, _send

    session = _booked_medicine()
    reminder = next(r for r in _claimed_at(aware(2026, 3, 9, 10, 1)) if r.channel == "sms")
    with time_machine.travel(aware(2026, 3, 9, 10, 1), tick=False):
        recipient, provider_id = _send(reminder, sms_backend(), timezone.now())
    services.session_cancel(session, reason="Patient unwell", now=aware(2026, 3, 9, 10, 1))

    recorded = _record(
        reminder,
        was_sent=True,
        status="sent",
        sent_at=aware(2026, 3, 9, 10, 1),
        recipient=recipient,
        provider_message_id=provider_id,
        last_error="",
    )

    reminder.refresh_from_db()
    assert recorded
    assert (reminder.status, reminder.provider_message_id) == ("sent", provider_id)
    assert outbox_files(outbox)["sms"] == [safe_name(reminder.key)]
