"""Moving a session through the API: ``POST /sessions/{id}/reschedule/``. A move that keeps every
rule moves that session only; one that breaks a rule of the series is refused (422) unless
``cascade``, which moves the later sessions as little as the rules need. The answer shows the
series as re-validated by the rules engine."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import AuditEvent, OpeningHours
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from scheduling import services
from scheduling.models import Session, TreatmentSeries
from scheduling.planner import Preferences
from tests.factories import aware

pytestmark = pytest.mark.django_db


@pytest.fixture
def series(world, frozen) -> TreatmentSeries:
    """Patient A's KAP series, booked in a clinic open 08:00 to 18:00 every day: medicine on
    3, 5, 7, 10, 12 and 14 March at 08:00, each integration the next day at 08:00."""
    OpeningHours.objects.filter(clinic=world.clinic).delete()
    for weekday in range(7):
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=weekday, start=dt.time(8), end=dt.time(18)
        )
    protocols_load_standard()
    return services.series_book(
        patient=world.patient_a,
        protocol_version=ProtocolVersion.objects.get(
            protocol__name="Ketamine-assisted psychotherapy"
        ),
        earliest_start=dt.date(2026, 3, 2),
        preferences=Preferences(therapist_id=world.therapist.pk),
    )


def _session(series: TreatmentSeries, kind: str, number: int) -> Session:
    """The ``number``-th (from 1; -1 for the last) session of ``kind`` in time order."""
    sessions = list(series.sessions.filter(kind=kind).order_by("starts_at"))
    return sessions[number - 1] if number > 0 else sessions[number]


def _state(series: TreatmentSeries) -> list[tuple[Any, ...]]:
    return list(
        series.sessions.order_by("pk").values_list(
            "pk", "starts_at", "ends_at", "room_id", "revision", "status"
        )
    )


def _local_starts(series: TreatmentSeries) -> list[tuple[str, str]]:
    zone = series.patient.clinic.tz
    return [
        (session.kind, session.starts_at.astimezone(zone).isoformat())
        for session in series.sessions.order_by("starts_at")
    ]


def _move(client: Any, session: Session, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(f"/api/v1/sessions/{session.pk}/reschedule/", body, format="json", **headers)


def test_the_booked_series(series) -> None:
    assert _local_starts(series) == [
        ("screening", "2026-03-02T09:00:00-08:00"),
        ("preparation", "2026-03-02T10:15:00-08:00"),  # the room's 15 minutes of turnover
        ("preparation", "2026-03-02T11:30:00-08:00"),
        ("medicine", "2026-03-03T08:00:00-08:00"),
        ("integration", "2026-03-04T08:00:00-08:00"),
        ("medicine", "2026-03-05T08:00:00-08:00"),
        ("integration", "2026-03-06T08:00:00-08:00"),
        ("medicine", "2026-03-07T08:00:00-08:00"),
        ("integration", "2026-03-08T08:00:00-07:00"),
        ("medicine", "2026-03-10T08:00:00-07:00"),
        ("integration", "2026-03-11T08:00:00-07:00"),
        ("medicine", "2026-03-12T08:00:00-07:00"),
        ("integration", "2026-03-13T08:00:00-07:00"),
        ("medicine", "2026-03-14T08:00:00-07:00"),
        ("integration", "2026-03-15T08:00:00-07:00"),
    ]


def test_a_move_that_keeps_every_rule_moves_that_session_only(world, as_user, series) -> None:
    integration = _session(series, "integration", 1)
    others = [row for row in _state(series) if row[0] != integration.pk]

    response = _move(
        as_user(world.front_desk),
        integration,
        {"starts_at": "2026-03-04T14:00:00-08:00", "cascade": False},
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert response["ETag"] == '"2"'
    assert (body["session"]["id"], body["session"]["revision"]) == (integration.pk, 2)
    assert (body["session"]["starts_at"], body["session"]["ends_at"]) == (
        "2026-03-04T14:00:00-08:00",
        "2026-03-04T15:00:00-08:00",
    )
    assert (body["session"]["room"], body["session"]["staff"]) == (
        world.therapy_room.pk,
        [world.therapist.pk],
    )
    assert body["series"] == {"id": series.pk, "status": "active", "violations": []}
    assert body["moved"] == [body["session"]]
    assert [row for row in _state(series) if row[0] != integration.pk] == others
    series.refresh_from_db()
    assert (series.violations, series.violations_checked_at) == ([], aware(2026, 3, 2, 9))
    assert list(
        AuditEvent.objects.values_list("actor_username", "action", "object_type", "object_ids")
    ) == [("front_desk", "reschedule", "session", [integration.pk])]


def test_cascade_defaults_to_false(world, as_user, series) -> None:
    medicine = _session(series, "medicine", -1)
    before = _state(series)

    response = _move(as_user(world.admin), medicine, {"starts_at": "2026-03-15T09:00:00-07:00"})

    assert response.status_code == 422
    assert _state(series) == before


def test_a_move_that_breaks_the_integration_gap_is_refused(world, as_user, series) -> None:
    medicine = _session(series, "medicine", -1)
    integration = _session(series, "integration", -1)
    before = _state(series)

    # The last medicine session from Saturday to Sunday 09:00, after its integration at 08:00.
    response = _move(
        as_user(world.front_desk),
        medicine,
        {"starts_at": "2026-03-15T09:00:00-07:00", "cascade": False},
    )

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    violations = response.json()["violations"]
    assert {v["rule"] for v in violations} == {"each_followed_by", "not_same_day"}
    assert all(medicine.pk in v["sessions"] for v in violations)
    assert integration.pk in next(v for v in violations if v["rule"] == "not_same_day")["sessions"]
    assert _state(series) == before
    assert AuditEvent.objects.count() == 0


def test_cascade_moves_the_integration_by_the_least_amount(world, as_user, series) -> None:
    medicine = _session(series, "medicine", -1)
    integration = _session(series, "integration", -1)
    untouched = [row for row in _state(series) if row[0] not in {medicine.pk, integration.pk}]

    response = _move(
        as_user(world.front_desk),
        medicine,
        {"starts_at": "2026-03-15T09:00:00-07:00", "cascade": True},
        HTTP_IF_MATCH='"1"',
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert response["ETag"] == '"2"'
    assert [(s["id"], s["kind"], s["starts_at"], s["revision"]) for s in body["moved"]] == [
        (medicine.pk, "medicine", "2026-03-15T09:00:00-07:00", 2),
        # A calendar day after the medicine session, at the clinic's opening.
        (integration.pk, "integration", "2026-03-16T08:00:00-07:00", 2),
    ]
    assert body["session"] == body["moved"][0]
    assert body["series"] == {"id": series.pk, "status": "active", "violations": []}
    assert [row for row in _state(series) if row[0] not in {medicine.pk, integration.pk}] == (
        untouched
    )
    assert list(AuditEvent.objects.values_list("action", "object_ids")) == [
        ("reschedule", sorted([medicine.pk, integration.pk]))
    ]


def test_cascade_that_cannot_keep_the_rules_is_refused(world, as_user, series) -> None:
    medicine = _session(series, "medicine", -1)
    # The clinic is closed for four months after the series.
    for offset in range(130):
        world.clinic.closures.create(date=dt.date(2026, 3, 16) + dt.timedelta(days=offset))
    before = _state(series)

    response = _move(
        as_user(world.front_desk),
        medicine,
        {"starts_at": "2026-03-15T09:00:00-07:00", "cascade": True},
    )

    assert response.status_code == 422
    assert [(v["rule"], v["message"]) for v in response.json()["violations"]] == [
        (
            "clinic_closed",
            "No opening hours from 2026-03-16 00:00 to 2026-07-12 fit a 60-minute integration "
            "session.",
        )
    ]
    assert _state(series) == before


def test_a_stale_if_match_is_412(world, as_user, series) -> None:
    integration = _session(series, "integration", 1)
    desk = as_user(world.front_desk)
    assert _move(desk, integration, {"starts_at": "2026-03-04T14:00:00-08:00"}).status_code == 200
    before = _state(series)

    response = _move(
        desk, integration, {"starts_at": "2026-03-04T16:00:00-08:00"}, HTTP_IF_MATCH='"1"'
    )

    assert response.status_code == 412
    assert response.json()["detail"] == (
        f"Session {integration.pk} is at revision 2; fetch it again."
    )
    assert _state(series) == before


def test_onto_the_patient_own_session_is_409(world, as_user, series) -> None:
    integration = _session(series, "integration", 1)
    medicine = _session(series, "medicine", 2)  # 5 March, 08:00 to 10:00
    before = _state(series)

    response = _move(
        as_user(world.front_desk), integration, {"starts_at": "2026-03-05T09:00:00-08:00"}
    )

    assert response.status_code == 409
    # the patient's clash is named with the session that holds them
    assert [(v["rule"], v["message"], v["sessions"]) for v in response.json()["violations"]] == [
        (
            "patient_taken",
            "Alex Rivera already has a medicine session from 2026-03-05 08:00 to 2026-03-05 10:00 "
            f"(session {medicine.pk}).",
            [medicine.pk],
        ),
        (
            "staff_taken",
            "No therapist is free during 2026-03-05 09:00-10:00: all already care for as many "
            "patients as allowed.",
            [],
        ),
    ]
    assert Session.objects.get(pk=medicine.pk).starts_at == aware(2026, 3, 5, 8)
    assert _state(series) == before


def test_onto_a_taken_room_and_therapist_is_409(world, as_user, series) -> None:
    integration = _session(series, "integration", 1)
    other = services.session_create(
        patient=world.patient_b,
        kind="integration",
        starts_at=aware(2026, 3, 4, 14),
        room=world.therapy_room,
        staff=[world.therapist],
    )
    before = _state(series)

    response = _move(
        as_user(world.front_desk), integration, {"starts_at": "2026-03-04T14:30:00-08:00"}
    )

    assert response.status_code == 409
    assert [(v["rule"], v["message"]) for v in response.json()["violations"]] == [
        (
            "room_taken",
            "No therapy room is free during 2026-03-04 14:30-15:30 (with cleaning time).",
        ),
        (
            "staff_taken",
            "No therapist is free during 2026-03-04 14:30-15:30: all already care for as many "
            "patients as allowed.",
        ),
    ]
    assert Session.objects.get(pk=other.pk).starts_at == aware(2026, 3, 4, 14)
    assert _state(series) == before


def test_a_session_outside_a_series_moves_alone(world, as_user, frozen) -> None:
    session = services.session_create(
        patient=world.patient_b,
        kind="follow_up",
        starts_at=aware(2026, 3, 4, 14),
        room=world.therapy_room,
        staff=[world.prescriber],
    )

    response = _move(as_user(world.front_desk), session, {"starts_at": "2026-03-05T14:00:00-08:00"})

    assert response.status_code == 200, response.json()
    assert response.json()["series"] is None
    assert [s["starts_at"] for s in response.json()["moved"]] == ["2026-03-05T14:00:00-08:00"]


def test_a_checked_in_session_cannot_move(world, as_user, frozen) -> None:
    session = services.session_create(
        patient=world.patient_b,
        kind="follow_up",
        starts_at=aware(2026, 3, 2, 9, 30),
        room=world.therapy_room,
        staff=[world.prescriber],
    )
    services.session_check_in(session)

    response = _move(as_user(world.front_desk), session, {"starts_at": "2026-03-05T14:00:00-08:00"})

    assert response.status_code == 422
    assert [v["rule"] for v in response.json()["violations"]] == ["status_transition"]
    session.refresh_from_db()
    assert (session.starts_at, session.status) == (aware(2026, 3, 2, 9, 30), "checked_in")


BOOLEAN_ONLY = ["Must be true or false (a JSON boolean)."]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"starts_at": "2026-03-04T14:00:00-08:00", "cascade": "yes"}, {"cascade": BOOLEAN_ONLY}),
        ({"starts_at": "2026-03-04T14:00:00-08:00", "cascade": "true"}, {"cascade": BOOLEAN_ONLY}),
        ({"starts_at": "2026-03-04T14:00:00-08:00", "cascade": 1}, {"cascade": BOOLEAN_ONLY}),
        ({"starts_at": "2026-03-04T14:00:00-08:00", "cascade": 0}, {"cascade": BOOLEAN_ONLY}),
        (
            {"starts_at": "2026-03-04T14:00:00-08:00", "cascade": None},
            {"cascade": ["This field may not be null."]},
        ),
        (
            {"starts_at": "2026-03-04T14:00:00"},
            {"starts_at": ["Give a UTC offset, e.g. 2026-03-09T09:00:00-07:00."]},
        ),
        ({"starts_at": "2026-03-01T14:00:00-08:00"}, {"starts_at": ["Must be in the future."]}),
        ({"cascade": True}, {"starts_at": ["This field is required."]}),
        (
            {"starts_at": "2026-03-04T14:00:00-08:00", "room": 1},
            {"room": ["Unknown field."]},
        ),
    ],
)
def test_bad_input_is_400(world, as_user, series, body, errors) -> None:
    integration = _session(series, "integration", 1)
    before = _state(series)

    response = _move(as_user(world.front_desk), integration, body)

    assert response.status_code == 400, response.json()
    assert response.json()["errors"] == errors
    assert _state(series) == before


@pytest.mark.parametrize("who", ["nurse", "prescriber", "therapist"])
def test_only_front_desk_and_clinic_admins_move_sessions(world, as_user, series, who) -> None:
    medicine = _session(series, "medicine", 1)  # all three may see it
    before = _state(series)

    response = _move(
        as_user(getattr(world, who)), medicine, {"starts_at": "2026-03-03T14:00:00-08:00"}
    )

    assert response.status_code == 403
    assert _state(series) == before
