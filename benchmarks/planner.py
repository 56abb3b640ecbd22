"""The series planner's figures: latency on PostgreSQL at 1k-100k sessions, and plan quality
against Google OR-Tools CP-SAT.

    uv run --group bench python benchmarks/planner.py [--sizes 1000,10000,100000] [--runs 50]

1. Latency. For each size, empties a dedicated database (``BENCH_DATABASE_URL``, default
   ``postgres://postgres@127.0.0.1:5432/clinic_bench_planner``; created and migrated when
   missing; any other database is refused), writes a synthetic clinic like the demo one, scaled
   up (America/Los_Angeles, 39 rooms, 50 staff, nurses watching 3 chairs, US holidays, time off)
   with that many live sessions laid day after day at 75 % of the rooms' time
   (``benchmarks/synthetic_clinic.py``; 100k sessions span about two and a half years), and a
   fresh patient with a cleared screening and a signed consent. Then it times
   ``scheduling.services.series_plan`` (loading from the database included) for the KAP series
   and the IV infusion induction from ``--runs`` start dates spread over the busy period, and
   prints p50/p95, where the time goes (loading vs planning) and the queries per plan.
2. Quality. On small clinics from the same generator (no database; ``--cpsat-seeds`` per
   protocol) and on one hand-made instance (``turnover_instance``), plans each instance with
   ``plan_series`` and with the CP-SAT model of ``benchmarks/planner_cpsat.py``, checks both
   schedules independently, and prints the planner's finish against CP-SAT's optimum. A
   disagreement prints both schedules and the command that reproduces it.

``DATABASE_URL`` is ignored: the script empties its database, so it only takes
``BENCH_DATABASE_URL`` and refuses a name without "bench".

Prints figures; asserts nothing. ``--profile`` adds a cProfile of the largest size's KAP runs and
EXPLAIN ANALYZE of its loading queries.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time as clock
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.planner_cpsat import (  # noqa: E402
    Instance,
    ScheduledSession,
    allowed_orders,
    check_schedule,
    solve_cpsat,
)
from benchmarks.synthetic_clinic import (  # noqa: E402
    BENCH_CLINIC,
    OPENING_HOURS,
    SMALL_CLINIC,
    SyntheticClinic,
    generate_clinic,
    planner_inputs,
)
from protocols.rules import (  # noqa: E402
    PatientGates,
    ProtocolSpec,
    ScreeningFact,
    day_start,
    protocol_from_dict,
)
from scheduling.planner import (  # noqa: E402
    ClinicCalendar,
    Interval,
    Plan,
    PlanRequest,
    RoomSupply,
    StaffSupply,
    plan_series,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/clinic_bench_planner"
PROTOCOL_FILES = {
    "kap": "kap.json",
    "infusion": "iv_infusion_induction.json",
    "kap_short": "kap_short_course.json",
}
FIRST_DAY = date(2027, 1, 4)  # a Monday
PLAN_WINDOW_DAYS = 42  # busy days left after the last start date (a KAP series takes 16-18)
TARGET_P95_MS = 50.0


def protocol(key: str) -> ProtocolSpec:
    data = json.loads((ROOT / "protocols" / "data" / PROTOCOL_FILES[key]).read_text())
    return protocol_from_dict({k: data[k] for k in ("name", "care_model", "steps", "rules")})


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 50 values is the 48th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# ============================================================================================
# 1. Latency against PostgreSQL
# ============================================================================================


def database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"Refusing to empty {name!r}: the benchmark database's name has 'bench'.")
    return url


def prepare_database(url: str) -> None:
    """Create the benchmark database if missing, point Django at it and migrate."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    # This process only ever talks to the benchmark database, whatever DATABASE_URL says.
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@dataclass
class Seeded:
    """What the timing needs of a written clinic. The generated sessions themselves are not
    kept: a quarter of a million objects would make every garbage collection during the timed
    calls scan them, which no server process does."""

    patient_id: int
    versions: dict[str, int]
    seconds: float
    tz: ZoneInfo
    first_day: date
    last_day: date
    live_starts: list[datetime]  # sorted


