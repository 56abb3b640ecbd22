"""Booking throughput and latency through the real API, against PostgreSQL's own insert rate.

    uv run python benchmarks/booking_throughput.py [--rate 300] [--seconds 20] [--workers 4]

1. Recreates a dedicated database (``BENCH_DATABASE_URL``, default ``clinic_bench`` on the local
   PostgreSQL), migrates it and seeds a clinic with 50 therapy rooms, 50 therapists, 200 patients.
2. Starts gunicorn (several workers) on 127.0.0.1 with the production settings.
3. Drives ``POST /api/v1/sessions/`` (each with its own ``Idempotency-Key``, as a client would)
   from a small asyncio client at a constant rate (open loop: latency is measured from the moment
   each request was due, so a slow server cannot hide its queue), then at saturation (closed loop,
   64 in flight) for the most it sustains. Every booking is for a free slot and must answer 201.
4. Runs pgbench for a single-row insert into a table with the same kind of exclusion constraint
   (``room WITH =, tstzrange WITH &&`` over GiST with btree_gist) and prints the ratio.

Prints figures; asserts nothing. Traffic goes only to 127.0.0.1, and every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
ROOMS = 50
PATIENTS = 200
#: The seeded clinic opens 07:00-21:00 every day in its time zone; slots start at 08:00, 10:00 ...
#: 18:00 there, two hours apart, so a one-hour integration plus the room's turnover never overlap.
CLINIC_TZ = ZoneInfo("America/Los_Angeles")
SLOT_HOURS = (8, 10, 12, 14, 16, 18)


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "ERROR",
        "API_ACCESS_TOKEN_MINUTES": "120",
        "DATABASE_CONN_MAX_AGE": "600",
        "DJANGO_SETTINGS_MODULE": "clinic.settings",
        "PYTHONPATH": str(ROOT),
    }


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.endswith("bench"):
        raise SystemExit(
            f"Refusing to drop {name!r}: the benchmark database's name ends in 'bench'."
        )
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


SEED = """
import datetime as dt, json
from django.conf import settings
from django.utils import timezone
from clinic.models import Role, RoomKind
from clinic.services import clinic_create, patient_create, room_create, staff_create
from rest_framework_simplejwt.tokens import RefreshToken

# Nobody logs in with these passwords: a fast hasher keeps the seeding short.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
clinic = clinic_create(name="Bench Clinic", timezone_name="America/Los_Angeles",
                       opening_hours=[{"weekday": day, "start": dt.time(7), "end": dt.time(21)}
                                      for day in range(7)])
rooms = [room_create(clinic=clinic, name=f"Therapy {i}", kind=RoomKind.THERAPY_ROOM).pk
         for i in range({rooms})]
therapists = [staff_create(clinic=clinic, username=f"therapist{i}",
                           password="bench-pass-0123456789", full_name=f"Therapist {i}",
                           roles=[Role.THERAPIST]).pk
              for i in range({rooms})]
desk = staff_create(clinic=clinic, username="desk", password="bench-pass-0123456789",
                    full_name="Front Desk", roles=[Role.FRONT_DESK])
patients = [patient_create(clinic=clinic, full_name=f"Patient {i}",
                           date_of_birth=dt.date(1980, 1, 1), email=f"p{i}@example.org").pk
            for i in range({patients})]
print(json.dumps({"rooms": rooms, "therapists": therapists, "patients": patients,
                  "token": str(RefreshToken.for_user(desk.user).access_token)}))
"""


def seed(env: dict[str, str]) -> dict[str, object]:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    code = SEED.replace("{rooms}", str(ROOMS)).replace("{patients}", str(PATIENTS))
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gunicorn(
    env: dict[str, str], port: int, workers: int, threads: int, token: str
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "clinic.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    ready = 0
    while time.monotonic() < deadline and ready < 2 * workers:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/rooms/",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=5) as answer:
                ready += answer.status == 200
        except OSError:
            time.sleep(0.2)
    if ready >= 2 * workers:
        return server
    stop(server)
    raise SystemExit("gunicorn did not start")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


class Bookings:
    """Booking bodies for free slots: request i takes room and therapist i % 50 in slot i // 50,
    and a patient no other booking of that slot has."""

    def __init__(self, world: dict[str, object], start: dt.date) -> None:
        self.rooms: list[int] = world["rooms"]  # type: ignore[assignment]
        self.therapists: list[int] = world["therapists"]  # type: ignore[assignment]
        self.patients: list[int] = world["patients"]  # type: ignore[assignment]
        self.start = start
        self.next = 0

    def body(self) -> bytes:
        i, self.next = self.next, self.next + 1
        slot, lane = divmod(i, len(self.rooms))
        patient = self.patients[(slot * len(self.rooms) + lane) % len(self.patients)]
        day, hour = divmod(slot, len(SLOT_HOURS))
        starts_at = dt.datetime.combine(
            self.start + dt.timedelta(days=day), dt.time(SLOT_HOURS[hour]), CLINIC_TZ
        )
        return json.dumps(
            {
                "patient": patient,
                "kind": "integration",
                "starts_at": starts_at.isoformat(),
                "room": self.rooms[lane],
                "staff": [self.therapists[lane]],
            }
        ).encode()


class Connection:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST /api/v1/sessions/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {uuid.uuid4()}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return int(status_line.split()[1])


async def open_loop(
    port: int, token: str, bookings: Bookings, rate: float, seconds: float, connections: int
) -> tuple[list[float], dict[int, int], float]:
    """Request i is due at t0 + i / rate; its latency runs from then to its answer."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(port, token))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(due: float, body: bytes) -> None:
        connection = await pool.get()
        try:
            status = await connection.post(body)
        finally:
            pool.put_nowait(connection)
        latencies.append(loop.time() - due)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    for i in range(total):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, bookings.body())))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds * 20 + 60)
    return latencies, statuses, loop.time() - t0


