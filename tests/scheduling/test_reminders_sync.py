"""Reminder rows follow their session, in the session's own transaction: booked, moved, cancelled,
confirmed, checked in, completed, no-show."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction

from clinic.errors import ResourceConflict
from scheduling import services
from scheduling.models import Reminder, ReminderPolicy, Session
from scheduling.reminders.services import reminders_sync
from tests.factories import ClearedPatientFactory, ReminderPolicyFactory, aware
from tests.workers.support import book, run_medicine

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)  # Monday 09:00 in Los Angeles
UTC = dt.UTC


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def rows(session: Session) -> list[tuple[str, str, int, dt.datetime, str]]:
    return [
        (r.purpose, r.channel, r.offset_minutes, r.due_at, r.status)
        for r in Reminder.objects.filter(session=session).order_by("due_at", "channel", "id")
    ]


def move(session: Session, starts_at: dt.datetime) -> Session:
    (moved,) = services.session_reschedule(session, starts_at=starts_at)
    return moved


def test_booking_a_medicine_session_writes_its_reminders_by_the_default_policy_unsaved():
    patient = ClearedPatientFactory()
    assert not ReminderPolicy.objects.filter(clinic=patient.clinic).exists()

    session = book(patient, "medicine", aware(2026, 3, 10, 10))

    assert rows(session) == [
        ("upcoming", "email", 4320, aware(2026, 3, 7, 9).astimezone(UTC), "pending"),
        ("upcoming", "email", 1440, aware(2026, 3, 9, 10).astimezone(UTC), "pending"),
        ("upcoming", "sms", 1440, aware(2026, 3, 9, 10).astimezone(UTC), "pending"),
    ]
    reminder = Reminder.objects.filter(
        session=session, offset_minutes=1440, channel="email"
    ).first()
    assert reminder is not None
    assert reminder.session_starts_at == session.starts_at
    assert reminder.next_attempt_at == reminder.due_at
    assert reminder.key == f"r{session.pk}-upcoming-email-1440m-20260310T170000Z"
    assert not ReminderPolicy.objects.filter(clinic=patient.clinic).exists()  # reading writes none


def test_a_session_booked_less_than_72_hours_ahead_gets_no_late_72_hour_reminder():
    session = book(ClearedPatientFactory(), "medicine", aware(2026, 3, 3, 15))  # 30 hours ahead

    assert [(r[1], r[2]) for r in rows(session)] == [("email", 1440), ("sms", 1440)]


def test_a_refused_booking_leaves_no_reminder():
    patient = ClearedPatientFactory()
    first = book(patient, "integration", aware(2026, 3, 10, 10))

    with pytest.raises(ResourceConflict):
        book(patient, "integration", aware(2026, 3, 10, 10, 30))  # the patient is taken

    assert Reminder.objects.count() == len(rows(first)) == 1


def test_reminders_roll_back_with_the_booking():
    patient = ClearedPatientFactory()

    def book_then_fail() -> None:
        with transaction.atomic():
            book(patient, "integration", aware(2026, 3, 10, 10))
            assert Reminder.objects.count() == 1
            raise RuntimeError("the caller's transaction fails after the booking")

    with pytest.raises(RuntimeError):
        book_then_fail()

    assert Reminder.objects.count() == 0
    assert Session.objects.count() == 0


def test_moving_a_session_cancels_its_old_reminders_and_writes_new_ones():
    session = book(ClearedPatientFactory(), "integration", aware(2026, 3, 10, 10))
    old = Reminder.objects.get(session=session)

    move(session, aware(2026, 3, 12, 14))

    old.refresh_from_db()
    assert old.status == "cancelled"
    assert old.last_error == "Session moved to 2026-03-12T21:00:00+00:00, or the policy changed."
    current = Reminder.objects.get(session=session, status="pending")
    assert current.key == f"r{session.pk}-upcoming-email-1440m-20260312T210000Z"
    assert current.due_at == aware(2026, 3, 11, 14).astimezone(UTC)
    assert current.session_starts_at == aware(2026, 3, 12, 14).astimezone(UTC)


def test_moving_a_session_back_revives_its_cancelled_reminder_instead_of_writing_a_second():
    session = book(ClearedPatientFactory(), "integration", aware(2026, 3, 10, 10))
    move(session, aware(2026, 3, 12, 14))

    move(session, aware(2026, 3, 10, 10))

    assert [(r.status, r.session_starts_at) for r in Reminder.objects.order_by("id")] == [
        ("pending", aware(2026, 3, 10, 10).astimezone(UTC)),
        ("cancelled", aware(2026, 3, 12, 14).astimezone(UTC)),
    ]


def test_cancelling_a_session_cancels_its_pending_reminders_but_leaves_a_sent_one():
    session = book(ClearedPatientFactory(), "medicine", aware(2026, 3, 10, 10))
    sent = Reminder.objects.get(session=session, offset_minutes=4320)
    Reminder.objects.filter(pk=sent.pk).update(status="sent", sent_at=NOW)

    services.session_cancel(session, reason="Patient unwell")

    assert [(r[2], r[1], r[4]) for r in rows(session)] == [
        (4320, "email", "sent"),
        (1440, "email", "cancelled"),
        (1440, "sms", "cancelled"),
    ]
    assert set(
        Reminder.objects.filter(status="cancelled").values_list("last_error", flat=True)
    ) == {"Session is cancelled."}


def test_confirming_keeps_the_reminders_and_checking_in_cancels_them():
    session = book(ClearedPatientFactory(), "integration", aware(2026, 3, 3, 10))
    before = rows(session)

    services.session_confirm(session)
    assert rows(session) == before

    with time_machine.travel(aware(2026, 3, 3, 9, 55), tick=False):
        services.session_check_in(session)
    assert [r[4] for r in rows(session)] == ["cancelled"]


def test_completing_a_medicine_session_writes_the_integration_reminder_after_it():
    session = book(ClearedPatientFactory(), "medicine", aware(2026, 3, 2, 10))  # today, 09:00 now

    run_medicine(session)  # completed at 12:00

    assert [r for r in rows(session) if r[0] == "after_medicine"] == [
        ("after_medicine", "email", 180, aware(2026, 3, 2, 15).astimezone(UTC), "pending")
    ]


def test_a_no_show_cancels_the_reminders():
    session = book(ClearedPatientFactory(), "integration", aware(2026, 3, 3, 10))

    with time_machine.travel(aware(2026, 3, 3, 10, 45), tick=False):
        services.session_mark_no_show(session)

    assert [r[4] for r in rows(session)] == ["cancelled"]


def test_the_clinics_policy_sets_offsets_channels_and_quiet_hours_in_the_patients_zone():
    patient = ClearedPatientFactory(timezone="America/New_York", preferred_channel="sms")
    ReminderPolicyFactory(
        clinic=patient.clinic,
        schedule={"integration": [{"hours_before": 12, "channels": ["preferred", "email"]}]},
        quiet_start=dt.time(22),
        quiet_end=dt.time(7),
    )

    # 10:00 Los Angeles is 13:00 New York; 12 h before is 01:00 New York: quiet until 07:00 there
    session = book(patient, "integration", aware(2026, 3, 10, 10))

    due = dt.datetime(2026, 3, 10, 7, tzinfo=dt.timezone(dt.timedelta(hours=-4))).astimezone(UTC)
    assert rows(session) == [
        ("upcoming", "email", 720, due, "pending"),
        ("upcoming", "sms", 720, due, "pending"),
    ]


def test_sync_is_idempotent():
    session = book(ClearedPatientFactory(), "medicine", aware(2026, 3, 10, 10))
    before = list(Reminder.objects.order_by("id").values())

    reminders_sync(session)
    reminders_sync(session)

    assert list(Reminder.objects.order_by("id").values()) == before