def _seeded(
    clinic: SyntheticClinic, patient_id: int, versions: dict[str, int], began: float
) -> Seeded:
    return Seeded(
        patient_id,
        versions,
        clock.perf_counter() - began,
        clinic.tz,
        clinic.first_day,
        clinic.last_day,
        sorted(s.start for s in clinic.sessions if s.is_live),
    )


def seed_database(
    clinic: SyntheticClinic, label: str, progress: Callable[[str], None], *, reuse: bool
) -> Seeded:
    """Empty the benchmark database and write ``clinic``; with ``reuse``, keep what an earlier
    run wrote for the same ``label`` (the generator is deterministic)."""
    from django.core.management import call_command

    from clinic.models import Clinic, Patient
    from scheduling.models import Session

    began = clock.perf_counter()
    site = Clinic.objects.filter(name=label).first()
    if reuse and site is not None and Session.objects.count() == len(clinic.sessions):
        progress("reusing the clinic an earlier run wrote (--reseed writes it again)")
        patient = Patient.objects.get(clinic=site, full_name=FRESH_PATIENT)
        return _seeded(clinic, patient.pk, _standard_versions(), began)
    call_command("flush", interactive=False, verbosity=0)
    seeded = write_clinic(clinic, label, progress)
    seeded.seconds = clock.perf_counter() - began
    return seeded


def _standard_versions() -> dict[str, int]:
    from protocols.services import protocols_load_standard

    by_name = {version.protocol.name: version.pk for version, _ in protocols_load_standard()}
    return {key: by_name[protocol(key).name] for key in ("kap", "infusion")}


FRESH_PATIENT = "Benchmark patient (no sessions)"


