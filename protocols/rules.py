"""The protocol rules engine: pure functions over frozen dataclasses, no ORM.

One engine answers the planner, the API (409/422 bodies) and the background re-check, so every
spacing rule of a protocol is decided here and only here (DESIGN.md, "Rules a protocol can state").

Conventions every rule follows:

* ``sessions`` are the live sessions of one series. ``evaluate`` orders them by start (ties by end,
  kind, then ref, so the answer never depends on the input order); "before", "after", "the most
  recent" and "the next" below refer to that order.
* Calendar days are local dates in the clinic's zone: ``days`` between A and B is
  ``local_date(B.starts_at) - local_date(A.starts_at)``, so a DST night (23 or 25 hours) is still
  one day. ``hours`` are elapsed real time from ``A.ends_at`` to ``B.starts_at``. All arithmetic is
  done in UTC; an aware datetime in the clinic's own zone is never subtracted wall-clock style.
* A rule that relates two sessions is reduced to *pairs of positions* by ``rule_pairs`` (which A a
  B is measured against) and a *pair test* ``pair_holds``. ``later_start_bounds`` and
  ``earlier_start_bounds`` give the same test as a window of allowed start times, which is how the
  planner uses the very same semantics to search instead of re-checking a whole series per slot.

Rule semantics (see API.md for the JSON):

``min_gap(after=A, before=B, days|hours)``
    Each B is at least ``days`` calendar days / ``hours`` elapsed hours after the most recent A
    before it. With A == B: each pair of consecutive A sessions.
``max_gap(after=A, before=B, days|hours)``
    For each A that is followed by a B before the next A, the first such B is at most ``days`` /
    ``hours`` after it (A == B: consecutive pairs). With ``require_complete`` an A with no B after
    it at all is also reported while the series has fewer B sessions than the protocol's B step.
``each_followed_by(A, B, at_least=n)``
    Between each A and the next A (or the end of the series) there are at least n B sessions
    (``at_least`` left out means 1). The last A is reported even when ``require_complete`` is
    false: a series is booked whole, so a medicine session without its integration is a gap a
    clinician must see (it is also how an overdue integration shows up in the re-check).
``precedes(A, B)``
    Every A starts strictly before the first B starts; when the protocol has an A step, at least
    one A must exist before the first B.
``not_same_day(A, B)``
    No A and B on the same local date (A == B: at most one A per local date).
``max_per_window(A, count, window_days)``
    In any ``window_days`` consecutive local dates at most ``count`` A sessions.
``step_count`` (only with ``require_complete``)
    The series has exactly the step's count of sessions of each kind that has a step (at least
    that many for a ``repeatable`` step). Kinds with no step are ad hoc (optional therapy after an
    infusion, a follow-up) and are not counted, but every rule naming them still applies.
``screening_gate`` / ``consent_gate`` (only when ``gates`` is given)
    Each medicine session's local date has a cleared screening valid on that date (``cleared_on``
    on or before it, ``valid_until`` on or after it), and a consent signed on or before it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

SESSION_KINDS = ("screening", "preparation", "medicine", "integration", "follow_up")
RULE_TYPES = (
    "min_gap",
    "max_gap",
    "each_followed_by",
    "precedes",
    "not_same_day",
    "max_per_window",
)
CARE_MODELS = ("infusion", "kap", "maintenance")
ROOM_KINDS = ("infusion_chair", "dosing_room", "therapy_room", "telehealth")
STAFF_ROLES = ("front_desk", "nurse", "prescriber", "therapist", "clinic_admin")
ROUTES = ("iv", "im", "sublingual", "intranasal", "oral")
MEDICINE = "medicine"
GATE_RULES = ("screening_gate", "consent_gate")

_INSTANT = timedelta(microseconds=1)
"""Turns an inclusive upper bound into the exclusive one every window in this module uses."""


@dataclass(frozen=True, slots=True)
class StepRole:
    """A staff role a step needs; ``minutes`` from the session's start (None: the whole session)."""

    role: str
    minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """``count`` sessions of one kind; ``duration_minutes``: how long the patient holds the room."""

    kind: str
    count: int
    duration_minutes: int
    room_kind: str
    roles: tuple[StepRole, ...] = ()
    route: str = ""
    repeatable: bool = False
    """More sessions of this kind may join the series later (maintenance boosters)."""


@dataclass(frozen=True, slots=True)
class Rule:
    type: str
    after: str
    before: str = ""
    days: int | None = None
    hours: int | None = None
    at_least: int | None = None
    count: int | None = None
    window_days: int | None = None


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    name: str
    care_model: str
    steps: tuple[Step, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class SessionFact:
    """A live session of a series (or a planned one): ``ref`` is its id or plan index.

    ``room_id`` and ``staff_ids`` are optional: the planner keeps a session in its room and with
    its clinicians when it re-places it (reschedule with cascade) and those are still free.
    """

    ref: int | str
    kind: str
    starts_at: datetime
    ends_at: datetime
    room_id: int | None = None
    staff_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ScreeningFact:
    """A screening result; ``cleared_on`` is the day a prescriber cleared the patient."""

    is_cleared: bool
    valid_until: date
    cleared_on: date | None = None


@dataclass(frozen=True, slots=True)
class PatientGates:
    """What the screening and consent gates look at; ``consent_signed_on`` is the earliest date a
    current consent was signed (None: no signed consent)."""

    screenings: tuple[ScreeningFact, ...] = ()
    consent_signed_on: date | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str
    sessions: tuple[int | str, ...]
    suggested_fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "sessions": list(self.sessions),
            "suggested_fix": self.suggested_fix,
        }


