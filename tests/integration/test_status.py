"""The integration status of a medicine session, as a pure function: every combination of what
follows it, and the exact instant it becomes overdue in the clinic's calendar (DST included)."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from integration.status import (
    IntegrationWindow,
    LinkedSessionFact,
    MedicineFact,
    OutsideFact,
    integration_status,
    overdue_from,
)

LA = ZoneInfo("America/Los_Angeles")
LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC
TICK = dt.timedelta(microseconds=1)

# Thursday 5 March 2026, 09:00-11:00 in Los Angeles (PST, UTC-8). DST starts Sunday 8 March.
M_START = dt.datetime(2026, 3, 5, 9, tzinfo=LA)
M_END = dt.datetime(2026, 3, 5, 11, tzinfo=LA)
# Due on 12 March (5 + 7); overdue from local midnight of 13 March, which is PDT (UTC-7).
OVERDUE_FROM = dt.datetime(2026, 3, 13, 7, tzinfo=UTC)


def _medicine(status: str = "completed", start=M_START, end=M_END) -> MedicineFact:
    return MedicineFact(1, status, start, end)


def _status(
    medicine: MedicineFact | None = None,
    linked=(),
    outside=(),
    *,
    is_declined: bool = False,
    window: IntegrationWindow | None = None,
    tz: ZoneInfo = LA,
    now: dt.datetime = OVERDUE_FROM,
):
    return integration_status(
        medicine or _medicine(),
        linked,
        outside,
        is_declined=is_declined,
        window=window or IntegrationWindow(),
        tz=tz,
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# The boundaries


def test_default_window_is_seven_local_days_counted_across_the_dst_night() -> None:
    assert overdue_from(M_START, M_END, IntegrationWindow(), LA) == OVERDUE_FROM

    just_before = _status(now=OVERDUE_FROM - TICK)
    at = _status(now=OVERDUE_FROM)

    assert (just_before.status, just_before.days_overdue) == ("none", 0)
    assert (at.status, at.days_overdue) == ("overdue", 1)
    assert at.due_on == just_before.due_on == dt.date(2026, 3, 12)
    assert at.overdue_from == OVERDUE_FROM


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 3, 13, 23, 59, 59, tzinfo=LA), 1),
        (dt.datetime(2026, 3, 14, 0, 0, tzinfo=LA), 2),
        (dt.datetime(2026, 3, 20, 12, 0, tzinfo=LA), 8),
    ],
)
def test_days_overdue_count_local_dates(now: dt.datetime, expected: int) -> None:
    assert _status(now=now).days_overdue == expected


def test_a_late_evening_session_counts_from_its_local_date_not_its_utc_date() -> None:
    start = dt.datetime(2026, 3, 5, 22, 30, tzinfo=LA)  # 6 March 06:30 UTC
    end = dt.datetime(2026, 3, 5, 23, 45, tzinfo=LA)
    medicine = _medicine(start=start, end=end)

    assert _status(medicine, now=OVERDUE_FROM - TICK).status == "none"
    assert _status(medicine, now=OVERDUE_FROM).status == "overdue"


def test_autumn_dst_night_in_london() -> None:
    # Friday 23 October 2026 14:00 BST; clocks go back on Sunday 25 October.
    start = dt.datetime(2026, 10, 23, 14, tzinfo=LONDON)
    end = start + dt.timedelta(hours=2)
    boundary = dt.datetime(2026, 10, 31, 0, 0, tzinfo=UTC)  # local midnight, GMT

    assert overdue_from(start, end, IntegrationWindow(days=7), LONDON) == boundary
    medicine = _medicine(start=start, end=end)
    assert _status(medicine, tz=LONDON, now=boundary - TICK).status == "none"
    assert _status(medicine, tz=LONDON, now=boundary).status == "overdue"


@pytest.mark.parametrize(
    ("days", "boundary"),
    [
        (0, dt.datetime(2026, 3, 6, 8, tzinfo=UTC)),  # still PST
        (1, dt.datetime(2026, 3, 7, 8, tzinfo=UTC)),
        (3, dt.datetime(2026, 3, 9, 7, tzinfo=UTC)),  # now PDT
        (14, dt.datetime(2026, 3, 20, 7, tzinfo=UTC)),
    ],
)
def test_windows_from_the_protocol(days: int, boundary: dt.datetime) -> None:
    window = IntegrationWindow(days=days)

    assert _status(window=window, now=boundary - TICK).status == "none"
    late = _status(window=window, now=boundary)
    assert (late.status, late.due_on, late.days_overdue) == (
        "overdue",
        dt.date(2026, 3, 5) + dt.timedelta(days=days),
        1,
    )


def test_an_hours_window_counts_elapsed_time_from_the_end() -> None:
    window = IntegrationWindow(days=None, hours=48)
    last_allowed = M_END + dt.timedelta(hours=48)  # 7 March 11:00 PST

    assert _status(window=window, now=last_allowed).status == "none"
    late = _status(window=window, now=last_allowed + TICK)
    assert (late.status, late.due_on, late.days_overdue) == ("overdue", None, 1)


def test_days_and_hours_together_take_the_earlier_limit() -> None:
    window = IntegrationWindow(days=7, hours=24)
    assert overdue_from(M_START, M_END, window, LA) == M_END + dt.timedelta(hours=24) + TICK


def test_no_window_at_all_means_the_seven_day_default() -> None:
    window = IntegrationWindow(days=None, hours=None)
    assert overdue_from(M_START, M_END, window, LA) == OVERDUE_FROM


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _status(now=dt.datetime(2026, 3, 13, 12))  # noqa: DTZ001


# ---------------------------------------------------------------------------------------------
# The matrix: every combination of what follows the medicine session, before and after the window

SESSION_STATUSES = [
    "booked",
    "confirmed",
    "checked_in",
    "completed",
    "cancelled",
    "late_cancelled",
    "no_show",
]
LINKED = [
    (),
    ("booked",),
    ("confirmed",),
    ("checked_in",),
    ("completed",),
    ("cancelled",),
    ("late_cancelled",),
    ("no_show",),
    ("cancelled", "booked"),
    ("no_show", "completed"),
    ("booked", "completed"),
]
OUTSIDE = [(), (False,), (True,), (False, True)]


def _expected(
    medicine: str, linked: tuple[str, ...], outside: tuple[bool, ...], declined: bool, late: bool
) -> str:
    """The precedence of the module docstring, written as the clinic states it."""
    if "completed" in linked or True in outside:
        return "done"
    if {"booked", "confirmed", "checked_in"} & set(linked):
        return "booked"
    if outside:
        return "external"
    if declined:
        return "declined"
    if medicine in ("checked_in", "completed") and late:
        return "overdue"
    return "none"


MATRIX = list(itertools.product(SESSION_STATUSES, LINKED, OUTSIDE, [False, True], [False, True]))


@pytest.mark.parametrize(("medicine", "linked", "outside", "declined", "late"), MATRIX)
def test_status_matrix(
    medicine: str, linked: tuple[str, ...], outside: tuple[bool, ...], declined: bool, late: bool
) -> None:
    now = OVERDUE_FROM if late else OVERDUE_FROM - TICK
    result = _status(
        _medicine(medicine),
        [
            LinkedSessionFact(10 + n, status, M_START + dt.timedelta(days=1))
            for n, status in enumerate(linked)
        ],
        [
            OutsideFact(20 + n, dt.date(2026, 3, 7), confirmed)
            for n, confirmed in enumerate(outside)
        ],
        is_declined=declined,
        now=now,
    )
    expected = _expected(medicine, linked, outside, declined, late)

    assert result.status == expected
    assert result.days_overdue == (1 if expected == "overdue" else 0)


def test_the_matrix_covers_every_status() -> None:
    assert {_expected(*case) for case in MATRIX} == {
        "done",
        "booked",
        "external",
        "declined",
        "overdue",
        "none",
    }


def test_the_result_names_what_decided_it() -> None:
    linked = [
        LinkedSessionFact(12, "completed", M_START + dt.timedelta(days=2)),
        LinkedSessionFact(11, "cancelled", M_START + dt.timedelta(days=1)),
        LinkedSessionFact(13, "booked", M_START + dt.timedelta(days=5)),
    ]
    outside = [
        OutsideFact(21, dt.date(2026, 3, 6), True),
        OutsideFact(22, dt.date(2026, 3, 9), False),
    ]

    done = _status(linked=linked, outside=outside)
    booked = _status(linked=linked[1:])
    external = _status(outside=outside[1:])

    assert (done.status, done.session_ids, done.outside_ids) == ("done", (12,), (21,))
    assert (booked.status, booked.session_ids, booked.outside_ids) == ("booked", (13,), ())
    assert (external.status, external.session_ids, external.outside_ids) == ("external", (), (22,))