def write_clinic(clinic: SyntheticClinic, label: str, progress: Callable[[str], None]) -> Seeded:
    """Write ``clinic`` with ``bulk_create`` (rows in the order the exclusion constraints
    accept them) and a fresh patient with a cleared screening and a signed consent."""
    from django.db import connection, transaction

    from clinic.models import (
        Clinic,
        Closure,
        Consent,
        OpeningHours,
        Patient,
        Room,
        Screening,
        StaffMember,
        StaffRole,
        TimeOff,
        User,
        WorkingHours,
    )
    from scheduling.models import Session, SessionStaff, SessionStatus

    began = clock.perf_counter()
    tz = clinic.tz
    with transaction.atomic():
        versions = _standard_versions()
        site = Clinic.objects.create(name=label, timezone=tz.key)
        OpeningHours.objects.bulk_create(
            OpeningHours(clinic=site, weekday=h.weekday, start=h.start, end=h.end)
            for h in clinic.opening_hours
        )
        last = clinic.last_day + timedelta(days=400)
        Closure.objects.bulk_create(
            Closure(clinic=site, date=day, reason="Holiday")
            for day in sorted(clinic.closures)
            if clinic.first_day - timedelta(days=30) <= day <= last
        )
        rooms = Room.objects.bulk_create(
            Room(clinic=site, name=r.name, kind=r.kind, turnover_minutes=r.turnover_minutes)
            for r in clinic.rooms
        )
        users = User.objects.bulk_create(
            User(username=f"bench-staff-{n}", password="!") for n in range(len(clinic.staff))
        )
        members = StaffMember.objects.bulk_create(
            StaffMember(
                user=user, clinic=site, full_name=p.name, max_concurrent_patients=p.capacity
            )
            for user, p in zip(users, clinic.staff, strict=True)
        )
        StaffRole.objects.bulk_create(
            StaffRole(staff=m, role=role)
            for m, p in zip(members, clinic.staff, strict=True)
            for role in p.roles
        )
        WorkingHours.objects.bulk_create(
            WorkingHours(staff=m, weekday=h.weekday, start=h.start, end=h.end)
            for m, p in zip(members, clinic.staff, strict=True)
            for h in p.working_hours
        )
        TimeOff.objects.bulk_create(
            TimeOff(staff=m, starts_at=iv.start, ends_at=iv.end, reason="Leave")
            for m, p in zip(members, clinic.staff, strict=True)
            for iv in p.time_off
        )
        patients = Patient.objects.bulk_create(
            (
                Patient(
                    clinic=site,
                    full_name=f"Patient {n}",
                    date_of_birth=date(1960 + n % 40, 1 + n % 12, 1 + n % 28),
                    email=f"patient{n}@example.org",
                )
                for n in range(clinic.patients)
            ),
            batch_size=5000,
        )
        fresh = Patient.objects.create(
            clinic=site,
            full_name=FRESH_PATIENT,
            date_of_birth=date(1980, 1, 1),
            email="fresh.patient@example.org",
        )
        prescriber = next(
            m for m, p in zip(members, clinic.staff, strict=True) if "prescriber" in p.roles
        )
        Screening.objects.create(
            patient=fresh,
            result="cleared",
            cleared_by=prescriber,
            screened_on=clinic.first_day - timedelta(days=30),
            valid_until=last,
        )
        Consent.objects.create(
            patient=fresh,
            signed_at=day_start(clinic.first_day - timedelta(days=30), tz),
            document_version="bench-1",
        )
    progress(f"clinic, {len(rooms)} rooms, {len(members)} staff, {len(patients) + 1} patients")
    middle = day_start(clinic.first_day + (clinic.last_day - clinic.first_day) / 2, tz)
    batch = 10_000
    total = len(clinic.sessions)
    written = 0
    for offset in range(0, total, batch):
        chunk = clinic.sessions[offset : offset + batch]
        with transaction.atomic():
            sessions = Session.objects.bulk_create(
                Session(
                    patient=patients[s.patient],
                    clinic=site,
                    kind=s.kind,
                    route=s.route,
                    room=rooms[s.room],
                    starts_at=s.start,
                    ends_at=s.end,
                    room_released_at=s.room_released,
                    status=(
                        SessionStatus.CANCELLED
                        if not s.is_live
                        else SessionStatus.COMPLETED
                        if s.start < middle
                        else SessionStatus.BOOKED
                    ),
                )
                for s in chunk
            )
            SessionStaff.objects.bulk_create(
                SessionStaff(
                    session=row,
                    staff=members[h.staff],
                    role=h.role,
                    starts_at=h.start,
                    ends_at=h.end,
                    is_active=s.is_live,
                    is_exclusive=clinic.staff[h.staff].capacity == 1,
                )
                for row, s in zip(sessions, chunk, strict=True)
                for h in s.holds
            )
        written += len(chunk)
        progress(f"sessions {written:,}/{total:,}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return _seeded(clinic, fresh.pk, versions, began)


@dataclass
class Timings:
    total_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    load_ms: list[float] = field(default_factory=list)
    plan_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    in_window: list[int] = field(default_factory=list)
    rows_loaded: list[int] = field(default_factory=list)
    horizons: list[int] = field(default_factory=list)
    finish_days: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@contextmanager
def instrumented(timings: Timings) -> Iterator[dict[str, Any]]:
    """Time ``supply_for`` and ``plan_series`` inside ``series_plan`` and count its queries,
    without changing what it does."""
    from django.db import connection

    import scheduling.services as services

    run: dict[str, Any] = {"load": 0.0, "plan": 0.0, "queries": 0, "rows": 0, "horizons": 0}
    real_supply, real_plan = services.supply_for, services.plan_series

    def supply_for(*args: Any, **kwargs: Any) -> Any:
        began = clock.perf_counter()
        supply = real_supply(*args, **kwargs)
        run["load"] += clock.perf_counter() - began
        run["rows"] += sum(len(r.busy) for r in supply.rooms) + sum(
            len(s.busy) for s in supply.staff
        )
        run["horizons"] += 1
        return supply

    def plan_series(*args: Any, **kwargs: Any) -> Any:
        began = clock.perf_counter()
        plan = real_plan(*args, **kwargs)
        run["plan"] += clock.perf_counter() - began
        return plan

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        run["queries"] += 1
        return execute(sql, params, many, context)

    services.supply_for, services.plan_series = supply_for, plan_series  # type: ignore[assignment]
    try:
        with connection.execute_wrapper(count):
            yield run
    finally:
        services.supply_for, services.plan_series = real_supply, real_plan  # type: ignore[assignment]


def start_dates(first_day: date, last_day: date, runs: int) -> list[date]:
    """``runs`` dates spread evenly over the busy period (leaving a planning window of busy
    days after the last one when the period is long enough)."""
    last = last_day - timedelta(days=PLAN_WINDOW_DAYS)
    if last <= first_day:
        last = last_day
    span = (last - first_day).days
    return [first_day + timedelta(days=round(span * n / max(1, runs - 1))) for n in range(runs)]


def time_plans(seeded: Seeded, key: str, runs: int) -> Timings:
    from clinic.models import Patient
    from protocols.models import ProtocolVersion
    from scheduling.services import PLAN_HORIZONS_DAYS, series_plan

    tz = seeded.tz
    version = ProtocolVersion.objects.get(pk=seeded.versions[key])
    starts = seeded.live_starts
    timings = Timings()
    dates = start_dates(seeded.first_day, seeded.last_day, runs)
    for warm_up in dates[:2]:
        series_plan(
            patient=Patient.objects.select_related("clinic").get(pk=seeded.patient_id),
            protocol_version=version,
            earliest_start=warm_up,
            now=day_start(warm_up, tz),
        )
    for day in dates:
        patient = Patient.objects.select_related("clinic").get(pk=seeded.patient_id)
        now = day_start(day, tz)
        with instrumented(timings) as run:
            began, cpu_began = clock.perf_counter(), clock.process_time()
            plan = series_plan(
                patient=patient, protocol_version=version, earliest_start=day, now=now
            )
            elapsed, cpu = clock.perf_counter() - began, clock.process_time() - cpu_began
        timings.total_ms.append(elapsed * 1000)
        timings.cpu_ms.append(cpu * 1000)
        timings.load_ms.append(run["load"] * 1000)
        timings.plan_ms.append(run["plan"] * 1000)
        timings.queries.append(run["queries"])
        timings.rows_loaded.append(run["rows"])
        timings.horizons.append(run["horizons"])
        window_end = day_start(day + timedelta(days=PLAN_HORIZONS_DAYS[0]), tz)
        timings.in_window.append(bisect_left(starts, window_end) - bisect_left(starts, now))
        if plan.violations:
            timings.failures.append(
                f"{day}: {plan.violations[0].rule}: {plan.violations[0].message}"
            )
        else:
            finish = max(s.ends_at for s in plan.sessions).astimezone(tz).date()
            timings.finish_days.append((finish - day).days)
    return timings


def profile_plans(seeded: Seeded, key: str, runs: int) -> None:
    """cProfile of the KAP runs, and EXPLAIN ANALYZE of one plan's loading queries."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clinic.models import Patient
    from protocols.models import ProtocolVersion
    from scheduling.services import series_plan

    tz = seeded.tz
    version = ProtocolVersion.objects.get(pk=seeded.versions[key])
    dates = start_dates(seeded.first_day, seeded.last_day, runs)
    profiler = cProfile.Profile()
    for day in dates:
        patient = Patient.objects.select_related("clinic").get(pk=seeded.patient_id)
        profiler.enable()
        series_plan(
            patient=patient, protocol_version=version, earliest_start=day, now=day_start(day, tz)
        )
        profiler.disable()
    print(f"\n  cProfile, {key}, {len(dates)} plans (cumulative time, top 30):")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(30)
    print(f"  cProfile, {key} (own time, top 20):")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(20)
    day = dates[len(dates) // 2]
    patient = Patient.objects.select_related("clinic").get(pk=seeded.patient_id)
    with CaptureQueriesContext(connection) as captured:
        series_plan(
            patient=patient, protocol_version=version, earliest_start=day, now=day_start(day, tz)
        )
    print(f"  EXPLAIN ANALYZE of the queries of one {key} plan from {day}:")
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan_lines = [row[0] for row in cursor.fetchall()]
            print(f"\n  [{query['time']}s] {sql[:300]}{'...' if len(sql) > 300 else ''}")
            for line in plan_lines:
                print(f"      {line}")


def latency_benchmark(
    sizes: Sequence[int], runs: int, *, profile: bool, reuse: bool, gc_freeze: bool
) -> list[str]:
    url = database_url()
    name = urlparse(url).path.lstrip("/")
    print(f"Latency: series_plan on PostgreSQL ({name}), {runs} start dates per protocol")
    prepare_database(url)
    rows: list[str] = []
    header = (
        f"  {'sessions':>9} {'protocol':<9} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}"
        f" {'cpu p50':>8} {'cpu p95':>8} {'load p50':>9} {'load p95':>9}"
        f" {'plan p50':>9} {'plan p95':>9}"
        f" {'queries':>8} {'rows':>6} {'in window':>9} {'found':>6}"
    )
    for size in sizes:
        began = clock.perf_counter()
        print(f"\n{size:,} live sessions: generating the clinic ...", flush=True)
        clinic = generate_clinic(BENCH_CLINIC, first_day=FIRST_DAY, live_sessions=size, seed=size)
        print(
            f"  {len(clinic.sessions):,} sessions ({clinic.live_sessions:,} live) from "
            f"{clinic.first_day} to {clinic.last_day}, {clinic.patients:,} patients "
            f"({clock.perf_counter() - began:.1f} s); writing ...",
            flush=True,
        )
        seeded = seed_database(
            clinic,
            f"Benchmark clinic: {size} live sessions, seed {size}",
            lambda line: print(f"    {line}", flush=True),
            reuse=reuse,
        )
        print(f"  seeded in {seeded.seconds:.1f} s", flush=True)
        del clinic
        gc.collect()
        if gc_freeze:  # as a server that calls gc.freeze() once it has loaded Django
            gc.freeze()
        for key in ("kap", "infusion"):
            print(f"  timing {key} ...", flush=True)
            t = time_plans(seeded, key, runs)
            counts = sorted(set(t.queries))
            total, cpu, load, plan = t.total_ms, t.cpu_ms, t.load_ms, t.plan_ms
            rows.append(
                f"  {size:>9,} {key:<9} {percentile(total, 50):>7.1f} {percentile(total, 95):>7.1f}"
                f" {max(total):>7.1f} {percentile(cpu, 50):>8.1f} {percentile(cpu, 95):>8.1f}"
                f" {percentile(load, 50):>9.1f} {percentile(load, 95):>9.1f}"
                f" {percentile(plan, 50):>9.1f} {percentile(plan, 95):>9.1f}"
                f" {'/'.join(map(str, counts)):>8} {round(statistics.mean(t.rows_loaded)):>6}"
                f" {round(statistics.mean(t.in_window)):>9} {len(t.finish_days):>3}/{runs:<2}"
            )
            print(rows[-1], flush=True)
            if t.finish_days:
                print(
                    f"    series length: median {statistics.median(t.finish_days):g} days, "
                    f"max {max(t.finish_days)}; plans needing a horizon past the first: "
                    f"{sum(1 for h in t.horizons if h > 1)}",
                    flush=True,
                )
            for failure in t.failures[:3]:
                print(f"    no plan: {failure}")
        if profile and size == max(sizes):
            profile_plans(seeded, "kap", runs)
    print("\nLatency (ms, one series_plan call including its database queries):")
    print(header)
    for row in rows:
        print(row)
    print(
        "  p50/p95/max: wall time; cpu = this process's CPU time in the call (leaves out "
        "PostgreSQL's work and waiting for a busy CPU); load = scheduling.supply.supply_for "
        "(the database fetch), plan = plan_series (both wall time); queries = per plan; rows = "
        "busy intervals loaded; in window = live sessions in the first horizon planned "
        "(scheduling.services.PLAN_HORIZONS_DAYS[0] days)."
    )
    return rows


# ============================================================================================
# 2. Plan quality against CP-SAT
# ============================================================================================

#: Start days around the year, two of them in the weeks clocks change (2027-03-14, 2027-11-07).
COMPARISON_DAYS = (
    date(2027, 3, 8),
    date(2027, 5, 17),
    date(2027, 11, 1),
    date(2027, 7, 1),
    date(2027, 9, 6),
    date(2027, 1, 11),
)
COMPARISON_HORIZON_DAYS = 35


def comparison_instance(
    key: str, seed: int, horizon_days: int = COMPARISON_HORIZON_DAYS
) -> Instance:
    """A small clinic (3 chairs, 2 dosing rooms, 2 therapy rooms, 2 nurses, 3 therapists,
    1 prescriber) booked 55-90 % of the time from the first planned day on."""
    import random

    rng = random.Random(seed)
    first = COMPARISON_DAYS[seed % len(COMPARISON_DAYS)] + timedelta(days=rng.randrange(7))
    utilization = 0.55 + 0.35 * rng.random()
    clinic = generate_clinic(
        SMALL_CLINIC,
        first_day=first,
        days=horizon_days + 2,
        utilization=utilization,
        patients=60,
        seed=seed,
    )
    spec = protocol(key)
    tz = clinic.tz
    window = Interval(day_start(first, tz), day_start(first + timedelta(days=horizon_days + 1), tz))
    calendar, rooms, staff = planner_inputs(
        clinic,
        window,
        room_kinds={step.room_kind for step in spec.steps},
        roles={role.role for step in spec.steps for role in step.roles},
    )
    consent = first - timedelta(days=30) if seed % 4 else first + timedelta(days=3)
    request = PlanRequest(
        protocol=spec,
        earliest_start=first,
        gates=PatientGates(
            screenings=(
                ScreeningFact(True, first + timedelta(days=300), first - timedelta(days=30)),
            ),
            consent_signed_on=consent,
        ),
        horizon_days=horizon_days,
    )
    return Instance(
        f"{key} seed {seed} ({first}, {utilization:.0%} booked, consent {consent})",
        request,
        calendar,
        rooms,
        staff,
    )


def planner_schedule(plan: Plan) -> tuple[ScheduledSession, ...]:
    return tuple(
        ScheduledSession(
            s.kind,
            s.starts_at,
            s.ends_at,
            s.room_id,
            tuple((h.staff_id, h.role, h.start, h.end) for h in s.staff),
        )
        for s in sorted(plan.sessions, key=lambda s: s.starts_at)
    )


def schedule_text(schedule: Sequence[ScheduledSession], tz: ZoneInfo) -> str:
    return "\n".join(
        f"      {s.start.astimezone(tz):%a %Y-%m-%d %H:%M}-{s.end.astimezone(tz):%H:%M} "
        f"{s.kind:<12} room {s.room_id:<3} staff "
        + ", ".join(f"{role} {sid}" for sid, role, _, _ in s.staff)
        for s in schedule
    )


@dataclass
class Comparison:
    name: str
    planner_finish: datetime | None
    planner_seconds: float
    cpsat_status: str
    cpsat_finish: datetime | None
    cpsat_bound: datetime | None
    cpsat_seconds: float
    problems: list[str]
    tz: Any
    planner_reason: str = ""


def case_instance(case: str, horizon_days: int = COMPARISON_HORIZON_DAYS) -> Instance:
    """``KEY:SEED`` (a generated clinic, see ``comparison_instance``) or ``turnover``."""
    if case == "turnover":
        return turnover_instance()
    key, seed = case.split(":")
    return comparison_instance(key, int(seed), horizon_days)


def turnover_instance() -> Instance:
    """A hand-made KAP instance where a room's turnover after the patient's own session is
    what decides the finish (the coupling the planner's module docstring leaves out).

    Monday 2027-05-17 from 15:00: therapy room 1 is free all afternoon, room 2 until 16:15,
    room 3 from 17:00; the prescriber is free 15:00-16:00, the therapist from 16:00. Screening
    at 15:00 in room 2 lets the preparations follow at 16:00 in room 1 and at 17:00 in room 3,
    so the first medicine session can be on Tuesday. Screening in room 1 (the first room free)
    holds it until 16:15 with its turnover, so the first preparation starts at 16:15 and the
    second no longer fits before closing: every medicine session moves a day later.
    """
    tz = ZoneInfo("America/Los_Angeles")
    day = date(2027, 5, 17)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)

    spec = protocol("kap")
    calendar = ClinicCalendar(tz, OPENING_HOURS, frozenset())
    rooms = (
        RoomSupply(1, "therapy_room", 15, (Interval(at(8), at(15)),)),
        RoomSupply(2, "therapy_room", 15, (Interval(at(8), at(15)), Interval(at(16, 15), at(18)))),
        RoomSupply(3, "therapy_room", 15, (Interval(at(8), at(17)),)),
        RoomSupply(4, "dosing_room", 15, ()),
    )
    staff = (
        StaffSupply(
            10, frozenset({"prescriber"}), busy=(Interval(at(8), at(15)), Interval(at(16), at(18)))
        ),
        StaffSupply(11, frozenset({"therapist"}), busy=(Interval(at(8), at(16)),)),
        StaffSupply(12, frozenset({"nurse"}), capacity=3),
    )
    request = PlanRequest(
        protocol=spec,
        earliest_start=day,
        gates=PatientGates(
            screenings=(ScreeningFact(True, day + timedelta(days=300), day - timedelta(days=30)),),
            consent_signed_on=day - timedelta(days=30),
        ),
        horizon_days=COMPARISON_HORIZON_DAYS,
    )
    return Instance(
        "kap, hand-made: turnover after the patient's own screening",
        request,
        calendar,
        rooms,
        staff,
    )


def compare_one(
    case: str,
    time_limit: float,
    workers: int,
    horizon_days: int = COMPARISON_HORIZON_DAYS,
) -> Comparison:
    instance = case_instance(case, horizon_days)
    tz = instance.calendar.tz
    times = []
    plan = None
    for _ in range(5):
        began = clock.perf_counter()
        plan = plan_series(instance.request, instance.calendar, instance.rooms, instance.staff)
        times.append(clock.perf_counter() - began)
    assert plan is not None
    result = solve_cpsat(instance, time_limit=time_limit, workers=workers)
    problems: list[str] = []
    planner_finish = None
    ours = planner_schedule(plan)
    if not plan.violations:
        planner_finish = max(s.end for s in ours)
        problems += [f"planner schedule: {p}" for p in check_schedule(instance, ours)]
    if result.schedule:
        problems += [f"CP-SAT schedule: {p}" for p in check_schedule(instance, result.schedule)]
    optimal = result.status == "OPTIMAL"
    if planner_finish is not None and result.finish is not None:
        if planner_finish > result.finish:
            problems.append(
                "PLANNER BUG: the planner finishes later than a valid CP-SAT schedule"
                + (" (proven optimal)" if optimal else "")
            )
        if optimal and planner_finish < result.finish:
            problems.append("MODEL BUG: the planner finishes before CP-SAT's optimum")
    if plan.violations and result.finish is not None:
        problems.append(
            f"PLANNER BUG: no plan ({plan.violations[0].rule}: {plan.violations[0].message}), "
            "CP-SAT found one"
        )
    if planner_finish is not None and result.status == "INFEASIBLE":
        problems.append("MODEL BUG: CP-SAT calls a problem infeasible that the planner solved")
    if problems:
        problems.append(
            f"reproduce: uv run --group bench python benchmarks/planner.py --sizes '' "
            f"--cpsat-only {case}\n    planner:\n{schedule_text(ours, tz)}\n"
            f"    CP-SAT ({result.status}):\n{schedule_text(result.schedule, tz)}"
        )
    return Comparison(
        instance.name + f", {instance.busy_intervals} busy intervals",
        planner_finish,
        statistics.median(times),
        result.status,
        result.finish,
        result.bound,
        result.seconds,
        problems,
        tz,
        "" if not plan.violations else f"{plan.violations[0].rule}: {plan.violations[0].message}",
    )


def quality_benchmark(cases: Sequence[str], time_limit: float, workers: int) -> list[Comparison]:
    print(f"\nQuality: plan_series against CP-SAT ({time_limit:g} s limit per instance)")
    keys = ["kap" if case == "turnover" else case.split(":")[0] for case in cases]
    for key in dict.fromkeys(keys):
        orders = allowed_orders(protocol(key))
        print(
            f"  {key}: {len(orders)} session order(s) keep its precedes/each_followed_by "
            f"rules, so CP-SAT's fixed order ({' '.join(k[:4] for k in orders[0])}) is no "
            "restriction"
            if len(orders) == 1
            else f"  {key}: {len(orders)} orders allowed; CP-SAT uses the planner's"
        )
    results = []
    for case in cases:
        c = compare_one(case, time_limit, workers)
        results.append(c)

        def local(instant: datetime | None, tz: Any = c.tz) -> str:
            return "none" if instant is None else f"{instant.astimezone(tz):%m-%d %H:%M}"

        gap = (
            ""
            if c.planner_finish is None or c.cpsat_finish is None
            else f"{(c.planner_finish - c.cpsat_finish) / timedelta(minutes=1):+.0f} min"
        )
        print(
            f"  {c.name}\n    planner {local(c.planner_finish)} in "
            f"{c.planner_seconds * 1000:.1f} ms; CP-SAT {c.cpsat_status.lower()} "
            f"{local(c.cpsat_finish)} (bound {local(c.cpsat_bound)}) in {c.cpsat_seconds:.2f} s; "
            f"planner - CP-SAT: {gap or 'n/a'}",
            flush=True,
        )
        if c.planner_reason:
            print(f"    planner: no plan: {c.planner_reason}")
        for problem in c.problems:
            print(f"    !! {problem}")
    optimal = [c for c in results if c.cpsat_status == "OPTIMAL"]
    no_later = [
        c
        for c in optimal
        if c.planner_finish is not None
        and c.cpsat_finish is not None
        and c.planner_finish <= c.cpsat_finish
        and not c.problems
    ]
    infeasible = [c for c in results if c.cpsat_status == "INFEASIBLE"]
    agreed = [c for c in infeasible if c.planner_finish is None and not c.problems]
    speedups = [c.cpsat_seconds / c.planner_seconds for c in results if c.planner_seconds > 0]
    print(
        f"\nplanner finish <= CP-SAT optimum on {len(no_later)}/{len(optimal)} instances solved to "
        f"optimality; median speed-up {statistics.median(speedups):,.0f}x"
    )
    if infeasible:
        print(
            f"  no plan within {COMPARISON_HORIZON_DAYS} days, proven by CP-SAT: {len(infeasible)} "
            f"instance(s), the planner agrees on {len(agreed)}"
        )
    unsolved = [c for c in results if c.cpsat_status not in ("OPTIMAL", "INFEASIBLE")]
    if unsolved:
        print(
            f"  not solved to optimality within {time_limit:g} s: {len(unsolved)} instance(s) "
            "(best schedule and bound above)"
        )
    flagged = [c for c in results if c.problems]
    print(f"  schedules failing the independent check or disagreeing: {len(flagged)}")
    return results


# ============================================================================================


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="live sessions, comma-separated ('' skips)"
    )
    parser.add_argument("--runs", type=int, default=50, help="start dates per protocol and size")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile and EXPLAIN the largest size"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() before timing, as a server that freezes its start-up objects",
    )
    parser.add_argument(
        "--reseed", action="store_true", help="write the clinic even if an earlier run left it"
    )
    parser.add_argument("--cpsat-seeds", type=int, default=8, help="instances per protocol")
    parser.add_argument(
        "--cpsat-protocols", default="kap,infusion", help=f"of {', '.join(PROTOCOL_FILES)}"
    )
    parser.add_argument("--cpsat-time-limit", type=float, default=20.0, help="seconds per instance")
    parser.add_argument("--cpsat-workers", type=int, default=8, help="CP-SAT search workers")
    parser.add_argument(
        "--cpsat-only",
        default="",
        help="KEY:SEED or turnover, comma-separated: just these instances",
    )
    args = parser.parse_args(argv)
    began = clock.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs, load average {_load()} (1, 5, 15 min)")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if sizes and not args.cpsat_only:
        latency_benchmark(
            sizes, args.runs, profile=args.profile, reuse=not args.reseed, gc_freeze=args.gc_freeze
        )
    if args.cpsat_only:
        cases = args.cpsat_only.split(",")
    else:
        keys = [k for k in args.cpsat_protocols.split(",") if k]
        cases = [f"{k}:{seed}" for k in keys for seed in range(1, args.cpsat_seeds + 1)]
        cases += ["turnover"] if args.cpsat_seeds else []
    if cases:
        quality_benchmark(cases, args.cpsat_time_limit, args.cpsat_workers)
    print(f"\ndone in {clock.perf_counter() - began:.0f} s; load average {_load()}")


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
