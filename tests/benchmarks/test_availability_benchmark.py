"""The availability benchmark's core on a tiny clinic, so ``benchmarks/availability.py`` cannot
rot. Nothing here is timed (STYLE.md): it checks the queries per call and that starts come back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from benchmarks import availability as bench
from benchmarks import planner as planner_bench
from benchmarks.synthetic_clinic import SMALL_CLINIC, generate_clinic
from scheduling.models import Session

pytestmark = pytest.mark.django_db

#: The demo-sized clinic with a front desk to call the API as.
TINY = replace(SMALL_CLINIC, front_desk=1)


@pytest.fixture
def target() -> bench.Target:
    clinic = generate_clinic(
        TINY, first_day=bench.FIRST_DAY, live_sessions=200, days=90, utilization=0.3, seed=3
    )
    seeded = planner_bench.write_clinic(clinic, "Tiny availability clinic", lambda line: None)
    assert Session.objects.filter(status__in=["booked", "completed"]).count() == 200
    return bench.target_in(
        "Tiny availability clinic", seeded.patient_id, clinic.first_day, clinic.last_day
    )


def test_windows_spread_over_the_booked_period() -> None:
    firsts = bench.window_starts(date(2027, 1, 4), date(2027, 3, 5), 3)

    assert firsts == [date(2027, 1, 4), date(2027, 1, 19), date(2027, 2, 3)]


@pytest.mark.parametrize("kind", bench.KINDS)
def test_service_and_api_answer_in_a_constant_number_of_queries(
    target: bench.Target, kind: str
) -> None:
    service, api = bench.measure(target, kind, runs=3)

    assert service.queries == [5, 5, 5]
    assert len(set(api.queries)) == 1
    assert service.starts == api.starts
    assert all(found > 0 for found in service.starts)
    assert len(service.wall_ms) == len(api.cpu_ms) == 3


def test_the_verdict_names_the_target(target: bench.Target) -> None:
    service, _ = bench.measure(target, "integration", runs=2)

    line = bench.verdict([(200, "integration", service)])

    assert line.startswith("target (service): p95 <= 15 ms: ")
    assert "queries <= 5: met (at most 5, flat)" in line
