"""A front-desk day through the API: register a patient, book with explicit room and staff,
record the ride home, check in, complete, cancel in time and late, mark a no-show, read the day.

(Booking a whole series and rescheduling with cascade: test_front_desk_series_day.py.)"""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.models import AuditEvent, Patient
from scheduling.models import Session, SessionStaff
from tests.api.conftest import NOW, book
from tests.factories import aware

pytestmark = pytest.mark.django_db


def test_a_front_desk_day(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)

    # Register a patient with a portal login.
    registered = desk.post(
        "/api/v1/patients/",
        {
            "clinic": world.clinic.pk,
            "full_name": "Dana Okafor",
            "date_of_birth": "1979-11-02",
            "email": "dana@example.org",
            "phone": "+14155550111",
            "preferred_channel": "sms",
            "username": "dana",
            "password": "a-long-and-unusual-passphrase",
        },
        format="json",
    )
    assert registered.status_code == 201, registered.json()
    dana = Patient.objects.get(pk=registered.json()["id"])
    assert registered.json() == {
        "id": dana.pk,
        "clinic": world.clinic.pk,
        "full_name": "Dana Okafor",
        "date_of_birth": "1979-11-02",
        "email": "dana@example.org",
        "phone": "+14155550111",
        "preferred_channel": "sms",
        "timezone": "",
        "escort_name": "",
        "escort_phone": "",
        "outside_therapist_name": "",
        "outside_therapist_email": "",
        "outside_therapist_phone": "",
        "has_portal_login": True,
    }

    # The gates of every medicine session: a prescriber's clearance and the signed consent.
    screened = as_user(world.prescriber).post(
        f"/api/v1/patients/{dana.pk}/screenings/",
        {"result": "cleared", "valid_until": "2026-09-01", "contraindications": []},
        format="json",
    )
    assert screened.status_code == 201, screened.json()
    assert (screened.json()["cleared_by"], screened.json()["screened_on"]) == (
        world.prescriber.pk,
        "2026-03-02",
    )
    consented = desk.post(
        f"/api/v1/patients/{dana.pk}/consents/",
        {"signed_at": "2026-03-02T08:45:00-08:00", "document_version": "KAP-consent-2026.1"},
        format="json",
    )
    assert consented.status_code == 201, consented.json()
    assert consented.json()["signed_at"] == "2026-03-02T08:45:00-08:00"

    # A medicine session at 10:00 with the therapist and the nurse.
    medicine = book(
        desk,
        dana,
        "medicine",
        aware(2026, 3, 2, 10),
        world.dosing_room,
        [world.therapist, world.nurse],
    )
    assert medicine.status_code == 201, medicine.json()
    body = medicine.json()
    assert medicine["ETag"] == '"1"'
    assert body["starts_at"] == "2026-03-02T10:00:00-08:00"
    assert body["ends_at"] == "2026-03-02T12:00:00-08:00"
    assert body["status"] == "booked"
    assert body["route"] == "im"
    assert body["room"] == world.dosing_room.pk
    assert body["staff"] == [world.therapist.pk, world.nurse.pk]
    assert [(h["role"], h["starts_at"], h["ends_at"]) for h in body["staff_holds"]] == [
        ("therapist", "2026-03-02T10:00:00-08:00", "2026-03-02T11:30:00-08:00"),
        ("nurse", "2026-03-02T10:00:00-08:00", "2026-03-02T10:30:00-08:00"),
    ]
    medicine_id = body["id"]

    follow_up = book(
        desk, dana, "follow_up", aware(2026, 3, 2, 12), world.therapy_room, [world.prescriber]
    )
    assert follow_up.status_code == 201, follow_up.json()
    assert follow_up.json()["ends_at"] == "2026-03-02T12:30:00-08:00"

    # The room and the therapist are taken for anyone else at 10:30: 409 naming both.
    clash = book(
        desk,
        world.patient_b,
        "medicine",
        aware(2026, 3, 2, 10, 30),
        world.dosing_room,
        [world.therapist, world.nurse],
    )
    assert clash.status_code == 409
    assert clash["Content-Type"] == "application/problem+json"
    assert [(v["rule"], v["sessions"]) for v in clash.json()["violations"]] == [
        ("room_taken", [medicine_id]),
        ("staff_taken", [medicine_id]),
    ]

    # The ride home, then check-in and completion, each answering the new ETag.
    escort = desk.post(
        f"/api/v1/sessions/{medicine_id}/escort/",
        {"name": "Sam Okafor", "phone": "+14155550112", "confirmed": True},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert escort.status_code == 200, escort.json()
    assert escort.json()["escort"] == {
        "name": "Sam Okafor",
        "phone": "+14155550112",
        "confirmed": True,
        "confirmed_at": "2026-03-02T09:00:00-08:00",
    }
    assert escort["ETag"] == '"2"'
    frozen.move_to(aware(2026, 3, 2, 9, 55))
    desk = as_user(world.front_desk)  # access tokens last five minutes
    checked_in = desk.post(f"/api/v1/sessions/{medicine_id}/check-in/", HTTP_IF_MATCH='"2"')
    assert (checked_in.status_code, checked_in.json()["status"]) == (200, "checked_in")
    # The prescriber's follow-up right after the medicine session: checked in and completed.
    # (Completing the medicine session itself waits for the dose, the vitals after it and the
    # discharge: clinical records outside this API for now.)
    frozen.move_to(aware(2026, 3, 2, 12, 2))
    desk = as_user(world.front_desk)  # access tokens last five minutes
    follow_up_id = follow_up.json()["id"]
    desk.post(f"/api/v1/sessions/{follow_up_id}/check-in/")
    completed = desk.post(f"/api/v1/sessions/{follow_up_id}/complete/", HTTP_IF_MATCH='"2"')
    assert (completed.status_code, completed.json()["status"]) == (200, "completed")
    assert completed.json()["status_changed_at"] == "2026-03-02T12:02:00-08:00"

    # Integration tomorrow at 14:00 (26 hours ahead): cancelled in time.
    in_time = book(
        desk, dana, "integration", aware(2026, 3, 3, 14), world.therapy_room, [world.therapist]
    )
    assert in_time.status_code == 201
    cancelled = desk.post(
        f"/api/v1/sessions/{in_time.json()['id']}/cancel/", {"reason": "Moved"}, format="json"
    )
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "Moved")

    # Integration tomorrow at 11:00 (23 hours ahead): a late cancellation.
    late = book(
        desk, dana, "integration", aware(2026, 3, 3, 11), world.therapy_room, [world.therapist]
    )
    late_cancel = desk.post(
        f"/api/v1/sessions/{late.json()['id']}/cancel/", {"reason": "Sick"}, format="json"
    )
    assert late_cancel.json()["status"] == "late_cancelled"
    assert SessionStaff.objects.filter(session_id=late.json()["id"], is_active=True).count() == 0

    # Patient B's preparation at 13:00 never happens: a no-show once it has started.
    preparation = book(
        desk,
        world.patient_b,
        "preparation",
        aware(2026, 3, 2, 13),
        world.therapy_room,
        [world.therapist],
    )
    too_early = desk.post(f"/api/v1/sessions/{preparation.json()['id']}/no-show/")
    assert too_early.status_code == 422
    assert too_early.json()["violations"][0]["rule"] == "no_show_before_start"
    frozen.move_to(aware(2026, 3, 2, 13, 40))
    desk = as_user(world.front_desk)  # access tokens last five minutes
    no_show = desk.post(f"/api/v1/sessions/{preparation.json()['id']}/no-show/")
    assert no_show.json()["status"] == "no_show"

    # The day sheet: each room's sessions and each staff member's holds, local times.
    sheet = desk.get("/api/v1/day-sheet/", {"date": "2026-03-02"})
    assert sheet.status_code == 200
    assert sheet.json()["timezone"] == "America/Los_Angeles"
    rooms = {room["room"]["name"]: room["sessions"] for room in sheet.json()["rooms"]}
    assert [(s["kind"], s["status"], s["starts_at"]) for s in rooms["Dosing 1"]] == [
        ("medicine", "checked_in", "2026-03-02T10:00:00-08:00")
    ]
    assert [(s["kind"], s["status"]) for s in rooms["Therapy 1"]] == [
        ("follow_up", "completed"),
        ("preparation", "no_show"),
    ]
    assert rooms["Chair 1"] == []
    staff = {row["full_name"]: row["holds"] for row in sheet.json()["staff"]}
    assert [(h["kind"], h["role"], h["starts_at"]) for h in staff["Nurse"]] == [
        ("medicine", "nurse", "2026-03-02T10:00:00-08:00")
    ]
    assert [h["kind"] for h in staff["Therapist"]] == ["medicine", "preparation"]
    assert [(h["kind"], h["role"]) for h in staff["Prescriber"]] == [("follow_up", "prescriber")]

    # The sessions list for tomorrow, filtered by status.
    tomorrow = desk.get(
        "/api/v1/sessions/",
        {
            "date_from": "2026-03-03",
            "date_to": "2026-03-03",
            "status": ["cancelled", "late_cancelled"],
        },
    )
    assert [(s["starts_at"], s["status"]) for s in tomorrow.json()["results"]] == [
        ("2026-03-03T11:00:00-08:00", "late_cancelled"),
        ("2026-03-03T14:00:00-08:00", "cancelled"),
    ]
    assert Session.objects.filter(patient=dana).count() == 4
    assert AuditEvent.objects.filter(actor_username="front_desk").count() > 0


