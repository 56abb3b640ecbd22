"""The rules engine, rule by rule, with each boundary tested on both sides.

Dates around 2026-03-08 (spring forward, a 23-hour day in Los Angeles) and 2026-11-01 (fall back,
25 hours) show that ``days`` are calendar days in the clinic's zone and ``hours`` are elapsed.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocols.rules import (
    PatientGates,
    ProtocolFormatError,
    ProtocolSpec,
    Rule,
    ScreeningFact,
    SessionFact,
    Step,
    StepRole,
    Violation,
    calendar_days_between,
    day_start,
    evaluate,
    local_date,
    protocol_from_dict,
    protocol_to_dict,
    steps_done,
    validate_protocol,
)

LA = ZoneInfo("America/Los_Angeles")


def at(day: str, clock: str = "09:00") -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=LA)


def session(ref: int, kind: str, day: str, clock: str = "09:00", minutes: int = 60) -> SessionFact:
    start = at(day, clock)
    return SessionFact(ref, kind, start, (start.astimezone(UTC) + timedelta(minutes=minutes)))


def protocol(*rules: Rule, counts: dict[str, int] | None = None) -> ProtocolSpec:
    counts = counts or {"preparation": 2, "medicine": 6, "integration": 6}
    steps = tuple(
        Step(kind, count, 60, "therapy_room", (StepRole("therapist"),), "im" * (kind == "medicine"))
        for kind, count in counts.items()
    )
    return ProtocolSpec("test", "kap", steps, rules)


def found(violations: list[Violation]) -> list[tuple[str, tuple[int | str, ...]]]:
    return [(v.rule, v.sessions) for v in violations]


# ----------------------------------------------------------------------------- time helpers


def test_spring_forward_day_has_23_hours_and_is_one_calendar_day() -> None:
    midnight, next_midnight = at("2026-03-08", "00:00"), at("2026-03-09", "00:00")

    assert next_midnight.astimezone(UTC) - midnight.astimezone(UTC) == timedelta(hours=23)
    assert calendar_days_between(midnight, next_midnight, LA) == 1


def test_fall_back_day_has_25_hours_and_is_one_calendar_day() -> None:
    midnight, next_midnight = at("2026-11-01", "00:00"), at("2026-11-02", "00:00")

    assert next_midnight.astimezone(UTC) - midnight.astimezone(UTC) == timedelta(hours=25)
    assert calendar_days_between(midnight, next_midnight, LA) == 1


def test_local_date_is_the_clinic_date_not_the_utc_date() -> None:
    late_evening = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 2026-03-07 22:30 PST

    assert local_date(late_evening, LA) == date(2026, 3, 7)
    assert calendar_days_between(late_evening, at("2026-03-08", "00:30"), LA) == 1


def test_day_start_is_local_midnight_in_utc() -> None:
    assert day_start(date(2026, 3, 8), LA) == datetime(2026, 3, 8, 8, tzinfo=UTC)
    assert day_start(date(2026, 3, 9), LA) == datetime(2026, 3, 9, 7, tzinfo=UTC)


def test_day_start_where_midnight_does_not_exist() -> None:
    """Havana springs forward at midnight: the day starts at 01:00 local."""
    havana = ZoneInfo("America/Havana")

    start = day_start(date(2026, 3, 8), havana)

    assert start.astimezone(havana).time() == time(1)
    assert local_date(start - timedelta(microseconds=1), havana) == date(2026, 3, 7)


def test_naive_datetimes_are_refused() -> None:
    start, end = at("2026-03-02", "09:00").replace(tzinfo=None), at("2026-03-02", "10:00")
    naive = SessionFact(1, "medicine", start, end)

    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate([naive], protocol(), LA)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(start, LA)


def test_a_session_ending_before_it_starts_is_refused() -> None:
    backwards = SessionFact(1, "medicine", at("2026-03-02", "10:00"), at("2026-03-02", "09:00"))

    with pytest.raises(ValueError, match="ends before it starts"):
        evaluate([backwards], protocol(), LA)


# ----------------------------------------------------------------------------- min_gap

MEDICINE_THEN_INTEGRATION_NEXT_DAY = Rule("min_gap", "medicine", "integration", days=1)


def test_min_gap_days_same_day_is_too_soon() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-02", "23:00"),
    ]

    violations = evaluate(sessions, protocol(MEDICINE_THEN_INTEGRATION_NEXT_DAY), LA)

    assert violations == [
        Violation(
            "min_gap",
            "Integration 1 on 2026-03-02 is 0 days after medicine 1 on 2026-03-02; "
            "the protocol needs at least 1 day.",
            (1, 2),
            "Move integration 1 to 2026-03-03 or later.",
        )
    ]


def test_min_gap_days_next_calendar_day_at_midnight_is_enough() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02", "17:00"),
        session(2, "integration", "2026-03-03", "00:00"),
    ]

    assert evaluate(sessions, protocol(MEDICINE_THEN_INTEGRATION_NEXT_DAY), LA) == []


def test_min_gap_days_counts_calendar_days_across_spring_forward() -> None:
    """Medicine at 23:00 the night before the change, integration 90 minutes later: 1 day."""
    sessions = [
        session(1, "medicine", "2026-03-07", "23:00", 30),
        session(2, "integration", "2026-03-08", "00:30"),
    ]

    assert evaluate(sessions, protocol(MEDICINE_THEN_INTEGRATION_NEXT_DAY), LA) == []


def test_min_gap_days_is_measured_from_the_most_recent_earlier_session() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "medicine", "2026-03-05"),
        session(3, "integration", "2026-03-05", "14:00"),
    ]

    assert found(evaluate(sessions, protocol(MEDICINE_THEN_INTEGRATION_NEXT_DAY), LA)) == [
        ("min_gap", (2, 3))
    ]


def test_min_gap_ignores_a_later_session_with_no_earlier_partner() -> None:
    sessions = [
        session(1, "integration", "2026-03-02"),
        session(2, "medicine", "2026-03-02", "14:00"),
    ]

    assert evaluate(sessions, protocol(MEDICINE_THEN_INTEGRATION_NEXT_DAY), LA) == []


@pytest.mark.parametrize(
    ("second_day", "expected"),
    [("2026-03-03", [("min_gap", (1, 2))]), ("2026-03-04", [])],
)
def test_min_gap_between_sessions_of_one_kind_checks_consecutive_pairs(
    second_day: str, expected: list[tuple[str, tuple[int, ...]]]
) -> None:
    rule = Rule("min_gap", "medicine", "medicine", days=2)
    sessions = [session(1, "medicine", "2026-03-02"), session(2, "medicine", second_day)]

    assert found(evaluate(sessions, protocol(rule), LA)) == expected


DAY_APART = Rule("min_gap", "medicine", "integration", hours=24)


def test_min_gap_hours_across_spring_forward_are_elapsed_hours() -> None:
    """Ends 10:00 PST on Saturday; 10:00 PDT on Sunday is only 23 hours later."""
    medicine = session(1, "medicine", "2026-03-07", "09:00", 60)
    too_soon = session(2, "integration", "2026-03-08", "10:00")
    in_time = session(2, "integration", "2026-03-08", "11:00")

    violations = evaluate([medicine, too_soon], protocol(DAY_APART), LA)

    assert violations == [
        Violation(
            "min_gap",
            "Integration 1 starts 23 hours after medicine 1 ends; "
            "the protocol needs at least 24 hours.",
            (1, 2),
            "Move integration 1 to 2026-03-08 11:00 or later.",
        )
    ]
    assert evaluate([medicine, in_time], protocol(DAY_APART), LA) == []


def test_min_gap_hours_across_fall_back_are_elapsed_hours() -> None:
    """Ends 10:00 PDT on Saturday; 09:00 PST on Sunday is already 24 hours later."""
    medicine = session(1, "medicine", "2026-10-31", "09:00", 60)
    in_time = session(2, "integration", "2026-11-01", "09:00")
    too_soon = session(2, "integration", "2026-11-01", "08:59")

    assert evaluate([medicine, in_time], protocol(DAY_APART), LA) == []
    assert found(evaluate([medicine, too_soon], protocol(DAY_APART), LA)) == [("min_gap", (1, 2))]


# ----------------------------------------------------------------------------- max_gap

INTEGRATION_WITHIN_A_WEEK = Rule("max_gap", "medicine", "integration", days=7)


def test_max_gap_days_seven_days_later_is_in_time() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02", "08:00"),
        session(2, "integration", "2026-03-09", "17:00"),
    ]

    assert evaluate(sessions, protocol(INTEGRATION_WITHIN_A_WEEK), LA) == []


def test_max_gap_days_eight_days_later_is_too_late() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02", "17:00"),
        session(2, "integration", "2026-03-10", "08:00"),
    ]

    violations = evaluate(sessions, protocol(INTEGRATION_WITHIN_A_WEEK), LA)

    assert violations == [
        Violation(
            "max_gap",
            "Integration 1 on 2026-03-10 is 8 days after medicine 1 on 2026-03-02; "
            "the protocol allows at most 7 days.",
            (1, 2),
            "Move integration 1 to 2026-03-09 or earlier.",
        )
    ]


def test_max_gap_days_one_calendar_day_can_be_39_hours_over_spring_forward() -> None:
    rule = Rule("max_gap", "medicine", "integration", days=1)
    sessions = [
        session(1, "medicine", "2026-03-07", "08:00"),
        session(2, "integration", "2026-03-08", "23:00"),
    ]

    assert evaluate(sessions, protocol(rule), LA) == []


@pytest.mark.parametrize(("clock", "expected"), [("08:00", []), ("08:01", [("max_gap", (1, 2))])])
def test_max_gap_hours_across_fall_back(clock: str, expected: list[Any]) -> None:
    """Ends 08:00 PDT Saturday; 08:00 PST Sunday is exactly 25 hours later."""
    rule = Rule("max_gap", "medicine", "integration", hours=25)
    sessions = [
        session(1, "medicine", "2026-10-31", "07:00"),
        session(2, "integration", "2026-11-01", clock),
    ]

    assert found(evaluate(sessions, protocol(rule), LA)) == expected


def test_max_gap_only_the_first_following_session_counts() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-04"),
        session(3, "integration", "2026-03-20"),
    ]

    assert evaluate(sessions, protocol(INTEGRATION_WITHIN_A_WEEK), LA) == []


def test_max_gap_ignores_a_follower_after_the_next_session_of_the_first_kind() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "medicine", "2026-03-20"),
        session(3, "integration", "2026-03-21"),
    ]

    assert evaluate(sessions, protocol(INTEGRATION_WITHIN_A_WEEK), LA) == []


@pytest.mark.parametrize(
    ("third_day", "expected"), [("2026-03-10", []), ("2026-03-11", [("max_gap", (2, 3))])]
)
def test_max_gap_between_sessions_of_one_kind_checks_consecutive_pairs(
    third_day: str, expected: list[Any]
) -> None:
    rule = Rule("max_gap", "medicine", "medicine", days=4)
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "medicine", "2026-03-06"),
        session(3, "medicine", third_day),
    ]

    assert found(evaluate(sessions, protocol(rule), LA)) == expected


def test_max_gap_with_require_complete_reports_a_session_never_followed() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-03"),
        session(3, "medicine", "2026-03-04"),
    ]
    rules = protocol(INTEGRATION_WITHIN_A_WEEK, counts={"medicine": 2, "integration": 2})

    assert evaluate(sessions, rules, LA) == []
    assert [
        v for v in evaluate(sessions, rules, LA, require_complete=True) if v.rule == "max_gap"
    ] == [
        Violation(
            "max_gap",
            "Medicine 2 on 2026-03-04 has no integration session after it; "
            "the protocol needs one within 7 days.",
            (3,),
            "Book an integration session on or before 2026-03-11.",
        )
    ]


def test_max_gap_with_require_complete_is_quiet_when_every_follower_is_booked() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-03"),
        session(3, "integration", "2026-03-04"),
        session(4, "medicine", "2026-03-05"),
    ]
    rules = protocol(INTEGRATION_WITHIN_A_WEEK, counts={"medicine": 2, "integration": 2})

    assert [v.rule for v in evaluate(sessions, rules, LA, require_complete=True)] == []


def test_max_gap_of_one_kind_with_require_complete_reports_the_last_session() -> None:
    rule = Rule("max_gap", "medicine", "medicine", days=4)
    sessions = [session(1, "medicine", "2026-03-02"), session(2, "medicine", "2026-03-03")]
    rules = protocol(rule, counts={"medicine": 3})

    assert found(evaluate(sessions, rules, LA, require_complete=True)) == [
        ("step_count", (1, 2)),
        ("max_gap", (2,)),
    ]


# ----------------------------------------------------------------------------- each_followed_by

EACH_INTEGRATED = Rule("each_followed_by", "medicine", "integration", at_least=1)


def test_each_followed_by_is_met_by_alternating_sessions() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-03"),
        session(3, "medicine", "2026-03-04"),
        session(4, "integration", "2026-03-05"),
    ]

    assert evaluate(sessions, protocol(EACH_INTEGRATED), LA) == []


def test_each_followed_by_reports_a_medicine_session_with_no_integration_before_the_next() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "medicine", "2026-03-04"),
        session(3, "integration", "2026-03-05"),
    ]

    assert evaluate(sessions, protocol(EACH_INTEGRATED), LA) == [
        Violation(
            "each_followed_by",
            "Medicine 1 on 2026-03-02 is followed by 0 integration sessions before medicine 2 "
            "on 2026-03-04; the protocol needs at least 1.",
            (1, 2),
            "Book 1 integration session between medicine 1 (2026-03-02) and medicine 2 "
            "(2026-03-04).",
        )
    ]


def test_each_followed_by_reports_the_last_medicine_session_even_when_not_complete() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-03"),
        session(3, "medicine", "2026-03-04"),
    ]

    assert evaluate(sessions, protocol(EACH_INTEGRATED), LA) == [
        Violation(
            "each_followed_by",
            "Medicine 2 on 2026-03-04 is followed by 0 integration sessions after it; "
            "the protocol needs at least 1.",
            (3,),
            "Book 1 integration session after medicine 2 (2026-03-04).",
        )
    ]


@pytest.mark.parametrize(
    ("integrations", "expected"), [(2, []), (1, [("each_followed_by", (1, 2))])]
)
def test_each_followed_by_at_least_two(integrations: int, expected: list[Any]) -> None:
    rule = Rule("each_followed_by", "medicine", "integration", at_least=2)
    sessions = [session(1, "medicine", "2026-03-02")] + [
        session(2 + n, "integration", f"2026-03-0{3 + n}") for n in range(integrations)
    ]

    assert found(evaluate(sessions, protocol(rule), LA)) == expected


# ----------------------------------------------------------------------------- precedes

PREPARED = Rule("precedes", "preparation", "medicine")


def test_precedes_is_met_when_every_preparation_starts_before_the_first_medicine() -> None:
    sessions = [
        session(1, "preparation", "2026-03-02", "09:00"),
        session(2, "preparation", "2026-03-02", "10:00"),
        session(3, "medicine", "2026-03-02", "11:00"),
    ]

    assert evaluate(sessions, protocol(PREPARED), LA) == []


@pytest.mark.parametrize("clock", ["11:00", "12:00"])
def test_precedes_reports_a_preparation_at_or_after_the_first_medicine(clock: str) -> None:
    sessions = [
        session(1, "preparation", "2026-03-02", "09:00"),
        session(2, "medicine", "2026-03-02", "11:00"),
        session(3, "preparation", "2026-03-02", clock),
    ]

    violations = evaluate(sessions, protocol(PREPARED), LA)

    assert found(violations) == [("precedes", (3, 2))]
    assert violations[0].suggested_fix == (
        "Move preparation 2 to before 2026-03-02 11:00, or move medicine 1 later."
    )


def test_precedes_needs_a_preparation_when_the_protocol_has_one() -> None:
    sessions = [session(1, "medicine", "2026-03-02")]

    assert evaluate(sessions, protocol(PREPARED), LA) == [
        Violation(
            "precedes",
            "Medicine 1 on 2026-03-02 has no preparation session before it.",
            (1,),
            "Book preparation before 2026-03-02 09:00.",
        )
    ]


def test_precedes_is_quiet_without_the_later_kind() -> None:
    assert evaluate([session(1, "preparation", "2026-03-02")], protocol(PREPARED), LA) == []


# ----------------------------------------------------------------------------- not_same_day

APART = Rule("not_same_day", "medicine", "integration")


def test_not_same_day_reports_both_sessions_on_one_local_date() -> None:
    sessions = [
        session(1, "medicine", "2026-03-08", "00:30"),
        session(2, "integration", "2026-03-08", "23:00"),
    ]

    assert evaluate(sessions, protocol(APART), LA) == [
        Violation(
            "not_same_day",
            "Medicine 1 and integration 1 are on the same day (2026-03-08); the protocol keeps "
            "medicine and integration sessions on different days.",
            (1, 2),
            "Move integration 1 to 2026-03-09 or later.",
        )
    ]


def test_not_same_day_accepts_23_59_and_00_00() -> None:
    sessions = [
        session(1, "medicine", "2026-03-07", "22:00", 119),
        session(2, "integration", "2026-03-08", "00:00"),
    ]

    assert evaluate(sessions, protocol(APART), LA) == []


def test_not_same_day_names_every_session_of_the_day() -> None:
    sessions = [
        session(1, "medicine", "2026-03-02", "08:00"),
        session(2, "medicine", "2026-03-02", "10:00"),
        session(3, "integration", "2026-03-02", "14:00"),
        session(4, "preparation", "2026-03-02", "16:00"),
    ]

    assert found(evaluate(sessions, protocol(APART), LA)) == [("not_same_day", (1, 2, 3))]


@pytest.mark.parametrize(
    ("second", "expected"), [("2026-03-02", [("not_same_day", (1, 2))]), ("2026-03-03", [])]
)
def test_not_same_day_of_one_kind_allows_one_per_day(second: str, expected: list[Any]) -> None:
    rule = Rule("not_same_day", "medicine", "medicine")
    sessions = [
        session(1, "medicine", "2026-03-02", "08:00"),
        session(2, "medicine", second, "15:00"),
    ]

    assert found(evaluate(sessions, protocol(rule), LA)) == expected


# ----------------------------------------------------------------------------- max_per_window

THREE_A_WEEK = Rule("max_per_window", "medicine", count=3, window_days=7)


def test_max_per_window_allows_the_fourth_session_on_the_seventh_day() -> None:
    sessions = [
        session(n, "medicine", day)
        for n, day in enumerate(["2026-03-02", "2026-03-04", "2026-03-06", "2026-03-09"], 1)
    ]

    assert evaluate(sessions, protocol(THREE_A_WEEK), LA) == []


def test_max_per_window_reports_a_fourth_session_within_seven_days() -> None:
    sessions = [
        session(n, "medicine", day)
        for n, day in enumerate(["2026-03-02", "2026-03-04", "2026-03-06", "2026-03-08"], 1)
    ]

    assert evaluate(sessions, protocol(THREE_A_WEEK), LA) == [
        Violation(
            "max_per_window",
            "Medicine 4 on 2026-03-08 is the 4th medicine session within 7 days "
            "(since medicine 1 on 2026-03-02); the protocol allows at most 3.",
            (1, 2, 3, 4),
            "Move medicine 4 to 2026-03-09 or later.",
        )
    ]


def test_max_per_window_counts_local_dates_over_a_dst_change() -> None:
    """Late Saturday evening PST and early Sunday PDT are two dates, a few hours apart."""
    rule = Rule("max_per_window", "medicine", count=1, window_days=1)
    sessions = [
        session(1, "medicine", "2026-03-07", "22:00"),
        session(2, "medicine", "2026-03-08", "03:30"),
    ]

    assert evaluate(sessions, protocol(rule), LA) == []


# ----------------------------------------------------------------------------- step counts


def test_step_counts_are_checked_only_for_a_complete_series() -> None:
    rules = protocol(counts={"medicine": 2, "integration": 1})
    sessions = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-03"),
        session(3, "integration", "2026-03-04"),
        session(4, "follow_up", "2026-03-05"),
    ]

    assert evaluate(sessions, rules, LA) == []
    assert evaluate(sessions, rules, LA, require_complete=True) == [
        Violation(
            "step_count",
            "The series has 1 medicine session; the protocol needs 2.",
            (1,),
            "Book 1 more medicine session.",
        ),
        Violation(
            "step_count",
            "The series has 2 integration sessions; the protocol needs 1.",
            (3,),
            "Cancel integration 2.",
        ),
    ]


# ----------------------------------------------------------------------------- gates


def test_ad_hoc_kinds_are_not_counted_but_their_rules_apply() -> None:
    """Infusion only: optional therapy, when booked, comes a day or more after an infusion."""
    infusion = ProtocolSpec(
        "infusion",
        "infusion",
        (Step("medicine", 2, 100, "infusion_chair", (StepRole("nurse"),), "iv"),),
        (Rule("min_gap", "medicine", "integration", days=1),),
    )
    same_day = [
        session(1, "medicine", "2026-03-02"),
        session(2, "integration", "2026-03-02", "14:00"),
        session(3, "medicine", "2026-03-04"),
    ]
    next_day = [*same_day[:1], session(2, "integration", "2026-03-03"), same_day[2]]

    assert found(evaluate(same_day, infusion, LA, require_complete=True)) == [("min_gap", (1, 2))]
    assert evaluate(next_day, infusion, LA, require_complete=True) == []
    assert validate_protocol(infusion) == []


def test_a_repeatable_step_takes_more_sessions_but_not_fewer() -> None:
    booster = Step(
        "medicine", 1, 100, "infusion_chair", (StepRole("nurse"),), "iv", repeatable=True
    )
    maintenance = ProtocolSpec("boosters", "maintenance", (booster,), ())
    three = [session(n, "medicine", f"2026-03-{n:02d}") for n in (2, 16, 30)]

    assert evaluate(three, maintenance, LA, require_complete=True) == []
    assert found(evaluate([], maintenance, LA, require_complete=True)) == [("step_count", ())]
    assert protocol_to_dict(maintenance)["steps"][0]["repeatable"] is True
    assert protocol_from_dict(protocol_to_dict(maintenance)) == maintenance


CLEARED_TO_10TH = ScreeningFact(True, date(2026, 3, 10), cleared_on=date(2026, 3, 2))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-03-02", []),
        ("2026-03-10", []),
        ("2026-03-01", ["screening_gate"]),
        ("2026-03-11", ["screening_gate"]),
    ],
)
def test_screening_gate_boundaries(day: str, expected: list[str]) -> None:
    gates = PatientGates((CLEARED_TO_10TH,), consent_signed_on=date(2026, 1, 1))

    violations = evaluate([session(1, "medicine", day, "23:30")], protocol(), LA, gates=gates)

    assert [v.rule for v in violations] == expected


def test_screening_gate_lapse_message() -> None:
    gates = PatientGates((CLEARED_TO_10TH,), consent_signed_on=date(2026, 1, 1))

    violations = evaluate([session(7, "medicine", "2026-03-11")], protocol(), LA, gates=gates)

    assert violations == [
        Violation(
            "screening_gate",
            "Medicine 1 on 2026-03-11 is after the screening clearance lapses "
            "(valid through 2026-03-10).",
            (7,),
            "Renew the screening before 2026-03-11, or move medicine 1 to 2026-03-10 or earlier.",
        )
    ]


def test_screening_gate_needs_a_cleared_screening() -> None:
    not_cleared = ScreeningFact(False, date(2026, 12, 31))
    gates = PatientGates((not_cleared,), consent_signed_on=date(2026, 1, 1))

    violations = evaluate([session(7, "medicine", "2026-03-02")], protocol(), LA, gates=gates)

    assert found(violations) == [("screening_gate", (7,))]
    assert violations[0].suggested_fix == (
        "Have a prescriber clear the patient's screening before 2026-03-02."
    )


@pytest.mark.parametrize(
    ("signed", "expected"),
    [(date(2026, 3, 2), []), (date(2026, 3, 3), ["consent_gate"]), (None, ["consent_gate"])],
)
def test_consent_gate_boundaries(signed: date | None, expected: list[str]) -> None:
    gates = PatientGates((CLEARED_TO_10TH,), consent_signed_on=signed)

    violations = evaluate([session(1, "medicine", "2026-03-02")], protocol(), LA, gates=gates)

    assert [v.rule for v in violations] == expected


def test_gates_apply_only_to_medicine_sessions() -> None:
    sessions = [session(1, "preparation", "2026-03-02"), session(2, "integration", "2026-03-03")]

    assert evaluate(sessions, protocol(), LA, gates=PatientGates()) == []


def test_gate_uses_the_clinic_date_of_a_late_evening_session() -> None:
    """23:30 PDT on the 10th is already the 11th in UTC; the clearance still covers it."""
    gates = PatientGates((CLEARED_TO_10TH,), consent_signed_on=date(2026, 1, 1))
    late = session(1, "medicine", "2026-03-10", "23:30")

    assert late.starts_at.astimezone(UTC).date() == date(2026, 3, 11)
    assert evaluate([late], protocol(), LA, gates=gates) == []


# ----------------------------------------------------------------------------- evaluate as a whole


def test_a_valid_kap_series_has_no_violations(kap: ProtocolSpec) -> None:
    days = ["03", "05", "07", "09", "11", "13"]
    sessions = [
        session(1, "screening", "2026-03-02", "08:00"),
        session(2, "preparation", "2026-03-02", "09:00"),
        session(3, "preparation", "2026-03-02", "10:00"),
    ]
    for n, day in enumerate(days):
        medicine_day = date(2026, 3, int(day)) + timedelta(days=n // 3 * 1)
        sessions.append(session(10 + n, "medicine", medicine_day.isoformat(), minutes=120))
        sessions.append(
            session(20 + n, "integration", (medicine_day + timedelta(days=1)).isoformat())
        )
    gates = PatientGates(
        (ScreeningFact(True, date(2026, 6, 1)),), consent_signed_on=date(2026, 3, 1)
    )

    assert evaluate(sessions, kap, LA, gates=gates, require_complete=True) == []


def test_violations_serialise_for_the_api() -> None:
    violation = Violation(
        "min_gap", "Too soon.", (4, 5), "Move integration 2 to 2026-03-10 or later."
    )

    assert violation.as_dict() == {
        "rule": "min_gap",
        "message": "Too soon.",
        "sessions": [4, 5],
        "suggested_fix": "Move integration 2 to 2026-03-10 or later.",
    }


def test_an_unknown_rule_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule type 'sometimes'"):
        evaluate([], protocol(Rule("sometimes", "medicine")), LA)


# ----------------------------------------------------------------------------- protocol documents


def test_standard_protocols_read_and_validate(kap: ProtocolSpec, infusion: ProtocolSpec) -> None:
    assert validate_protocol(kap) == []
    assert validate_protocol(infusion) == []
    assert kap.steps[2] == Step(
        "medicine", 6, 120, "dosing_room", (StepRole("therapist", 90), StepRole("nurse", 30)), "im"
    )
    assert kap.rules[5] == Rule("not_same_day", "medicine", "integration")


def test_protocol_documents_round_trip(kap: ProtocolSpec, kap_json: dict[str, Any]) -> None:
    assert protocol_from_dict(protocol_to_dict(kap)) == kap
    assert protocol_to_dict(kap)["rules"] == kap_json["rules"]


def test_protocol_from_dict_names_every_bad_field(kap_json: dict[str, Any]) -> None:
    del kap_json["name"]
    kap_json["steps"][0]["count"] = "1"
    kap_json["steps"][1]["duration_minutes"] = True
    kap_json["steps"][2]["roles"] = {"role": "nurse"}
    kap_json["rules"][0]["dayz"] = 3
    kap_json["rules"][1]["days"] = 1.5
    kap_json["extra"] = 1

    with pytest.raises(ProtocolFormatError) as raised:
        protocol_from_dict(kap_json)

    assert raised.value.errors == {
        "extra": ["is not a known field"],
        "name": ["is required"],
        "steps[0].count": ["must be a whole number"],
        "steps[1].duration_minutes": ["must be a whole number"],
        "steps[2].roles": ["must be a list"],
        "rules[0].dayz": ["is not a known field"],
        "rules[1].days": ["must be a whole number"],
    }
    assert isinstance(raised.value, ValueError)


def test_protocol_from_dict_refuses_a_non_object() -> None:
    with pytest.raises(ProtocolFormatError, match="must be an object"):
        protocol_from_dict([])  # type: ignore[arg-type]


def test_protocol_from_dict_accepts_the_api_id_and_version(
    kap_json: dict[str, Any], kap: ProtocolSpec
) -> None:
    assert protocol_from_dict({**kap_json, "id": 3, "version": 2}) == kap


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: d.update(care_model="ketamine"),
            "care_model: 'ketamine' is not one of infusion, kap, maintenance",
        ),
        (lambda d: d["steps"][0].update(kind="massage"), "steps[0].kind: 'massage' is not one of"),
        (lambda d: d["steps"][0].update(count=0), "steps[0].count: must be at least 1"),
        (
            lambda d: d["steps"][0].update(room_kind="sauna"),
            "steps[0].room_kind: 'sauna' is not one of",
        ),
        (lambda d: d["steps"][2].update(route=""), "steps[2].route: a medicine step needs a route"),
        (
            lambda d: d["steps"][2]["roles"][1].update(minutes=121),
            "steps[2].roles[1].minutes: must be between 1",
        ),
        (
            lambda d: d["steps"][1]["roles"][0].update(role="shaman"),
            "steps[1].roles[0].role: 'shaman'",
        ),
        (
            lambda d: d["steps"].append(dict(d["steps"][1])),
            "steps[4].kind: preparation appears in more than one step",
        ),
        (
            lambda d: d["rules"].append({"type": "sometimes", "after": "medicine"}),
            "rules[8].type: 'sometimes'",
        ),
        (
            lambda d: d["rules"].append(
                {"type": "min_gap", "after": "medicine", "before": "check_up", "days": 1}
            ),
            "rules[8].before: 'check_up' is not one of",
        ),
        (lambda d: d["rules"][2].pop("days"), "rules[2].days: min_gap needs days or hours"),
        (
            lambda d: d["rules"][2].update(hours=4),
            "rules[2].hours: give min_gap either days or hours, not both",
        ),
        (lambda d: d["rules"][2].update(days=0), "rules[2].days: must be at least 1"),
        (lambda d: d["rules"][3].update(at_least=1), "rules[3].at_least: is not used by max_gap"),
        (
            lambda d: d["rules"][4].update(at_least=2),
            "rules[4].at_least: 6 medicine sessions need 12 integration sessions "
            "but the step has 6",
        ),
        (lambda d: d["rules"][7].update(count=0), "rules[7].count: must be at least 1"),
        (lambda d: d["rules"][7].pop("window_days"), "rules[7].window_days: must be at least 1"),
        (
            lambda d: d["rules"][3].update(days=0),
            "rules[2]: min_gap of 1 days is longer than the max_gap of 0 days in rules[3]",
        ),
        (
            lambda d: d["rules"].append(
                {"type": "precedes", "after": "medicine", "before": "preparation"}
            ),
            "rules: the precedes rules form a cycle",
        ),
        (
            lambda d: d["rules"].append(
                {"type": "precedes", "after": "medicine", "before": "integration"}
            ),
            "rules[4]: each medicine session cannot be followed by an integration session "
            "before the next medicine when every medicine session must come before the first "
            "integration session",
        ),
        (
            lambda d: d["rules"].extend(
                [
                    {"type": "precedes", "after": "integration", "before": "preparation"},
                    {"type": "precedes", "after": "screening", "before": "integration"},
                ]
            ),
            "rules[4]: each medicine session cannot be followed by an integration session "
            "when every integration session must come before the first medicine session",
        ),
        (
            lambda d: d["rules"].append(
                {"type": "each_followed_by", "after": "integration", "before": "medicine"}
            ),
            "rules: the each_followed_by rules form a cycle",
        ),
    ],
)
def test_validate_protocol_names_each_problem(
    kap_json: dict[str, Any], change: Any, problem: str
) -> None:
    change(kap_json)

    problems = validate_protocol(protocol_from_dict(kap_json))

    assert any(p.startswith(problem) for p in problems), problems


def test_steps_done_once_every_step_count_is_met() -> None:
    course = ProtocolSpec(
        "course",
        "kap",
        (
            Step("preparation", 2, 60, "therapy_room"),
            Step("medicine", 1, 120, "dosing_room"),
            Step("integration", 1, 60, "therapy_room"),
        ),
        (),
    )
    boosters = replace(course, steps=(Step("medicine", 1, 100, "infusion_chair", repeatable=True),))

    assert not steps_done(course, ["preparation", "medicine", "integration"])  # one short
    assert steps_done(course, ["preparation", "preparation", "medicine", "integration"])
    assert steps_done(course, ["preparation"] * 2 + ["medicine", "integration", "follow_up"])
    assert not steps_done(boosters, ["medicine", "medicine"])  # boosters stay open
    assert not steps_done(replace(course, steps=()), ["integration"])
