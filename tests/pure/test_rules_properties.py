"""Generated cases for the rules engine (hypothesis).

The centrepiece compares ``evaluate`` with a deliberately naive, literal reading of every rule
(``literal_violations``, quadratic and written from API.md's wording, not from the engine).
"""

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.rules import (
    RULE_TYPES,
    PatientGates,
    ProtocolSpec,
    Rule,
    ScreeningFact,
    SessionFact,
    Step,
    StepRole,
    Violation,
    day_start,
    earlier_start_bounds,
    evaluate,
    later_start_bounds,
    local_date,
    pair_holds,
    protocol_from_dict,
    protocol_to_dict,
    validate_protocol,
)

ZONES = [
    ZoneInfo(name)
    for name in (
        "America/Los_Angeles",
        "America/New_York",
        "Europe/London",
        "America/Havana",
        "America/Sao_Paulo",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "UTC",
    )
]
KINDS = ("screening", "preparation", "medicine", "integration", "follow_up")
# Days around the 2026 DST changes in both hemispheres.
BASE_DAYS = (date(2026, 2, 27), date(2026, 3, 25), date(2026, 9, 22), date(2026, 10, 27))

zones = st.sampled_from(ZONES)
common_kinds = st.sampled_from(("medicine", "integration")) | st.sampled_from(KINDS)


@st.composite
def instants(draw: st.DrawFn, tz: ZoneInfo, base: date | None = None) -> datetime:
    base = base if base is not None else draw(st.sampled_from(BASE_DAYS))
    day = base + timedelta(days=draw(st.integers(0, 12)))
    minute = draw(st.integers(0, 24 * 4 - 1)) * 15
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return wall.astimezone(UTC)


@st.composite
def series(
    draw: st.DrawFn, tz: ZoneInfo, min_size: int = 0, max_size: int = 12
) -> list[SessionFact]:
    base = draw(st.sampled_from(BASE_DAYS))
    starts = draw(st.lists(instants(tz, base), min_size=min_size, max_size=max_size, unique=True))
    sessions = []
    for ref, start in enumerate(starts, 1):
        kind = draw(common_kinds)
        minutes = draw(st.sampled_from((30, 60, 100, 120)))
        sessions.append(SessionFact(ref, kind, start, start + timedelta(minutes=minutes)))
    return sessions


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    kind = common_kinds
    rule_type = draw(st.sampled_from(RULE_TYPES))
    after = draw(kind)
    if rule_type == "max_per_window":
        return Rule(
            rule_type, after, count=draw(st.integers(1, 3)), window_days=draw(st.integers(1, 8))
        )
    before = draw(kind)
    if rule_type in ("min_gap", "max_gap"):
        if draw(st.booleans()):
            return Rule(rule_type, after, before, days=draw(st.integers(0, 5)))
        return Rule(rule_type, after, before, hours=draw(st.integers(0, 60)))
    if rule_type == "each_followed_by":
        return Rule(rule_type, after, before, at_least=draw(st.none() | st.integers(1, 2)))
    return Rule(rule_type, after, before)


@st.composite
def protocols(draw: st.DrawFn) -> ProtocolSpec:
    steps = tuple(
        Step(kind, count, 60, "therapy_room", (StepRole("therapist"),))
        for kind in KINDS
        if (count := draw(st.integers(0, 4)))
    )
    return ProtocolSpec("generated", "kap", steps, tuple(draw(st.lists(rules(), max_size=6))))


gates_strategy = st.builds(
    PatientGates,
    screenings=st.lists(
        st.builds(
            ScreeningFact,
            is_cleared=st.booleans(),
            valid_until=st.sampled_from(BASE_DAYS).map(lambda d: d + timedelta(days=6)),
            cleared_on=st.none() | st.sampled_from(BASE_DAYS).map(lambda d: d + timedelta(days=3)),
        ),
        max_size=2,
    ).map(tuple),
    consent_signed_on=st.none() | st.sampled_from(BASE_DAYS).map(lambda d: d + timedelta(days=2)),
)