def test_booking_in_the_past_is_refused_and_writes_nothing(world, as_user, frozen) -> None:
    response = book(
        as_user(world.front_desk),
        world.patient_a,
        "integration",
        NOW - dt.timedelta(hours=2),
        world.therapy_room,
        [world.therapist],
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"starts_at": ["That time has passed; book a future time."]}
    assert Session.objects.count() == 0


def test_day_sheet_on_the_spring_dst_day_has_23_hours(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    # 23:00 on Saturday 7 March and 01:30 on Sunday 8 March (before the 02:00 jump) and 03:30
    # after it: only the last two are on the 8th.
    for hour, minute, day in ((23, 0, 7), (1, 30, 8), (3, 30, 8)):
        assert (
            book(
                desk,
                world.patient_a,
                "follow_up",
                aware(2026, 3, day, hour, minute),
                world.therapy_room,
                [world.prescriber],
            ).status_code
            == 201
        )
    sheet = desk.get("/api/v1/day-sheet/", {"date": "2026-03-08"}).json()
    therapy = next(room for room in sheet["rooms"] if room["room"]["name"] == "Therapy 1")
    assert [s["starts_at"] for s in therapy["sessions"]] == [
        "2026-03-08T01:30:00-08:00",
        "2026-03-08T03:30:00-07:00",
    ]