class ProtocolFormatError(ValueError):
    """A protocol document with the wrong shape; ``errors`` maps a field path to its messages
    (the API's problem+json ``errors`` member)."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {path: list(msgs) for path, msgs in errors.items()}
        super().__init__(
            "; ".join(f"{path}: {msg}" for path, msgs in self.errors.items() for msg in msgs)
        )


# --------------------------------------------------------------------------------------------
# Time helpers shared with the planner and the Django services.
# --------------------------------------------------------------------------------------------


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` if it is aware; a naive datetime has no place in a clinic's calendar."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value


def local_date(dt: datetime, tz: ZoneInfo) -> date:
    """The date ``dt`` falls on in the clinic's zone."""
    return require_aware(dt).astimezone(tz).date()


def calendar_days_between(a: datetime, b: datetime, tz: ZoneInfo) -> int:
    """Local calendar days from ``a`` to ``b`` (negative when ``b`` is on an earlier date)."""
    return (local_date(b, tz) - local_date(a, tz)).days


def elapsed(a: datetime, b: datetime) -> timedelta:
    """Real time from ``a`` to ``b``; safe across DST even when both carry the same ZoneInfo."""
    return require_aware(b).astimezone(UTC) - require_aware(a).astimezone(UTC)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant (in UTC) whose local date in ``tz`` is ``day``.

    A local midnight that does not exist (a DST gap at midnight) resolves to the transition,
    which is exactly where the day begins.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def gate_failures(day: date, gates: PatientGates) -> tuple[str, ...]:
    """The gates (``screening_gate``, ``consent_gate``) a medicine session on ``day`` fails."""
    failures: list[str] = []
    if not any(_screening_covers(screening, day) for screening in gates.screenings):
        failures.append("screening_gate")
    if gates.consent_signed_on is None or gates.consent_signed_on > day:
        failures.append("consent_gate")
    return tuple(failures)


def _screening_covers(screening: ScreeningFact, day: date) -> bool:
    return (
        screening.is_cleared
        and screening.valid_until >= day
        and (screening.cleared_on is None or screening.cleared_on <= day)
    )


# --------------------------------------------------------------------------------------------
# Pairwise rules: which positions are compared, and the test itself.
# --------------------------------------------------------------------------------------------

PAIR_RULE_TYPES = ("min_gap", "max_gap", "not_same_day", "max_per_window")


def rule_pairs(rule: Rule, kinds: Sequence[str]) -> list[tuple[int, int]]:
    """The (earlier, later) positions a pairwise rule compares, for sessions in time order.

    ``kinds[i]`` is the kind of the i-th session in time order. Structural rules
    (``each_followed_by``, ``precedes``) have no pairs. For ``not_same_day`` each session of
    either kind is paired with the nearest earlier session of the other kind (A == B: the
    previous one); since dates never decrease along the series this finds every date shared by
    an A and a B.
    """
    a, b = rule.after, rule.before
    pairs: list[tuple[int, int]] = []
    if a == b and rule.type in ("min_gap", "max_gap", "not_same_day"):
        positions = [i for i, kind in enumerate(kinds) if kind == a]
        return list(pairwise(positions))
    if rule.type == "min_gap":
        last_a: int | None = None
        for j, kind in enumerate(kinds):
            if kind == b and last_a is not None:
                pairs.append((last_a, j))
            if kind == a:
                last_a = j
    elif rule.type == "max_gap":
        open_a: int | None = None
        for j, kind in enumerate(kinds):
            if kind == a:
                open_a = j
            elif kind == b and open_a is not None:
                pairs.append((open_a, j))
                open_a = None
    elif rule.type == "not_same_day":
        last_of: dict[str, int] = {}
        other = {a: b, b: a}
        for j, kind in enumerate(kinds):
            if kind in other:
                if other[kind] in last_of:
                    pairs.append((last_of[other[kind]], j))
                last_of[kind] = j
    elif rule.type == "max_per_window":
        count = rule.count if rule.count is not None else 1
        positions = [i for i, kind in enumerate(kinds) if kind == a]
        pairs = [(positions[j - count], positions[j]) for j in range(count, len(positions))]
    return pairs


def pair_holds(
    rule: Rule, earlier_start: datetime, earlier_end: datetime, later_start: datetime, tz: ZoneInfo
) -> bool:
    """Whether one pair from ``rule_pairs`` satisfies ``rule``."""
    days = calendar_days_between(earlier_start, later_start, tz)
    if rule.type == "min_gap":
        return (rule.days is None or days >= rule.days) and (
            rule.hours is None or elapsed(earlier_end, later_start) >= timedelta(hours=rule.hours)
        )
    if rule.type == "max_gap":
        return (rule.days is None or days <= rule.days) and (
            rule.hours is None or elapsed(earlier_end, later_start) <= timedelta(hours=rule.hours)
        )
    if rule.type == "not_same_day":
        return days != 0
    if rule.type == "max_per_window":
        return days >= _window_days(rule)
    raise ValueError(f"{rule.type} is not a pairwise rule")


