"""The planner benchmark's pieces on tiny instances, so ``benchmarks/planner.py`` cannot rot.

Nothing here is timed (STYLE.md: speed is measured in benchmarks/, never asserted in a test).
The CP-SAT comparison needs the ``bench`` dependency group and is skipped without it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import combinations

import pytest

from benchmarks import planner as bench
from benchmarks.planner_cpsat import ScheduledSession, allowed_orders, check_schedule
from benchmarks.synthetic_clinic import SMALL_CLINIC, SyntheticClinic, generate_clinic
from scheduling.models import Session, SessionStaff
from scheduling.planner import Interval, plan_series, session_order

FIRST_DAY = date(2027, 3, 8)  # the week the clocks change in Los Angeles


def tiny_clinic() -> SyntheticClinic:
    return generate_clinic(SMALL_CLINIC, first_day=FIRST_DAY, live_sessions=150, seed=7)


def overlapping(a: tuple, b: tuple) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_generated_sessions_never_double_book_a_room_patient_or_clinician() -> None:
    clinic = tiny_clinic()
    live = [s for s in clinic.sessions if s.is_live]

    assert len(live) == 150
    for a, b in combinations(live, 2):
        if a.room == b.room:
            assert not overlapping((a.start, a.room_released), (b.start, b.room_released))
        if a.patient == b.patient:
            assert not overlapping((a.start, a.end), (b.start, b.end))
    for index, person in enumerate(clinic.staff):
        holds = [(h.start, h.end) for s in live for h in s.holds if h.staff == index]
        for start, end in holds:
            running = sum(1 for other in holds if other[0] <= start < other[1])
            assert running <= person.capacity
            assert not any(overlapping((start, end), (i.start, i.end)) for i in person.time_off)


def test_standard_protocols_allow_only_the_planners_session_order() -> None:
    for key in ("kap", "infusion", "kap_short"):
        protocol = bench.protocol(key)

        assert allowed_orders(protocol) == [session_order(protocol)]


def test_the_checker_finds_a_double_booked_room_and_a_broken_rule() -> None:
    instance = bench.comparison_instance("infusion", seed=1, horizon_days=14)
    plan = plan_series(instance.request, instance.calendar, instance.rooms, instance.staff)
    schedule = bench.planner_schedule(plan)
    first = schedule[0]
    taken = tuple(
        replace(room, busy=(*room.busy, Interval(first.start, first.end)))
        if room.id == first.room_id
        else room
        for room in instance.rooms
    )
    second_on_first_day = replace(
        schedule[2], start=schedule[1].end, end=schedule[1].end + timedelta(minutes=100)
    )

    assert check_schedule(instance, schedule) == []
    double_booked = check_schedule(replace(instance, rooms=taken), schedule)
    assert any("double-booked" in problem for problem in double_booked)
    assert any(
        p.startswith("rule min_gap")
        for p in check_schedule(instance, (*schedule[:2], second_on_first_day, *schedule[3:]))
    )


@pytest.mark.django_db
def test_the_benchmark_writes_a_clinic_and_plans_in_it() -> None:
    clinic = tiny_clinic()

    seeded = bench.write_clinic(clinic, "Tiny benchmark clinic", lambda line: None)
    timings = bench.time_plans(seeded, "infusion", runs=3)

    assert Session.objects.count() == len(clinic.sessions)
    assert SessionStaff.objects.count() == sum(len(s.holds) for s in clinic.sessions)
    assert timings.failures == []
    assert len(timings.total_ms) == len(timings.finish_days) == 3
    assert len(set(timings.queries)) == 1


@pytest.mark.parametrize(("key", "seed"), [("infusion", 2), ("kap_short", 3)])
def test_planner_finishes_exactly_when_cp_sat_proves_optimal(key: str, seed: int) -> None:
    pytest.importorskip("ortools")

    comparison = bench.compare_one(f"{key}:{seed}", time_limit=60, workers=2, horizon_days=14)

    assert comparison.problems == []
    assert comparison.cpsat_status == "OPTIMAL"
    assert comparison.planner_finish == comparison.cpsat_finish


def test_planner_finishes_no_later_than_a_valid_schedule_when_its_own_turnover_matters() -> None:
    instance = bench.turnover_instance()
    tz = instance.calendar.tz
    better = (
        ("screening", 17, 15, 2),
        ("preparation", 17, 16, 1),
        ("preparation", 17, 17, 3),
        ("medicine", 18, 16, 4),
        ("integration", 19, 8, 1),
        ("medicine", 20, 16, 4),
        ("integration", 21, 8, 1),
        ("medicine", 22, 11, 4),
        ("integration", 24, 8, 1),
        ("medicine", 25, 16, 4),
        ("integration", 26, 8, 1),
        ("medicine", 27, 8, 4),
        ("integration", 28, 17, 1),
        ("medicine", 29, 11, 4),
        ("integration", 31, 8, 1),
    )
    roles = {
        "screening": ((10, "prescriber", 60),),
        "preparation": ((11, "therapist", 60),),
        "integration": ((11, "therapist", 60),),
        "medicine": ((11, "therapist", 90), (12, "nurse", 30)),
    }
    schedule = []
    for kind, day, hour, room in better:
        start = datetime(2027, 5, day, hour, tzinfo=tz).astimezone(UTC)
        holds = tuple(
            (sid, role, start, start + timedelta(minutes=m)) for sid, role, m in roles[kind]
        )
        length = timedelta(minutes=120 if kind == "medicine" else 60)
        schedule.append(ScheduledSession(kind, start, start + length, room, holds))

    plan = plan_series(instance.request, instance.calendar, instance.rooms, instance.staff)

    assert check_schedule(instance, schedule) == []
    assert max(s.ends_at for s in plan.sessions) <= schedule[-1].end
