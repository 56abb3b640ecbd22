"""Shared fixtures. The suite runs on the real PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)."""

from __future__ import annotations

import pytest
from django.db import connection


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(
            "The test suite runs on PostgreSQL: set DATABASE_URL=postgres://... "
            "(scripts/test does)."
        )


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    assert connection.vendor == "postgresql"
