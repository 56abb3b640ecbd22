"""Fixtures for the pure tests: no Django, no database.

Run with ``python -m pytest tests/pure -p no:django``. The project's ``addopts`` carry
pytest-django's ``--reuse-db`` and its ini key; they are declared here too so pytest accepts them
when that plugin is switched off (and left alone when it is on).
"""

import contextlib
import copy
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import settings

from protocols.rules import ProtocolSpec, protocol_from_dict
from scheduling.planner import ClinicCalendar, WeeklyHours

settings.register_profile("pure", deadline=None, print_blob=True)
settings.load_profile("pure")


def pytest_addoption(parser: pytest.Parser) -> None:
    # When pytest-django is active it owns both and these raise ValueError.
    with contextlib.suppress(ValueError):
        parser.addoption("--reuse-db", action="store_true", default=False)
    with contextlib.suppress(ValueError):
        parser.addini("DJANGO_SETTINGS_MODULE", "read by pytest-django when it is active")


LOS_ANGELES = ZoneInfo("America/Los_Angeles")

INFUSION_JSON: dict[str, Any] = {
    "name": "IV ketamine induction, six infusions",
    "care_model": "infusion",
    "steps": [
        {
            "kind": "screening",
            "count": 1,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "prescriber"}],
        },
        {
            "kind": "medicine",
            "count": 6,
            "route": "iv",
            "duration_minutes": 100,
            "room_kind": "infusion_chair",
            "roles": [{"role": "nurse", "minutes": 100}],
        },
    ],
    "rules": [
        {"type": "precedes", "after": "screening", "before": "medicine"},
        {"type": "min_gap", "after": "medicine", "before": "medicine", "days": 1},
        {"type": "max_gap", "after": "medicine", "before": "medicine", "days": 4},
        {"type": "max_per_window", "after": "medicine", "count": 6, "window_days": 21},
    ],
}

KAP_JSON: dict[str, Any] = {
    "name": "KAP, six medicine sessions",
    "care_model": "kap",
    "steps": [
        {
            "kind": "screening",
            "count": 1,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "prescriber"}],
        },
        {
            "kind": "preparation",
            "count": 2,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "therapist"}],
        },
        {
            "kind": "medicine",
            "count": 6,
            "route": "im",
            "duration_minutes": 120,
            "room_kind": "dosing_room",
            "roles": [{"role": "therapist", "minutes": 90}, {"role": "nurse", "minutes": 30}],
        },
        {
            "kind": "integration",
            "count": 6,
            "duration_minutes": 60,
            "room_kind": "therapy_room",
            "roles": [{"role": "therapist"}],
        },
    ],
    "rules": [
        {"type": "precedes", "after": "screening", "before": "preparation"},
        {"type": "precedes", "after": "preparation", "before": "medicine"},
        {"type": "min_gap", "after": "medicine", "before": "integration", "days": 1},
        {"type": "max_gap", "after": "medicine", "before": "integration", "days": 7},
        {"type": "each_followed_by", "after": "medicine", "before": "integration", "at_least": 1},
        {"type": "not_same_day", "after": "medicine", "before": "integration"},
        {"type": "min_gap", "after": "medicine", "before": "medicine", "days": 2},
        {"type": "max_per_window", "after": "medicine", "count": 3, "window_days": 7},
    ],
}

INFUSION = protocol_from_dict(INFUSION_JSON)
KAP = protocol_from_dict(KAP_JSON)

WEEKDAYS_8_TO_6_SATURDAY_9_TO_1 = (
    *(WeeklyHours(weekday, time(8), time(18)) for weekday in range(5)),
    WeeklyHours(5, time(9), time(13)),
)
CLINIC = ClinicCalendar(tz=LOS_ANGELES, opening_hours=WEEKDAYS_8_TO_6_SATURDAY_9_TO_1)


@pytest.fixture(scope="session")
def la() -> ZoneInfo:
    return LOS_ANGELES


@pytest.fixture(scope="session")
def infusion() -> ProtocolSpec:
    return INFUSION


@pytest.fixture(scope="session")
def kap() -> ProtocolSpec:
    return KAP


@pytest.fixture(scope="session")
def clinic() -> ClinicCalendar:
    """Open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00, Los Angeles time."""
    return CLINIC


@pytest.fixture(scope="session")
def monday() -> date:
    """A Monday the week before the spring DST change (2026-03-08)."""
    return date(2026, 3, 2)


@pytest.fixture
def kap_json() -> dict[str, Any]:
    return copy.deepcopy(KAP_JSON)
