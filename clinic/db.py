"""Database pieces shared by the apps: the PostgreSQL exclusion constraint that guards overlaps,
and instants read as epoch microseconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import BigIntegerField, Func


class TsTzRange(Func):
    """``tstzrange(lower, upper)``: a half-open ``[lower, upper)`` range of instants."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class EpochMicroseconds(Func):
    """A ``timestamptz`` column read as whole microseconds since 1970-01-01 UTC (a ``bigint``).

    Reading thousands of busy intervals as integers skips building a ``datetime`` per value: on
    PostgreSQL, psycopg 3 parses every ``timestamptz`` in Python (psycopg/psycopg#1273), while
    ``bigint`` arrives as a plain ``int``. ``EXTRACT(EPOCH ...)`` returns an exact ``numeric``
    (PostgreSQL 14+), so the value is exact to the microsecond. On the embedded SQLite default the
    column is read as it is stored and converted in Python, with the same result.
    """

    arity = 1
    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint",
            **extra_context,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return compiler.compile(self._column)  # converted in Python (get_db_converters)

    def get_db_converters(self, connection: Any) -> list[Callable[..., Any]]:
        if connection.vendor == "postgresql":
            return []  # a bigint arrives as an int
        return [
            *connection.ops.get_db_converters(self._column),
            *self._column.get_db_converters(connection),
            aware_to_epoch_microseconds,
        ]

    @property
    def _column(self) -> Any:
        return self.get_source_expressions()[0]


def aware_to_epoch_microseconds(value: Any, expression: Any, connection: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):  # the raw column, when no backend converter ran first
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # SQLite stores UTC without an offset (USE_TZ)
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // _MICROSECOND


class OverlapExclusion(ExclusionConstraint):
    """An exclusion constraint on PostgreSQL; a no-op on the embedded SQLite default.

    On SQLite the same guarantee comes from serialized write transactions (``BEGIN IMMEDIATE``, see
    settings) around the overlap check in the booking services.
    """

    @staticmethod
    def _is_postgres(schema_editor: Any) -> bool:
        return bool(schema_editor.connection.vendor == "postgresql")

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().constraint_sql(model, schema_editor)
            if self._is_postgres(schema_editor)
            else None
        )

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().create_sql(model, schema_editor) if self._is_postgres(schema_editor) else None
        )

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return (
            super().remove_sql(model, schema_editor) if self._is_postgres(schema_editor) else None
        )

    def validate(
        self, model: Any, instance: Any, exclude: Any = None, using: str = DEFAULT_DB_ALIAS
    ) -> None:
        if connections[using].vendor == "postgresql":
            super().validate(model, instance, exclude=exclude, using=using)


def is_exclusion_violation(error: BaseException, constraint_name: str) -> bool:
    """Whether an IntegrityError was raised by the named exclusion constraint (SQLSTATE 23P01)."""
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(cause, "sqlstate", None) == "23P01" and (
        getattr(diag, "constraint_name", None) == constraint_name
    )
