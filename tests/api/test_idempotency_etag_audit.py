"""Idempotency keys, ETag / If-Match, and the audit trail."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError
from django.test import Client

from clinic.models import AuditEvent, IdempotencyKey, Patient
from scheduling.models import Session
from tests.api.conftest import book, client_for
from tests.factories import aware

pytestmark = pytest.mark.django_db

PATIENT = {
    "full_name": "Jordan Lee",
    "date_of_birth": "1990-01-01",
    "email": "jordan@example.org",
}


def test_a_replay_returns_the_first_answer_and_creates_once(world, as_user) -> None:
    desk = as_user(world.front_desk)
    body = {**PATIENT, "clinic": world.clinic.pk}
    first = desk.post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = desk.post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Patient.objects.filter(full_name="Jordan Lee").count() == 1


def test_the_same_key_with_another_body_is_422(world, as_user) -> None:
    desk = as_user(world.front_desk)
    desk.post(
        "/api/v1/patients/",
        {**PATIENT, "clinic": world.clinic.pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    other = desk.post(
        "/api/v1/patients/",
        {**PATIENT, "clinic": world.clinic.pk, "full_name": "Someone Else"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["title"] == "Idempotency key reused"
    assert not Patient.objects.filter(full_name="Someone Else").exists()


def test_keys_are_per_user_and_refusals_are_not_kept(world, as_user, frozen) -> None:
    body = {**PATIENT, "clinic": world.clinic.pk}
    assert (
        as_user(world.front_desk)
        .post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
        .status_code
        == 201
    )
    assert (
        as_user(world.admin)
        .post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
        .status_code
        == 201
    )
    refused = book(
        as_user(world.front_desk),
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.dosing_room,
        [world.therapist],
    )
    assert refused.status_code == 422  # a therapy session in a dosing room
    assert IdempotencyKey.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_once(world) -> None:
    body = {**PATIENT, "clinic": world.clinic.pk}
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def send() -> None:
        try:
            client = client_for(world.front_desk.user)
            barrier.wait()
            statuses.append(
                client.post(
                    "/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="race"
                ).status_code
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 8
    assert Patient.objects.filter(full_name="Jordan Lee").count() == 1


def test_if_match_refuses_a_stale_edit(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    created = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.therapy_room,
        [world.therapist],
    ).json()
    url = f"/api/v1/sessions/{created['id']}/"
    read = desk.get(url)
    assert read["ETag"] == '"1"'
    other_client = as_user(world.admin)
    assert other_client.post(url + "check-in/", HTTP_IF_MATCH=read["ETag"]).status_code == 200
    stale = desk.post(url + "cancel/", {"reason": "x"}, format="json", HTTP_IF_MATCH=read["ETag"])
    assert stale.status_code == 412
    assert stale["Content-Type"] == "application/problem+json"
    session = Session.objects.get(pk=created["id"])
    assert (session.status, session.revision, session.cancel_reason) == ("checked_in", 2, "")
    assert desk.get(url)["ETag"] == '"2"'


def test_audit_rows_name_who_what_when_and_from_where(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    desk.get(
        f"/api/v1/patients/{world.patient_a.pk}/",
        HTTP_USER_AGENT="FrontDesk/1.0",
        REMOTE_ADDR="10.1.2.3",
    )
    desk.get("/api/v1/patients/", HTTP_USER_AGENT="FrontDesk/1.0")
    read, listed = AuditEvent.objects.order_by("id")
    assert {
        field: getattr(read, field)
        for field in (
            "actor_id",
            "actor_username",
            "channel",
            "action",
            "object_type",
            "object_ids",
            "patient_ids",
            "ip_address",
            "user_agent",
            "method",
            "path",
        )
    } == {
        "actor_id": world.front_desk.user.pk,
        "actor_username": "front_desk",
        "channel": "api",
        "action": "read",
        "object_type": "patient",
        "object_ids": [world.patient_a.pk],
        "patient_ids": [world.patient_a.pk],
        "ip_address": "10.1.2.3",
        "user_agent": "FrontDesk/1.0",
        "method": "GET",
        "path": f"/api/v1/patients/{world.patient_a.pk}/",
    }
    assert read.at == aware(2026, 3, 2, 9)
    assert (listed.action, listed.object_ids) == (
        "list",
        sorted([world.patient_a.pk, world.patient_b.pk]),
    )
    assert list(
        AuditEvent.objects.filter(patient_ids__contains=[world.patient_b.pk]).values_list(
            "action", flat=True
        )
    ) == ["list"]


def test_the_audit_table_refuses_updates_and_deletes(world, as_user) -> None:
    as_user(world.front_desk).get(f"/api/v1/patients/{world.patient_a.pk}/")
    event = AuditEvent.objects.get()
    for statement in (
        "UPDATE clinic_auditevent SET actor_username = 'someone' WHERE id = %s",
        "DELETE FROM clinic_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            connection.cursor().execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.actor_username == "front_desk"


def test_the_admin_audits_patient_pages_and_shows_the_trail_read_only(world, settings) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    admin = Client()
    admin.force_login(world.superuser)
    assert admin.get("/admin/clinic/patient/").status_code == 200
    assert admin.get(f"/admin/clinic/patient/{world.patient_a.pk}/change/").status_code == 200
    listed, read = AuditEvent.objects.order_by("id")
    assert (listed.channel, listed.action, listed.object_type, listed.actor_username) == (
        "admin",
        "list",
        "patient",
        "root",
    )
    assert listed.object_ids == sorted(
        [world.patient_a.pk, world.patient_b.pk, world.other_patient.pk]
    )
    assert (read.action, read.object_ids, read.patient_ids) == (
        "read",
        [world.patient_a.pk],
        [world.patient_a.pk],
    )
    trail = admin.get(f"/admin/clinic/auditevent/{read.pk}/change/")
    assert trail.status_code == 200
    assert b'name="_save"' not in trail.content
    assert admin.post(f"/admin/clinic/auditevent/{read.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=read.pk).exists()