Found = tuple[str, tuple[int | str, ...]]


def literal_violations(
    sessions: list[SessionFact],
    protocol: ProtocolSpec,
    tz: ZoneInfo,
    gates: PatientGates | None,
    complete: bool,
) -> list[Found]:
    """Each rule read word for word; sessions have distinct starts."""
    ordered = sorted(sessions, key=lambda s: s.starts_at)

    def day(s: SessionFact) -> date:
        return s.starts_at.astimezone(tz).date()

    def refs(items: list[SessionFact]) -> tuple[int | str, ...]:
        return tuple(sorted(s.ref for s in items))  # type: ignore[type-var]

    counts = Counter[str]()
    for step in protocol.steps:
        counts[step.kind] += step.count
    out: list[Found] = []
    crowded: set[int | str] = set()
    if complete:
        repeatable = {step.kind for step in protocol.steps if step.repeatable}
        for kind in counts:  # kinds with no step are ad hoc and not counted
            of = [s for s in ordered if s.kind == kind]
            if len(of) < counts[kind]:
                out.append(("step_count", refs(of)))
            elif len(of) > counts[kind] and kind not in repeatable:
                out.append(("step_count", refs(of[counts[kind] :])))
    for rule in protocol.rules:
        a_kind, b_kind = rule.after, rule.before
        as_ = [s for s in ordered if s.kind == a_kind]
        bs = [s for s in ordered if s.kind == b_kind]

        def gap_ok(a: SessionFact, b: SessionFact, *, minimum: bool, rule: Rule = rule) -> bool:
            if rule.days is not None:
                days = (day(b) - day(a)).days
                if (days < rule.days) if minimum else (days > rule.days):
                    return False
            if rule.hours is not None:
                hours = b.starts_at - a.ends_at
                limit = timedelta(hours=rule.hours)
                if (hours < limit) if minimum else (hours > limit):
                    return False
            return True

        if rule.type == "min_gap":
            for b in bs:
                earlier = [a for a in as_ if a.starts_at < b.starts_at]
                if earlier and not gap_ok(earlier[-1], b, minimum=True):
                    out.append(("min_gap", refs([earlier[-1], b])))
        elif rule.type == "max_gap":
            for n, a in enumerate(as_):
                next_a = as_[n + 1] if n + 1 < len(as_) else None
                if a_kind == b_kind:
                    first_b = next_a
                else:
                    first_b = next(
                        (
                            b
                            for b in bs
                            if a.starts_at < b.starts_at
                            and (next_a is None or b.starts_at < next_a.starts_at)
                        ),
                        None,
                    )
                if first_b is not None and not gap_ok(a, first_b, minimum=False):
                    out.append(("max_gap", refs([a, first_b])))
            if complete and len(bs) < counts[b_kind]:
                if a_kind == b_kind:
                    out.extend(("max_gap", refs([a])) for a in as_[-1:])
                else:
                    out.extend(
                        ("max_gap", refs([a]))
                        for a in as_
                        if not any(b.starts_at > a.starts_at for b in bs)
                    )
        elif rule.type == "each_followed_by":
            needed = rule.at_least or 1
            for n, a in enumerate(as_):
                next_a = as_[n + 1] if n + 1 < len(as_) else None
                between = [
                    b
                    for b in bs
                    if a.starts_at < b.starts_at
                    and (next_a is None or b.starts_at < next_a.starts_at)
                ]
                if len(between) < needed:
                    out.append(
                        ("each_followed_by", refs([a, *between, *([next_a] if next_a else [])]))
                    )
        elif rule.type == "precedes":
            if bs:
                if not as_ and counts[a_kind] > 0:
                    out.append(("precedes", refs([bs[0]])))
                out.extend(
                    ("precedes", refs([a, bs[0]])) for a in as_ if a.starts_at >= bs[0].starts_at
                )
        elif rule.type == "not_same_day":
            for d in sorted({day(s) for s in ordered}):
                on_day = [s for s in ordered if day(s) == d and s.kind in (a_kind, b_kind)]
                kinds_on_day = Counter(s.kind for s in on_day)
                clash = (
                    kinds_on_day[a_kind] >= 2
                    if a_kind == b_kind
                    else kinds_on_day[a_kind] > 0 and kinds_on_day[b_kind] > 0
                )
                if clash:
                    out.append(("not_same_day", refs(on_day)))
        elif rule.type == "max_per_window":
            window = rule.window_days or 1
            if as_:
                first = day(as_[0]) - timedelta(days=window)
                for offset in range((day(as_[-1]) - first).days + 1):
                    start = first + timedelta(days=offset)
                    inside = [a for a in as_ if 0 <= (day(a) - start).days < window]
                    if len(inside) > (rule.count or 1):
                        crowded.update(a.ref for a in inside)
    if crowded:  # compared as one set: which sessions sit in some overfull window
        out.append(("max_per_window (all)", tuple(sorted(crowded))))  # type: ignore[type-var]
    if gates is not None:
        for s in ordered:
            if s.kind != "medicine":
                continue
            d = day(s)
            if not any(
                g.is_cleared and g.valid_until >= d and (g.cleared_on is None or g.cleared_on <= d)
                for g in gates.screenings
            ):
                out.append(("screening_gate", (s.ref,)))
            if gates.consent_signed_on is None or gates.consent_signed_on > d:
                out.append(("consent_gate", (s.ref,)))
    return sorted(out)


