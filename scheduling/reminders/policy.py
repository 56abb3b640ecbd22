"""When a session's reminders are due: pure functions over plain values, no ORM.

Quiet hours are local times in the patient's zone. A reminder that falls inside them goes out when
they end if that is still before the session, and otherwise just before they began, so a patient
is neither woken at night nor reminded after the fact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

UPCOMING = "upcoming"
AFTER_MEDICINE = "after_medicine"
MEDICINE = "medicine"
#: Statuses in which a session is still ahead of the patient, so "before" reminders stand.
AWAITED_STATUSES = ("booked", "confirmed")
#: How long before quiet hours begin a reminder pulled out of them is sent.
BEFORE_QUIET = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: dt.time
    end: dt.time

    @property
    def is_off(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    minutes_before: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    purpose: str
    channel: str
    offset_minutes: int
    due_at: dt.datetime
    key: str


def schedule_entries(
    schedule: Mapping[str, Sequence[Mapping[str, Any]]], kind: str
) -> list[ScheduleEntry]:
    return [
        ScheduleEntry(int(entry["hours_before"]) * 60, tuple(entry["channels"]))
        for entry in schedule.get(kind, [])
    ]


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def _at(day: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    """A local wall-clock time as a UTC instant (a time skipped by DST resolves forward)."""
    return _utc(dt.datetime.combine(day, time, tzinfo=tz))


def quiet_period_around(
    moment: dt.datetime, tz: ZoneInfo, quiet: QuietHours
) -> tuple[dt.datetime, dt.datetime] | None:
    """The quiet period ``[start, end)`` (UTC) that contains ``moment``, or None."""
    if quiet.is_off:
        return None
    moment = _utc(moment)
    local_day = moment.astimezone(tz).date()
    wraps_midnight = quiet.start > quiet.end
    for day in (local_day - dt.timedelta(days=1), local_day):
        start = _at(day, quiet.start, tz)
        end = _at(day + dt.timedelta(days=1) if wraps_midnight else day, quiet.end, tz)
        if start <= moment < end:
            return start, end
    return None


def out_of_quiet_hours(
    moment: dt.datetime, tz: ZoneInfo, quiet: QuietHours, *, before: dt.datetime | None = None
) -> dt.datetime:
    """``moment`` moved out of quiet hours: to their end if that is before ``before`` (the
    session's start), otherwise to just before they began. Outside quiet hours: unchanged."""
    period = quiet_period_around(moment, tz, quiet)
    if period is None:
        return _utc(moment)
    start, end = period
    if before is None or end < _utc(before):
        return end
    return start - BEFORE_QUIET


def channels_for(
    wanted: Iterable[str], *, preferred: str, has_email: bool, has_phone: bool
) -> list[str]:
    """The channels a reminder goes out on, in order, without repeats or unreachable ones."""
    reachable = {"email": has_email, "sms": has_phone}
    chosen: list[str] = []
    for channel in wanted:
        actual = preferred if channel == "preferred" else channel
        if reachable.get(actual) and actual not in chosen:
            chosen.append(actual)
    return chosen


def reminder_key(
    session_id: int, purpose: str, channel: str, offset_minutes: int, anchor: dt.datetime
) -> str:
    """The idempotency key: one per session, purpose, channel, offset and session start, so a
    moved session's reminders get new keys and its old ones can never be confused with them."""
    return f"r{session_id}-{purpose}-{channel}-{offset_minutes}m-{_utc(anchor):%Y%m%dT%H%M%SZ}"


def reminders_planned(
    *,
    session_id: int,
    kind: str,
    status: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    tz: ZoneInfo,
    schedule: Mapping[str, Sequence[Mapping[str, Any]]],
    quiet: QuietHours,
    after_medicine_hours: int | None,
    preferred: str,
    has_email: bool,
    has_phone: bool,
) -> list[PlannedReminder]:
    """Every reminder a session in this state should have, whether or not it is already due.

    Offsets are elapsed time: "72 hours before" a Tuesday 10:00 session right after the spring
    DST change is Saturday 09:00 local. (Aware arithmetic in a local zone would say 10:00.)
    """
    starts_at, ends_at = _utc(starts_at), _utc(ends_at)
    planned: list[PlannedReminder] = []
    if status in AWAITED_STATUSES:
        for entry in schedule_entries(schedule, kind):
            due_at = out_of_quiet_hours(
                starts_at - dt.timedelta(minutes=entry.minutes_before), tz, quiet, before=starts_at
            )
            for channel in channels_for(
                entry.channels, preferred=preferred, has_email=has_email, has_phone=has_phone
            ):
                planned.append(
                    PlannedReminder(
                        UPCOMING,
                        channel,
                        entry.minutes_before,
                        due_at,
                        reminder_key(
                            session_id, UPCOMING, channel, entry.minutes_before, starts_at
                        ),
                    )
                )
    elif status == "completed" and kind == MEDICINE and after_medicine_hours is not None:
        minutes = after_medicine_hours * 60
        due_at = out_of_quiet_hours(ends_at + dt.timedelta(minutes=minutes), tz, quiet)
        for channel in channels_for(
            ["preferred"], preferred=preferred, has_email=has_email, has_phone=has_phone
        ):
            planned.append(
                PlannedReminder(
                    AFTER_MEDICINE,
                    channel,
                    minutes,
                    due_at,
                    reminder_key(session_id, AFTER_MEDICINE, channel, minutes, starts_at),
                )
            )
    return planned


def retry_delay(attempts: int, *, base_seconds: int, max_seconds: int) -> dt.timedelta:
    """Backoff after the ``attempts``-th failure: base, 4 x base, 16 x base ... capped."""
    return dt.timedelta(seconds=min(base_seconds * 4 ** max(attempts - 1, 0), max_seconds))
