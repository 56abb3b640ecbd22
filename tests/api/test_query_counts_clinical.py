"""The clinical list endpoints issue the same number of queries for 2 rows as for 12 (the caseload
has its own test in test_caseload_api.py, the portal's questionnaires and scores theirs in
test_questionnaires_api.py). Counts include the caller's lookups and the audit row."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import World
from tests.factories import (
    IntegrationNoteFactory,
    MedicineSessionFactory,
    OutsideIntegrationFactory,
    ProtocolVersionFactory,
    QuestionnaireAssignmentFactory,
    SessionFactory,
    SessionStaffFactory,
    TreatmentSeriesFactory,
    aware,
)

pytestmark = pytest.mark.django_db

_slot = itertools.count()


def _medicine(world: World, series: Any = None) -> Any:
    starts_at = aware(2026, 2, 1, 6) + dt.timedelta(hours=3 * next(_slot))
    session = MedicineSessionFactory(
        patient=world.patient_a, series=series, starts_at=starts_at, status="completed"
    )
    SessionStaffFactory(session=session, staff=world.therapist)
    return session


@pytest.fixture
def integration(world: World) -> Any:
    session = SessionFactory(
        patient=world.patient_a,
        kind="integration",
        starts_at=aware(2026, 3, 1, 14),
        status="completed",
    )
    SessionStaffFactory(session=session, staff=world.therapist)
    return session


@pytest.fixture
def series(world: World) -> Any:
    return TreatmentSeriesFactory(
        patient=world.patient_a, protocol_version=ProtocolVersionFactory()
    )


def _notes(world: World, integration: Any, series: Any, n: int) -> None:
    for _ in range(n):
        IntegrationNoteFactory(session=integration, author=world.therapist)


def _outside(world: World, integration: Any, series: Any, n: int) -> None:
    for _ in range(n):
        OutsideIntegrationFactory(medicine_session=_medicine(world), held_on=dt.date(2026, 3, 1))


def _questionnaires(world: World, integration: Any, series: Any, n: int) -> None:
    for _ in range(n):
        QuestionnaireAssignmentFactory(
            series=series, milestone="before_medicine", medicine_session=_medicine(world, series)
        )


LISTS: dict[str, tuple[str, str, Callable[..., None], int]] = {
    "notes": ("therapist", "/api/v1/sessions/{integration}/notes/", _notes, 10),
    "me_outside": ("patient_a", "/api/v1/me/outside-integrations/", _outside, 4),
    "series_questionnaires": (
        "therapist",
        "/api/v1/series/{series}/questionnaires/",
        _questionnaires,
        6,
    ),
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_clinical_list_query_count_is_flat(
    world, as_user, frozen, django_assert_num_queries, integration, series, name
) -> None:
    caller, path, seed, queries = LISTS[name]
    path = path.format(integration=integration.pk, series=series.pk)
    client = as_user(getattr(world, caller))
    seed(world, integration, series, 2)
    with django_assert_num_queries(queries):
        small = client.get(path)
    assert (small.status_code, small.json()["count"]) == (200, 2)
    seed(world, integration, series, 10)
    with django_assert_num_queries(queries):
        large = client.get(path)
    assert (large.status_code, large.json()["count"]) == (200, 12)
