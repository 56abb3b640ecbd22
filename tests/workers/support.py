"""Helpers shared by the workers' tests: booking through the services, the file outbox, the
SMTP sink, and real worker / beat / Redis processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.db import connection

from clinic.models import Role, RoomKind
from protocols.selectors import step_for_kind
from scheduling import services
from scheduling.models import Session
from tests.factories import RoomFactory, StaffMemberFactory

ROOT = Path(__file__).resolve().parents[2]
ROOM_FOR_KIND = {
    "medicine": RoomKind.DOSING_ROOM,
    "integration": RoomKind.THERAPY_ROOM,
    "preparation": RoomKind.THERAPY_ROOM,
    "screening": RoomKind.THERAPY_ROOM,
    "follow_up": RoomKind.THERAPY_ROOM,
}


def book(patient: Any, kind: str, starts_at: dt.datetime, **extra: Any) -> Session:
    """Book through ``session_create`` with a fresh room and the staff the kind needs."""
    step = step_for_kind(
        extra.get("series").protocol_version if extra.get("series") else None, kind
    )
    room = RoomFactory(clinic=patient.clinic, kind=step.room_kind)
    staff = [
        StaffMemberFactory(clinic=patient.clinic, roles=[need.role], max_concurrent_patients=1)
        for need in step.roles
    ]
    return services.session_create(
        patient=patient, kind=kind, starts_at=starts_at, room=room, staff=staff, **extra
    )


def run_medicine(session: Session) -> Session:
    """Check a medicine session in and complete it through the services, recording what the
    safety gates ask for: a confirmed ride home, vitals, the dose, discharge."""
    from integration import services as clinical

    start, minute = session.starts_at, dt.timedelta(minutes=1)
    nurse = session.staff_holds.get(role=Role.NURSE).staff
    services.session_escort_set(
        session,
        name="Robin Nguyen",
        phone="+14155550199",
        is_confirmed=True,
        now=start - dt.timedelta(days=1),
    )
    services.session_check_in(session, now=start)

    def vitals(phase: str, at: dt.datetime) -> None:
        clinical.vital_signs_record(
            session=session,
            phase=phase,
            measured_at=at,
            recorded_by=nurse,
            now=session.ends_at,
            systolic_mmhg=124,
            diastolic_mmhg=78,
            heart_rate_bpm=72,
            spo2_percent=98,
        )

    vitals("before", start + 5 * minute)
    clinical.dose_record(
        session=session,
        route="im",
        dose_mg=Decimal("52.50"),
        weight_kg=Decimal("70.0"),
        started_at=start + 10 * minute,
        ended_at=start + 11 * minute,
        administered_by=nurse,
        now=session.ends_at,
    )
    vitals("after", start + 90 * minute)
    clinical.discharge_record(
        session=session,
        discharged_by=nurse,
        discharged_at=start + 110 * minute,
        escort_handoff_name="Robin Nguyen",
        criteria=dict.fromkeys(clinical.DISCHARGE_CRITERIA, True),
        now=session.ends_at,
    )
    return services.session_complete(session, now=session.ends_at)


def front_desk(clinic: Any, email: str = "desk@example.org") -> Any:
    member = StaffMemberFactory(clinic=clinic, roles=[Role.FRONT_DESK])
    member.user.email = email
    member.user.save(update_fields=["email"])
    return member


# --- the file outbox --------------------------------------------------------------------------


def outbox_files(directory: Path) -> dict[str, list[str]]:
    """Delivered messages per channel: file names without their suffix (the safe keys)."""
    found: dict[str, list[str]] = {}
    for channel in ("email", "sms"):
        folder = directory / channel
        found[channel] = (
            sorted(path.stem for path in folder.glob("*") if path.suffix in {".eml", ".json"})
            if folder.exists()
            else []
        )
    return found


def outbox_attempts(directory: Path) -> list[tuple[str, str]]:
    """Every delivery attempt the file backends saw: (accepted|duplicate, key)."""
    attempts: list[tuple[str, str]] = []
    for channel in ("email", "sms"):
        log = directory / channel / "attempts.log"
        if log.exists():
            attempts += [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]
    return attempts


# --- an SMTP sink -----------------------------------------------------------------------------


class SinkHandler:
    """Accepts every message and keeps it; ``refuse`` answers with an SMTP error instead."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: Callable[[int], str | None] = lambda n: None
        self.lock = threading.Lock()
        self.attempts = 0
        self.delay_after_accept = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            answer = self.refuse(self.attempts)
            if answer:
                return answer
            self.messages.append(message_from_bytes(envelope.content))
        if self.delay_after_accept:
            await asyncio.sleep(self.delay_after_accept)  # accepted, the answer not yet sent
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self.lock:
            return ["".join(str(message["Message-ID"]).split()) for message in self.messages]


@contextmanager
def smtp_sink() -> Iterator[tuple[SinkHandler, int]]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tests_database_url() -> str:
    settings = connection.settings_dict
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def worker_env(tmp_path: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REMINDER_", "EMAIL_", "SMS_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "clinic.settings",
            "DATABASE_URL": tests_database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": redis_url,
            "CLINIC_VAR_DIR": str(tmp_path / "var"),
            "REMINDER_OUTBOX_DIR": str(tmp_path / "outbox"),
            "REMINDER_LEASE_SECONDS": "3",
            "REMINDER_BATCH_SIZE": "10",
            "REMINDER_RETRY_BASE_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class Process:
    """A child process in its own process group, so SIGKILL takes its pool children too."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = open(log, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        """Tests own these processes and need nothing from a graceful shutdown."""
        self.kill()
        self.handle.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "clinic", *args]


def start_worker(
    env: dict[str, str], log: Path, *, concurrency: int = 2, name: str = "w1"
) -> Process:
    return Process(
        celery(
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            "--without-mingle",
            "--without-gossip",
        ),
        env,
        log,
    )


def start_beat(env: dict[str, str], log: Path) -> Process:
    return Process(celery("beat", "--loglevel=INFO", "--max-interval=1"), env, log)


def start_redis(port: int, directory: Path) -> Process:
    directory.mkdir(parents=True, exist_ok=True)
    process = Process(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        dict(os.environ),
        directory / "redis.log",
    )
    wait_for(lambda: _redis_answers(port), timeout=10, what="redis-server to start")
    return process


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
