"""Shared fixtures. The suite runs on the real PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)."""

from __future__ import annotations

import re
from collections.abc import Iterator

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


UNNAMED_ROW_LOCK = re.compile(r"\bFOR (NO KEY )?UPDATE\b(?! OF )")


@pytest.fixture(autouse=True)
def _row_locks_name_their_table() -> Iterator[None]:
    """``FOR UPDATE`` over a join locks the joined rows too: a default ordering through a foreign
    key (Patient's runs through its clinic) once made every booking lock its whole clinic. Every
    row lock the app takes over a join names its own table with ``of=("self",)``."""

    def guard(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if " JOIN " in sql and UNNAMED_ROW_LOCK.search(sql):
            raise AssertionError(f"A row lock over a join without OF: {sql}")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(guard):
        yield
