"""The planner's integer timelines: busy time as epoch microseconds gives the same answers.

``scheduling.supply`` loads busy time as ``EpochIntervals`` (the database returns integers); tests
and other callers may still pass tuples of ``Interval``. Both must give the very same plans, and
the integer timeline must agree with a direct check of every interval.
"""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.rules import PatientGates, ProtocolSpec, ScreeningFact, SessionFact
from scheduling.planner import (
    ClinicCalendar,
    EpochIntervals,
    Interval,
    PlanRequest,
    Preferences,
    RoomSupply,
    StaffSupply,
    _Timeline,
    epoch_us,
    from_epoch_us,
    plan_series,
    replan_after,
)
from tests.pure.test_planner_properties import (
    as_facts,
    generated_protocols,
    intervals,
    preferences,
    worlds,
)

LA = ZoneInfo("America/Los_Angeles")
World = tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 3, day, hour, minute, tzinfo=UTC)


def test_epoch_microseconds_are_exact_in_any_zone() -> None:
    # 01:30 on the night the clocks go back happens twice in Los Angeles
    first = datetime(2026, 11, 1, 1, 30, 0, 7, tzinfo=LA)
    second = first.replace(fold=1)

    assert epoch_us(first) == 1_793_521_800_000_007
    assert epoch_us(second) == epoch_us(first) + 3_600_000_000
    assert from_epoch_us(epoch_us(second)) == second.astimezone(UTC)
    assert from_epoch_us(epoch_us(second)).tzinfo is UTC


def test_epoch_intervals_read_as_the_intervals_they_hold() -> None:
    given_intervals = (Interval(at(10, 9), at(10, 10)), Interval(at(10, 9, 30), at(11, 8)))

    epochs = EpochIntervals.of(given_intervals)

    assert epochs.starts == (epoch_us(at(10, 9)), epoch_us(at(10, 9, 30)))
    assert epochs.ends == (epoch_us(at(10, 10)), epoch_us(at(11, 8)))
    assert len(epochs) == 2
    assert tuple(epochs) == given_intervals
    assert epochs[1] == Interval(at(10, 9, 30), at(11, 8))
    assert epochs[-1:] == EpochIntervals((epoch_us(at(10, 9, 30)),), (epoch_us(at(11, 8)),))
    assert list(reversed(epochs)) == list(reversed(given_intervals))
    assert Interval(at(10, 9), at(10, 10)) in epochs


def test_an_inserted_interval_goes_after_those_starting_at_the_same_time() -> None:
    epochs = EpochIntervals.of((Interval(at(10, 9), at(10, 10)), Interval(at(10, 11), at(10, 12))))

    grown = epochs.inserted(Interval(at(10, 9), at(10, 9, 45)))

    assert tuple(grown) == (
        Interval(at(10, 9), at(10, 10)),
        Interval(at(10, 9), at(10, 9, 45)),
        Interval(at(10, 11), at(10, 12)),
    )
    assert len(epochs) == 2  # unchanged


def test_starts_and_ends_must_pair_up() -> None:
    with pytest.raises(ValueError, match="same length"):
        EpochIntervals((1, 2), (3,))


def as_epochs(world: World) -> tuple[list[RoomSupply], list[StaffSupply]]:
    _, _, rooms, staff, _ = world
    return (
        [RoomSupply(r.id, r.kind, r.turnover_minutes, EpochIntervals.of(r.busy)) for r in rooms],
        [
            StaffSupply(
                s.id,
                s.roles,
                s.capacity,
                s.working_hours,
                EpochIntervals.of(s.time_off),
                EpochIntervals.of(s.busy),
            )
            for s in staff
        ],
    )


