"""The pure timing rules of reminders: quiet hours in the patient's zone (DST included), which
reminders a session in each state should have, and the retry backoff. No database."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from scheduling.reminders.models import default_schedule
from scheduling.reminders.policy import (
    QuietHours,
    out_of_quiet_hours,
    quiet_period_around,
    reminder_key,
    reminders_planned,
    retry_delay,
)

LA = ZoneInfo("America/Los_Angeles")
NY = ZoneInfo("America/New_York")
NIGHT = QuietHours(dt.time(21), dt.time(8))
UTC = dt.UTC


def la(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LA)  # type: ignore[misc]


def test_a_reminder_due_at_night_goes_out_when_quiet_hours_end() -> None:
    # given a reminder due 23:00 local for a session at 10:00 the next morning
    due = la(2026, 3, 3, 23, 0)

    moved = out_of_quiet_hours(due, LA, NIGHT, before=la(2026, 3, 4, 10, 0))

    assert moved == la(2026, 3, 4, 8, 0).astimezone(UTC)


def test_a_reminder_whose_quiet_hours_end_after_the_session_goes_out_the_evening_before() -> None:
    # given a reminder due 06:00 local for a session at 07:30: 08:00 would be too late
    moved = out_of_quiet_hours(la(2026, 3, 4, 6, 0), LA, NIGHT, before=la(2026, 3, 4, 7, 30))

    assert moved == la(2026, 3, 3, 20, 59).astimezone(UTC)


def test_a_reminder_outside_quiet_hours_is_unchanged() -> None:
    due = la(2026, 3, 4, 12, 0)

    assert out_of_quiet_hours(due, LA, NIGHT, before=la(2026, 3, 5, 12)) == due.astimezone(UTC)


def test_quiet_hours_are_counted_in_the_patients_zone_not_the_clinics() -> None:
    # 19:00 in Los Angeles is 22:00 in New York: quiet for a patient living in New York
    due = la(2026, 3, 4, 19, 0)

    assert out_of_quiet_hours(due, LA, NIGHT) == due.astimezone(UTC)
    assert out_of_quiet_hours(due, NY, NIGHT) == dt.datetime(2026, 3, 5, 8, tzinfo=NY).astimezone(
        UTC
    )


def test_quiet_hours_end_at_local_eight_on_both_sides_of_the_spring_forward_night() -> None:
    # 2026-03-08 is the spring-forward Sunday in Los Angeles: 08:00 is 16:00 UTC before, 15:00 after
    saturday = out_of_quiet_hours(la(2026, 3, 7, 3, 0), LA, NIGHT)
    sunday = out_of_quiet_hours(la(2026, 3, 8, 3, 30), LA, NIGHT)

    assert saturday == dt.datetime(2026, 3, 7, 16, tzinfo=UTC)
    assert sunday == dt.datetime(2026, 3, 8, 15, tzinfo=UTC)


def test_quiet_hours_on_the_fall_back_night_last_one_hour_longer() -> None:
    start, end = quiet_period_around(la(2026, 10, 31, 23, 0), LA, NIGHT)  # type: ignore[misc]

    assert end - start == dt.timedelta(hours=12)  # 21:00 PDT to 08:00 PST


def test_quiet_hours_inside_one_day_and_switched_off() -> None:
    lunch = QuietHours(dt.time(12), dt.time(13))

    assert out_of_quiet_hours(la(2026, 3, 4, 12, 30), LA, lunch) == la(2026, 3, 4, 13).astimezone(
        UTC
    )
    assert out_of_quiet_hours(la(2026, 3, 4, 23), LA, QuietHours(dt.time(0), dt.time(0))) == la(
        2026, 3, 4, 23
    ).astimezone(UTC)


@given(
    due=st.datetimes(
        min_value=dt.datetime(2026, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=dt.datetime(2027, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    lead=st.integers(min_value=1, max_value=72 * 60),
    start=st.times(),
    end=st.times(),
    zone=st.sampled_from(["America/Los_Angeles", "Europe/London", "Australia/Sydney", "UTC"]),
)
def test_a_moved_reminder_is_never_in_quiet_hours_and_never_after_the_session(
    due: dt.datetime, lead: int, start: dt.time, end: dt.time, zone: str
) -> None:
    tz = ZoneInfo(zone)
    quiet = QuietHours(start.replace(microsecond=0), end.replace(microsecond=0))
    session_start = due + dt.timedelta(minutes=lead)

    moved = out_of_quiet_hours(due, tz, quiet, before=session_start)

    if quiet_period_around(due, tz, quiet) is None:
        assert moved == due
    else:
        assert moved < session_start or moved < due
        assert moved != due


def test_a_booked_medicine_session_gets_72_and_24_hour_reminders_on_the_policy_channels() -> None:
    starts_at = la(2026, 3, 10, 10, 0)

    planned = reminders_planned(
        session_id=7,
        kind="medicine",
        status="booked",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=2),
        tz=LA,
        schedule=default_schedule(),
        quiet=NIGHT,
        after_medicine_hours=3,
        preferred="email",
        has_email=True,
        has_phone=True,
    )

    assert [(p.purpose, p.channel, p.offset_minutes, p.due_at) for p in planned] == [
        ("upcoming", "email", 4320, la(2026, 3, 7, 9, 0).astimezone(UTC)),  # 72 h across DST
        ("upcoming", "email", 1440, la(2026, 3, 9, 10, 0).astimezone(UTC)),
        ("upcoming", "sms", 1440, la(2026, 3, 9, 10, 0).astimezone(UTC)),
    ]
    assert planned[0].key == "r7-upcoming-email-4320m-20260310T170000Z"


def test_unreachable_channels_are_left_out_and_the_preference_is_followed() -> None:
    starts_at = la(2026, 3, 10, 10, 0)
    common = {
        "session_id": 7,
        "kind": "medicine",
        "status": "confirmed",
        "starts_at": starts_at,
        "ends_at": starts_at + dt.timedelta(hours=2),
        "tz": LA,
        "schedule": default_schedule(),
        "quiet": NIGHT,
        "after_medicine_hours": 3,
    }

    by_sms = reminders_planned(**common, preferred="sms", has_email=False, has_phone=True)
    no_phone = reminders_planned(**common, preferred="email", has_email=True, has_phone=False)

    assert [(p.channel, p.offset_minutes) for p in by_sms] == [("sms", 4320), ("sms", 1440)]
    assert [(p.channel, p.offset_minutes) for p in no_phone] == [("email", 4320), ("email", 1440)]


def test_only_awaited_sessions_have_upcoming_reminders_and_medicine_has_one_after() -> None:
    starts_at = la(2026, 3, 10, 17, 0)
    common = {
        "session_id": 9,
        "starts_at": starts_at,
        "ends_at": starts_at + dt.timedelta(hours=2),
        "tz": LA,
        "schedule": default_schedule(),
        "quiet": NIGHT,
        "after_medicine_hours": 3,
        "preferred": "email",
        "has_email": True,
        "has_phone": True,
    }

    for status in ("checked_in", "cancelled", "late_cancelled", "no_show"):
        assert reminders_planned(**common, kind="medicine", status=status) == []
    assert reminders_planned(**common, kind="integration", status="completed") == []
    after = reminders_planned(**common, kind="medicine", status="completed")

    # 19:00 + 3 h is 22:00, inside quiet hours: it goes out at 08:00 the next morning
    assert [(p.purpose, p.channel, p.due_at) for p in after] == [
        ("after_medicine", "email", la(2026, 3, 11, 8, 0).astimezone(UTC))
    ]


def test_a_moved_session_gets_new_keys() -> None:
    assert reminder_key(1, "upcoming", "sms", 1440, la(2026, 3, 10, 10)) != reminder_key(
        1, "upcoming", "sms", 1440, la(2026, 3, 10, 11)
    )


def test_retry_backoff_grows_four_fold_up_to_its_cap() -> None:
    delays = [retry_delay(n, base_seconds=60, max_seconds=3600) for n in range(1, 6)]

    assert [d.total_seconds() for d in delays] == [60, 240, 960, 3600, 3600]
