"""Planning and booking a whole series through the API: ``POST /series/plan/`` answers exactly
what ``services.series_plan`` plans and writes nothing but its audit row; ``POST /series/`` books
that plan, all or nothing, idempotently."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from clinic.models import AuditEvent
from protocols.models import ProtocolVersion
from protocols.rules import SessionFact, evaluate
from protocols.selectors import protocol_spec
from protocols.services import protocols_load_standard
from scheduling import services
from scheduling.models import Session, SessionStaff, TreatmentSeries
from scheduling.planner import Plan, Preferences
from scheduling.supply import patient_gates
from tests.api.conftest import client_for
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

#: A working day for the plan: no session before 08:00 or starting after 16:00.
DAYTIME = {"earliest_time": "08:00", "latest_start": "16:00"}


@pytest.fixture
def protocols(db: Any) -> dict[str, ProtocolVersion]:
    protocols_load_standard()
    return {
        "kap": ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy"),
        "infusion": ProtocolVersion.objects.get(protocol__name="IV ketamine infusion induction"),
    }


def _body(world, version: ProtocolVersion, **extra: Any) -> dict[str, Any]:
    return {
        "patient": world.patient_a.pk,
        "protocol": version.pk,
        "earliest_start": "2026-03-02",
        "preferences": {**DAYTIME, "therapist": world.therapist.pk},
        **extra,
    }


def _as_answered(plan: Plan, zone: Any) -> dict[str, Any]:
    """The service's plan in the API's shape, local times with their offsets."""

    def local(moment: dt.datetime) -> str:
        return moment.astimezone(zone).isoformat()

    return {
        "sessions": [
            {
                "index": item.index,
                "kind": item.kind,
                "route": item.route,
                "starts_at": local(item.starts_at),
                "ends_at": local(item.ends_at),
                "room": item.room_id,
                "staff": [hold.staff_id for hold in item.staff],
                "staff_holds": [
                    {
                        "staff": hold.staff_id,
                        "role": hold.role,
                        "starts_at": local(hold.start),
                        "ends_at": local(hold.end),
                    }
                    for hold in item.staff
                ],
            }
            for item in plan.sessions
        ],
        "violations": [violation.as_dict() for violation in plan.violations],
    }


def _rows(sessions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(item[key] for key in ("kind", "route", "starts_at", "ends_at", "room", "staff"))
        for item in sessions
    ]


def _broken_rules(world, version: ProtocolVersion, sessions: list[dict[str, Any]]) -> list[Any]:
    facts = [
        SessionFact(
            index,
            item["kind"],
            dt.datetime.fromisoformat(item["starts_at"]),
            dt.datetime.fromisoformat(item["ends_at"]),
        )
        for index, item in enumerate(sessions)
    ]
    return evaluate(
        facts,
        protocol_spec(version),
        world.clinic.tz,
        gates=patient_gates(world.patient_a),
        require_complete=True,
    )


def _nothing_booked() -> tuple[int, int, int]:
    return TreatmentSeries.objects.count(), Session.objects.count(), SessionStaff.objects.count()


def _kap_rows(world) -> list[tuple[Any, ...]]:
    dosing, therapy = world.dosing_room.pk, world.therapy_room.pk
    therapist, nurse, prescriber = world.therapist.pk, world.nurse.pk, world.prescriber.pk
    medicine = [therapist, nurse]

    def row(kind: str, day: str, start: str, end: str, room: int, staff: list[int]) -> tuple:
        offset = "-08:00" if day < "03-08" else "-07:00"
        return (
            kind,
            "im" if kind == "medicine" else "",
            f"2026-{day}T{start}:00{offset}",
            f"2026-{day}T{end}:00{offset}",
            room,
            staff,
        )

    return [
        row("screening", "03-02", "09:00", "10:00", therapy, [prescriber]),
        row("preparation", "03-02", "10:15", "11:15", therapy, [therapist]),
        row("preparation", "03-02", "11:30", "12:30", therapy, [therapist]),
        row("medicine", "03-03", "08:00", "10:00", dosing, medicine),
        row("integration", "03-04", "08:00", "09:00", therapy, [therapist]),
        row("medicine", "03-05", "08:00", "10:00", dosing, medicine),
        row("integration", "03-06", "08:00", "09:00", therapy, [therapist]),
        row("medicine", "03-07", "08:00", "10:00", dosing, medicine),
        # Sunday 8 March, the spring DST change: 08:00 is already daylight time (-07:00).
        row("integration", "03-08", "08:00", "09:00", therapy, [therapist]),
        # At most three medicine sessions in seven days: not on Monday the 9th.
        row("medicine", "03-10", "08:00", "10:00", dosing, medicine),
        row("integration", "03-11", "08:00", "09:00", therapy, [therapist]),
        row("medicine", "03-12", "08:00", "10:00", dosing, medicine),
        row("integration", "03-13", "08:00", "09:00", therapy, [therapist]),
        row("medicine", "03-14", "08:00", "10:00", dosing, medicine),
        row("integration", "03-15", "08:00", "09:00", therapy, [therapist]),
    ]


# --------------------------------------------------------------------------------------- plan


def test_plan_a_kap_series(world, as_user, frozen, protocols) -> None:
    kap = protocols["kap"]

    response = as_user(world.front_desk).post(
        "/api/v1/series/plan/", _body(world, kap), format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert _rows(body["sessions"]) == _kap_rows(world)
    assert [item["index"] for item in body["sessions"]] == list(range(15))
    assert body["sessions"][3]["staff_holds"] == [
        {
            "staff": world.therapist.pk,
            "role": "therapist",
            "starts_at": "2026-03-03T08:00:00-08:00",
            "ends_at": "2026-03-03T09:30:00-08:00",
        },
        {
            "staff": world.nurse.pk,
            "role": "nurse",
            "starts_at": "2026-03-03T08:00:00-08:00",
            "ends_at": "2026-03-03T08:30:00-08:00",
        },
    ]
    assert body["violations"] == []
    assert _broken_rules(world, kap, body["sessions"]) == []
    planned = services.series_plan(
        patient=world.patient_a,
        protocol_version=kap,
        earliest_start=dt.date(2026, 3, 2),
        preferences=Preferences(
            earliest_time=dt.time(8), latest_start=dt.time(16), therapist_id=world.therapist.pk
        ),
    )
    assert body == _as_answered(planned, world.clinic.tz)
    assert _nothing_booked() == (0, 0, 0)
    assert list(
        AuditEvent.objects.values_list("actor_username", "action", "object_type", "object_ids")
    ) == [("front_desk", "plan", "patient", [world.patient_a.pk])]
    assert list(AuditEvent.objects.values_list("patient_ids", flat=True)) == [[world.patient_a.pk]]


def test_plan_the_infusion_induction_on_weekdays(world, as_user, frozen, protocols) -> None:
    infusion = protocols["infusion"]
    body = _body(world, infusion)
    body["preferences"] = {**DAYTIME, "weekdays": [0, 1, 2, 3, 4]}

    response = as_user(world.admin).post("/api/v1/series/plan/", body, format="json")

    assert response.status_code == 200, response.json()
    chair, nurse = world.chair.pk, [world.nurse.pk]
    assert _rows(response.json()["sessions"]) == [
        ("screening", "", "2026-03-02T09:00:00-08:00", "2026-03-02T10:00:00-08:00",
         world.therapy_room.pk, [world.prescriber.pk]),
        ("medicine", "iv", "2026-03-02T10:00:00-08:00", "2026-03-02T11:40:00-08:00", chair, nurse),
        ("medicine", "iv", "2026-03-03T08:00:00-08:00", "2026-03-03T09:40:00-08:00", chair, nurse),
        ("medicine", "iv", "2026-03-04T08:00:00-08:00", "2026-03-04T09:40:00-08:00", chair, nurse),
        ("medicine", "iv", "2026-03-05T08:00:00-08:00", "2026-03-05T09:40:00-08:00", chair, nurse),
        ("medicine", "iv", "2026-03-06T08:00:00-08:00", "2026-03-06T09:40:00-08:00", chair, nurse),
        # Weekdays only: the sixth infusion waits for Monday, after the DST change.
        ("medicine", "iv", "2026-03-09T08:00:00-07:00", "2026-03-09T09:40:00-07:00", chair, nurse),
    ]  # fmt: skip
    assert _broken_rules(world, infusion, response.json()["sessions"]) == []
    planned = services.series_plan(
        patient=world.patient_a,
        protocol_version=infusion,
        earliest_start=dt.date(2026, 3, 2),
        preferences=Preferences(
            weekdays=frozenset(range(5)), earliest_time=dt.time(8), latest_start=dt.time(16)
        ),
    )
    assert response.json() == _as_answered(planned, world.clinic.tz)
    assert _nothing_booked() == (0, 0, 0)


def test_plan_without_preferences_by_a_superuser(world, as_user, frozen, protocols) -> None:
    body = _body(world, protocols["infusion"])
    del body["preferences"]

    response = as_user(world.superuser).post("/api/v1/series/plan/", body, format="json")

    assert response.status_code == 200, response.json()
    planned = services.series_plan(
        patient=world.patient_a,
        protocol_version=protocols["infusion"],
        earliest_start=dt.date(2026, 3, 2),
    )
    assert response.json() == _as_answered(planned, world.clinic.tz)
    assert len(response.json()["sessions"]) == 7


def test_plan_for_an_uncleared_patient_answers_what_blocks_it(
    world, as_user, frozen, protocols
) -> None:
    patient = PatientFactory(clinic=world.clinic, full_name="Drew Park")
    body = {**_body(world, protocols["kap"]), "patient": patient.pk}

    response = as_user(world.front_desk).post("/api/v1/series/plan/", body, format="json")

    assert response.status_code == 200
    assert response.json()["sessions"] == []
    assert [v["rule"] for v in response.json()["violations"]] == ["screening_gate", "consent_gate"]
    assert _nothing_booked() == (0, 0, 0)


def test_plan_needing_a_room_the_clinic_lacks(world, as_user, frozen, protocols) -> None:
    world.chair.is_active = False
    world.chair.save()

    response = as_user(world.front_desk).post(
        "/api/v1/series/plan/", _body(world, protocols["infusion"]), format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "sessions": [],
        "violations": [
            {
                "rule": "room_unavailable",
                "message": "The clinic has no infusion chair; medicine sessions need one.",
                "sessions": [],
                "suggested_fix": "Add a infusion chair or change the room kind of the "
                "protocol's medicine step.",
            }
        ],
    }


# --------------------------------------------------------------------------------------- book


def test_book_a_kap_series_then_read_it(world, as_user, frozen, protocols) -> None:
    desk = as_user(world.front_desk)

    booked = desk.post("/api/v1/series/", _body(world, protocols["kap"]), format="json")

    assert booked.status_code == 201, booked.json()
    series = TreatmentSeries.objects.get()
    body = booked.json()
    assert (body["id"], body["status"], body["patient"], body["protocol"]) == (
        series.pk,
        "active",
        world.patient_a.pk,
        protocols["kap"].pk,
    )
    assert body["preferred_therapist"] == world.therapist.pk
    assert [
        (s["kind"], s["route"], s["starts_at"], s["ends_at"], s["room"], s["staff"])
        for s in body["sessions"]
    ] == _kap_rows(world)
    assert {s["status"] for s in body["sessions"]} == {"booked"}
    assert Session.objects.filter(series=series).count() == 15
    read = desk.get(f"/api/v1/series/{series.pk}/")
    assert read.status_code == 200
    assert read.json() == body
    session_ids = sorted(s["id"] for s in body["sessions"])
    assert list(
        AuditEvent.objects.order_by("pk").values_list("action", "object_type", "object_ids")
    ) == [
        ("create", "series", [series.pk]),
        ("create", "session", session_ids),
        ("read", "series", [series.pk]),
    ]


def test_booking_what_cannot_be_planned_is_422_and_writes_nothing(
    world, as_user, frozen, protocols
) -> None:
    patient = PatientFactory(clinic=world.clinic, full_name="Drew Park")
    body = {**_body(world, protocols["kap"]), "patient": patient.pk}

    response = as_user(world.front_desk).post("/api/v1/series/", body, format="json")

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [v["rule"] for v in response.json()["violations"]] == ["screening_gate", "consent_gate"]
    assert _nothing_booked() == (0, 0, 0)
    assert AuditEvent.objects.count() == 0


def test_booking_without_the_room_kind_is_422(world, as_user, frozen, protocols) -> None:
    world.chair.is_active = False
    world.chair.save()

    response = as_user(world.front_desk).post(
        "/api/v1/series/", _body(world, protocols["infusion"]), format="json"
    )

    assert response.status_code == 422
    assert [v["rule"] for v in response.json()["violations"]] == ["room_unavailable"]
    assert _nothing_booked() == (0, 0, 0)


def test_idempotent_replay_books_once(world, as_user, frozen, protocols) -> None:
    desk = as_user(world.front_desk)
    body = _body(world, protocols["infusion"])

    first = desk.post("/api/v1/series/", body, format="json", HTTP_IDEMPOTENCY_KEY="series-1")
    again = desk.post("/api/v1/series/", body, format="json", HTTP_IDEMPOTENCY_KEY="series-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert (TreatmentSeries.objects.count(), Session.objects.count()) == (1, 7)

    other = desk.post(
        "/api/v1/series/",
        {**body, "earliest_start": "2026-03-03"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="series-1",
    )

    assert other.status_code == 422
    assert other.json()["title"] == "Idempotency key reused"
    assert (TreatmentSeries.objects.count(), Session.objects.count()) == (1, 7)


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
@pytest.mark.parametrize("who", ["nurse", "prescriber", "therapist", "patient_a"])
def test_only_front_desk_and_clinic_admins_plan_and_book(
    world, as_user, frozen, protocols, path, who
) -> None:
    body = _body(world, protocols["kap"])

    response = as_user(getattr(world, who)).post(path, body, format="json")

    assert response.status_code == 403
    assert _nothing_booked() == (0, 0, 0)
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
def test_no_token_is_401(world, protocols, path) -> None:
    response = client_for(None).post(path, _body(world, protocols["kap"]), format="json")

    assert response.status_code == 401
    assert _nothing_booked() == (0, 0, 0)


def _bad(world, protocols, **changes: Any) -> dict[str, Any]:
    body = _body(world, protocols["kap"])
    preferences = changes.pop("preferences", None)
    if preferences is not None:
        body["preferences"] = {**body["preferences"], **preferences}
    return {**body, **changes}


BAD_INPUT = {
    "weekday out of range": (
        {"preferences": {"weekdays": [0, 7]}},
        {"preferences.weekdays.1": ["Ensure this value is less than or equal to 6."]},
    ),
    "weekday twice": (
        {"preferences": {"weekdays": [1, 1]}},
        {"preferences.weekdays": ["Each weekday once."]},
    ),
    "bad time": (
        {"preferences": {"earliest_time": "25:00"}},
        {"preferences.earliest_time": [
            "Time has wrong format. Use one of these formats instead: hh:mm, hh:mm:ss."
        ]},
    ),
    "earliest time after latest start": (
        {"preferences": {"earliest_time": "15:00", "latest_start": "09:00"}},
        {"preferences.latest_start": ["Must be at or after earliest_time."]},
    ),
    "unknown preference": (
        {"preferences": {"room": 3}},
        {"preferences.room": ["Unknown field."]},
    ),
    "earliest start in the past": (
        {"earliest_start": "2026-03-01"},
        {"earliest_start": ["On or after 2026-03-02."]},
    ),
    "earliest start not a date": (
        {"earliest_start": "next monday"},
        {"earliest_start": [
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
        ]},
    ),
    "unknown protocol": (
        {"protocol": 999999},
        {"protocol": ['Invalid pk "999999" - object does not exist.']},
    ),
    "unknown field": ({"therapist": 1}, {"therapist": ["Unknown field."]}),
}  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_400(world, as_user, frozen, protocols, path, case) -> None:
    changes, errors = BAD_INPUT[case]

    body = _bad(world, protocols, **changes)

    response = as_user(world.front_desk).post(path, body, format="json")

    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == errors
    assert _nothing_booked() == (0, 0, 0)


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
@pytest.mark.parametrize("who", ["nurse", "other_therapist", "admin"])
def test_preferred_therapist_must_be_a_therapist_of_the_clinic(
    world, as_user, frozen, protocols, path, who
) -> None:
    staff_id = getattr(world, who).pk
    body = _bad(world, protocols, preferences={"therapist": staff_id})

    response = as_user(world.superuser).post(path, body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "preferences.therapist": [f"No therapist with id {staff_id} in the patient's clinic."]
    }
    assert _nothing_booked() == (0, 0, 0)


def test_a_patient_the_caller_cannot_see_is_an_unknown_id(
    world, as_user, frozen, protocols
) -> None:
    body = {**_body(world, protocols["kap"]), "patient": world.other_patient.pk}

    response = as_user(world.front_desk).post("/api/v1/series/plan/", body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "patient": [f'Invalid pk "{world.other_patient.pk}" - object does not exist.']
    }


# ------------------------------------------------------------------------- every retry lost


def _rival_slots(world, kap: ProtocolVersion) -> list[tuple[dt.datetime, dt.datetime]]:
    """Where three rival bookings must land so that each of ``series_book``'s attempts loses its
    first write: attempt k plans around the rivals committed before it, so rival k takes the
    first session of that plan. Worked out by planning around each rival in turn, then rolled
    back."""
    slots: list[tuple[dt.datetime, dt.datetime]] = []
    with transaction.atomic():
        for _ in range(services.BOOK_ATTEMPTS):
            plan = services.series_plan(
                patient=world.patient_a, protocol_version=kap, earliest_start=dt.date(2026, 3, 2)
            )
            first = min(plan.sessions, key=lambda item: item.starts_at)
            slots.append((first.starts_at, first.ends_at))
            _rival_row(world, *slots[-1])
        transaction.set_rollback(True)
    return slots


def _rival_row(world, starts_at: dt.datetime, ends_at: dt.datetime) -> Session:
    """Another front desk's booking of the same patient, in the chair KAP never uses."""
    return Session.objects.create(
        patient=world.patient_a,
        clinic=world.clinic,
        kind="follow_up",
        room=world.chair,
        starts_at=starts_at,
        ends_at=ends_at,
        room_released_at=ends_at,
    )


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _wait_until_blocked_by(waiter: int, holder: int) -> None:
    with connection.cursor() as cursor:
        for _ in range(600):
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [holder, waiter])
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {waiter} never waited for backend {holder}")


