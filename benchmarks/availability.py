"""Free start times (``GET /api/v1/availability/``) at 1k, 10k and 100k sessions (issue 4).

    uv run --group bench python benchmarks/availability.py [--sizes 1000,10000,100000] [--runs 50]

For each size, empties a dedicated database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/clinic_bench_availability``; created and migrated when
missing; a name without "bench" is refused; ``DATABASE_URL`` is ignored) and writes the planner
benchmark's synthetic clinic (``benchmarks/synthetic_clinic.py``: America/Los_Angeles, 39 rooms,
50 staff with weekday hours, nurses watching 3 chairs, US holidays, time off) with that many live
sessions spread over the same two and a half years whatever the size (the rooms are booked
``75 % x size / 100k`` of their time). Then, for ``--runs`` 30-day windows spread over those two
years, it asks for the free starts of one full-time therapist (an integration session, and a
medicine session, which also needs a nurse) for a patient:

- through the service, ``scheduling.availability.availability``;
- through the API, ``GET /api/v1/availability/`` with the Django test client and a real bearer
  token of a front desk (authentication, scoping, the audit row and JSON included);

and prints median, p95 and max wall time, the process's CPU time (p50/p95), the queries per call
and the starts found, next to the target: p95 at most 15 ms and at most 5 queries, flat from 1k
to 100k. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import planner as planner_bench  # noqa: E402
from benchmarks.synthetic_clinic import BENCH_CLINIC, SyntheticClinic, generate_clinic  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/clinic_bench_availability"
FIRST_DAY = date(2027, 1, 4)  # a Monday, in the future, so that no start is in the past
#: At 75 % of the rooms' time 100k sessions take about two and a half years; smaller sizes book
#: the rooms in proportion, so every size spreads over about the same years.
FULL_UTILIZATION_SESSIONS = 100_000
SPAN_DAYS = 1100  # a cap the generator does not reach
WINDOW_DAYS = 30
TARGET_P95_MS = 15.0
TARGET_QUERIES = 5
KINDS = ("integration", "medicine")


def database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    if "bench" not in urlparse(url).path.lstrip("/"):
        raise SystemExit("Refusing to empty a database whose name has no 'bench' in it.")
    return url


def synthetic_clinic(size: int, *, shape: Any = BENCH_CLINIC, span_days: int = SPAN_DAYS) -> Any:
    """``size`` live sessions spread over ``span_days``: the rooms are booked in proportion."""
    utilization = min(0.75, 0.75 * size / FULL_UTILIZATION_SESSIONS)
    return generate_clinic(
        shape,
        first_day=FIRST_DAY,
        live_sessions=size,
        days=span_days,
        utilization=utilization,
        seed=size,
    )


@dataclass(frozen=True)
class Target:
    """Who and what the benchmark asks about, in a written clinic."""

    clinic_id: int
    patient_id: int
    therapist_id: int
    front_desk_user_id: int
    first_day: date
    last_day: date


def target_in(label: str, patient_id: int, first_day: date, last_day: date) -> Target:
    """A full-time therapist (working every weekday) and a front desk of the clinic."""
    from clinic.models import Clinic, Role, StaffMember, User

    clinic = Clinic.objects.get(name=label)
    therapist = (
        StaffMember.objects.filter(clinic=clinic, role_grants__role=Role.THERAPIST)
        .filter(working_hours__weekday=4)
        .filter(working_hours__weekday=0, working_hours__start__lte="09:00")
        .order_by("id")
        .first()
    )
    assert therapist is not None, "the synthetic clinic has full-time therapists"
    desk = User.objects.get(
        staff_profile__clinic=clinic,
        staff_profile__role_grants__role=Role.FRONT_DESK,
        pk=User.objects.filter(
            staff_profile__clinic=clinic, staff_profile__role_grants__role=Role.FRONT_DESK
        )
        .order_by("id")
        .values("pk")[:1],
    )
    return Target(clinic.pk, patient_id, therapist.pk, desk.pk, first_day, last_day)


def window_starts(first_day: date, last_day: date, runs: int) -> list[date]:
    """``runs`` first days of 30-day windows spread evenly over the booked period."""
    usable = max(0, (last_day - first_day).days - WINDOW_DAYS)
    return [first_day + timedelta(days=usable * n // max(1, runs - 1)) for n in range(runs)]


@dataclass
class Timings:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)


def _timed(timings: Timings, call: Callable[[], int]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        wall, cpu = clock.perf_counter(), clock.process_time()
        found = call()
        wall, cpu = clock.perf_counter() - wall, clock.process_time() - cpu
    timings.wall_ms.append(wall * 1000)
    timings.cpu_ms.append(cpu * 1000)
    timings.queries.append(len(captured.captured_queries))
    timings.starts.append(found)


def service_call(target: Target, kind: str, first: date) -> Callable[[], int]:
    from clinic.models import Clinic
    from protocols.selectors import step_for_kind
    from scheduling.availability import availability

    clinic = Clinic.objects.get(pk=target.clinic_id)
    step = step_for_kind(None, kind)

    def call() -> int:
        found = availability(
            clinic,
            step,
            first,
            first + timedelta(days=WINDOW_DAYS - 1),
            patient_id=target.patient_id,
            staff_id=target.therapist_id,
        )
        return len(found.starts)

    return call


def api_client(target: Target) -> Any:
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from clinic.models import User

    client = APIClient(SERVER_NAME="localhost")
    token = RefreshToken.for_user(User.objects.get(pk=target.front_desk_user_id)).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def api_call(client: Any, target: Target, kind: str, first: date) -> Callable[[], int]:
    params = {
        "kind": kind,
        "date_from": first.isoformat(),
        "date_to": (first + timedelta(days=WINDOW_DAYS - 1)).isoformat(),
        "patient": target.patient_id,
        "staff": target.therapist_id,
    }

    def call() -> int:
        answer = client.get("/api/v1/availability/", params)
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.status_code}: {answer.content[:300]!r}")
        return len(answer.json()["starts"])

    return call


def measure(target: Target, kind: str, runs: int) -> tuple[Timings, Timings]:
    """Time the service and the API on ``runs`` windows (after one warm-up call each)."""
    service, api = Timings(), Timings()
    client = api_client(target)
    firsts = window_starts(target.first_day, target.last_day, runs)
    service_call(target, kind, firsts[0])()
    api_call(client, target, kind, firsts[0])()
    for first in firsts:
        _timed(service, service_call(target, kind, first))
        _timed(api, api_call(client, target, kind, first))
    return service, api


def percentile(values: Sequence[float], q: float) -> float:
    return planner_bench.percentile(values, q)


def row(size: int, kind: str, path: str, t: Timings) -> str:
    counts = "/".join(map(str, sorted(set(t.queries))))
    return (
        f"  {size:>9,} {kind:<11} {path:<7} {statistics.median(t.wall_ms):>7.1f}"
        f" {percentile(t.wall_ms, 95):>7.1f} {max(t.wall_ms):>7.1f}"
        f" {percentile(t.cpu_ms, 50):>8.1f} {percentile(t.cpu_ms, 95):>8.1f}"
        f" {counts:>8} {round(statistics.mean(t.starts)):>7}"
    )


def verdict(service: Sequence[tuple[int, str, Timings]]) -> str:
    p95s = [percentile(t.wall_ms, 95) for _, _, t in service]
    queries = max(max(t.queries) for _, _, t in service)
    time_met = max(p95s) <= TARGET_P95_MS
    queries_met = queries <= TARGET_QUERIES
    return (
        f"target (service): p95 <= {TARGET_P95_MS:g} ms: {'met' if time_met else 'MISSED'} "
        f"(worst p95 {max(p95s):.1f} ms); queries <= {TARGET_QUERIES}: "
        f"{'met' if queries_met else 'MISSED'} (at most {queries}, "
        f"{'flat' if len({q for _, _, t in service for q in t.queries}) == 1 else 'not flat'})"
    )


def seed(size: int, reuse: bool, progress: Callable[[str], None]) -> Target:
    began = clock.perf_counter()
    progress(f"{size:,} live sessions: generating the clinic ...")
    clinic: SyntheticClinic = synthetic_clinic(size)
    progress(
        f"  {len(clinic.sessions):,} sessions ({clinic.live_sessions:,} live) from "
        f"{clinic.first_day} to {clinic.last_day} ({clock.perf_counter() - began:.1f} s); "
        "writing ..."
    )
    label = f"Availability benchmark: {size} live sessions, seed {size}"
    seeded = planner_bench.seed_database(
        clinic, label, lambda line: progress(f"    {line}"), reuse=reuse
    )
    progress(f"  seeded in {seeded.seconds:.1f} s")
    target = target_in(label, seeded.patient_id, clinic.first_day, clinic.last_day)
    del clinic
    gc.collect()
    return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000", help="live sessions")
    parser.add_argument("--runs", type=int, default=50, help="30-day windows per kind and size")
    parser.add_argument("--reseed", action="store_true", help="write the clinic again")
    args = parser.parse_args(argv)
    began = clock.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} (1, 5, 15 min)", flush=True)
    planner_bench.prepare_database(database_url())

    def progress(line: str) -> None:
        print(line, flush=True)

    rows: list[str] = []
    service_timings: list[tuple[int, str, Timings]] = []
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        target = seed(size, not args.reseed, progress)
        for kind in KINDS:
            progress(f"  timing {kind}, {args.runs} windows of {WINDOW_DAYS} days ...")
            service, api = measure(target, kind, args.runs)
            service_timings.append((size, kind, service))
            rows += [row(size, kind, "service", service), row(size, kind, "api", api)]
            progress(rows[-2])
            progress(rows[-1])
    print(f"\nFree starts of one therapist for a patient, {WINDOW_DAYS} days (ms):")
    print(
        f"  {'sessions':>9} {'kind':<11} {'path':<7} {'p50':>7} {'p95':>7} {'max':>7}"
        f" {'cpu p50':>8} {'cpu p95':>8} {'queries':>8} {'starts':>7}"
    )
    for line in rows:
        print(line)
    print(
        "  wall time per call; cpu = this process's CPU time (leaves out PostgreSQL's work); "
        "queries per call (api: with authentication, scoping and the audit row); starts = mean "
        "free starts found"
    )
    if service_timings:
        print(verdict(service_timings))
    print(f"\ndone in {clock.perf_counter() - began:.0f} s; load average {_load()}")


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
