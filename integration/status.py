"""The integration status of one medicine session: a pure function over plain values, no ORM.

``integration_status`` answers, for a medicine session, whether its integration is

``done``
    a linked integration session here is completed, or an outside integration is confirmed (by the
    outside therapist or the patient);
``booked``
    a linked integration session here is live (booked, confirmed or checked in) and none is done;
``external``
    the patient's outside therapist is doing it: an outside integration is recorded and not yet
    confirmed;
``declined``
    the patient chose no integration therapy (for this session or the whole series) and nothing
    above applies; a patient who changes their mind simply books one, and ``booked`` wins;
``overdue``
    none of the above, the medicine session took place (checked in or completed), and the window
    for its integration has passed;
``none``
    none of the above and the window is still open (or the medicine session has not taken place,
    or was cancelled: such a session needs no integration).

The window is the protocol's ``max_gap(after=medicine, before=integration)`` (7 days when the
protocol states none), with the rules engine's semantics (``protocols.rules.pair_holds``):
``days`` are calendar days in the clinic's zone counted from the local date of the medicine
session's start, so integration may start any time on the local date ``start date + days`` and is
overdue from the first instant of the next local date (DST nights included); ``hours`` are elapsed
from the medicine session's end, and integration is overdue once more than that has passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DONE = "done"
BOOKED = "booked"
EXTERNAL = "external"
DECLINED = "declined"
OVERDUE = "overdue"
NONE = "none"
STATUSES = (DONE, BOOKED, EXTERNAL, DECLINED, OVERDUE, NONE)

#: The window when the protocol has no max_gap(medicine -> integration) rule.
DEFAULT_WINDOW_DAYS = 7

#: Medicine session statuses in which the patient received (or is receiving) the medicine.
TOOK_PLACE = ("checked_in", "completed")
#: Integration session statuses that mean it is still going to happen.
PENDING = ("booked", "confirmed", "checked_in")


@dataclass(frozen=True, slots=True)
class IntegrationWindow:
    """How long after a medicine session its integration may start; ``days`` and ``hours`` as in
    ``max_gap``. Both may be given (both must hold); neither means the 7-day default."""

    days: int | None = DEFAULT_WINDOW_DAYS
    hours: int | None = None


@dataclass(frozen=True, slots=True)
class MedicineFact:
    session_id: int
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LinkedSessionFact:
    """An integration session booked here and linked to the medicine session."""

    session_id: int
    status: str
    starts_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OutsideFact:
    record_id: int
    held_on: dt.date
    is_confirmed: bool


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    status: str
    #: The last local date integration may start on (days windows); None for hours-only windows.
    due_on: dt.date | None
    #: The first instant (UTC) at which integration is overdue.
    overdue_from: dt.datetime
    #: Whole local days since ``overdue_from``'s date, counting that date as 1; 0 unless overdue.
    days_overdue: int
    #: The integration sessions here and the outside records that decided the status.
    session_ids: tuple[int, ...] = ()
    outside_ids: tuple[int, ...] = ()


def overdue_from(
    medicine_starts_at: dt.datetime,
    medicine_ends_at: dt.datetime,
    window: IntegrationWindow,
    tz: ZoneInfo,
) -> dt.datetime:
    """The first instant (UTC) at which an integration that has not started is too late."""
    limits: list[dt.datetime] = []
    if window.days is not None:
        last_day = _local_date(medicine_starts_at, tz) + dt.timedelta(days=window.days)
        limits.append(_day_start(last_day + dt.timedelta(days=1), tz))
    if window.hours is not None:
        # Allowed up to and including end + hours; overdue from the next microsecond.
        limits.append(
            medicine_ends_at.astimezone(dt.UTC) + dt.timedelta(hours=window.hours, microseconds=1)
        )
    if not limits:
        return overdue_from(
            medicine_starts_at, medicine_ends_at, IntegrationWindow(DEFAULT_WINDOW_DAYS), tz
        )
    return min(limits)


def integration_status(
    medicine: MedicineFact,
    linked: Sequence[LinkedSessionFact],
    outside: Sequence[OutsideFact],
    *,
    is_declined: bool,
    window: IntegrationWindow,
    tz: ZoneInfo,
    now: dt.datetime,
) -> IntegrationStatus:
    """The status of ``medicine``'s integration at ``now`` (see the module docstring)."""
    _require_aware(now)
    deadline = overdue_from(medicine.starts_at, medicine.ends_at, window, tz)
    due_on = (
        _local_date(medicine.starts_at, tz) + dt.timedelta(days=window.days)
        if window.days is not None
        else None
    )

    def result(
        status: str, sessions: Sequence[int] = (), records: Sequence[int] = (), late: int = 0
    ) -> IntegrationStatus:
        return IntegrationStatus(
            status, due_on, deadline, late, tuple(sorted(sessions)), tuple(sorted(records))
        )

    completed = [fact.session_id for fact in linked if fact.status == "completed"]
    confirmed = [fact.record_id for fact in outside if fact.is_confirmed]
    if completed or confirmed:
        return result(DONE, completed, confirmed)
    pending = [fact.session_id for fact in linked if fact.status in PENDING]
    if pending:
        return result(BOOKED, pending)
    unconfirmed = [fact.record_id for fact in outside]
    if unconfirmed:
        return result(EXTERNAL, (), unconfirmed)
    if is_declined:
        return result(DECLINED)
    if medicine.status in TOOK_PLACE and now >= deadline:
        late = (_local_date(now, tz) - _local_date(deadline, tz)).days + 1
        return result(OVERDUE, late=late)
    return result(NONE)


def _require_aware(value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} is naive; give an aware datetime")


def _local_date(moment: dt.datetime, tz: ZoneInfo) -> dt.date:
    _require_aware(moment)
    return moment.astimezone(tz).date()


def _day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The first instant (UTC) of local ``day``; a midnight lost to DST resolves forward."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
