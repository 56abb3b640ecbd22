"""The series planner against the standard protocols, with exact dates and times.

The clinic (conftest) is open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00 in Los
Angeles; 2026-03-02 is a Monday, the week before the spring DST change (2026-03-08).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from protocols.rules import (
    PatientGates,
    ProtocolSpec,
    Rule,
    ScreeningFact,
    SessionFact,
    Step,
    StepRole,
    Violation,
    evaluate,
)
from scheduling.planner import (
    ClinicCalendar,
    Interval,
    Plan,
    PlannedSession,
    PlanRequest,
    Preferences,
    RoomSupply,
    StaffHold,
    StaffSupply,
    WeeklyHours,
    free_starts,
    place_session,
    plan_series,
    replan_after,
    session_order,
)

LA = ZoneInfo("America/Los_Angeles")
THERAPY_ROOM, DOSING_ROOM, CHAIR_3, CHAIR_4 = (
    RoomSupply(1, "therapy_room"),
    RoomSupply(2, "dosing_room"),
    RoomSupply(3, "infusion_chair"),
    RoomSupply(4, "infusion_chair"),
)
ROOMS = (THERAPY_ROOM, DOSING_ROOM, CHAIR_3, CHAIR_4)
PRESCRIBER = StaffSupply(10, frozenset({"prescriber"}))
THERAPIST = StaffSupply(11, frozenset({"therapist"}))
NURSE = StaffSupply(12, frozenset({"nurse"}), capacity=3)
OTHER_THERAPIST = StaffSupply(13, frozenset({"therapist"}))
STAFF = (PRESCRIBER, THERAPIST, NURSE, OTHER_THERAPIST)


def at(day: str, clock: str = "08:00") -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=LA)


def busy(day: str, start: str, end: str) -> Interval:
    return Interval(at(day, start), at(day, end))


def starts(plan: Plan) -> list[str]:
    assert plan.violations == ()
    return [f"{s.kind} {local(s.starts_at)}" for s in plan.sessions]


def local(instant: datetime) -> str:
    return instant.astimezone(LA).isoformat()


def plan(
    protocol: ProtocolSpec,
    clinic: ClinicCalendar,
    earliest: str = "2026-03-02",
    rooms: tuple[RoomSupply, ...] = ROOMS,
    staff: tuple[StaffSupply, ...] = STAFF,
    **request: object,
) -> Plan:
    return plan_series(
        PlanRequest(protocol, date.fromisoformat(earliest), **request),  # type: ignore[arg-type]
        clinic,
        rooms,
        staff,
    )


def with_nurse(nurse: StaffSupply) -> tuple[StaffSupply, ...]:
    return (PRESCRIBER, THERAPIST, nurse, OTHER_THERAPIST)


def facts(planned: Plan) -> list[SessionFact]:
    return [
        SessionFact(
            100 + s.index,
            s.kind,
            s.starts_at,
            s.ends_at,
            s.room_id,
            tuple(h.staff_id for h in s.staff),
        )
        for s in planned.sessions
    ]


INFUSION_WEEK = [
    "screening 2026-03-02T08:00:00-08:00",
    "medicine 2026-03-02T09:00:00-08:00",
    "medicine 2026-03-03T08:00:00-08:00",
    "medicine 2026-03-04T08:00:00-08:00",
    "medicine 2026-03-05T08:00:00-08:00",
    "medicine 2026-03-06T08:00:00-08:00",
    "medicine 2026-03-07T09:00:00-08:00",
]
KAP_TWO_WEEKS = [
    "screening 2026-03-02T08:00:00-08:00",
    "preparation 2026-03-02T09:00:00-08:00",
    "preparation 2026-03-02T10:00:00-08:00",
    "medicine 2026-03-02T11:00:00-08:00",
    "integration 2026-03-03T08:00:00-08:00",
    "medicine 2026-03-04T08:00:00-08:00",
    "integration 2026-03-05T08:00:00-08:00",
    "medicine 2026-03-06T08:00:00-08:00",
    "integration 2026-03-07T09:00:00-08:00",
    "medicine 2026-03-09T08:00:00-07:00",
    "integration 2026-03-10T08:00:00-07:00",
    "medicine 2026-03-11T08:00:00-07:00",
    "integration 2026-03-12T08:00:00-07:00",
    "medicine 2026-03-13T08:00:00-07:00",
    "integration 2026-03-14T09:00:00-07:00",
]


# ----------------------------------------------------------------------------- session order


def test_session_order_of_the_standard_protocols(kap: ProtocolSpec, infusion: ProtocolSpec) -> None:
    assert session_order(infusion) == ("screening", *["medicine"] * 6)
    assert session_order(kap) == (
        "screening",
        "preparation",
        "preparation",
        *["medicine", "integration"] * 6,
    )


def test_session_order_interleaves_at_least_n_and_puts_leftovers_last() -> None:
    steps = (
        Step("integration", 5, 60, "therapy_room"),
        Step("medicine", 2, 60, "dosing_room", route="im"),
        Step("preparation", 1, 60, "therapy_room"),
        Step("screening", 1, 60, "therapy_room"),
    )
    rules = (
        Rule("each_followed_by", "medicine", "integration", at_least=2),
        Rule("precedes", "preparation", "medicine"),
    )

    assert session_order(ProtocolSpec("p", "kap", steps, rules)) == (
        "screening",
        "preparation",
        "medicine",
        "integration",
        "integration",
        "medicine",
        "integration",
        "integration",
        "integration",
    )


def test_session_order_follows_chains_of_followers() -> None:
    steps = (
        Step("preparation", 2, 60, "therapy_room"),
        Step("integration", 2, 60, "therapy_room"),
        Step("follow_up", 2, 30, "telehealth"),
    )
    rules = (
        Rule("each_followed_by", "integration", "follow_up"),
        Rule("each_followed_by", "preparation", "integration"),
    )

    assert session_order(ProtocolSpec("p", "kap", steps, rules)) == (
        "preparation",
        "integration",
        "follow_up",
        "preparation",
        "integration",
        "follow_up",
    )


def test_a_kind_that_must_follow_two_kinds_is_not_planned(clinic: ClinicCalendar) -> None:
    steps = (
        Step("preparation", 2, 60, "therapy_room", (StepRole("therapist"),)),
        Step("medicine", 2, 60, "dosing_room", (StepRole("therapist"),), "im"),
        Step("integration", 2, 60, "therapy_room", (StepRole("therapist"),)),
    )
    rules = (
        Rule("each_followed_by", "preparation", "integration"),
        Rule("each_followed_by", "medicine", "integration"),
    )

    planned = plan(ProtocolSpec("p", "kap", steps, rules), clinic)

    assert planned.violations == (
        Violation(
            "protocol_order",
            "No order of this protocol's sessions keeps its each_followed_by rules as the "
            "planner reads them (a kind can follow only one other kind).",
            (),
            "Book the series session by session, or simplify the protocol's rules.",
        ),
    )


# ----------------------------------------------------------------------------- empty clinic


def test_infusion_induction_in_an_empty_clinic(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    planned = plan(infusion, clinic)

    assert starts(planned) == INFUSION_WEEK
    assert planned.sessions[1] == PlannedSession(
        1,
        "medicine",
        "iv",
        at("2026-03-02", "09:00"),
        at("2026-03-02", "10:40"),
        CHAIR_3.id,
        (StaffHold(NURSE.id, "nurse", at("2026-03-02", "09:00"), at("2026-03-02", "10:40")),),
    )
    assert planned.sessions[0].staff == (
        StaffHold(
            PRESCRIBER.id, "prescriber", at("2026-03-02", "08:00"), at("2026-03-02", "09:00")
        ),
    )


def test_kap_series_in_an_empty_clinic(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    planned = plan(kap, clinic)

    assert starts(planned) == KAP_TWO_WEEKS
    assert [s.index for s in planned.sessions] == list(range(15))
    assert planned.sessions[3] == PlannedSession(
        3,
        "medicine",
        "im",
        at("2026-03-02", "11:00"),
        at("2026-03-02", "13:00"),
        DOSING_ROOM.id,
        (
            StaffHold(
                THERAPIST.id, "therapist", at("2026-03-02", "11:00"), at("2026-03-02", "12:30")
            ),
            StaffHold(NURSE.id, "nurse", at("2026-03-02", "11:00"), at("2026-03-02", "11:30")),
        ),
    )
    assert {h.staff_id for s in planned.sessions for h in s.staff if h.role == "therapist"} == {
        THERAPIST.id
    }


def test_every_returned_time_is_a_utc_instant(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    for session in plan(kap, clinic).sessions:
        assert session.starts_at.tzinfo is UTC
        assert session.ends_at.tzinfo is UTC
        assert all(hold.start.tzinfo is UTC for hold in session.staff)


# ----------------------------------------------------------------------------- closures, DST


def test_a_closure_day_moves_the_series_along(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    closed_tuesday = ClinicCalendar(LA, clinic.opening_hours, frozenset({date(2026, 3, 3)}))

    assert starts(plan(infusion, closed_tuesday)) == [
        *INFUSION_WEEK[:2],
        "medicine 2026-03-04T08:00:00-08:00",
        "medicine 2026-03-05T08:00:00-08:00",
        "medicine 2026-03-06T08:00:00-08:00",
        "medicine 2026-03-07T09:00:00-08:00",
        "medicine 2026-03-09T08:00:00-07:00",
    ]


def test_max_gap_moves_earlier_infusions_past_a_closure(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """Closed Tuesday to Friday: no infusion before the closure can be followed within 4 days,
    so the planner moves every infusion after it (and that is the earliest finish)."""
    closure = frozenset(date(2026, 3, day) for day in range(10, 14))
    closed_week = ClinicCalendar(LA, clinic.opening_hours, closure)

    assert starts(plan(infusion, closed_week, earliest="2026-03-05")) == [
        "screening 2026-03-05T08:00:00-08:00",
        "medicine 2026-03-14T09:00:00-07:00",
        "medicine 2026-03-16T08:00:00-07:00",
        "medicine 2026-03-17T08:00:00-07:00",
        "medicine 2026-03-18T08:00:00-07:00",
        "medicine 2026-03-19T08:00:00-07:00",
        "medicine 2026-03-20T08:00:00-07:00",
    ]


def test_infusions_across_the_spring_dst_weekend(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    assert starts(plan(infusion, clinic, earliest="2026-03-06")) == [
        "screening 2026-03-06T08:00:00-08:00",
        "medicine 2026-03-06T09:00:00-08:00",
        "medicine 2026-03-07T09:00:00-08:00",
        "medicine 2026-03-09T08:00:00-07:00",
        "medicine 2026-03-10T08:00:00-07:00",
        "medicine 2026-03-11T08:00:00-07:00",
        "medicine 2026-03-12T08:00:00-07:00",
    ]


EVERY_DAY_9_TO_5 = ClinicCalendar(LA, tuple(WeeklyHours(d, time(9), time(17)) for d in range(7)))


def two_infusions(rule: Rule) -> ProtocolSpec:
    step = Step("medicine", 2, 100, "infusion_chair", (StepRole("nurse"),), "iv")
    return ProtocolSpec("two infusions", "infusion", (step,), (rule,))


@pytest.mark.parametrize(
    ("saturday", "expected_second"),
    [
        # Ends 10:40 PST; 24 elapsed hours later is 11:40 PDT: the next slot is 11:45.
        ("2026-03-07", "2026-03-08T11:45:00-07:00"),
        # Ends 10:40 PDT; 24 elapsed hours later is 09:40 PST: the next slot is 09:45.
        ("2026-10-31", "2026-11-01T09:45:00-08:00"),
    ],
)
def test_hour_gaps_are_elapsed_hours_over_dst(saturday: str, expected_second: str) -> None:
    planned = plan(
        two_infusions(Rule("min_gap", "medicine", "medicine", hours=24)), EVERY_DAY_9_TO_5, saturday
    )

    assert [local(s.starts_at) for s in planned.sessions] == [
        at(saturday, "09:00").isoformat(),
        expected_second,
    ]


@pytest.mark.parametrize("saturday", ["2026-03-07", "2026-10-31"])
def test_day_gaps_are_calendar_days_over_dst(saturday: str) -> None:
    planned = plan(
        two_infusions(Rule("min_gap", "medicine", "medicine", days=1)), EVERY_DAY_9_TO_5, saturday
    )

    sunday = date.fromisoformat(saturday) + timedelta(days=1)
    assert planned.sessions[1].starts_at == at(sunday.isoformat(), "09:00")


NIGHTS = ClinicCalendar(LA, tuple(WeeklyHours(d, time(0), time(4)) for d in range(7)))
HALF_HOUR = Step("screening", 1, 30, "therapy_room", (StepRole("prescriber"),))


def test_slots_skip_the_wall_times_spring_forward_skips() -> None:
    found = free_starts(
        HALF_HOUR, date(2026, 3, 8), date(2026, 3, 8), NIGHTS, ROOMS, STAFF, slot_minutes=30
    )

    assert [local(s) for s in found] == [
        "2026-03-08T00:00:00-08:00",
        "2026-03-08T00:30:00-08:00",
        "2026-03-08T01:00:00-08:00",
        "2026-03-08T01:30:00-08:00",
        "2026-03-08T03:00:00-07:00",
        "2026-03-08T03:30:00-07:00",
    ]


def test_slots_repeat_the_wall_times_fall_back_repeats() -> None:
    found = free_starts(
        HALF_HOUR, date(2026, 11, 1), date(2026, 11, 1), NIGHTS, ROOMS, STAFF, slot_minutes=30
    )

    assert [local(s) for s in found] == [
        "2026-11-01T00:00:00-07:00",
        "2026-11-01T00:30:00-07:00",
        "2026-11-01T01:00:00-07:00",
        "2026-11-01T01:30:00-07:00",
        "2026-11-01T01:00:00-08:00",
        "2026-11-01T01:30:00-08:00",
        "2026-11-01T02:00:00-08:00",
        "2026-11-01T02:30:00-08:00",
        "2026-11-01T03:00:00-08:00",
        "2026-11-01T03:30:00-08:00",
    ]


def test_opening_hours_may_run_to_midnight() -> None:
    evenings = ClinicCalendar(LA, tuple(WeeklyHours(d, time(20), time(0)) for d in range(7)))

    found = free_starts(
        HALF_HOUR, date(2026, 3, 3), date(2026, 3, 3), evenings, ROOMS, STAFF, slot_minutes=60
    )

    assert [s.astimezone(LA).strftime("%H:%M") for s in found] == [
        "20:00",
        "21:00",
        "22:00",
        "23:00",
    ]


# ----------------------------------------------------------------------------- resources


def test_a_busy_chair_sends_the_infusion_to_the_next_chair(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    chair = RoomSupply(3, "infusion_chair", busy=(busy("2026-03-03", "07:00", "12:00"),))

    planned = plan(infusion, clinic, rooms=(THERAPY_ROOM, chair, CHAIR_4))

    assert starts(planned) == INFUSION_WEEK
    assert [s.room_id for s in planned.sessions] == [1, 3, 4, 3, 3, 3, 3]


def test_busy_chairs_send_the_infusion_to_the_next_free_slot(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    chairs = (
        RoomSupply(3, "infusion_chair", busy=(busy("2026-03-03", "07:00", "10:00"),)),
        RoomSupply(4, "infusion_chair", busy=(busy("2026-03-03", "08:00", "09:30"),)),
    )

    planned = plan(infusion, clinic, rooms=(THERAPY_ROOM, *chairs))

    assert planned.sessions[2].starts_at == at("2026-03-03", "09:30")
    assert planned.sessions[2].room_id == 4


@pytest.mark.parametrize(("turnover", "expected"), [(5, "10:00"), (6, "13:00")])
def test_room_turnover_must_fit_before_the_next_hold(
    infusion: ProtocolSpec, clinic: ClinicCalendar, turnover: int, expected: str
) -> None:
    """The chair is free 10:00-11:45; 100 minutes plus turnover must fit in it."""
    full = RoomSupply(3, "infusion_chair", busy=(busy("2026-03-03", "07:00", "18:00"),))
    gap = RoomSupply(
        4,
        "infusion_chair",
        turnover,
        (busy("2026-03-03", "08:00", "10:00"), busy("2026-03-03", "11:45", "13:00")),
    )

    planned = plan(infusion, clinic, rooms=(THERAPY_ROOM, full, gap))

    assert planned.sessions[2].starts_at == at("2026-03-03", expected)


def test_own_sessions_respect_room_turnover(clinic: ClinicCalendar) -> None:
    """Two back-to-back therapy sessions in the only therapy room leave its cleaning time."""
    steps = (
        Step("screening", 1, 60, "therapy_room", (StepRole("prescriber"),)),
        Step("preparation", 1, 60, "therapy_room", (StepRole("therapist"),)),
    )
    protocol = ProtocolSpec("p", "kap", steps, (Rule("precedes", "screening", "preparation"),))

    planned = plan(protocol, clinic, rooms=(RoomSupply(1, "therapy_room", 20),))

    assert starts(planned) == [
        "screening 2026-03-02T08:00:00-08:00",
        "preparation 2026-03-02T09:30:00-08:00",
    ]


@pytest.mark.parametrize(
    ("holds", "expected"),
    [
        # Two patients already: a third fits at 08:00.
        ([("08:00", "10:00"), ("08:00", "10:00")], "08:00"),
        # Three at once until 10:00: the fourth waits.
        ([("08:00", "10:00"), ("08:00", "10:00"), ("08:00", "10:00")], "10:00"),
        # Overlapping but never three at the same moment.
        ([("08:00", "09:00"), ("08:30", "10:00"), ("09:30", "11:00")], "08:00"),
        # Three at once during 08:45-09:00 and 09:30-09:45: from 09:45 on at most two.
        ([("08:00", "09:00"), ("08:30", "10:00"), ("08:45", "09:45"), ("09:30", "11:00")], "09:45"),
    ],
)
def test_nurse_capacity_counts_patients_at_the_same_moment(
    infusion: ProtocolSpec, clinic: ClinicCalendar, holds: list[tuple[str, str]], expected: str
) -> None:
    nurse = StaffSupply(
        12, frozenset({"nurse"}), 3, busy=tuple(busy("2026-03-03", *h) for h in holds)
    )

    planned = plan(infusion, clinic, staff=with_nurse(nurse))

    assert planned.sessions[2].starts_at == at("2026-03-03", expected)


def test_three_overlapping_infusions_with_one_nurse_but_not_a_fourth(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    chairs = tuple(RoomSupply(n, "infusion_chair") for n in range(3, 7))
    step = infusion.steps[1]
    nurse_holds: list[Interval] = []
    for _ in range(3):
        placed = place_session(
            step, at("2026-03-03"), clinic, chairs, [replace_busy(NURSE, nurse_holds)]
        )
        assert isinstance(placed, PlannedSession)
        nurse_holds.append(Interval(placed.staff[0].start, placed.staff[0].end))
        chairs = tuple(
            RoomSupply(c.id, c.kind, busy=(Interval(placed.starts_at, placed.ends_at),))
            if c.id == placed.room_id
            else c
            for c in chairs
        )

    fourth = place_session(
        step, at("2026-03-03"), clinic, chairs, [replace_busy(NURSE, nurse_holds)]
    )

    assert fourth == [
        Violation(
            "staff_capacity",
            "No nurse is free during 2026-03-03 08:00-09:40: all already care for as many "
            "patients as allowed.",
            (),
            "Choose another time.",
        )
    ]


def replace_busy(person: StaffSupply, holds: list[Interval]) -> StaffSupply:
    return StaffSupply(person.id, person.roles, person.capacity, busy=tuple(holds))


def test_nurse_working_hours_are_respected(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    mornings = tuple(WeeklyHours(d, time(8), time(12)) for d in range(4))
    nurse = StaffSupply(12, frozenset({"nurse"}), 3, working_hours=mornings)

    assert starts(plan(infusion, clinic, staff=with_nurse(nurse))) == [
        *INFUSION_WEEK[:5],
        "medicine 2026-03-09T08:00:00-07:00",
        "medicine 2026-03-10T08:00:00-07:00",
    ]


def test_nurse_time_off_is_respected(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    nurse = StaffSupply(
        12,
        frozenset({"nurse"}),
        3,
        time_off=(Interval(at("2026-03-03", "00:00"), at("2026-03-05", "00:00")),),
    )

    assert starts(plan(infusion, clinic, staff=with_nurse(nurse))) == [
        *INFUSION_WEEK[:2],
        "medicine 2026-03-05T08:00:00-08:00",
        "medicine 2026-03-06T08:00:00-08:00",
        "medicine 2026-03-07T09:00:00-08:00",
        "medicine 2026-03-09T08:00:00-07:00",
        "medicine 2026-03-10T08:00:00-07:00",
    ]


def test_patient_busy_time_is_respected(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    patient_busy = (busy("2026-03-03", "07:30", "16:00"),)

    planned = plan(infusion, clinic, patient_busy=patient_busy)

    assert planned.sessions[2].starts_at == at("2026-03-03", "16:00")


def test_planning_from_today_starts_after_now(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    planned = plan(infusion, clinic, not_before=at("2026-03-02", "16:20"))

    assert starts(planned)[:3] == [
        "screening 2026-03-02T16:30:00-08:00",
        "medicine 2026-03-03T08:00:00-08:00",
        "medicine 2026-03-04T08:00:00-08:00",
    ]


def test_preferences_are_hard_filters(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    afternoons = Preferences(
        weekdays=frozenset(range(4)), earliest_time=time(14), latest_start=time(15)
    )

    assert starts(plan(infusion, clinic, preferences=afternoons)) == [
        "screening 2026-03-02T14:00:00-08:00",
        "medicine 2026-03-02T15:00:00-08:00",
        "medicine 2026-03-03T14:00:00-08:00",
        "medicine 2026-03-04T14:00:00-08:00",
        "medicine 2026-03-05T14:00:00-08:00",
        "medicine 2026-03-09T14:00:00-07:00",
        "medicine 2026-03-10T14:00:00-07:00",
    ]


def test_fixed_sessions_stay_and_the_rest_is_planned_after_them(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    fixed = (
        SessionFact(501, "screening", at("2026-02-23", "08:00"), at("2026-02-23", "09:00")),
        SessionFact(502, "preparation", at("2026-02-24", "08:00"), at("2026-02-24", "09:00")),
        SessionFact(503, "preparation", at("2026-02-25", "08:00"), at("2026-02-25", "09:00")),
    )

    planned = plan(kap, clinic, fixed=fixed)

    assert [s.index for s in planned.sessions] == list(range(3, 15))
    assert starts(planned)[:3] == [
        "medicine 2026-03-02T08:00:00-08:00",
        "integration 2026-03-03T08:00:00-08:00",
        "medicine 2026-03-04T08:00:00-08:00",
    ]


def test_new_sessions_fill_gaps_between_fixed_ones(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    fixed = (
        SessionFact(501, "screening", at("2026-03-02", "08:00"), at("2026-03-02", "09:00")),
        SessionFact(502, "preparation", at("2026-03-02", "09:00"), at("2026-03-02", "10:00")),
        SessionFact(503, "medicine", at("2026-03-04", "08:00"), at("2026-03-04", "10:00")),
    )

    planned = plan(kap, clinic, fixed=fixed)
    everything = [*fixed, *facts(planned)]

    assert starts(planned)[:2] == [
        "preparation 2026-03-02T10:00:00-08:00",
        "integration 2026-03-05T08:00:00-08:00",
    ]
    assert evaluate(everything, kap, LA, require_complete=True) == []


# ----------------------------------------------------------------------------- clinicians


def test_one_therapist_is_kept_for_the_whole_series(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """The first therapist is busy for the first integration; the other one is free for all."""
    therapist = StaffSupply(
        11, frozenset({"therapist"}), busy=(busy("2026-03-03", "07:00", "12:00"),)
    )

    planned = plan(kap, clinic, staff=(PRESCRIBER, therapist, NURSE, OTHER_THERAPIST))

    assert starts(planned) == KAP_TWO_WEEKS
    assert {h.staff_id for s in planned.sessions for h in s.staff if h.role == "therapist"} == {
        OTHER_THERAPIST.id
    }


def test_the_wished_for_therapist_takes_the_series_when_it_ends_as_early(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    therapist = StaffSupply(
        11, frozenset({"therapist"}), busy=(busy("2026-03-03", "07:00", "12:00"),)
    )

    planned = plan(
        kap,
        clinic,
        staff=(PRESCRIBER, therapist, NURSE, OTHER_THERAPIST),
        preferences=Preferences(therapist_id=11),
    )

    assert starts(planned)[4] == "integration 2026-03-03T12:00:00-08:00"
    assert starts(planned)[-1] == KAP_TWO_WEEKS[-1]
    assert {h.staff_id for s in planned.sessions for h in s.staff if h.role == "therapist"} == {11}


def test_the_wished_for_therapist_takes_every_session_they_can(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    away = Interval(at("2026-03-09", "00:00"), at("2026-03-15", "00:00"))
    therapist = StaffSupply(11, frozenset({"therapist"}), time_off=(away,))

    planned = plan(
        kap,
        clinic,
        staff=(PRESCRIBER, therapist, NURSE, OTHER_THERAPIST),
        preferences=Preferences(therapist_id=11),
    )

    assert starts(planned) == KAP_TWO_WEEKS
    therapists = [h.staff_id for s in planned.sessions for h in s.staff if h.role == "therapist"]
    assert therapists == [11] * 8 + [13] * 6


def test_without_one_free_therapist_the_most_available_one_takes_most_sessions(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """Each therapist misses one integration day; keeping either would end the series later,
    so the first takes every session but one and the other covers that one."""
    first = StaffSupply(11, frozenset({"therapist"}), busy=(busy("2026-03-03", "07:00", "18:00"),))
    second = StaffSupply(13, frozenset({"therapist"}), busy=(busy("2026-03-05", "07:00", "18:00"),))

    planned = plan(kap, clinic, staff=(PRESCRIBER, first, NURSE, second))

    assert starts(planned) == KAP_TWO_WEEKS
    therapists = [h.staff_id for s in planned.sessions for h in s.staff if h.role == "therapist"]
    assert therapists == [11, 11, 11, 13, *[11] * 10]


# ----------------------------------------------------------------------------- no plan


def test_no_room_of_the_needed_kind(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    planned = plan(kap, clinic, rooms=(THERAPY_ROOM, CHAIR_3))

    assert planned == Plan(
        (),
        (
            Violation(
                "room_unavailable",
                "The clinic has no dosing room; medicine sessions need one.",
                (),
                "Add a dosing room or change the room kind of the protocol's medicine step.",
            ),
        ),
    )


def test_no_staff_with_the_needed_role(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    planned = plan(infusion, clinic, staff=(PRESCRIBER, THERAPIST))

    assert planned.violations == (
        Violation(
            "staff_unavailable",
            "No staff member has the nurse role; medicine sessions need one.",
            (),
            "Give a staff member the nurse role.",
        ),
    )


def test_the_screening_lapses_before_the_third_medicine_session(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    gates = PatientGates(
        (ScreeningFact(True, date(2026, 3, 4)),), consent_signed_on=date(2026, 3, 1)
    )

    planned = plan(kap, clinic, gates=gates)

    assert planned == Plan(
        (),
        (
            Violation(
                "screening_gate",
                "The screening clearance is valid through 2026-03-04, but medicine 3 cannot "
                "happen before 2026-03-06.",
                (7,),
                "Renew the screening (valid through at least 2026-03-06), then plan the series.",
            ),
        ),
    )


def test_no_signed_consent(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    gates = PatientGates((ScreeningFact(True, date(2026, 12, 31)),))

    planned = plan(infusion, clinic, gates=gates)

    assert [(v.rule, v.sessions) for v in planned.violations] == [("consent_gate", (1,))]
    assert planned.violations[0].suggested_fix == (
        "Have the patient sign the consent, then plan the series."
    )


def test_gates_that_pass_allow_the_plan(infusion: ProtocolSpec, clinic: ClinicCalendar) -> None:
    gates = PatientGates(
        (ScreeningFact(True, date(2026, 3, 7)),), consent_signed_on=date(2026, 3, 2)
    )

    assert starts(plan(infusion, clinic, gates=gates)) == INFUSION_WEEK


def test_no_therapist_free_within_the_horizon(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    away = Interval(at("2026-01-01", "00:00"), at("2027-01-01", "00:00"))
    therapist = StaffSupply(11, frozenset({"therapist"}), time_off=(away,))

    planned = plan(kap, clinic, staff=(PRESCRIBER, therapist, NURSE))

    assert planned == Plan(
        (),
        (
            Violation(
                "staff_time_off",
                "No time from 2026-03-02 09:00 to 2026-06-29 fits preparation 1: no therapist "
                "is free.",
                (1,),
                "Free up a therapist, or plan with a longer horizon than 120 days.",
            ),
        ),
    )


def test_a_max_gap_the_preferred_days_cannot_keep(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """Tuesdays and Thursdays only: Thursday to Tuesday is 5 days, the protocol allows 4."""
    planned = plan(infusion, clinic, preferences=Preferences(weekdays=frozenset({1, 3})))

    assert len(planned.violations) == 1
    violation = planned.violations[0]
    assert violation.rule == "max_gap"
    assert violation.message.startswith("No plan keeps medicine ")
    assert "on the patient's preferred days and times" in violation.message


def test_an_invalid_protocol_is_not_planned(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    broken = ProtocolSpec(
        kap.name, kap.care_model, kap.steps, (Rule("min_gap", "medicine", "integration"),)
    )

    planned = plan(broken, clinic)

    assert planned.violations == (
        Violation(
            "protocol_invalid",
            "rules[0].days: min_gap needs days or hours",
            (),
            "Correct the protocol and plan again.",
        ),
    )


# ----------------------------------------------------------------------------- replan_after


def infusion_series(infusion: ProtocolSpec, clinic: ClinicCalendar) -> list[SessionFact]:
    return facts(plan(infusion, clinic))


def test_replan_keeps_later_sessions_that_are_still_valid(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = infusion_series(infusion, clinic)
    moved = SessionFact(102, "medicine", at("2026-03-03", "12:00"), at("2026-03-03", "13:40"))

    replanned = replan_after(
        PlanRequest(infusion, date(2026, 3, 2), fixed=tuple(series[:2])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=series[3:],
    )

    assert replanned.violations == ()
    assert [(s.index, s.starts_at, s.room_id) for s in replanned.sessions] == [
        (n, fact.starts_at, fact.room_id) for n, fact in enumerate(series[3:])
    ]


def test_replan_moves_each_later_session_as_little_as_needed(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = infusion_series(infusion, clinic)
    moved = SessionFact(102, "medicine", at("2026-03-04", "08:00"), at("2026-03-04", "09:40"))

    replanned = replan_after(
        PlanRequest(infusion, date(2026, 3, 2), fixed=tuple(series[:2])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=series[3:],
    )

    assert [local(s.starts_at) for s in replanned.sessions] == [
        "2026-03-05T08:00:00-08:00",
        "2026-03-06T08:00:00-08:00",
        "2026-03-07T09:00:00-08:00",
        "2026-03-09T08:00:00-07:00",
    ]


def test_replan_keeps_a_later_session_off_the_slot_grid(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = infusion_series(infusion, clinic)
    odd = SessionFact(104, "medicine", at("2026-03-05", "10:10"), at("2026-03-05", "11:50"))
    moved = SessionFact(103, "medicine", at("2026-03-04", "09:00"), at("2026-03-04", "10:40"))

    replanned = replan_after(
        PlanRequest(infusion, date(2026, 3, 2), fixed=tuple(series[:3])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=[odd, *series[5:]],
    )

    assert replanned.sessions[0].starts_at == at("2026-03-05", "10:10")


def test_replan_in_a_kap_series_cascades_through_every_rule(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = facts(plan(kap, clinic))
    integration_2 = series[6]
    moved = SessionFact(
        integration_2.ref, "integration", at("2026-03-06"), at("2026-03-06", "09:00")
    )

    replanned = replan_after(
        PlanRequest(kap, date(2026, 3, 2), fixed=tuple(series[:6])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=series[7:],
    )

    assert [f"{s.kind} {local(s.starts_at)}" for s in replanned.sessions] == [
        "medicine 2026-03-07T09:00:00-08:00",
        "integration 2026-03-09T08:00:00-07:00",
        "medicine 2026-03-10T08:00:00-07:00",
        "integration 2026-03-11T08:00:00-07:00",
        "medicine 2026-03-12T08:00:00-07:00",
        "integration 2026-03-13T08:00:00-07:00",
        "medicine 2026-03-14T09:00:00-07:00",
        "integration 2026-03-16T08:00:00-07:00",
    ]
    everything = [
        *series[:6],
        moved,
        *(
            SessionFact(f.ref, f.kind, s.starts_at, s.ends_at)
            for f, s in zip(series[7:], replanned.sessions, strict=True)
        ),
    ]
    assert evaluate(everything, kap, LA, require_complete=True) == []


def test_replan_keeps_later_sessions_with_their_clinicians(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = facts(plan(kap, clinic, staff=(PRESCRIBER, OTHER_THERAPIST, NURSE, THERAPIST)))
    integration_2 = series[6]
    moved = SessionFact(
        integration_2.ref, "integration", at("2026-03-05", "14:00"), at("2026-03-05", "15:00")
    )

    replanned = replan_after(
        PlanRequest(kap, date(2026, 3, 2), fixed=tuple(series[:6])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=series[7:],
    )

    assert [(s.starts_at, tuple(h.staff_id for h in s.staff)) for s in replanned.sessions] == [
        (f.starts_at, f.staff_ids) for f in series[7:]
    ]
    assert {h.staff_id for s in replanned.sessions for h in s.staff if h.role == "therapist"} == {
        13
    }


def test_replan_refuses_a_move_that_breaks_a_rule_with_fixed_sessions(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    series = infusion_series(infusion, clinic)
    moved = SessionFact(102, "medicine", at("2026-03-09"), at("2026-03-09", "09:40"))

    replanned = replan_after(
        PlanRequest(infusion, date(2026, 3, 2), fixed=tuple(series[:2])),
        clinic,
        ROOMS,
        STAFF,
        moved=moved,
        later=series[3:],
    )

    assert replanned.sessions == ()
    assert [(v.rule, v.sessions) for v in replanned.violations] == [("max_gap", (101, 102))]


# ----------------------------------------------------------------------------- free_starts


def test_free_starts_lists_every_slot_where_a_session_fits(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    screening = kap.steps[0]

    monday = free_starts(screening, date(2026, 3, 2), date(2026, 3, 2), clinic, ROOMS, STAFF)
    saturday = free_starts(screening, date(2026, 3, 7), date(2026, 3, 8), clinic, ROOMS, STAFF)

    assert monday == [at("2026-03-02", "08:00") + timedelta(minutes=15 * n) for n in range(37)]
    assert saturday == [at("2026-03-07", "09:00") + timedelta(minutes=15 * n) for n in range(13)]
    assert all(start.tzinfo is UTC for start in monday)


def test_free_starts_skips_the_patients_busy_time(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    found = free_starts(
        kap.steps[0],
        date(2026, 3, 2),
        date(2026, 3, 2),
        clinic,
        ROOMS,
        STAFF,
        patient_busy=(busy("2026-03-02", "10:00", "11:00"),),
    )

    assert len(found) == 30
    assert at("2026-03-02", "09:00") in found
    assert at("2026-03-02", "09:15") not in found
    assert at("2026-03-02", "11:00") in found


def test_free_starts_for_one_staff_member_or_room(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    medicine = kap.steps[2]
    therapist = StaffSupply(
        11, frozenset({"therapist"}), busy=(busy("2026-03-02", "08:00", "17:00"),)
    )
    staff = (PRESCRIBER, therapist, NURSE, OTHER_THERAPIST)

    with_busy_therapist = free_starts(
        medicine, date(2026, 3, 2), date(2026, 3, 2), clinic, ROOMS, staff, staff_id=11
    )
    with_other = free_starts(
        medicine, date(2026, 3, 2), date(2026, 3, 2), clinic, ROOMS, staff, staff_id=13
    )

    assert with_busy_therapist == []  # 17:00 plus 120 minutes is past closing
    assert len(with_other) == 33
    assert (
        free_starts(medicine, date(2026, 3, 2), date(2026, 3, 2), clinic, ROOMS, staff, staff_id=10)
        == []
    )
    assert (
        free_starts(medicine, date(2026, 3, 2), date(2026, 3, 2), clinic, ROOMS, staff, room_id=1)
        == []
    )


# ----------------------------------------------------------------------------- place_session


def test_place_session_chooses_a_room_and_clinicians(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    placed = place_session(kap.steps[2], at("2026-03-02", "10:00"), clinic, ROOMS, STAFF)

    assert placed == PlannedSession(
        0,
        "medicine",
        "im",
        at("2026-03-02", "10:00"),
        at("2026-03-02", "12:00"),
        DOSING_ROOM.id,
        (
            StaffHold(11, "therapist", at("2026-03-02", "10:00"), at("2026-03-02", "11:30")),
            StaffHold(12, "nurse", at("2026-03-02", "10:00"), at("2026-03-02", "10:30")),
        ),
    )


def test_place_session_uses_listed_staff_and_the_preferred_therapist(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    listed = place_session(
        kap.steps[2], at("2026-03-02", "10:00"), clinic, ROOMS, STAFF, staff_ids=[13]
    )
    preferred = place_session(
        kap.steps[2], at("2026-03-02", "10:00"), clinic, ROOMS, STAFF, preferred_therapist=13
    )

    assert isinstance(listed, PlannedSession)
    assert isinstance(preferred, PlannedSession)
    assert [h.staff_id for h in listed.staff] == [13, 12]
    assert [h.staff_id for h in preferred.staff] == [13, 12]


def test_a_listed_clinician_with_two_roles_takes_the_one_they_are_free_for(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """A KAP medicine session needs a therapist for 90 minutes and a nurse for 30: a
    nurse-therapist busy from 10:45 can be its nurse, not its therapist."""
    both = StaffSupply(
        14, frozenset({"therapist", "nurse"}), busy=(busy("2026-03-02", "10:45", "12:00"),)
    )
    start = at("2026-03-02", "10:00")

    as_nurse = place_session(kap.steps[2], start, clinic, ROOMS, (both, THERAPIST), staff_ids=[14])
    alone = place_session(kap.steps[2], start, clinic, ROOMS, (both,), staff_ids=[14])
    busy_all_session = place_session(
        kap.steps[2], at("2026-03-02", "10:30"), clinic, ROOMS, (both, THERAPIST), staff_ids=[14]
    )

    assert isinstance(as_nurse, PlannedSession)
    assert as_nurse.staff == (
        StaffHold(11, "therapist", start, at("2026-03-02", "11:30")),
        StaffHold(14, "nurse", start, at("2026-03-02", "10:30")),
    )
    assert isinstance(alone, list)
    assert [(v.rule, v.message) for v in alone] == [  # nobody else can be the therapist
        (
            "staff_capacity",
            "No therapist is free during 2026-03-02 10:00-12:00: all already care for as many "
            "patients as allowed.",
        )
    ]
    assert isinstance(busy_all_session, list)
    assert [(v.rule, v.message) for v in busy_all_session] == [
        (
            "staff_capacity",
            "Staff member 14 already cares for as many patients as allowed during "
            "2026-03-02 10:30-12:30.",
        )
    ]


def rules_of(result: PlannedSession | list[Violation]) -> list[str]:
    assert isinstance(result, list)
    return [v.rule for v in result]


def test_place_session_when_the_clinic_is_closed(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    sunday = place_session(kap.steps[2], at("2026-03-08", "10:00"), clinic, ROOMS, STAFF)
    too_late = place_session(kap.steps[2], at("2026-03-02", "17:00"), clinic, ROOMS, STAFF)

    assert sunday == [
        Violation(
            "clinic_closed",
            "The clinic is closed on 2026-03-08.",
            (),
            "Choose a time inside opening hours.",
        )
    ]
    assert too_late == [
        Violation(
            "clinic_closed",
            "A 120-minute medicine session at 2026-03-02 17:00-19:00 is outside opening hours.",
            (),
            "Choose a time inside opening hours.",
        )
    ]


def test_place_session_reports_every_obstacle(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    start = at("2026-03-02", "10:00")
    dosing = RoomSupply(2, "dosing_room", busy=(busy("2026-03-02", "11:00", "12:00"),))
    nurse = StaffSupply(12, frozenset({"nurse"}), 1, busy=(busy("2026-03-02", "09:00", "10:15"),))
    therapist = StaffSupply(
        11, frozenset({"therapist"}), working_hours=(WeeklyHours(1, time(8), time(18)),)
    )
    other = StaffSupply(
        13, frozenset({"therapist"}), time_off=(busy("2026-03-02", "00:00", "23:00"),)
    )

    result = place_session(
        kap.steps[2],
        start,
        clinic,
        (THERAPY_ROOM, dosing),
        (PRESCRIBER, therapist, nurse, other),
        patient_busy=(busy("2026-03-02", "11:30", "12:30"),),
    )

    assert result == [
        Violation(
            "patient_busy",
            "The patient already has an appointment during 2026-03-02 10:00-12:00.",
            (),
            "Choose a time when the patient is free.",
        ),
        Violation(
            "room_unavailable",
            "No dosing room is free during 2026-03-02 10:00-12:00 (with cleaning time).",
            (),
            "Choose another time.",
        ),
        Violation(
            "staff_unavailable",
            "No therapist is free during 2026-03-02 10:00-12:00: each is busy, off or not working.",
            (),
            "Choose another time.",
        ),
        Violation(
            "staff_capacity",
            "No nurse is free during 2026-03-02 10:00-12:00: all already care for as many "
            "patients as allowed.",
            (),
            "Choose another time.",
        ),
    ]


@pytest.mark.parametrize(
    ("person", "rule"),
    [
        (
            StaffSupply(
                11, frozenset({"therapist"}), working_hours=(WeeklyHours(1, time(8), time(18)),)
            ),
            "outside_working_hours",
        ),
        (
            StaffSupply(
                11, frozenset({"therapist"}), time_off=(busy("2026-03-02", "11:00", "12:00"),)
            ),
            "staff_time_off",
        ),
        (
            StaffSupply(11, frozenset({"therapist"}), busy=(busy("2026-03-02", "09:00", "10:01"),)),
            "staff_capacity",
        ),
        (StaffSupply(11, frozenset({"prescriber"})), "staff_unavailable"),
    ],
)
def test_place_session_with_a_listed_staff_member_who_cannot(
    kap: ProtocolSpec, clinic: ClinicCalendar, person: StaffSupply, rule: str
) -> None:
    result = place_session(
        kap.steps[2],
        at("2026-03-02", "10:00"),
        clinic,
        ROOMS,
        (person, NURSE, OTHER_THERAPIST),
        staff_ids=[11],
    )

    assert rules_of(result) == [rule]


def test_place_session_in_a_room_of_the_wrong_kind(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    result = place_session(kap.steps[2], at("2026-03-02", "10:00"), clinic, ROOMS, STAFF, room_id=1)

    assert result == [
        Violation(
            "room_unavailable",
            "Room 1 is a therapy room; medicine sessions need a dosing room.",
            (),
            "Choose a dosing room.",
        )
    ]


def test_place_session_refuses_naive_datetimes(kap: ProtocolSpec, clinic: ClinicCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        place_session(kap.steps[2], at("2026-03-02").replace(tzinfo=None), clinic, ROOMS, STAFF)


def test_planning_from_utc_inputs_gives_clinic_times(
    infusion: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    patient_busy = (
        Interval(
            at("2026-03-03", "07:30").astimezone(UTC), at("2026-03-03", "16:00").astimezone(UTC)
        ),
    )

    planned = plan(infusion, clinic, patient_busy=patient_busy)

    assert local(planned.sessions[2].starts_at) == "2026-03-03T16:00:00-08:00"


def test_an_earlier_session_changes_room_when_its_turnover_would_delay_the_next(
    kap: ProtocolSpec, clinic: ClinicCalendar
) -> None:
    """Monday afternoon: room 1 is free from 15:00, room 2 from 15:00 to 16:15, room 3 from
    17:00; the prescriber can screen at 15:00, the therapist starts at 16:00. Screening in room 1
    (the first one free) would hold it until 16:15 with its turnover, the first preparation could
    not start before 16:15 and the second would not fit before closing: every medicine session a
    day later. Screening in room 2 lets both preparations happen that afternoon."""
    rooms = (
        RoomSupply(1, "therapy_room", 15, (busy("2026-03-02", "08:00", "15:00"),)),
        RoomSupply(
            2,
            "therapy_room",
            15,
            (busy("2026-03-02", "08:00", "15:00"), busy("2026-03-02", "16:15", "18:00")),
        ),
        RoomSupply(3, "therapy_room", 15, (busy("2026-03-02", "08:00", "17:00"),)),
        RoomSupply(4, "dosing_room", 15),
    )
    staff = (
        StaffSupply(
            10,
            frozenset({"prescriber"}),
            busy=(busy("2026-03-02", "08:00", "15:00"), busy("2026-03-02", "16:00", "18:00")),
        ),
        StaffSupply(11, frozenset({"therapist"}), busy=(busy("2026-03-02", "08:00", "16:00"),)),
        StaffSupply(12, frozenset({"nurse"}), capacity=3),
    )

    planned = plan(kap, clinic, rooms=rooms, staff=staff)

    assert [(s.kind, local(s.starts_at), s.room_id) for s in planned.sessions[:4]] == [
        ("screening", "2026-03-02T15:00:00-08:00", 2),
        ("preparation", "2026-03-02T16:00:00-08:00", 1),
        ("preparation", "2026-03-02T17:00:00-08:00", 3),
        ("medicine", "2026-03-03T08:00:00-08:00", 4),
    ]