Bounds = tuple[datetime | None, datetime | None]
"""(lowest allowed start, first start no longer allowed), both UTC; None means unbounded."""


def later_start_bounds(
    rule: Rule, earlier_start: datetime, earlier_end: datetime, tz: ZoneInfo
) -> Bounds:
    """Starts of the later session of a pair that satisfy ``rule``, given the earlier session.

    Exactly ``pair_holds`` for a later session starting no earlier than the earlier one.
    """
    first_day = local_date(earlier_start, tz)
    end = earlier_end.astimezone(UTC)
    low: datetime | None = None
    high: datetime | None = None
    if rule.type == "min_gap":
        if rule.days is not None:
            low = day_start(first_day + timedelta(days=rule.days), tz)
        if rule.hours is not None:
            low = _later_of(low, end + timedelta(hours=rule.hours))
    elif rule.type == "max_gap":
        if rule.days is not None:
            high = day_start(first_day + timedelta(days=rule.days + 1), tz)
        if rule.hours is not None:
            high = _earlier_of(high, end + timedelta(hours=rule.hours) + _INSTANT)
    elif rule.type == "not_same_day":
        low = day_start(first_day + timedelta(days=1), tz)
    elif rule.type == "max_per_window":
        low = day_start(first_day + timedelta(days=_window_days(rule)), tz)
    else:
        raise ValueError(f"{rule.type} is not a pairwise rule")
    return low, high


def earlier_start_bounds(
    rule: Rule, later_start: datetime, earlier_duration: timedelta, tz: ZoneInfo
) -> Bounds:
    """Starts of the earlier session of a pair (lasting ``earlier_duration``) that satisfy
    ``rule``, given the later session. Exactly ``pair_holds`` for an earlier session starting no
    later than the later one."""
    last_day = local_date(later_start, tz)
    start = later_start.astimezone(UTC)
    low: datetime | None = None
    high: datetime | None = None
    if rule.type == "min_gap":
        if rule.days is not None:
            high = day_start(last_day - timedelta(days=rule.days - 1), tz)
        if rule.hours is not None:
            latest = start - timedelta(hours=rule.hours) - earlier_duration
            high = _earlier_of(high, latest + _INSTANT)
    elif rule.type == "max_gap":
        if rule.days is not None:
            low = day_start(last_day - timedelta(days=rule.days), tz)
        if rule.hours is not None:
            low = _later_of(low, start - timedelta(hours=rule.hours) - earlier_duration)
    elif rule.type == "not_same_day":
        high = day_start(last_day, tz)
    elif rule.type == "max_per_window":
        high = day_start(last_day - timedelta(days=_window_days(rule) - 1), tz)
    else:
        raise ValueError(f"{rule.type} is not a pairwise rule")
    return low, high


