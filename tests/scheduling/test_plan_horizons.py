"""Planning inside the shortest horizon that holds a plan (``PLAN_HORIZONS_DAYS``)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from protocols.rules import day_start
from scheduling import services
from scheduling.services import PLAN_HORIZONS_DAYS
from tests.factories import ClosureFactory, aware

pytestmark = pytest.mark.django_db

LA = ZoneInfo("America/Los_Angeles")
MONDAY = dt.date(2026, 3, 2)


def room_hold_windows(queries: CaptureQueriesContext) -> list[dt.datetime]:
    """The end of the window each room-hold query of a plan read."""
    ends = []
    for query in queries.captured_queries:
        found = re.search(
            r"FROM scheduling_session WHERE room_id IN .*? starts_at < '([^']+)'", query["sql"]
        )
        if found is not None:
            ends.append(dt.datetime.fromisoformat(found.group(1)))
    return ends


def test_the_horizons_grow_from_four_weeks_to_the_longest() -> None:
    assert PLAN_HORIZONS_DAYS == (28, 42, 120)


def test_a_series_that_fits_four_weeks_reads_only_those_four_weeks(site) -> None:
    # given a patient and a quiet clinic
    patient = site.patient()

    # when a KAP series is planned from a Monday
    with CaptureQueriesContext(connection) as queries:
        plan = services.series_plan(
            patient=patient,
            protocol_version=site.kap,
            earliest_start=MONDAY,
            now=aware(2026, 3, 1, 12),
        )

    # then it is planned, ending on the 16th (as in test_series), from one read of busy time
    # ending with the first horizon (and the day after it, for a session that runs late)
    assert plan.violations == ()
    assert max(s.ends_at for s in plan.sessions).astimezone(LA).date() == dt.date(2026, 3, 16)
    assert room_hold_windows(queries) == [day_start(MONDAY + dt.timedelta(days=29), LA)]


def test_a_series_that_needs_the_longest_horizon_is_still_planned(site) -> None:
    # given a clinic closed for the six weeks from the earliest start
    for day in range(42):
        ClosureFactory(clinic=site.clinic, date=MONDAY + dt.timedelta(days=day), reason="Works")
    patient = site.patient()

    # when an infusion induction is planned from that Monday
    with CaptureQueriesContext(connection) as queries:
        plan = services.series_plan(
            patient=patient,
            protocol_version=site.infusion,
            earliest_start=MONDAY,
            now=aware(2026, 3, 1, 12),
        )

    # then it starts the day the clinic reopens, found in the 120-day horizon after the
    # 28- and 42-day ones held nothing
    assert plan.violations == ()
    first = min(s.starts_at for s in plan.sessions).astimezone(LA)
    assert first.date() == MONDAY + dt.timedelta(days=42)
    assert room_hold_windows(queries) == [
        day_start(MONDAY + dt.timedelta(days=days + 1), LA) for days in (28, 42, 120)
    ]


def test_no_plan_in_any_horizon_says_why(site) -> None:
    # given a clinic closed for the whole longest horizon
    for day in range(121):
        ClosureFactory(clinic=site.clinic, date=MONDAY + dt.timedelta(days=day), reason="Works")

    plan = services.series_plan(
        patient=site.patient(),
        protocol_version=site.infusion,
        earliest_start=MONDAY,
        now=aware(2026, 3, 1, 12),
    )

    assert plan.sessions == ()
    assert [v.rule for v in plan.violations] == ["clinic_closed"]