def engine_violations(violations: list[Violation]) -> list[Found]:
    crowded: set[int | str] = set()
    out: list[Found] = []
    for v in violations:
        if v.rule == "max_per_window":
            crowded.update(v.sessions)
        else:
            out.append((v.rule, tuple(sorted(v.sessions))))  # type: ignore[type-var]
    if crowded:
        out.append(("max_per_window (all)", tuple(sorted(crowded))))  # type: ignore[type-var]
    return sorted(out)


@settings(max_examples=700)
@given(data=st.data(), tz=zones, protocol=protocols(), complete=st.booleans())
def test_evaluate_matches_a_literal_reading_of_the_rules(
    data: st.DataObject, tz: ZoneInfo, protocol: ProtocolSpec, complete: bool
) -> None:
    sessions = data.draw(series(tz, min_size=3))
    gates = data.draw(st.none() | gates_strategy)

    violations = evaluate(sessions, protocol, tz, gates=gates, require_complete=complete)

    assert engine_violations(violations) == literal_violations(
        sessions, protocol, tz, gates, complete
    )


@settings(max_examples=300)
@given(data=st.data(), tz=zones, protocol=protocols(), seed=st.integers(0, 2**32))
def test_evaluate_does_not_depend_on_the_input_order(
    data: st.DataObject, tz: ZoneInfo, protocol: ProtocolSpec, seed: int
) -> None:
    sessions = data.draw(series(tz))
    shuffled = list(sessions)
    random.Random(seed).shuffle(shuffled)

    assert evaluate(shuffled, protocol, tz, require_complete=True) == evaluate(
        sessions, protocol, tz, require_complete=True
    )


@settings(max_examples=300)
@given(data=st.data(), tz=zones, protocol=protocols(), gates=st.none() | gates_strategy)
def test_every_violation_names_sessions_of_the_series(
    data: st.DataObject, tz: ZoneInfo, protocol: ProtocolSpec, gates: PatientGates | None
) -> None:
    sessions = data.draw(series(tz))
    refs = {s.ref for s in sessions}

    for violation in evaluate(sessions, protocol, tz, gates=gates, require_complete=True):
        assert set(violation.sessions) <= refs
        assert violation.message
        assert violation.sessions or violation.rule == "step_count"


