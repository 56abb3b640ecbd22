"""Re-validation of whole series with the rules engine (``protocols.rules.evaluate``)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from clinic.models import Role
from protocols.models import RuleType
from scheduling import services, tasks
from scheduling.models import StaffAlert, TreatmentSeries
from scheduling.revalidation import series_revalidate
from tests.factories import (
    ConsentFactory,
    PatientFactory,
    ProtocolRuleFactory,
    ScreeningFactory,
    TreatmentSeriesFactory,
    aware,
)
from tests.workers.support import book

pytestmark = pytest.mark.django_db
CHECKED_AT = dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def series() -> TreatmentSeries:
    patient = PatientFactory(full_name="Ada Lovelace")
    ScreeningFactory(
        patient=patient, screened_on=dt.date(2026, 1, 5), valid_until=dt.date(2026, 7, 5)
    )
    ConsentFactory(patient=patient)
    series = TreatmentSeriesFactory(patient=patient)
    ProtocolRuleFactory(
        version=series.protocol_version,
        type=RuleType.MIN_GAP,
        after="medicine",
        before="integration",
        days=1,
    )
    with time_machine.travel(CHECKED_AT - dt.timedelta(hours=1), tick=False):
        book(patient, "medicine", aware(2026, 3, 10, 9), series=series)
    return series


def test_a_new_violation_is_stored_and_alerts_the_front_desk_once(series: TreatmentSeries) -> None:
    with time_machine.travel(CHECKED_AT - dt.timedelta(hours=1), tick=False):
        book(series.patient, "integration", aware(2026, 3, 10, 15), series=series)  # same day

    first = series_revalidate(series, now=CHECKED_AT)
    second = series_revalidate(series, now=CHECKED_AT + dt.timedelta(minutes=5))

    series.refresh_from_db()
    assert [v["rule"] for v in first] == ["min_gap"]
    assert second == first == series.violations
    assert series.violations_checked_at == CHECKED_AT + dt.timedelta(minutes=5)
    alert = StaffAlert.objects.get()
    assert (alert.kind, alert.target_role, alert.series_id) == (
        "series_violation",
        Role.FRONT_DESK,
        series.pk,
    )
    assert alert.message.startswith("Ada Lovelace's series (")


def test_a_fixed_series_has_no_violations_and_raises_nothing(series: TreatmentSeries) -> None:
    with time_machine.travel(CHECKED_AT - dt.timedelta(hours=1), tick=False):
        integration = book(series.patient, "integration", aware(2026, 3, 10, 15), series=series)
    series_revalidate(series, now=CHECKED_AT)

    services.session_cancel(integration, reason="Booked on the wrong day", now=CHECKED_AT)
    with time_machine.travel(CHECKED_AT, tick=False):
        book(series.patient, "integration", aware(2026, 3, 11, 15), series=series)
    found = series_revalidate(series, now=CHECKED_AT + dt.timedelta(minutes=1))

    assert found == []
    assert StaffAlert.objects.count() == 1  # only the first appearance


def test_the_nightly_task_checks_every_active_series(series: TreatmentSeries) -> None:
    with time_machine.travel(CHECKED_AT, tick=False):
        assert tasks.series_revalidate_all() == 1
    series.refresh_from_db()
    assert series.violations_checked_at == CHECKED_AT
