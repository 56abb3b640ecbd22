"""A series' lifecycle through the API: POST /series/{id}/hold/, /resume/, /discontinue/ and
/complete/ (front desk and clinic admins), and the second open course of a care model refused."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import AuditEvent
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from scheduling.models import Session, TreatmentSeries

pytestmark = pytest.mark.django_db


@pytest.fixture
def kap(db: Any) -> ProtocolVersion:
    protocols_load_standard()
    return ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")


def _book(client: Any, world: Any, version: ProtocolVersion, key: str) -> Any:
    return client.post(
        "/api/v1/series/",
        {
            "patient": world.patient_a.pk,
            "protocol": version.pk,
            "earliest_start": "2026-03-02",
            "preferences": {"earliest_time": "08:00", "latest_start": "16:00"},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_front_desk_stops_a_course_and_books_a_new_one(world, as_user, frozen, kap) -> None:
    desk = as_user(world.front_desk)
    first = _book(desk, world, kap, "course-1")
    assert first.status_code == 201, first.json()
    series_id = first.json()["id"]

    second = _book(desk, world, kap, "course-2")  # a second click, a fresh key
    plan = desk.post(
        "/api/v1/series/plan/",
        {"patient": world.patient_a.pk, "protocol": kap.pk, "earliest_start": "2026-03-02"},
        format="json",
    )
    held = desk.post(f"/api/v1/series/{series_id}/hold/", {"reason": "Flu"}, format="json")
    booked_on_hold = desk.post(
        "/api/v1/sessions/",
        {
            "patient": world.patient_a.pk,
            "kind": "integration",
            "starts_at": "2026-03-30T09:00:00-07:00",
            "series": series_id,
        },
        format="json",
    )
    resumed = desk.post(f"/api/v1/series/{series_id}/resume/", {}, format="json")
    audit_from = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    stopped = desk.post(
        f"/api/v1/series/{series_id}/discontinue/", {"reason": "Moving away"}, format="json"
    )
    third = _book(desk, world, kap, "course-3")

    assert (second.status_code, second.json()["violations"][0]["rule"]) == (422, "series_open")
    assert second.json()["violations"][0]["message"] == (
        f"Alex Rivera already has an open Ketamine-assisted psychotherapy series "
        f"(series {series_id}, active)."
    )
    assert (plan.status_code, plan.json()["sessions"]) == (200, [])
    assert plan.json()["violations"] == second.json()["violations"]
    assert (held.status_code, held.json()["status"], held.json()["status_reason"]) == (
        200,
        "on_hold",
        "Flu",
    )
    assert held.json()["status_changed_at"] == "2026-03-02T09:00:00-08:00"
    assert (booked_on_hold.status_code, booked_on_hold.json()["violations"][0]["rule"]) == (
        422,
        "series_not_active",
    )
    assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
    assert stopped.status_code == 200
    answer = stopped.json()
    assert (answer["status"], answer["status_reason"]) == ("discontinued", "Moving away")
    assert {s["status"] for s in answer["sessions"]} == {"cancelled"}
    assert len(answer["sessions"]) == 15
    assert third.status_code == 201, third.json()
    assert list(
        TreatmentSeries.objects.filter(patient=world.patient_a)
        .order_by("id")
        .values_list("status", flat=True)
    ) == ["discontinued", "active"]
    trail = AuditEvent.objects.filter(id__gt=audit_from).order_by("id")
    assert [(e.action, e.object_type, len(e.object_ids)) for e in trail][:2] == [
        ("discontinue", "series", 1),
        ("cancel", "session", 15),
    ]


def test_completing_by_hand_is_refused_while_sessions_are_to_come(
    world, as_user, frozen, kap
) -> None:
    desk = as_user(world.front_desk)
    series_id = _book(desk, world, kap, "course-1").json()["id"]

    refused = desk.post(f"/api/v1/series/{series_id}/complete/", {}, format="json")
    resumed = desk.post(f"/api/v1/series/{series_id}/resume/", {}, format="json")

    assert refused.status_code == 422
    assert refused.json()["violations"][0]["rule"] == "series_sessions_to_come"
    assert len(refused.json()["violations"][0]["sessions"]) == 15
    assert (resumed.status_code, resumed.json()["violations"][0]["message"]) == (
        422,
        f"Series {series_id} is active; it cannot be resumed.",
    )
    assert TreatmentSeries.objects.get(pk=series_id).status == "active"


@pytest.mark.parametrize("who", ["therapist", "nurse", "prescriber"])
def test_only_the_front_desk_and_clinic_admins_change_a_series(
    world, as_user, frozen, kap, who
) -> None:
    series_id = _book(as_user(world.front_desk), world, kap, "course-1").json()["id"]
    before = sorted(Session.objects.values_list("id", "status"))

    answers = {
        action: as_user(getattr(world, who))
        .post(f"/api/v1/series/{series_id}/{action}/", {"reason": "x"}, format="json")
        .status_code
        for action in ("hold", "resume", "discontinue", "complete")
    }
    admin = as_user(world.admin).post(f"/api/v1/series/{series_id}/hold/", {}, format="json")

    # they see the series (their patient's), so the refusal is 403, not 404
    assert answers == {"hold": 403, "resume": 403, "discontinue": 403, "complete": 403}
    assert admin.status_code == 200
    assert sorted(Session.objects.values_list("id", "status")) == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"reason": ["x"]}, {"reason": ["Not a valid string."]}),
        ({"reason": "x" * 501}, {"reason": ["Ensure this field has no more than 500 characters."]}),
        ({"reason": "x", "extra": 1}, {"extra": ["Unknown field."]}),
    ],
)
def test_bad_input_is_400_and_changes_nothing(world, as_user, frozen, kap, body, errors) -> None:
    desk = as_user(world.front_desk)
    series_id = _book(desk, world, kap, "course-1").json()["id"]

    answer = desk.post(f"/api/v1/series/{series_id}/discontinue/", body, format="json")

    assert (answer.status_code, answer.json()["errors"]) == (400, errors)
    assert TreatmentSeries.objects.get(pk=series_id).status == "active"
    assert not Session.objects.filter(status="cancelled").exists()
