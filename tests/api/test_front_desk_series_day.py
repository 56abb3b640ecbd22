"""A front-desk day with a whole series, through the API (the single-session day is in
test_front_desk_day.py): book a KAP series in one step, move a medicine session with cascade,
then cancel late, check in, complete and mark a no-show, and read the series back."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.models import AuditEvent, OpeningHours
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from scheduling.models import Session
from tests.factories import aware

pytestmark = pytest.mark.django_db


def test_a_front_desk_day_with_a_series(world, as_user, frozen) -> None:
    # Given a clinic open 08:00 to 18:00 every day and the standard protocols.
    OpeningHours.objects.filter(clinic=world.clinic).delete()
    for weekday in range(7):
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=weekday, start=dt.time(8), end=dt.time(18)
        )
    protocols_load_standard()
    kap = ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")
    desk = as_user(world.front_desk)

    # Monday 09:00: Alex's KAP series from tomorrow, in one step.
    booked = desk.post(
        "/api/v1/series/",
        {"patient": world.patient_a.pk, "protocol": kap.pk, "earliest_start": "2026-03-03"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="alex-kap",
    )
    assert booked.status_code == 201, booked.json()
    series_id = booked.json()["id"]
    sessions = booked.json()["sessions"]
    assert [(s["kind"], s["starts_at"]) for s in sessions] == [
        ("screening", "2026-03-03T08:00:00-08:00"),
        ("preparation", "2026-03-03T09:15:00-08:00"),
        ("preparation", "2026-03-03T10:30:00-08:00"),
        ("medicine", "2026-03-04T08:00:00-08:00"),
        ("integration", "2026-03-05T08:00:00-08:00"),
        ("medicine", "2026-03-06T08:00:00-08:00"),
        ("integration", "2026-03-07T08:00:00-08:00"),
        ("medicine", "2026-03-08T08:00:00-07:00"),
        ("integration", "2026-03-09T08:00:00-07:00"),
        ("medicine", "2026-03-11T08:00:00-07:00"),
        ("integration", "2026-03-12T08:00:00-07:00"),
        ("medicine", "2026-03-13T08:00:00-07:00"),
        ("integration", "2026-03-14T08:00:00-07:00"),
        ("medicine", "2026-03-15T08:00:00-07:00"),
        ("integration", "2026-03-16T08:00:00-07:00"),
    ]
    ids = [s["id"] for s in sessions]
    screening, preparation_1, preparation_2 = ids[0], ids[1], ids[2]

    # Alex cannot come on Friday morning: the second medicine session moves to Saturday 10:00,
    # and the later sessions move as little as the rules need (the fifth and sixth pairs keep
    # three medicine sessions in any seven days; the fourth pair stays).
    moved = desk.post(
        f"/api/v1/sessions/{ids[5]}/reschedule/",
        {"starts_at": "2026-03-07T10:00:00-08:00", "cascade": True},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert moved.status_code == 200, moved.json()
    assert moved["ETag"] == '"2"'
    assert [(s["id"], s["starts_at"]) for s in moved.json()["moved"]] == [
        (ids[5], "2026-03-07T10:00:00-08:00"),
        (ids[6], "2026-03-08T08:00:00-07:00"),
        (ids[7], "2026-03-09T08:00:00-07:00"),
        (ids[8], "2026-03-10T08:00:00-07:00"),
        (ids[11], "2026-03-14T08:00:00-07:00"),
        (ids[12], "2026-03-15T08:00:00-07:00"),
        (ids[13], "2026-03-16T08:00:00-07:00"),
        (ids[14], "2026-03-17T08:00:00-07:00"),
    ]
    assert moved.json()["series"] == {"id": series_id, "status": "active", "violations": []}

    # Monday 11:00: the second preparation, tomorrow 10:30, is cancelled inside the 24 hours.
    frozen.move_to(aware(2026, 3, 2, 11))
    desk = as_user(world.front_desk)  # access tokens last five minutes
    late = desk.post(
        f"/api/v1/sessions/{preparation_2}/cancel/",
        {"reason": "Childcare fell through"},
        format="json",
    )
    assert (late.status_code, late.json()["status"]) == (200, "late_cancelled")

    # Tuesday: the screening is checked in and completed; the first preparation is missed.
    frozen.move_to(aware(2026, 3, 3, 7, 55))
    desk = as_user(world.front_desk)
    checked_in = desk.post(f"/api/v1/sessions/{screening}/check-in/", HTTP_IF_MATCH='"1"')
    assert (checked_in.status_code, checked_in.json()["status"]) == (200, "checked_in")
    frozen.move_to(aware(2026, 3, 3, 9))
    desk = as_user(world.front_desk)
    completed = desk.post(f"/api/v1/sessions/{screening}/complete/", HTTP_IF_MATCH='"2"')
    assert (completed.status_code, completed.json()["status"]) == (200, "completed")
    frozen.move_to(aware(2026, 3, 3, 9, 40))
    desk = as_user(world.front_desk)
    no_show = desk.post(f"/api/v1/sessions/{preparation_1}/no-show/")
    assert (no_show.status_code, no_show.json()["status"]) == (200, "no_show")

    # The series as the front desk now reads it.
    read = desk.get(f"/api/v1/series/{series_id}/")
    assert read.status_code == 200
    assert [(s["id"], s["status"], s["starts_at"]) for s in read.json()["sessions"]] == [
        (ids[0], "completed", "2026-03-03T08:00:00-08:00"),
        (ids[1], "no_show", "2026-03-03T09:15:00-08:00"),
        (ids[2], "late_cancelled", "2026-03-03T10:30:00-08:00"),
        (ids[3], "booked", "2026-03-04T08:00:00-08:00"),
        (ids[4], "booked", "2026-03-05T08:00:00-08:00"),
        (ids[5], "booked", "2026-03-07T10:00:00-08:00"),
        (ids[6], "booked", "2026-03-08T08:00:00-07:00"),
        (ids[7], "booked", "2026-03-09T08:00:00-07:00"),
        (ids[8], "booked", "2026-03-10T08:00:00-07:00"),
        (ids[9], "booked", "2026-03-11T08:00:00-07:00"),
        (ids[10], "booked", "2026-03-12T08:00:00-07:00"),
        (ids[11], "booked", "2026-03-14T08:00:00-07:00"),
        (ids[12], "booked", "2026-03-15T08:00:00-07:00"),
        (ids[13], "booked", "2026-03-16T08:00:00-07:00"),
        (ids[14], "booked", "2026-03-17T08:00:00-07:00"),
    ]
    assert Session.objects.filter(patient=world.patient_a).count() == 15
    assert list(
        AuditEvent.objects.filter(actor_username="front_desk")
        .order_by("pk")
        .values_list("action", "object_type")
    ) == [
        ("create", "series"),
        ("create", "session"),
        ("reschedule", "session"),
        ("cancel", "session"),
        ("check_in", "session"),
        ("complete", "session"),
        ("no_show", "session"),
        ("read", "series"),
    ]