def _later_of(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _earlier_of(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _window_days(rule: Rule) -> int:
    return rule.window_days if rule.window_days is not None else 1


def _at_least(rule: Rule) -> int:
    return rule.at_least if rule.at_least is not None else 1


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Timed:
    fact: SessionFact
    start: datetime
    end: datetime
    day: date
    label: str


@dataclass(slots=True)
class _Series:
    items: list[_Timed]
    tz: ZoneInfo
    protocol: ProtocolSpec
    kinds: list[str] = field(default_factory=list)
    positions: dict[str, list[int]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[int]:
        return self.positions.get(kind, [])

    def step_count(self, kind: str) -> int:
        return sum(step.count for step in self.protocol.steps if step.kind == kind)

    def ref(self, i: int) -> int | str:
        return self.items[i].fact.ref

    def local(self, instant: datetime) -> str:
        return instant.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")


def _series(sessions: Iterable[SessionFact], protocol: ProtocolSpec, tz: ZoneInfo) -> _Series:
    timed: list[tuple[datetime, datetime, SessionFact]] = []
    for fact in sessions:
        start = require_aware(fact.starts_at, f"session {fact.ref!r} starts_at").astimezone(UTC)
        end = require_aware(fact.ends_at, f"session {fact.ref!r} ends_at").astimezone(UTC)
        if end < start:
            raise ValueError(f"session {fact.ref!r} ends before it starts")
        timed.append((start, end, fact))
    timed.sort(key=lambda t: (t[0], t[1], t[2].kind, type(t[2].ref).__name__, str(t[2].ref)))
    ordinal: Counter[str] = Counter()
    items: list[_Timed] = []
    positions: dict[str, list[int]] = defaultdict(list)
    for i, (start, end, fact) in enumerate(timed):
        ordinal[fact.kind] += 1
        label = f"{kind_label(fact.kind)} {ordinal[fact.kind]}"
        items.append(_Timed(fact, start, end, start.astimezone(tz).date(), label))
        positions[fact.kind].append(i)
    return _Series(items, tz, protocol, [t.kind for _, _, t in timed], dict(positions))


def kind_label(kind: str) -> str:
    """A session kind in clinicians' words (``follow_up`` -> ``follow-up``)."""
    return kind.replace("_", "-")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluate(
    sessions: Sequence[SessionFact],
    protocol: ProtocolSpec,
    tz: ZoneInfo,
    *,
    gates: PatientGates | None = None,
    require_complete: bool = False,
) -> list[Violation]:
    """Every rule of ``protocol`` the series breaks, as data (see the module docstring).

    Violations come in a stable order: step counts, then the protocol's rules in their listed
    order, then the gates, each in session order.
    """
    series = _series(sessions, protocol, tz)
    violations: list[Violation] = []
    if require_complete:
        violations.extend(_step_count_violations(series))
    for rule in protocol.rules:
        check = _RULE_CHECKS.get(rule.type)
        if check is None:
            raise ValueError(f"unknown rule type {rule.type!r}")
        violations.extend(check(rule, series, require_complete))
    if gates is not None:
        violations.extend(_gate_violations(series, gates))
    return violations


def steps_done(protocol: ProtocolSpec, completed: Iterable[str]) -> bool:
    """Whether sessions of the ``completed`` kinds (one entry per completed session) meet the
    count of every step: the series' course is over. A protocol with a repeatable step (boosters
    join it later) or with no steps is never over by count."""
    if not protocol.steps or any(step.repeatable for step in protocol.steps):
        return False
    done = Counter(completed)
    kinds = {step.kind for step in protocol.steps}
    return all(
        done[kind] >= sum(s.count for s in protocol.steps if s.kind == kind) for kind in kinds
    )


def _step_count_violations(series: _Series) -> list[Violation]:
    repeatable = {step.kind for step in series.protocol.steps if step.repeatable}
    violations: list[Violation] = []
    for kind in dict.fromkeys(step.kind for step in series.protocol.steps):
        expected = series.step_count(kind)
        positions = series.of_kind(kind)
        have = len(positions)
        if have == expected or (kind in repeatable and have > expected):
            continue
        label = kind_label(kind)
        if have < expected:
            missing = expected - have
            fix = f"Book {missing} more {label} {'session' if missing == 1 else 'sessions'}."
            involved = positions
        else:
            involved = positions[expected:]
            names = ", ".join(series.items[i].label for i in involved)
            fix = f"Cancel {names}." if expected else f"Cancel {names}; this protocol has none."
        violations.append(
            Violation(
                "step_count",
                f"The series has {_plural(have, label + ' session')}; "
                f"the protocol needs {expected}.",
                tuple(series.ref(i) for i in involved),
                fix,
            )
        )
    return violations


def _gap_text(rule: Rule) -> str:
    parts = []
    if rule.days is not None:
        parts.append(_plural(rule.days, "day"))
    if rule.hours is not None:
        parts.append(_plural(rule.hours, "hour"))
    return " and ".join(parts)


def _measured(rule: Rule, earlier: _Timed, later: _Timed, tz: ZoneInfo) -> str:
    parts = []
    if rule.days is not None:
        days = (later.day - earlier.day).days
        parts.append(
            f"{_cap(later.label)} on {later.day} is {_plural(days, 'day')} after "
            f"{earlier.label} on {earlier.day}"
        )
    if rule.hours is not None:
        hours = elapsed(earlier.end, later.start) / timedelta(hours=1)
        parts.append(
            f"{_cap(later.label)} starts {hours:g} hours after {earlier.label} ends"
            if rule.days is None
            else f"{hours:g} hours after it ends"
        )
    return ", ".join(parts)


def _check_min_gap(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    violations: list[Violation] = []
    for i, j in rule_pairs(rule, series.kinds):
        earlier, later = series.items[i], series.items[j]
        if pair_holds(rule, earlier.start, earlier.end, later.start, series.tz):
            continue
        low, _ = later_start_bounds(rule, earlier.start, earlier.end, series.tz)
        assert low is not None
        when = str(low.astimezone(series.tz).date()) if rule.hours is None else series.local(low)
        violations.append(
            Violation(
                "min_gap",
                f"{_measured(rule, earlier, later, series.tz)}; "
                f"the protocol needs at least {_gap_text(rule)}.",
                (earlier.fact.ref, later.fact.ref),
                f"Move {later.label} to {when} or later.",
            )
        )
    return violations


def _check_max_gap(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    violations: list[Violation] = []
    for i, j in rule_pairs(rule, series.kinds):
        earlier, later = series.items[i], series.items[j]
        if pair_holds(rule, earlier.start, earlier.end, later.start, series.tz):
            continue
        violations.append(
            Violation(
                "max_gap",
                f"{_measured(rule, earlier, later, series.tz)}; "
                f"the protocol allows at most {_gap_text(rule)}.",
                (earlier.fact.ref, later.fact.ref),
                f"Move {later.label} to {_latest_text(rule, earlier, series)} or earlier.",
            )
        )
    if require_complete:
        violations.extend(_unfollowed_max_gap(rule, series))
    return violations


def _latest_text(rule: Rule, earlier: _Timed, series: _Series) -> str:
    _, high = later_start_bounds(rule, earlier.start, earlier.end, series.tz)
    assert high is not None
    latest = high - _INSTANT
    if rule.hours is None:
        return str(latest.astimezone(series.tz).date())
    return series.local(latest)


def _unfollowed_max_gap(rule: Rule, series: _Series) -> list[Violation]:
    """An A with no B anywhere after it, while the protocol still expects more B sessions."""
    b_positions = series.of_kind(rule.before)
    if len(b_positions) >= series.step_count(rule.before):
        return []
    last_b = b_positions[-1] if b_positions else -1
    if rule.after == rule.before:
        unfollowed = b_positions[-1:]
    else:
        unfollowed = [i for i in series.of_kind(rule.after) if i > last_b]
    violations = []
    for i in unfollowed:
        earlier = series.items[i]
        latest = _latest_text(rule, earlier, series)
        b = kind_label(rule.before)
        violations.append(
            Violation(
                "max_gap",
                f"{_cap(earlier.label)} on {earlier.day} has no {b} session after it; "
                f"the protocol needs one within {_gap_text(rule)}.",
                (earlier.fact.ref,),
                f"Book {_article(b)} {b} session on or before {latest}.",
            )
        )
    return violations


def _check_each_followed_by(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    needed = _at_least(rule)
    a_positions = series.of_kind(rule.after)
    b_label = kind_label(rule.before)
    violations: list[Violation] = []
    for n, i in enumerate(a_positions):
        next_a = a_positions[n + 1] if n + 1 < len(a_positions) else len(series.items)
        followers = [j for j in range(i + 1, next_a) if series.kinds[j] == rule.before]
        if len(followers) >= needed:
            continue
        current = series.items[i]
        missing = needed - len(followers)
        involved = [i, *followers]
        sessions_word = "session" if missing == 1 else "sessions"
        if next_a < len(series.items):
            following = series.items[next_a]
            involved.append(next_a)
            where = f"before {following.label} on {following.day}"
            fix = (
                f"Book {missing} {b_label} {sessions_word} between {current.label} "
                f"({current.day}) and {following.label} ({following.day})."
            )
        else:
            where = "after it"
            fix = f"Book {missing} {b_label} {sessions_word} after {current.label} ({current.day})."
        violations.append(
            Violation(
                "each_followed_by",
                f"{_cap(current.label)} on {current.day} is followed by "
                f"{_plural(len(followers), b_label + ' session')} {where}; "
                f"the protocol needs at least {needed}.",
                tuple(series.ref(k) for k in involved),
                fix,
            )
        )
    return violations


def _check_precedes(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    b_positions = series.of_kind(rule.before)
    if not b_positions:
        return []
    first_b = series.items[b_positions[0]]
    a_positions = series.of_kind(rule.after)
    a_label = kind_label(rule.after)
    violations: list[Violation] = []
    if not a_positions and series.step_count(rule.after) > 0:
        violations.append(
            Violation(
                "precedes",
                f"{_cap(first_b.label)} on {first_b.day} has no {a_label} session before it.",
                (first_b.fact.ref,),
                f"Book {a_label} before {series.local(first_b.start)}.",
            )
        )
    for i in a_positions:
        current = series.items[i]
        if current.start < first_b.start:
            continue
        violations.append(
            Violation(
                "precedes",
                f"{_cap(current.label)} on {current.day} is not before {first_b.label} on "
                f"{first_b.day}; every {a_label} session must come before the first "
                f"{kind_label(rule.before)} session.",
                (current.fact.ref, first_b.fact.ref),
                f"Move {current.label} to before {series.local(first_b.start)}, "
                f"or move {first_b.label} later.",
            )
        )
    return violations


def _check_not_same_day(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    clash_days = sorted(
        {
            series.items[j].day
            for i, j in rule_pairs(rule, series.kinds)
            if series.items[i].day == series.items[j].day
        }
    )
    kinds = {rule.after, rule.before}
    violations: list[Violation] = []
    for day in clash_days:
        involved = [k for k, t in enumerate(series.items) if t.day == day and t.fact.kind in kinds]
        names = [series.items[k].label for k in involved]
        last = series.items[involved[-1]]
        listed = " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]
        violations.append(
            Violation(
                "not_same_day",
                f"{_cap(listed)} are on the same day ({day}); the protocol keeps "
                f"{_kinds_text(rule)} on different days.",
                tuple(series.ref(k) for k in involved),
                f"Move {last.label} to {day + timedelta(days=1)} or later.",
            )
        )
    return violations


def _kinds_text(rule: Rule) -> str:
    if rule.after == rule.before:
        return f"{kind_label(rule.after)} sessions"
    return f"{kind_label(rule.after)} and {kind_label(rule.before)} sessions"


def _check_max_per_window(rule: Rule, series: _Series, require_complete: bool) -> list[Violation]:
    window = _window_days(rule)
    a_positions = series.of_kind(rule.after)
    violations: list[Violation] = []
    for i, j in rule_pairs(rule, series.kinds):
        first, current = series.items[i], series.items[j]
        if pair_holds(rule, first.start, first.end, current.start, series.tz):
            continue
        involved = [k for k in a_positions if i <= k <= j]
        allowed = rule.count if rule.count is not None else 1
        violations.append(
            Violation(
                "max_per_window",
                f"{_cap(current.label)} on {current.day} is the {_ordinal(len(involved))} "
                f"{kind_label(rule.after)} session within {_plural(window, 'day')} "
                f"(since {first.label} on {first.day}); the protocol allows at most {allowed}.",
                tuple(series.ref(k) for k in involved),
                f"Move {current.label} to {first.day + timedelta(days=window)} or later.",
            )
        )
    return violations


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_RuleCheck = Callable[[Rule, _Series, bool], list[Violation]]
_RULE_CHECKS: dict[str, _RuleCheck] = {
    "min_gap": _check_min_gap,
    "max_gap": _check_max_gap,
    "each_followed_by": _check_each_followed_by,
    "precedes": _check_precedes,
    "not_same_day": _check_not_same_day,
    "max_per_window": _check_max_per_window,
}


def _gate_violations(series: _Series, gates: PatientGates) -> list[Violation]:
    violations: list[Violation] = []
    for i in series.of_kind(MEDICINE):
        session = series.items[i]
        for gate in gate_failures(session.day, gates):
            if gate == "screening_gate":
                violations.append(_screening_violation(session, gates))
            else:
                violations.append(_consent_violation(session, gates))
    return violations


def _screening_violation(session: _Timed, gates: PatientGates) -> Violation:
    day = session.day
    cleared = [s for s in gates.screenings if s.is_cleared]
    label = session.label
    if not cleared:
        message = f"{_cap(label)} on {day} has no cleared screening."
        fix = f"Have a prescriber clear the patient's screening before {day}."
    elif all(s.cleared_on is not None and s.cleared_on > day for s in cleared):
        first = min(s.cleared_on for s in cleared if s.cleared_on is not None)
        message = f"{_cap(label)} on {day} is before the screening clearance on {first}."
        fix = f"Move {label} to {first} or later."
    else:
        last_valid = max(s.valid_until for s in cleared)
        message = (
            f"{_cap(label)} on {day} is after the screening clearance lapses "
            f"(valid through {last_valid})."
        )
        fix = f"Renew the screening before {day}, or move {label} to {last_valid} or earlier."
    return Violation("screening_gate", message, (session.fact.ref,), fix)


def _consent_violation(session: _Timed, gates: PatientGates) -> Violation:
    label = session.label
    if gates.consent_signed_on is None:
        return Violation(
            "consent_gate",
            f"{_cap(label)} on {session.day} has no signed consent.",
            (session.fact.ref,),
            f"Have the patient sign the consent before {session.day}.",
        )
    return Violation(
        "consent_gate",
        f"{_cap(label)} on {session.day} is before the consent signed on "
        f"{gates.consent_signed_on}.",
        (session.fact.ref,),
        f"Move {label} to {gates.consent_signed_on} or later.",
    )


# --------------------------------------------------------------------------------------------
# Protocol documents
# --------------------------------------------------------------------------------------------

_RULE_FIELDS = {
    "min_gap": ("before", "days", "hours"),
    "max_gap": ("before", "days", "hours"),
    "each_followed_by": ("before", "at_least"),
    "precedes": ("before",),
    "not_same_day": ("before",),
    "max_per_window": ("count", "window_days"),
}
_RULE_NUMBERS = ("days", "hours", "at_least", "count", "window_days")
_TOP_LEVEL_METADATA = ("id", "version", "description", "sources")


class _Reader:
    """Collects shape errors per field path while reading a protocol document."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = defaultdict(list)

    def fail(self, path: str, message: str) -> None:
        self.errors[path].append(message)

    def mapping(self, value: object, path: str, allowed: Iterable[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, "must be an object")
            return {}
        allowed = set(allowed)
        for key in value:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), "is not a known field")
        return value

    def text(self, data: Mapping[str, Any], key: str, path: str, *, required: bool) -> str:
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.fail(where, "is required")
            return ""
        value = data[key]
        if not isinstance(value, str):
            self.fail(where, "must be a string")
            return ""
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, *, required: bool) -> int | None:
        where = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            if required:
                self.fail(where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, "must be a whole number")
            return None
        return value

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}" if path else key, "must be true or false")
            return False
        return value

    def items(self, data: Mapping[str, Any], key: str, path: str, *, required: bool) -> list[Any]:
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.fail(where, "is required")
            return []
        value = data[key]
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            self.fail(where, "must be a list")
            return []
        return list(value)


def protocol_from_dict(data: Mapping[str, Any]) -> ProtocolSpec:
    """Read the protocol JSON of API.md.

    Raises ``ProtocolFormatError`` (a ``ValueError``) listing every field with the wrong shape
    (missing, wrong type, unknown key) by its path, e.g. ``steps[1].count``. Whether the values
    make a sound protocol is ``validate_protocol``'s job.
    """
    reader = _Reader()
    top = reader.mapping(data, "", ("name", "care_model", "steps", "rules", *_TOP_LEVEL_METADATA))
    name = reader.text(top, "name", "", required=True)
    care_model = reader.text(top, "care_model", "", required=True)
    steps: list[Step] = []
    for n, raw in enumerate(reader.items(top, "steps", "", required=True)):
        path = f"steps[{n}]"
        item = reader.mapping(
            raw,
            path,
            ("kind", "count", "duration_minutes", "room_kind", "roles", "route", "repeatable"),
        )
        roles: list[StepRole] = []
        for r, raw_role in enumerate(reader.items(item, "roles", path, required=False)):
            role_path = f"{path}.roles[{r}]"
            role_item = reader.mapping(raw_role, role_path, ("role", "minutes"))
            roles.append(
                StepRole(
                    reader.text(role_item, "role", role_path, required=True),
                    reader.number(role_item, "minutes", role_path, required=False),
                )
            )
        steps.append(
            Step(
                kind=reader.text(item, "kind", path, required=True),
                count=reader.number(item, "count", path, required=True) or 0,
                duration_minutes=reader.number(item, "duration_minutes", path, required=True) or 0,
                room_kind=reader.text(item, "room_kind", path, required=True),
                roles=tuple(roles),
                route=reader.text(item, "route", path, required=False),
                repeatable=reader.flag(item, "repeatable", path),
            )
        )
    rules: list[Rule] = []
    for n, raw in enumerate(reader.items(top, "rules", "", required=False)):
        path = f"rules[{n}]"
        item = reader.mapping(raw, path, ("type", "after", "before", *_RULE_NUMBERS))
        numbers = {key: reader.number(item, key, path, required=False) for key in _RULE_NUMBERS}
        rules.append(
            Rule(
                type=reader.text(item, "type", path, required=True),
                after=reader.text(item, "after", path, required=True),
                before=reader.text(item, "before", path, required=False),
                **numbers,
            )
        )
    if reader.errors:
        raise ProtocolFormatError(reader.errors)
    return ProtocolSpec(name, care_model, tuple(steps), tuple(rules))


def protocol_to_dict(protocol: ProtocolSpec) -> dict[str, Any]:
    """The API.md JSON for ``protocol`` (inverse of ``protocol_from_dict``)."""
    steps = []
    for step in protocol.steps:
        item: dict[str, Any] = {
            "kind": step.kind,
            "count": step.count,
            "duration_minutes": step.duration_minutes,
            "room_kind": step.room_kind,
            "roles": [
                {"role": r.role} if r.minutes is None else {"role": r.role, "minutes": r.minutes}
                for r in step.roles
            ],
        }
        if step.route:
            item["route"] = step.route
        if step.repeatable:
            item["repeatable"] = True
        steps.append(item)
    rules = []
    for rule in protocol.rules:
        rule_item: dict[str, Any] = {"type": rule.type, "after": rule.after}
        if rule.before:
            rule_item["before"] = rule.before
        for key in _RULE_NUMBERS:
            if getattr(rule, key) is not None:
                rule_item[key] = getattr(rule, key)
        rules.append(rule_item)
    return {
        "name": protocol.name,
        "care_model": protocol.care_model,
        "steps": steps,
        "rules": rules,
    }


def validate_protocol(protocol: ProtocolSpec) -> list[str]:
    """Structural problems of a protocol, one message each (empty: the protocol is sound)."""
    problems: list[str] = []
    if not protocol.name.strip():
        problems.append("name: must not be blank")
    if protocol.care_model not in CARE_MODELS:
        problems.append(
            f"care_model: {protocol.care_model!r} is not one of {', '.join(CARE_MODELS)}"
        )
    if not protocol.steps:
        problems.append("steps: a protocol needs at least one step")
    seen: set[str] = set()
    for n, step in enumerate(protocol.steps):
        problems.extend(f"steps[{n}].{p}" for p in _step_problems(step))
        if step.kind in seen:
            problems.append(
                f"steps[{n}].kind: {step.kind} appears in more than one step; merge them"
            )
        seen.add(step.kind)
    counts = {step.kind: step.count for step in protocol.steps}
    for n, rule in enumerate(protocol.rules):
        problems.extend(f"rules[{n}].{p}" for p in _rule_problems(rule, counts))
    problems.extend(_conflicts(protocol, counts))
    return problems


def _step_problems(step: Step) -> list[str]:
    problems: list[str] = []
    if step.kind not in SESSION_KINDS:
        problems.append(f"kind: {step.kind!r} is not one of {', '.join(SESSION_KINDS)}")
    if step.count < 1:
        problems.append("count: must be at least 1")
    if step.duration_minutes < 1:
        problems.append("duration_minutes: must be at least 1")
    if step.room_kind not in ROOM_KINDS:
        problems.append(f"room_kind: {step.room_kind!r} is not one of {', '.join(ROOM_KINDS)}")
    if step.kind == MEDICINE and not step.route:
        problems.append("route: a medicine step needs a route")
    if step.route and step.route not in ROUTES:
        problems.append(f"route: {step.route!r} is not one of {', '.join(ROUTES)}")
    for r, role in enumerate(step.roles):
        if role.role not in STAFF_ROLES:
            known = ", ".join(STAFF_ROLES)
            problems.append(f"roles[{r}].role: {role.role!r} is not one of {known}")
        if role.minutes is not None and not 1 <= role.minutes <= step.duration_minutes:
            problems.append(
                f"roles[{r}].minutes: must be between 1 and the step's "
                f"{step.duration_minutes} minutes"
            )
    return problems


def _rule_problems(rule: Rule, counts: Mapping[str, int]) -> list[str]:
    if rule.type not in RULE_TYPES:
        return [f"type: {rule.type!r} is not one of {', '.join(RULE_TYPES)}"]
    problems: list[str] = []
    used = _RULE_FIELDS[rule.type]
    kinds = [("after", rule.after)] + ([("before", rule.before)] if "before" in used else [])
    for key, kind in kinds:
        if not kind:
            problems.append(f"{key}: {rule.type} needs a session kind")
        elif kind not in SESSION_KINDS:
            problems.append(f"{key}: {kind!r} is not one of {', '.join(SESSION_KINDS)}")
    for key in ("before", *_RULE_NUMBERS):
        if key not in used and getattr(rule, key) not in (None, ""):
            problems.append(f"{key}: is not used by {rule.type}")
    if rule.type in ("min_gap", "max_gap"):
        if rule.days is None and rule.hours is None:
            problems.append(f"days: {rule.type} needs days or hours")
        if rule.days is not None and rule.hours is not None:
            problems.append(f"hours: give {rule.type} either days or hours, not both")
        least = 1 if rule.type == "min_gap" else 0
        for key in ("days", "hours"):
            value = getattr(rule, key)
            if value is not None and value < least:
                problems.append(f"{key}: must be at least {least}")
    if rule.type == "each_followed_by":
        if rule.at_least is not None and rule.at_least < 1:
            problems.append("at_least: must be at least 1")
        if rule.after == rule.before:
            problems.append("before: a kind cannot be followed by itself")
        elif rule.after in counts and rule.before in counts:
            needed = counts[rule.after] * _at_least(rule)
            if counts[rule.before] < needed:
                problems.append(
                    f"at_least: {counts[rule.after]} {rule.after} sessions need {needed} "
                    f"{rule.before} sessions but the step has {counts[rule.before]}"
                )
    if rule.type == "precedes" and rule.after == rule.before:
        problems.append("before: a kind cannot precede itself")
    if rule.type == "max_per_window":
        if rule.count is None or rule.count < 1:
            problems.append("count: must be at least 1")
        if rule.window_days is None or rule.window_days < 1:
            problems.append("window_days: must be at least 1")
    return problems


def _conflicts(protocol: ProtocolSpec, counts: Mapping[str, int]) -> list[str]:
    """Rule combinations no series can satisfy."""
    problems: list[str] = []
    for n, low in enumerate(protocol.rules):
        for m, high in enumerate(protocol.rules):
            if low.type != "min_gap" or high.type != "max_gap":
                continue
            if (low.after, low.before) != (high.after, high.before):
                continue
            if low.days is not None and high.days is not None and low.days > high.days:
                problems.append(
                    f"rules[{n}]: min_gap of {low.days} days is longer than the max_gap of "
                    f"{high.days} days in rules[{m}]"
                )
            if low.hours is not None and high.hours is not None and low.hours > high.hours:
                problems.append(
                    f"rules[{n}]: min_gap of {low.hours} hours is longer than the max_gap of "
                    f"{high.hours} hours in rules[{m}]"
                )
    comes_before = _precedes_closure(protocol.rules)
    for n, rule in enumerate(protocol.rules):
        a, b = rule.after, rule.before
        if rule.type != "each_followed_by" or a == b:
            continue
        if a in comes_before.get(b, ()):
            problems.append(
                f"rules[{n}]: each {a} session cannot be followed by {_article(b)} {b} session "
                f"when every {b} session must come before the first {a} session"
            )
        elif b in comes_before.get(a, ()) and counts.get(a, 0) > 1:
            problems.append(
                f"rules[{n}]: each {a} session cannot be followed by {_article(b)} {b} session "
                f"before the next {a} when every {a} session must come before the first {b} "
                "session"
            )
    order = [(r.after, r.before) for r in protocol.rules if r.type == "precedes"]
    if _has_cycle(order):
        problems.append("rules: the precedes rules form a cycle")
    followed = [(r.after, r.before) for r in protocol.rules if r.type == "each_followed_by"]
    if _has_cycle(followed):
        problems.append(
            "rules: the each_followed_by rules form a cycle, so the last of those sessions "
            "can never be followed"
        )
    return problems


def _precedes_closure(rules: Iterable[Rule]) -> dict[str, set[str]]:
    """For each kind, the kinds whose first session every session of it must precede."""
    direct: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        if rule.type == "precedes" and rule.after != rule.before:
            direct[rule.after].add(rule.before)
    closure: dict[str, set[str]] = {}
    for kind in list(direct):
        reached: set[str] = set()
        frontier = list(direct[kind])
        while frontier:
            nxt = frontier.pop()
            if nxt not in reached:
                reached.add(nxt)
                frontier.extend(direct.get(nxt, ()))
        closure[kind] = reached
    return closure


def _has_cycle(edges: Sequence[tuple[str, str]]) -> bool:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if a != b:
            graph[a].add(b)
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1 or (nxt not in state and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in list(graph))


def step_for(protocol: ProtocolSpec, kind: str) -> Step | None:
    """The protocol's step for a session kind, if it has one."""
    return next((step for step in protocol.steps if step.kind == kind), None)
