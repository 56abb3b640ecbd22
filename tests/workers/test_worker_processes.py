"""Exactly once, proven with real processes: Celery workers (and beats) started as subprocesses
against this test database and a real Redis, delivering to the file outbox or an SMTP sink, which
the tests count. Workers are SIGKILLed mid-batch, Redis is killed and restarted (our own
redis-server on a free port, never the machine's), two beats run at once.

Rows must be committed for a worker to see them, hence ``transaction=True``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from django.apps import apps as django_apps
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from clinic.celery import app
from scheduling import services
from scheduling.models import Reminder
from scheduling.notifications.files import safe_name
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    PatientFactory,
    ReminderFactory,
    ReminderPolicyFactory,
    RoomFactory,
    SessionFactory,
)
from tests.workers.support import (
    Process,
    book,
    free_port,
    outbox_attempts,
    outbox_files,
    smtp_sink,
    start_beat,
    start_redis,
    start_worker,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]
DOMAIN = "reminders.ketamine-clinic.invalid"
KOMBU_KEYS = ("celery", "unacked", "unacked_index", "unacked_mutex", "_kombu.binding.celery")


@pytest.fixture
def broker_url() -> str:
    """The suite's Redis database, emptied of Celery's queue (only its keys: other engineers'
    databases and keys are never touched)."""
    url = settings.REDIS_URL
    redis.Redis.from_url(url).delete(*KOMBU_KEYS)
    return url


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


def due_reminders(count: int, *, channels: tuple[str, ...] = ("email", "sms")) -> list[str]:
    """``count`` sessions two days ahead, each with a reminder per channel due a second ago."""
    now = timezone.now()
    clinic = ClinicFactory()
    patient = PatientFactory(clinic=clinic)
    room = RoomFactory(clinic=clinic)
    keys = []
    for index in range(count):
        starts_at = now + dt.timedelta(days=2, hours=2 * index)
        session = SessionFactory(patient=patient, room=room, starts_at=starts_at)
        for channel in channels:
            reminder = ReminderFactory(
                session=session,
                channel=channel,
                due_at=now - dt.timedelta(seconds=1),
                key=f"r{session.pk}-upcoming-{channel}-1440m-test",
            )
            keys.append(reminder.key)
    return keys


def zone_at_midday(moment: dt.datetime) -> str:
    """A fixed-offset zone in which ``moment`` falls between 11:00 and 13:00 local time."""
    offset = 12 - moment.astimezone(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def dispatch(broker: str) -> None:
    """What beat does every tick: put one dispatch task on the queue."""
    with app.connection_for_write(broker) as connection:
        app.send_task(
            "scheduling.reminders_dispatch_due", kwargs={"fan_out": True}, connection=connection
        )


def all_sent(keys: list[str]) -> bool:
    return Reminder.objects.filter(key__in=keys, status="sent").count() == len(keys)


def dispatch_until_sent(broker: str, keys: list[str], *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all_sent(keys):
        assert time.monotonic() < deadline, Counter(
            Reminder.objects.filter(key__in=keys).values_list("status", flat=True)
        )
        dispatch(broker)
        time.sleep(1)


def delivered(outbox: Path) -> list[str]:
    files = outbox_files(outbox)
    return sorted(files["email"] + files["sms"])


def test_a_worker_killed_mid_batch_and_restarted_sends_every_reminder_exactly_once(
    tmp_path: Path, broker_url: str, processes: list[Process]
) -> None:
    # given 24 due reminders and a provider that takes 0.5 s to answer after accepting a message
    keys = due_reminders(12)
    outbox = tmp_path / "outbox"
    env = worker_env(
        tmp_path, broker_url, REMINDER_FILE_BACKEND_LATENCY="0.5", REMINDER_BATCH_SIZE="4"
    )
    processes.append(start_worker(env, tmp_path / "worker1.log"))
    dispatch(broker_url)

    # when the worker is SIGKILLed after 8 deliveries, mid-batch
    wait_for(lambda: len(delivered(outbox)) >= 8, timeout=60, what="8 deliveries", every=0.01)
    processes[0].kill()
    on_disk = set(delivered(outbox))
    claimed = set(
        Reminder.objects.filter(key__in=keys, status="sending").values_list("key", flat=True)
    )
    accepted_not_recorded = {key for key in claimed if safe_name(key) in on_disk}
    assert 8 <= len(on_disk) < 24
    assert accepted_not_recorded, "the kill should land between 'provider accepted' and 'sent'"

    # and a new worker takes over once the dead worker's leases (3 s) run out
    processes.append(start_worker(env, tmp_path / "worker2.log", name="w2"))
    dispatch_until_sent(broker_url, keys)

    # then every reminder was delivered exactly once; the re-sends of the rows caught in the
    # window were recognised by their idempotency key
    assert delivered(outbox) == sorted(safe_name(key) for key in keys)
    attempts = Counter(outcome for outcome, _ in outbox_attempts(outbox))
    assert attempts == {"accepted": 24, "duplicate": len(accepted_not_recorded)}
    assert dict(
        Counter(Reminder.objects.filter(key__in=keys).values_list("status", flat=True))
    ) == {"sent": 24}
    resent = Reminder.objects.filter(key__in=accepted_not_recorded)
    assert min(resent.values_list("attempts", flat=True)) >= 2


def test_reminders_are_sent_exactly_once_across_a_redis_restart(
    tmp_path: Path, processes: list[Process]
) -> None:
    # given our own redis-server (the machine's shared one is never restarted)
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_process = start_redis(port, tmp_path / "redis")
    processes.append(redis_process)
    keys = due_reminders(15)
    outbox = tmp_path / "outbox"
    env = worker_env(tmp_path, broker, REMINDER_FILE_BACKEND_LATENCY="0.05")
    processes.append(start_worker(env, tmp_path / "worker.log"))
    dispatch(broker)
    wait_for(lambda: len(delivered(outbox)) >= 5, timeout=60, what="5 deliveries", every=0.01)

    # when Redis dies (losing every queued message), more reminders fall due, and Redis returns
    redis_process.kill()
    keys += due_reminders(5)
    time.sleep(1)
    processes.append(start_redis(port, tmp_path / "redis"))
    dispatch_until_sent(broker, keys, timeout=90)

    # then each was delivered once, and no delivery was even attempted twice
    assert delivered(outbox) == sorted(safe_name(key) for key in keys)
    assert Counter(outcome for outcome, _ in outbox_attempts(outbox)) == {"accepted": 40}


def test_a_moved_sessions_old_reminder_and_a_cancelled_sessions_reminder_are_never_sent(
    tmp_path: Path, broker_url: str, processes: list[Process]
) -> None:
    # given three integration sessions whose 24 h reminders fall due 5 seconds from now, in a
    # clinic whose zone puts that moment in its opening hours whenever the test runs
    starts_at = (timezone.now() + dt.timedelta(hours=24, seconds=5)).replace(microsecond=0)
    clinic = ClinicFactory(
        timezone=zone_at_midday(starts_at),
        opening_hours=[(day, dt.time(8), dt.time(18)) for day in range(7)],
    )
    ReminderPolicyFactory(
        clinic=clinic,
        schedule={"integration": [{"hours_before": 24, "channels": ["preferred"]}]},
        quiet_start=dt.time(0),
        quiet_end=dt.time(0),
    )
    kept, moved, cancelled = (
        book(ClearedPatientFactory(clinic=clinic), "integration", starts_at) for _ in range(3)
    )
    old_key = Reminder.objects.get(session=moved).key

    # when one is moved two days later and one is cancelled before their reminders are due
    services.session_reschedule(moved, starts_at=starts_at + dt.timedelta(days=2))
    services.session_cancel(cancelled, reason="Patient travelling")

    outbox = tmp_path / "outbox"
    processes.append(start_worker(worker_env(tmp_path, broker_url), tmp_path / "worker.log"))
    kept_key = Reminder.objects.get(session=kept).key
    dispatch_until_sent(broker_url, [kept_key], timeout=60)
    for _ in range(3):  # a few more ticks after everything that was due
        dispatch(broker_url)
        time.sleep(1)

    # then only the kept session's reminder went out
    assert delivered(outbox) == [safe_name(kept_key)]
    assert sorted(Reminder.objects.values_list("session_id", "status")) == sorted(
        [
            (kept.pk, "sent"),
            (moved.pk, "cancelled"),
            (moved.pk, "pending"),
            (cancelled.pk, "cancelled"),
        ]
    )
    assert Reminder.objects.get(key=old_key).status == "cancelled"


def _beat_schedule_every_second() -> None:
    """The migration's schedule (a transactional test's flush removed it), with the reminder
    dispatch every second and the other scans switched off."""
    migration = __import__(
        "scheduling.migrations.0004_worker_beat_schedule", fromlist=["create_schedule"]
    )
    migration.create_schedule(django_apps, None)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.exclude(task="scheduling.reminders_dispatch_due").update(enabled=False)
    PeriodicTask.objects.filter(task="scheduling.reminders_dispatch_due").update(
        interval=every_second, enabled=True
    )


def test_two_beats_and_two_workers_at_once_send_nothing_twice(
    tmp_path: Path, broker_url: str, processes: list[Process]
) -> None:
    _beat_schedule_every_second()
    keys = due_reminders(20)
    outbox = tmp_path / "outbox"
    env = worker_env(tmp_path, broker_url, REMINDER_FILE_BACKEND_LATENCY="0.02")

    processes.append(start_worker(env, tmp_path / "worker1.log", name="w1"))
    processes.append(start_worker(env, tmp_path / "worker2.log", name="w2"))
    beats = [start_beat(env, tmp_path / f"beat{n}.log") for n in (1, 2)]
    processes.extend(beats)
    wait_for(lambda: all_sent(keys), timeout=90, what="every reminder sent", every=0.2)
    time.sleep(3)  # more ticks from both beats after the last one was sent

    assert delivered(outbox) == sorted(safe_name(key) for key in keys)
    assert Counter(outcome for outcome, _ in outbox_attempts(outbox)) == {"accepted": 40}
    assert set(Reminder.objects.values_list("attempts", flat=True)) == {1}
    for beat in beats:
        assert "Sending due task clinic: scheduling.reminders_dispatch_due" in beat.tail(400)


def test_every_reminder_reaches_an_smtp_relay_once_with_its_key_as_message_id(
    tmp_path: Path, broker_url: str, processes: list[Process]
) -> None:
    keys = due_reminders(20, channels=("email",))
    with smtp_sink() as (sink, port):
        env = worker_env(tmp_path, broker_url, EMAIL_URL=f"smtp://127.0.0.1:{port}")
        processes.append(start_worker(env, tmp_path / "worker.log"))
        dispatch_until_sent(broker_url, keys)
        received = sink.message_ids()

    assert sorted(received) == sorted(f"<{key}@{DOMAIN}>" for key in keys)


def test_an_smtp_relay_can_receive_a_message_twice_when_the_worker_dies_in_the_window(
    tmp_path: Path, broker_url: str, processes: list[Process]
) -> None:
    """The honest limit of plain SMTP: a relay that accepted a message whose sender died before
    recording it gets it again. Both copies carry the same Message-ID, which receiving systems
    can deduplicate on; nothing is lost, and nothing outside that window is doubled."""
    keys = due_reminders(12, channels=("email",))
    with smtp_sink() as (sink, port):
        sink.delay_after_accept = 0.3
        env = worker_env(tmp_path, broker_url, EMAIL_URL=f"smtp://127.0.0.1:{port}")
        processes.append(start_worker(env, tmp_path / "worker1.log"))
        dispatch(broker_url)
        wait_for(lambda: len(sink.message_ids()) >= 4, timeout=60, what="4 messages", every=0.01)
        processes[0].kill()
        time.sleep(0.5)  # a message whose DATA arrived whole before the kill is still accepted
        at_kill = set(sink.message_ids())
        claimed = Reminder.objects.filter(key__in=keys, status="sending").values_list(
            "key", flat=True
        )
        in_window = {key for key in claimed if f"<{key}@{DOMAIN}>" in at_kill}

        processes.append(start_worker(env, tmp_path / "worker2.log", name="w2"))
        dispatch_until_sent(broker_url, keys)
        received = sink.message_ids()

    assert sorted(set(received)) == sorted(f"<{key}@{DOMAIN}>" for key in keys)
    doubled = sorted(mid for mid, n in Counter(received).items() if n > 1)
    assert doubled == sorted(f"<{key}@{DOMAIN}>" for key in in_window)
    assert len(received) == 12 + len(in_window)