@pytest.mark.django_db(transaction=True)
def test_409_when_every_attempt_loses_the_race(world, as_user, frozen, protocols) -> None:
    """Three rival bookings, each uncommitted while ``series_book`` plans, each committed once
    the booking's insert waits on it (the exclusion constraint makes it wait): every attempt
    plans into a slot the next rival takes. The answer names the patient's rival session."""
    kap = protocols["kap"]
    slots = _rival_slots(world, kap)
    rivals: list[dict[str, Any]] = [
        {"ready": threading.Event(), "commit": threading.Event()} for _ in slots
    ]
    failures: list[BaseException] = []

    def rival(state: dict[str, Any], slot: tuple[dt.datetime, dt.datetime]) -> None:
        try:
            with transaction.atomic():
                state["session"] = _rival_row(world, *slot)
                state["pid"] = _backend_pid()
                state["ready"].set()
                assert state["commit"].wait(30)
        except BaseException as error:
            failures.append(error)
            state["ready"].set()
        finally:
            connections.close_all()

    def referee(booker: int) -> None:
        """Commit the rivals one by one, each once the booking waits on it."""
        try:
            for state in rivals:
                _wait_until_blocked_by(booker, state["pid"])
                state["commit"].set()
        except BaseException as error:
            failures.append(error)
            for state in rivals:
                state["commit"].set()
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=rival, args=(state, slot))
        for state, slot in zip(rivals, slots, strict=True)
    ]
    for thread in threads:
        thread.start()
    for state in rivals:
        assert state["ready"].wait(30)
    watcher = threading.Thread(target=referee, args=(_backend_pid(),))
    watcher.start()

    body = _body(world, kap)
    del body["preferences"]  # as the rival slots were worked out

    response = as_user(world.front_desk).post("/api/v1/series/", body, format="json")

    for thread in [*threads, watcher]:
        thread.join(30)
    assert failures == []
    assert response.status_code == 409, response.json()
    last = rivals[-1]["session"]
    assert response.json()["violations"] == [
        {
            "rule": "patient_taken",
            "message": f"Alex Rivera already has a follow_up session from "
            f"{slots[-1][0].astimezone(world.clinic.tz):%Y-%m-%d %H:%M} to "
            f"{slots[-1][1].astimezone(world.clinic.tz):%Y-%m-%d %H:%M} (session {last.pk}).",
            "sessions": [last.pk],
            "suggested_fix": "Choose another time, or another slot.",
        }
    ]
    assert TreatmentSeries.objects.count() == 0
    assert sorted(Session.objects.values_list("pk", flat=True)) == sorted(
        state["session"].pk for state in rivals
    )
    assert SessionStaff.objects.count() == 0


def test_planning_queries_do_not_grow_with_the_series(world, as_user, frozen, protocols) -> None:
    """One session or fifteen: the same reads (the supply and the protocol are fetched whole,
    and the plan is serialized from memory)."""
    protocols["booster"] = ProtocolVersion.objects.get(
        protocol__name="Maintenance booster infusion"
    )
    desk = as_user(world.front_desk)
    counts = {}
    for name in ("booster", "infusion", "kap"):
        body = _body(world, protocols[name])
        with CaptureQueriesContext(connection) as queries:
            response = desk.post("/api/v1/series/plan/", body, format="json")
        counts[name] = (len(response.json()["sessions"]), len(queries.captured_queries))

    assert [sessions for sessions, _ in counts.values()] == [1, 7, 15]
    assert len({queries for _, queries in counts.values()}) == 1, counts