@settings(max_examples=150)
@given(
    world=worlds(),
    protocol=st.sampled_from(("kap", "infusion")) | generated_protocols(),
    prefs=st.just(Preferences()) | preferences,
    with_gates=st.booleans(),
    patient_busy_count=st.integers(0, 20),
)
def test_busy_time_as_epoch_microseconds_gives_the_same_plan(
    world: World,
    protocol: str | ProtocolSpec,
    prefs: Preferences,
    with_gates: bool,
    patient_busy_count: int,
    kap: ProtocolSpec,
    infusion: ProtocolSpec,
) -> None:
    calendar, first, rooms, staff, rng = world
    spec = {"kap": kap, "infusion": infusion}.get(protocol, protocol)  # type: ignore[arg-type]
    assert isinstance(spec, ProtocolSpec)
    gates = (
        PatientGates((ScreeningFact(True, first + timedelta(days=rng.randint(5, 60))),), first)
        if with_gates
        else None
    )
    patient = intervals(rng, calendar.tz, first, patient_busy_count, 45)
    request = PlanRequest(
        spec, first, patient_busy=patient, preferences=prefs, gates=gates, horizon_days=45
    )
    epoch_rooms, epoch_staff = as_epochs(world)
    epoch_request = PlanRequest(
        spec,
        first,
        patient_busy=EpochIntervals.of(patient),
        preferences=prefs,
        gates=gates,
        horizon_days=45,
    )

    from_intervals = plan_series(request, calendar, rooms, staff)
    from_epochs = plan_series(epoch_request, calendar, epoch_rooms, epoch_staff)

    assert from_epochs == from_intervals
    if from_intervals.sessions:  # and a re-plan after moving the first session a day later
        facts = as_facts(from_intervals)
        first_session = facts[0]
        moved = SessionFact(
            first_session.ref,
            first_session.kind,
            first_session.starts_at + timedelta(days=1),
            first_session.ends_at + timedelta(days=1),
        )
        assert replan_after(
            epoch_request, calendar, epoch_rooms, epoch_staff, moved=moved, later=facts[1:]
        ) == replan_after(request, calendar, rooms, staff, moved=moved, later=facts[1:])


def running_at(items: list[tuple[int, int]], t0: int, t1: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in items if s < t1 and t0 < e]


@settings(max_examples=300)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 300),
    window_day=st.integers(-3, 30),
    capacity=st.integers(1, 3),
)
def test_the_integer_timeline_agrees_with_checking_every_interval(
    seed: int, count: int, window_day: int, capacity: int
) -> None:
    """Long lists, with intervals from long before the queries that still run (days or weeks)."""
    rng = random.Random(seed)
    first = date(2026, 3, 2)
    items = intervals(rng, LA, first, count, 30)
    window_start = datetime.combine(first + timedelta(days=window_day), datetime.min.time(), LA)
    timeline = _Timeline(EpochIntervals.of(items))
    as_ints = [(epoch_us(iv.start), epoch_us(iv.end)) for iv in items]
    for _ in range(20):
        t = epoch_us(window_start) + rng.randint(-2, 40) * 3_600_000_000 // 4
        length = rng.choice((15, 60, 120)) * 60_000_000

        free = timeline.first_free_us(t, length)
        brute = t
        while running_at(as_ints, brute, brute + length):
            brute = max(e for _, e in running_at(as_ints, brute, brute + length))
        assert free == brute
        assert timeline.first_free(from_epoch_us(t), timedelta(microseconds=length)) == (
            from_epoch_us(brute)
        )

        assert sorted(timeline.overlapping_us(t, t + length)) == sorted(
            running_at(as_ints, t, t + length)
        )
        saturated = timeline.first_saturated_us(t, t + length, capacity)
        points = sorted({t} | {p for iv in running_at(as_ints, t, t + length) for p in iv})
        depth = {p: sum(1 for s, e in as_ints if s <= p < e) for p in points if t <= p < t + length}
        full = [p for p in sorted(depth) if depth[p] >= capacity]
        if not full:
            assert saturated is None
        else:
            assert saturated is not None
            assert saturated[0] == full[0]
            after = [p for p in sorted(depth) if p > full[0] and depth[p] < capacity]
            assert saturated[1] == (after[0] if after else t + length)
