"""Database pieces shared by the apps: the PostgreSQL exclusion constraint that guards overlaps,
and instants read as epoch microseconds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField
from django.db import DEFAULT_DB_ALIAS, connections, migrations
from django.db.models import Func


class TsTzRange(Func):
    """``tstzrange(lower, upper)``: a half-open ``[lower, upper)`` range of instants."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def aware_to_epoch_microseconds(value: Any) -> int | None:
    """An instant as SQLite returns it (text, or a naive UTC ``datetime``) as whole microseconds
    since 1970-01-01 UTC; PostgreSQL computes the same in SQL (``scheduling.busy``)."""
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
    return is_constraint_violation(error, constraint_name, sqlstate="23P01")


def is_deadlock(error: BaseException) -> bool:
    """Whether PostgreSQL aborted the statement to break a deadlock (SQLSTATE 40P01)."""
    return getattr(error.__cause__, "sqlstate", None) == "40P01"


def is_constraint_violation(
    error: BaseException, constraint_name: str, *, sqlstate: str = "23505"
) -> bool:
    """Whether an IntegrityError names ``constraint_name`` with ``sqlstate`` (by default a
    unique violation, as unique indexes and the triggers that stand in for them raise)."""
    cause = error.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(cause, "sqlstate", None) == sqlstate and (
        getattr(diag, "constraint_name", None) == constraint_name
    )


def postgresql_only(sql: str, reverse_sql: str) -> migrations.RunPython:
    """A migration operation running ``sql`` (triggers and the like) on PostgreSQL only: the
    embedded SQLite default goes without such guards."""

    def forward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    def backward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(reverse_sql, params=None)

    return migrations.RunPython(forward, backward, elidable=False)
