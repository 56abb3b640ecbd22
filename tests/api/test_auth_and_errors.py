"""Tokens, the login lockout, and problem+json for every class of error."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from clinic.models import Room
from scheduling.models import Session
from tests.api.conftest import PASSWORD, book
from tests.factories import aware

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


def test_login_refresh_and_call(world) -> None:
    client = APIClient()
    tokens = client.post(
        "/api/v1/auth/token/", {"username": "front_desk", "password": PASSWORD}, format="json"
    )
    assert tokens.status_code == 200
    assert set(tokens.json()) == {"access", "refresh"}
    refreshed = client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens.json()["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200
    assert set(refreshed.json()) == {"access", "refresh"}
    # The old refresh token was rotated out and blacklisted.
    reused = client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens.json()["refresh"]}, format="json"
    )
    _problem(reused, 401)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert client.get("/api/v1/rooms/").status_code == 200


def test_a_patient_logs_in_too(world) -> None:
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "patient_a", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200


def test_repeated_failures_lock_the_username_with_429(world, settings) -> None:
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        wrong = client.post(
            "/api/v1/auth/token/", {"username": "nurse", "password": "nope"}, format="json"
        )
        _problem(wrong, 401)
    locked = client.post(
        "/api/v1/auth/token/", {"username": "nurse", "password": PASSWORD}, format="json"
    )
    body = _problem(locked, 429)
    assert locked["Retry-After"] == str(15 * 60)
    assert body["title"] == "Too many requests"
    # Another username is not affected.
    assert (
        client.post(
            "/api/v1/auth/token/", {"username": "therapist", "password": PASSWORD}, format="json"
        ).status_code
        == 200
    )


def test_no_token_and_a_bad_token_are_401(world) -> None:
    body = _problem(APIClient().get("/api/v1/sessions/"), 401)
    assert body["type"].endswith("/not-authenticated")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    _problem(client.get("/api/v1/sessions/"), 401)


def test_bad_input_answers_400_with_field_errors(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    naive = desk.post(
        "/api/v1/sessions/",
        {
            "patient": world.patient_a.pk,
            "kind": "integration",
            "starts_at": "2026-03-09T09:00:00",
            "room": world.therapy_room.pk,
            "staff": [world.therapist.pk],
        },
        format="json",
    )
    assert _problem(naive, 400)["errors"] == {
        "starts_at": ["Give a UTC offset, e.g. 2026-03-09T09:00:00-07:00."]
    }
    backwards = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.therapy_room,
        [world.therapist],
        ends_at="2026-03-09T08:00:00-07:00",
    )
    assert _problem(backwards, 400)["errors"] == {"ends_at": ["Must be after starts_at."]}
    wrong_types = desk.post(
        "/api/v1/sessions/",
        {"patient": "someone", "kind": 7, "starts_at": 12, "room": [], "staff": "x"},
        format="json",
    )
    assert set(_problem(wrong_types, 400)["errors"]) == {
        "patient",
        "kind",
        "starts_at",
        "room",
        "staff",
    }
    unknown = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.other_room,
        [world.therapist],
    )
    assert _problem(unknown, 400)["errors"] == {
        "room": [f'Invalid pk "{world.other_room.pk}" - object does not exist.']
    }
    missing = desk.post("/api/v1/sessions/", {"kind": "integration"}, format="json")
    assert _problem(missing, 400)["errors"] == {
        "patient": ["This field is required."],
        "starts_at": ["This field is required."],
    }
    year_long = desk.get("/api/v1/sessions/", {"date_from": "2026-01-01", "date_to": "2027-06-01"})
    assert _problem(year_long, 400)["errors"] == {
        "date_to": ["At most a year between date_from and date_to."]
    }
    far_future = desk.post(
        "/api/v1/sessions/",
        {
            "patient": world.patient_a.pk,
            "kind": "integration",
            "starts_at": "9999-12-31T23:59:59-12:00",
            "room": world.therapy_room.pk,
            "staff": [world.therapist.pk],
        },
        format="json",
    )
    assert _problem(far_future, 400)["errors"] == {
        "starts_at": ["The year must be between 1900 and 2200."]
    }
    misspelt = desk.post(
        "/api/v1/patients/", {"clinic": world.clinic.pk, "fullname": "X"}, format="json"
    )
    assert "fullname" in _problem(misspelt, 400)["errors"]
    assert Session.objects.count() == 0


def test_malformed_json_wrong_media_type_and_wrong_method(world, as_user) -> None:
    desk = as_user(world.front_desk)
    broken = desk.post("/api/v1/sessions/", "{not json", content_type="application/json")
    assert _problem(broken, 400)["detail"].startswith("The body is not valid JSON")
    form = desk.post("/api/v1/sessions/", {"kind": "medicine"})  # multipart
    _problem(form, 415)
    _problem(desk.delete("/api/v1/sessions/"), 405)


def test_unknown_ids_and_urls_are_404(world, as_user) -> None:
    desk = as_user(world.front_desk)
    _problem(desk.get("/api/v1/sessions/999999/"), 404)
    _problem(desk.get("/api/v1/patients/99999999999999999999999/"), 404)
    _problem(desk.get("/api/v1/no-such-thing/"), 404)


def test_a_role_without_the_right_is_403(world, as_user) -> None:
    therapist = as_user(world.therapist)
    refused = therapist.post(
        "/api/v1/rooms/",
        {"clinic": world.clinic.pk, "name": "New", "kind": "therapy_room"},
        format="json",
    )
    assert _problem(refused, 403)["detail"] == "This needs one of the roles: clinic_admin."
    assert not Room.objects.filter(name="New").exists()


def test_an_illegal_transition_is_422(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    session = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.therapy_room,
        [world.therapist],
    ).json()
    body = _problem(desk.post(f"/api/v1/sessions/{session['id']}/complete/"), 422)
    assert body["violations"] == [
        {
            "rule": "status_transition",
            "message": f"Session {session['id']} is booked; it cannot be completed.",
            "sessions": [session["id"]],
            "suggested_fix": None,
        }
    ]


def test_the_schema_and_the_docs_are_served_without_a_token(world, settings) -> None:
    settings.STORAGES = {  # no collectstatic in tests: plain storage, no manifest
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    client = APIClient()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/sessions/{id}/cancel/" in paths
    assert paths["/api/v1/series/plan/"]["post"]["security"] == [{"jwtAuth": []}]
    assert "/api/v1/sessions/{id}/reschedule/" in paths
    assert schema.json()["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    assert paths["/api/v1/sessions/"]["get"]["security"] == [{"jwtAuth": []}]
    assert paths["/api/v1/auth/token/"]["post"].get("security", []) in ([], [{}])
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in docs.content
    assert b"cdn.jsdelivr.net" not in docs.content
