"""Re-validation of whole series with the rules engine (``protocols.rules.evaluate``): booked
series are valid when booked (the services refuse anything else), so a violation appears later,
when the world changes under a series, e.g. a prescriber shortens a clearance."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from clinic.models import Role
from protocols.models import RuleType
from scheduling import tasks
from scheduling.models import StaffAlert, TreatmentSeries
from scheduling.revalidation import series_revalidate
from tests.factories import (
    ClearedPatientFactory,
    ProtocolRuleFactory,
    TreatmentSeriesFactory,
    aware,
)
from tests.workers.support import book

pytestmark = pytest.mark.django_db
CHECKED_AT = dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def series() -> TreatmentSeries:
    patient = ClearedPatientFactory(full_name="Ada Lovelace")
    rule = ProtocolRuleFactory(
        type=RuleType.MIN_GAP,
        after="medicine",
        before="integration",
        days=1,
    )
    series = TreatmentSeriesFactory(patient=patient, protocol_version=rule.version)
    with time_machine.travel(CHECKED_AT - dt.timedelta(hours=1), tick=False):
        book(patient, "medicine", aware(2026, 3, 10, 9), series=series)
        book(patient, "integration", aware(2026, 3, 11, 15), series=series)
    return series


def test_a_valid_series_has_no_violations(series: TreatmentSeries) -> None:
    assert series_revalidate(series, now=CHECKED_AT) == []

    series.refresh_from_db()
    assert (series.violations, series.violations_checked_at) == ([], CHECKED_AT)
    assert StaffAlert.objects.count() == 0


def test_a_new_violation_is_stored_and_alerts_the_front_desk_once(series: TreatmentSeries) -> None:
    series.patient.screenings.update(valid_until=dt.date(2026, 3, 1))  # clearance cut short

    first = series_revalidate(series, now=CHECKED_AT)
    second = series_revalidate(series, now=CHECKED_AT + dt.timedelta(minutes=5))

    series.refresh_from_db()
    assert [v["rule"] for v in first] == ["screening_gate"]
    assert second == first == series.violations
    assert series.violations_checked_at == CHECKED_AT + dt.timedelta(minutes=5)
    alert = StaffAlert.objects.get()
    assert (alert.kind, alert.target_role, alert.series_id) == (
        "series_violation",
        Role.FRONT_DESK,
        series.pk,
    )
    assert alert.message.startswith("Ada Lovelace's series (")


def test_a_violation_that_is_fixed_and_comes_back_is_alerted_again(
    series: TreatmentSeries,
) -> None:
    screenings = series.patient.screenings
    screenings.update(valid_until=dt.date(2026, 3, 1))
    series_revalidate(series, now=CHECKED_AT)
    screenings.update(valid_until=dt.date(2026, 7, 5))
    assert series_revalidate(series, now=CHECKED_AT + dt.timedelta(hours=1)) == []

    screenings.update(valid_until=dt.date(2026, 3, 1))
    series_revalidate(series, now=CHECKED_AT + dt.timedelta(hours=2))

    assert StaffAlert.objects.count() == 2


def test_the_nightly_task_checks_every_active_series(series: TreatmentSeries) -> None:
    with time_machine.travel(CHECKED_AT, tick=False):
        assert tasks.series_revalidate_all() == 1
    series.refresh_from_db()
    assert series.violations_checked_at == CHECKED_AT