@settings(max_examples=300)
@given(data=st.data(), tz=zones, protocol=protocols(), extra=rules(), where=st.integers(0, 4))
def test_adding_a_rule_never_removes_violations(
    data: st.DataObject, tz: ZoneInfo, protocol: ProtocolSpec, extra: Rule, where: int
) -> None:
    sessions = data.draw(series(tz))
    stricter_rules = list(protocol.rules)
    stricter_rules.insert(min(where, len(stricter_rules)), extra)
    stricter = ProtocolSpec(
        protocol.name, protocol.care_model, protocol.steps, tuple(stricter_rules)
    )

    before = Counter(evaluate(sessions, protocol, tz, require_complete=True))
    after = Counter(evaluate(sessions, stricter, tz, require_complete=True))

    assert before <= after


# ----------------------------------------------------------------------------- valid series


@st.composite
def valid_kap_series(draw: st.DrawFn, tz: ZoneInfo) -> list[SessionFact]:
    """A complete KAP series built to keep every rule of the standard KAP protocol."""
    day0 = draw(st.sampled_from(BASE_DAYS)) + timedelta(days=draw(st.integers(0, 10)))

    def on(day: date, hour: int, minutes: int, ref: int, kind: str) -> SessionFact:
        start = datetime.combine(day, time(hour), tzinfo=tz)
        return SessionFact(ref, kind, start, start.astimezone(UTC) + timedelta(minutes=minutes))

    prep1 = day0 + timedelta(days=draw(st.integers(0, 2)))
    prep2 = prep1 + timedelta(days=draw(st.integers(0, 2)))
    sessions = [
        on(day0, 8, 60, 1, "screening"),
        on(prep1, 10, 60, 2, "preparation"),
        on(prep2, 12, 60, 3, "preparation"),
    ]
    medicine_days: list[date] = []
    medicine = prep2 + timedelta(days=draw(st.integers(1, 3)))
    for n in range(6):
        medicine_days.append(medicine)
        integration = medicine + timedelta(days=draw(st.integers(1, 7)))
        sessions.append(on(medicine, draw(st.integers(8, 15)), 120, 10 + n, "medicine"))
        sessions.append(on(integration, draw(st.integers(8, 17)), 60, 20 + n, "integration"))
        medicine = max(
            integration + timedelta(days=draw(st.integers(1, 3))),
            medicine + timedelta(days=2),
            medicine_days[-3] + timedelta(days=7) if n >= 2 else medicine,
        )
    return sessions


@settings(max_examples=300)
@given(data=st.data(), tz=zones)
def test_a_series_built_to_the_kap_protocol_has_no_violations(
    data: st.DataObject, tz: ZoneInfo, kap: ProtocolSpec
) -> None:
    sessions = data.draw(valid_kap_series(tz))
    medicine_days = [local_date(s.starts_at, tz) for s in sessions if s.kind == "medicine"]
    gates = PatientGates(
        (ScreeningFact(True, max(medicine_days), cleared_on=min(medicine_days)),),
        consent_signed_on=min(medicine_days),
    )

    assert evaluate(sessions, kap, tz, gates=gates, require_complete=True) == []


@settings(max_examples=300)
@given(data=st.data(), tz=zones, gaps=st.lists(st.integers(1, 4), min_size=5, max_size=5))
def test_an_infusion_series_built_to_the_protocol_has_no_violations(
    data: st.DataObject, tz: ZoneInfo, gaps: list[int], infusion: ProtocolSpec
) -> None:
    day = data.draw(st.sampled_from(BASE_DAYS))
    hours = data.draw(st.lists(st.integers(0, 21), min_size=7, max_size=7))
    screening = datetime.combine(day, time(hours[0]), tzinfo=tz)
    sessions = [SessionFact("s", "screening", screening, screening + timedelta(minutes=60))]
    day += timedelta(days=data.draw(st.integers(1, 3)))
    for n, gap in enumerate([0, *gaps]):
        day += timedelta(days=gap)
        start = datetime.combine(day, time(hours[n + 1]), tzinfo=tz).astimezone(UTC)
        sessions.append(SessionFact(n, "medicine", start, start + timedelta(minutes=100)))

    assert evaluate(sessions, infusion, tz, require_complete=True) == []