async def closed_loop(
    port: int, token: str, bookings: Bookings, seconds: float, concurrency: int
) -> tuple[int, dict[int, int], float]:
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds

    async def worker() -> None:
        connection = Connection(port, token)
        while loop.time() < end:
            status = await connection.post(bookings.body())
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), timeout=seconds + 60
    )
    return sum(statuses.values()), statuses, loop.time() - start


PGBENCH_SETUP = """
DROP TABLE IF EXISTS bench_hold;
DROP SEQUENCE IF EXISTS bench_hold_n;
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE SEQUENCE bench_hold_n;
CREATE TABLE bench_hold (
    id bigserial PRIMARY KEY,
    room integer NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    CONSTRAINT bench_hold_no_overlap
        EXCLUDE USING gist (room WITH =, tstzrange(starts_at, ends_at) WITH &&)
);
"""

PGBENCH_SCRIPT = """
INSERT INTO bench_hold (room, starts_at, ends_at)
SELECT n % 50, timestamptz '2030-01-01' + (n / 50) * interval '2 hours',
       timestamptz '2030-01-01' + (n / 50) * interval '2 hours' + interval '75 minutes'
FROM (SELECT nextval('bench_hold_n') AS n) AS next;
"""


def pgbench(url: str, seconds: int, clients: int) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(PGBENCH_SETUP)
    parsed = urlparse(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-h",
            parsed.hostname or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            script.name,
            parsed.path.lstrip("/"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    Path(script.name).unlink()
    for line in out.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise SystemExit(out)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pgbench-clients", type=int, default=8)
    args = parser.parse_args()

    load_before = os.getloadavg()
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/clinic_bench")
    env = _env(url)
    recreate_database(url)
    world = seed(env)
    start = dt.datetime.now(CLINIC_TZ).date() + dt.timedelta(days=1)
    bookings = Bookings(world, start)
    port = free_port()
    token = str(world["token"])
    server = start_gunicorn(env, port, args.workers, args.threads, token)
    try:
        # Warm up: every worker opens its database connection and loads its code.
        asyncio.run(open_loop(port, token, bookings, 50, 2, 8))
        latencies, statuses, elapsed = asyncio.run(
            open_loop(port, token, bookings, args.rate, args.seconds, args.connections)
        )
        saturated, saturated_statuses, saturated_elapsed = asyncio.run(
            closed_loop(port, token, bookings, args.seconds / 2, args.connections)
        )
    finally:
        stop(server)
    tps = pgbench(url, 10, args.pgbench_clients)

    ms = [value * 1000 for value in latencies]
    achieved = len(latencies) / elapsed
    max_rate = saturated / saturated_elapsed
    print(
        f"server: gunicorn, {args.workers} workers x {args.threads} thread(s), "
        f"{os.cpu_count()} cores; client and server on this machine; load average before "
        f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (other work on the box skews it)"
    )
    print(
        f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f} s: "
        f"{achieved:.1f} req/s answered, statuses {statuses}"
    )
    print(
        f"  latency ms: p50 {statistics.median(ms):.1f}  p95 {percentile(ms, 0.95):.1f}  "
        f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}"
    )
    print(
        f"closed loop, {args.connections} in flight: {max_rate:.1f} req/s, "
        f"statuses {saturated_statuses}"
    )
    print(
        f"pgbench single-row insert with the exclusion constraint, "
        f"{args.pgbench_clients} clients: {tps:.0f} TPS"
    )
    print(
        f"ratio: booking at saturation / pgbench = {max_rate / tps:.1%} "
        f"(at the offered rate: {achieved / tps:.1%})"
    )
    refused = {
        status: count
        for answer in (statuses, saturated_statuses)
        for status, count in answer.items()
        if status != 201
    }
    if refused:
        raise SystemExit(
            f"Not every booking answered 201 ({refused}): these are not booking figures."
        )


if __name__ == "__main__":
    main()
