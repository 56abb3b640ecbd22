"""How fast two worker processes drain a backlog of due reminders into the file outbox.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/clinic_bench \
    REDIS_URL=redis://127.0.0.1:6379/3 uv run python benchmarks/reminders.py [--count 100000]

Use a scratch database (it is migrated; the benchmark's own clinic is deleted at the end) and a
Redis database of its own. It writes ``--count`` reminders all due now, starts two Celery worker
processes (prefork, concurrency 1 each) delivering to a temporary file outbox, sends the dispatch
task the way beat does (once at the start, which starts a helper dispatcher, then every 30 s), and
prints progress, the wall time, and the lag between each reminder's due_at and its sent_at.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from clinic.celery import app  # noqa: E402
from clinic.models import Clinic, Patient, Room, RoomKind  # noqa: E402
from scheduling.models import Reminder, Session  # noqa: E402

SESSIONS = 1000


def seed(count: int) -> tuple[Clinic, dt.datetime]:
    now = timezone.now()
    clinic = Clinic.objects.create(name=f"Benchmark clinic {now:%Y%m%d%H%M%S}", timezone="UTC")
    patient = Patient.objects.create(
        clinic=clinic,
        full_name="Benchmark Patient",
        date_of_birth=dt.date(1980, 1, 1),
        email="bench@example.org",
        phone="+14155550100",
    )
    room = Room.objects.create(clinic=clinic, name="Bench", kind=RoomKind.THERAPY_ROOM)
    first = (now + dt.timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    sessions = Session.objects.bulk_create(
        Session(
            patient=patient,
            clinic=clinic,
            kind="integration",
            room=room,
            starts_at=first + dt.timedelta(hours=i),
            ends_at=first + dt.timedelta(hours=i, minutes=45),
            room_released_at=first + dt.timedelta(hours=i, minutes=60),
        )
        for i in range(SESSIONS)
    )
    due_at = timezone.now()
    rows = (
        Reminder(
            session=sessions[i % SESSIONS],
            clinic=clinic,
            purpose="upcoming",
            channel="email" if i % 2 else "sms",
            offset_minutes=24 * 60,
            session_starts_at=sessions[i % SESSIONS].starts_at,
            due_at=due_at,
            next_attempt_at=due_at,
            key=f"bench-{clinic.pk}-{i}",
        )
        for i in range(count)
    )
    Reminder.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scheduling_reminder")  # what autovacuum would do soon enough
    return clinic, due_at


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clinic",
            "worker",
            "--loglevel=WARNING",
            "--concurrency=1",
            f"--hostname={name}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def tick() -> None:
    app.send_task("scheduling.reminders_dispatch_due", kwargs={"fan_out": True})


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        sys.exit("Set DATABASE_URL (PostgreSQL, a scratch database) and REDIS_URL.")

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    clinic, _due_at = seed(args.count)
    print(f"seeded {args.count} due reminders in {time.monotonic() - started:.1f} s", flush=True)

    outbox = Path(tempfile.mkdtemp(prefix="reminders-bench-"))
    env = {
        **os.environ,
        "REMINDER_OUTBOX_DIR": str(outbox),
        "EMAIL_BACKEND": "scheduling.notifications.email.FileOutboxEmailBackend",
        "SMS_BACKEND": "scheduling.notifications.sms.FileSmsBackend",
    }
    env.pop("EMAIL_URL", None)
    app.connection_for_write().default_channel.client.delete("celery")  # our Redis db's queue only
    workers = [start_worker(f"bench{n}", env, outbox / f"worker{n}.log") for n in (1, 2)]
    try:
        begun = time.monotonic()
        tick()
        last_tick = begun
        pending = Reminder.objects.filter(clinic=clinic).exclude(status="sent")
        while True:
            time.sleep(2)
            left = pending.count()
            elapsed = time.monotonic() - begun
            done = args.count - left
            print(f"  {elapsed:6.1f} s  sent {done:>7}  ({done / elapsed:7.0f}/s)", flush=True)
            if left == 0:
                break
            if time.monotonic() - last_tick >= 30:
                tick()  # beat's tick
                last_tick = time.monotonic()
            if elapsed > 3600:
                sys.exit("Gave up after an hour.")
        wall = time.monotonic() - begun
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGKILL)  # their work is done, or the run is abandoned
            worker.wait(timeout=30)

    with connection.cursor() as cursor:
        cursor.execute(
            """WITH lag AS (SELECT extract(epoch FROM sent_at - due_at) AS s, attempts
                            FROM scheduling_reminder WHERE clinic_id = %s)
               SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY s),
                      max(s), count(*), max(attempts) FROM lag""",
            [clinic.pk],
        )
        p50, p99, worst, rows, attempts = cursor.fetchone()
    files = sum(1 for _ in (outbox / "email").glob("*.eml")) + sum(
        1 for _ in (outbox / "sms").glob("*.json")
    )
    print(f"reminders: {rows}, files delivered: {files}, most attempts on one row: {attempts}")
    print(f"wall time (two workers): {wall:.1f} s  = {args.count / wall:.0f} reminders/s")
    print(f"lag due_at -> sent_at: p50 {p50:.1f} s, p99 {p99:.1f} s, max {worst:.1f} s")

    Reminder.objects.filter(clinic=clinic).delete()
    Session.objects.filter(clinic=clinic).delete()
    Room.objects.filter(clinic=clinic).delete()
    Patient.objects.filter(clinic=clinic).delete()
    clinic.delete()


if __name__ == "__main__":
    main()