def related_kinds(protocol: ProtocolSpec, kind: str) -> set[str]:
    related = {kind}
    for rule in protocol.rules:
        if kind in (rule.after, rule.before):
            related |= {rule.after, rule.before} - {""}
    return related


@settings(max_examples=400)
@given(data=st.data(), tz=zones, shift=st.integers(-6, 6).filter(bool))
def test_moving_one_session_by_whole_days_only_concerns_related_kinds(
    data: st.DataObject, tz: ZoneInfo, shift: int, kap: ProtocolSpec
) -> None:
    sessions = data.draw(valid_kap_series(tz))
    n = data.draw(st.integers(0, len(sessions) - 1))
    moved = sessions[n]
    start = datetime.combine(
        local_date(moved.starts_at, tz) + timedelta(days=shift),
        moved.starts_at.astimezone(tz).time(),
        tzinfo=tz,
    )
    sessions[n] = SessionFact(
        moved.ref, moved.kind, start, start + (moved.ends_at - moved.starts_at)
    )
    kinds = {s.ref: s.kind for s in sessions}
    allowed = related_kinds(kap, moved.kind)

    for violation in evaluate(sessions, kap, tz, require_complete=True):
        assert {kinds[ref] for ref in violation.sessions} <= allowed, violation


# ----------------------------------------------------------------------------- shared pieces

pair_rules = st.one_of(
    st.builds(
        Rule,
        st.just("min_gap"),
        st.just("medicine"),
        st.just("integration"),
        days=st.integers(0, 9),
    ),
    st.builds(
        Rule,
        st.just("min_gap"),
        st.just("medicine"),
        st.just("integration"),
        hours=st.integers(0, 80),
    ),
    st.builds(
        Rule,
        st.just("max_gap"),
        st.just("medicine"),
        st.just("integration"),
        days=st.integers(0, 9),
    ),
    st.builds(
        Rule,
        st.just("max_gap"),
        st.just("medicine"),
        st.just("integration"),
        hours=st.integers(0, 80),
    ),
    st.builds(Rule, st.just("not_same_day"), st.just("medicine"), st.just("integration")),
    st.builds(
        Rule,
        st.just("max_per_window"),
        st.just("medicine"),
        count=st.just(2),
        window_days=st.integers(1, 9),
    ),
)


@settings(max_examples=800)
@given(data=st.data(), tz=zones, rule=pair_rules, minutes=st.sampled_from((15, 60, 100, 120)))
def test_start_bounds_say_exactly_what_pair_holds_says(
    data: st.DataObject, tz: ZoneInfo, rule: Rule, minutes: int
) -> None:
    """The planner searches with the bounds; evaluate checks with pair_holds: they must agree."""
    earlier, later = sorted(data.draw(st.lists(instants(tz), min_size=2, max_size=2)))
    duration = timedelta(minutes=minutes)

    holds = pair_holds(rule, earlier, earlier + duration, later, tz)

    low, high = later_start_bounds(rule, earlier, earlier + duration, tz)
    assert holds == ((low is None or later >= low) and (high is None or later < high))
    low, high = earlier_start_bounds(rule, later, duration, tz)
    assert holds == ((low is None or earlier >= low) and (high is None or earlier < high))


@given(tz=zones, day=st.dates(date(1990, 1, 1), date(2037, 12, 31)))
def test_day_start_is_the_first_instant_of_the_local_date(tz: ZoneInfo, day: date) -> None:
    start = day_start(day, tz)

    assert local_date(start, tz) == day
    assert local_date(start - timedelta(microseconds=1), tz) == day - timedelta(days=1)


@given(protocol=protocols())
def test_protocol_documents_round_trip(protocol: ProtocolSpec) -> None:
    assert protocol_from_dict(protocol_to_dict(protocol)) == protocol


@given(protocol=protocols())
def test_validate_protocol_never_raises(protocol: ProtocolSpec) -> None:
    assert all(isinstance(problem, str) for problem in validate_protocol(protocol))
