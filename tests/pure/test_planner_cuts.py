"""The planner's search cuts give the answers the full search gives.

* ``is_free_at`` (a check at one start) says free exactly when ``reason_blocked`` finds nothing.
* ``assignment_at`` assigns what ``probe`` assigns whenever ``probe`` finds an assignment.
* ``_latest_starts`` (read backwards from a limit) never cuts a plan that finishes in time:
  the restricted whole-series search finds the same plan with and without it.
"""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocols.rules import ProtocolSpec
from scheduling.planner import (
    CONTINUITY_ROLE,
    ClinicCalendar,
    PlanRequest,
    RoomSupply,
    StaffSupply,
    _Chain,
    _latest_starts,
    _need_for_step,
    _positions_for,
    _Search,
    _solve,
    epoch_us,
    plan_series,
)
from tests.pure.test_planner_properties import worlds

LA = ZoneInfo("America/Los_Angeles")
World = tuple[ClinicCalendar, date, list[RoomSupply], list[StaffSupply], random.Random]


def search_for(world: World) -> _Search:
    calendar, _, rooms, staff, _ = world
    return _Search(calendar, rooms, staff, patient_busy=(), slot_minutes=15)


def test_latest_starts_read_the_infusion_rules_backwards(infusion: ProtocolSpec) -> None:
    # given the infusion induction's chain (screening, then 6 infusions at least a day apart)
    start = datetime(2026, 3, 2, 8, tzinfo=LA).astimezone(UTC)
    chain = _Chain(_positions_for(infusion, (), False, start), LA, infusion.rules)
    limit = datetime(2026, 3, 20, 12, tzinfo=LA).astimezone(UTC)

    # when the latest starts are read backwards from noon on Friday the 20th
    latest = _latest_starts(chain, limit)

    # then the last infusion must start before that noon, each earlier one on an earlier day
    # (before the midnight that starts the next one's latest day), and the screening an hour
    # before the first infusion's latest start
    local = [moment.astimezone(LA) for moment in latest]
    assert [position.kind for position in chain.positions] == ["screening"] + ["medicine"] * 6
    assert local[-1] == datetime(2026, 3, 20, 12, tzinfo=LA)
    assert local[1:-1] == [datetime(2026, 3, day, tzinfo=LA) for day in (16, 17, 18, 19, 20)]
    assert local[0] == local[1] - timedelta(minutes=infusion.steps[0].duration_minutes)


@settings(max_examples=100)
@given(world=worlds(), seed=st.integers(0, 2**32 - 1))
def test_is_free_at_says_free_exactly_when_no_reason_blocks(world: World, seed: int) -> None:
    calendar, first, _, _, _ = world
    search = search_for(world)
    rng = random.Random(seed)
    for _ in range(40):
        person = rng.choice(search.staff)
        start = datetime.combine(
            first + timedelta(days=rng.randint(-1, 40)),
            datetime.min.time().replace(hour=rng.randint(0, 23), minute=rng.choice((0, 15, 45))),
            calendar.tz,
        ).astimezone(UTC)
        length = timedelta(minutes=rng.choice((15, 30, 90, 240)))
        day = start.astimezone(calendar.tz).date()

        assert person.is_free_at(epoch_us(start), length // timedelta(microseconds=1), day) is (
            person.reason_blocked(start, length) is None
        )


@settings(max_examples=100)
@given(world=worlds(), seed=st.integers(0, 2**32 - 1))
def test_assignment_at_assigns_what_probe_assigns(
    world: World, seed: int, kap: ProtocolSpec
) -> None:
    _, first, _, _, _ = world
    search = search_for(world)
    rng = random.Random(seed)
    limit = datetime.combine(first + timedelta(days=60), datetime.min.time(), UTC)
    for step in kap.steps:
        need = _need_for_step(step)
        s = search.next_start(
            datetime.combine(first + timedelta(days=rng.randint(0, 30)), datetime.min.time(), UTC),
            need,
            limit,
        )
        if s is None:
            continue
        assignment, _ = search.probe(need, s, limit, ())

        assert search.assignment_at(need, s) == assignment or assignment is None
        if assignment is None:
            assert search.assignment_at(need, s) is None


@settings(max_examples=100)
@given(world=worlds(), slack_hours=st.sampled_from((0, 6, 30, 100)))
def test_latest_starts_never_cut_a_plan_that_finishes_in_time(
    world: World, slack_hours: int, kap: ProtocolSpec
) -> None:
    # given a KAP plan and, for each therapist, the chain restricted to them
    calendar, first, rooms, staff, _ = world
    planned = plan_series(PlanRequest(kap, first, horizon_days=45), calendar, rooms, staff)
    if not planned.sessions:
        return
    limit = max(s.starts_at for s in planned.sessions) + timedelta(hours=slack_hours)
    search = search_for(world)
    start = datetime.combine(first, datetime.min.time(), calendar.tz)
    for therapist in [p.id for p in search.staff if CONTINUITY_ROLE in p.roles]:
        positions = _positions_for(kap, (), False, start)
        for position in positions:
            assert position.need is not None
            if any(role == CONTINUITY_ROLE for role, _ in position.need.roles):
                position.need = position.need.only(therapist, role=CONTINUITY_ROLE)
        chain = _Chain(positions, calendar.tz, kap.rules)

        # when it is searched with and without the latest starts
        full, _ = _solve(chain, search, limit)
        cut, _ = _solve(chain, search, limit, _latest_starts(chain, limit))

        # then both find the same plan, or neither does
        event("kept a therapist" if full is not None else "no plan with this therapist")
        assert cut == full
