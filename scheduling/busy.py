"""Busy time, read in one query: the one loader of the planner (``supply``) and the availability
search.

Every interval that can block a start inside a window (room holds with their turnover, staff
holds, staff time off, the patient's own sessions) comes back by ``(tag, owner)`` as two lists of
epoch integers sorted by start. Rooms and staff holds last at most ``MAX_HOLD`` (a database check),
so an interval overlapping the window starts no earlier than ``MAX_HOLD`` before it: the lower bound
on ``starts_at`` lets the ``(owner, starts_at)`` indexes scan only the window.

Written as SQL, not through the ORM: building the four querysets cost more than running them. On
PostgreSQL each owner's intervals arrive as two ``bigint`` arrays, which psycopg parses in C; on the
embedded SQLite default the instants are read as stored and converted here, to the same integers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from enum import IntEnum
from typing import Any

from django.db import connection

from clinic.db import aware_to_epoch_microseconds
from clinic.models import TimeOff

from .models import LIVE_STATUSES, MAX_HOLD, Session, SessionStaff


class Busy(IntEnum):
    """What an interval holds: the tag of its rows."""

    ROOM = 0
    STAFF = 1
    TIME_OFF = 2
    PATIENT = 3


#: ``(lows, highs)``: one owner's intervals, sorted by start.
Epochs = tuple[list[int], list[int]]

_MICROS = 1_000_000


def in_list(values: Collection[Any]) -> tuple[str, list[Any]]:
    """``(%s, %s, ...)`` and its parameters; never an empty list (SQL has no ``IN ()``)."""
    listed = list(values) or [0]
    return "(" + ", ".join(["%s"] * len(listed)) + ")", listed


def _epoch_sql(column: str, seconds: str | None) -> str:
    """Whole microseconds, or whole seconds rounded ``"down"`` or ``"up"``, since 1970 UTC."""
    if connection.vendor != "postgresql":
        return column  # converted in Python
    if seconds is None:
        return f"(EXTRACT(EPOCH FROM {column}) * {_MICROS})::bigint"
    return f"{'CEIL' if seconds == 'up' else 'FLOOR'}(EXTRACT(EPOCH FROM {column}))::bigint"


def _from_stored(value: Any, seconds: str | None) -> int:
    micros = aware_to_epoch_microseconds(value)
    assert micros is not None  # the columns are NOT NULL
    if seconds is None:
        return micros
    return -(-micros // _MICROS) if seconds == "up" else micros // _MICROS


def busy_time(
    *,
    rooms: Sequence[int],
    staff: Sequence[int],
    patient_id: int | None,
    window: tuple[dt.datetime, dt.datetime],
    exclude_sessions: Collection[int] = (),
    seconds: bool = False,
) -> dict[tuple[Busy, int], Epochs]:
    """Every interval overlapping ``window`` of ``rooms``, ``staff`` and the patient, but those of
    ``exclude_sessions`` (sessions being moved), by ``(tag, owner)``.

    Epoch microseconds, or with ``seconds`` whole seconds with starts rounded down and ends up
    (an interval never shrinks). One query; none when there is nothing to read."""
    if not rooms and not staff and patient_id is None:
        return {}
    low, high = window
    since = low - MAX_HOLD
    instant = connection.ops.adapt_datetimefield_value
    start_unit, end_unit = ("down", "up") if seconds else (None, None)
    live, live_params = in_list(LIVE_STATUSES)
    moving, moving_params = in_list(exclude_sessions)
    sessions = Session._meta.db_table
    holds = SessionStaff._meta.db_table
    time_off = TimeOff._meta.db_table

    def part(
        tag: Busy, owner: str, table: str, end: str, where: str, params: list[Any], *, held: bool
    ) -> tuple[str, list[Any]]:
        # Holds are bounded by MAX_HOLD; time off is not, and is read by overlap alone.
        bound = "starts_at >= %s AND " if held else ""
        bound_params = [instant(since)] if held else []
        return (
            f"SELECT {int(tag)}, {owner}, {_epoch_sql('starts_at', start_unit)}, "
            f"{_epoch_sql(end, end_unit)} FROM {table} WHERE {where} AND {bound}"
            f"starts_at < %s AND {end} > %s",
            [*params, *bound_params, instant(high), instant(low)],
        )

    parts = []
    if rooms:
        room_list, room_params = in_list(rooms)
        where = f"room_id IN {room_list} AND status IN {live}"
        params = [*room_params, *live_params]
        if exclude_sessions:
            where += f" AND id NOT IN {moving}"
            params += moving_params
        parts.append(
            part(Busy.ROOM, "room_id", sessions, "room_released_at", where, params, held=True)
        )
    if staff:
        staff_list, staff_params = in_list(staff)
        where = f"staff_id IN {staff_list} AND is_active"
        params = list(staff_params)
        if exclude_sessions:
            where += f" AND session_id NOT IN {moving}"
            params += moving_params
        parts.append(part(Busy.STAFF, "staff_id", holds, "ends_at", where, params, held=True))
        parts.append(
            part(
                Busy.TIME_OFF,
                "staff_id",
                time_off,
                "ends_at",
                f"staff_id IN {staff_list}",
                list(staff_params),
                held=False,
            )
        )
    if patient_id is not None:
        where = f"patient_id = %s AND status IN {live}"
        params = [patient_id, *live_params]
        if exclude_sessions:
            where += f" AND id NOT IN {moving}"
            params += moving_params
        parts.append(
            part(Busy.PATIENT, "patient_id", sessions, "ends_at", where, params, held=True)
        )
    union = " UNION ALL ".join(sql for sql, _ in parts)
    params = [param for _, values in parts for param in values]
    busy: dict[tuple[Busy, int], Epochs] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tag, owner, array_agg(low ORDER BY low, high), "
                "array_agg(high ORDER BY low, high) "
                f"FROM ({union}) AS busy (tag, owner, low, high) GROUP BY tag, owner",
                params,
            )
            for tag, owner, lows, highs in cursor.fetchall():
                busy[Busy(tag), owner] = (lows, highs)
            return busy
        cursor.execute(union, params)
        rows: dict[tuple[Busy, int], list[tuple[int, int]]] = defaultdict(list)
        for tag, owner, start, end in cursor.fetchall():
            rows[Busy(tag), owner].append(
                (_from_stored(start, start_unit), _from_stored(end, end_unit))
            )
    for key, spans in rows.items():
        spans.sort()
        busy[key] = ([lo for lo, _ in spans], [hi for _, hi in spans])
    return busy
