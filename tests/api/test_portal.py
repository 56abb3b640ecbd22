"""A patient-portal session: profile, own sessions and series, confirm, cancel within policy, and
the calendar feed (bearer and secret address)."""

from __future__ import annotations

import datetime as dt

import pytest
from icalendar import Calendar
from rest_framework.test import APIClient

from clinic.models import AuditEvent
from scheduling.models import Session, SessionStatus
from tests.api.conftest import book
from tests.factories import ProtocolVersionFactory, TreatmentSeriesFactory, aware

pytestmark = pytest.mark.django_db


def test_a_patient_portal_session(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    evening = book(  # 20:00 in Los Angeles on the 3rd is 04:00 UTC on the 4th
        desk,
        world.patient_a,
        "follow_up",
        aware(2026, 3, 3, 20),
        world.therapy_room,
        [world.prescriber],
    ).json()
    next_week = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 10),
        world.therapy_room,
        [world.therapist],
    ).json()
    tomorrow = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 3, 8),
        world.therapy_room,
        [world.therapist],
    ).json()
    book(
        desk,
        world.patient_b,
        "integration",
        aware(2026, 3, 9, 12),
        world.therapy_room,
        [world.therapist],
    )
    series = TreatmentSeriesFactory(
        patient=world.patient_a, protocol_version=ProtocolVersionFactory()
    )
    portal = as_user(world.patient_a)

    me = portal.get("/api/v1/me/").json()
    assert (me["id"], me["full_name"], me["clinic_details"]) == (
        world.patient_a.pk,
        "Alex Rivera",
        {
            "id": world.clinic.pk,
            "name": "Mesa Clinic",
            "timezone": "America/Los_Angeles",
            "late_cancel_hours": 24,
        },
    )
    sessions = portal.get("/api/v1/me/sessions/").json()
    assert [s["id"] for s in sessions["results"]] == [
        tomorrow["id"],
        evening["id"],
        next_week["id"],
    ]
    assert [s["id"] for s in portal.get("/api/v1/me/series/").json()["results"]] == [series.pk]
    # Dates are the clinic's: 3 March runs from 08:00 UTC to 08:00 UTC the next day.
    on_the_3rd = portal.get(
        "/api/v1/me/sessions/", {"date_from": "2026-03-03", "date_to": "2026-03-03"}
    ).json()
    assert [s["id"] for s in on_the_3rd["results"]] == [tomorrow["id"], evening["id"]]

    confirmed = portal.post(f"/api/v1/me/sessions/{next_week['id']}/confirm/", HTTP_IF_MATCH='"1"')
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    stale = portal.post(f"/api/v1/me/sessions/{next_week['id']}/cancel/", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 412
    in_time = portal.post(
        f"/api/v1/me/sessions/{next_week['id']}/cancel/", {"reason": "Travel"}, format="json"
    )
    assert (in_time.json()["status"], in_time.json()["cancel_reason"]) == ("cancelled", "Travel")
    late = portal.post(f"/api/v1/me/sessions/{tomorrow['id']}/cancel/")
    assert late.json()["status"] == "late_cancelled"
    again = portal.post(f"/api/v1/me/sessions/{tomorrow['id']}/cancel/")
    assert again.status_code == 422
    assert again.json()["violations"][0]["rule"] == "patient_portal_policy"

    ics = portal.get("/api/v1/me/calendar.ics")
    assert ics.status_code == 200
    assert ics["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(ics.content)
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {
        f"session-{tomorrow['id']}@ketamine-clinic",
        f"session-{evening['id']}@ketamine-clinic",
        f"session-{next_week['id']}@ketamine-clinic",
    }
    assert {uid: str(e["STATUS"]) for uid, e in events.items()} == {
        f"session-{tomorrow['id']}@ketamine-clinic": "CANCELLED",
        f"session-{evening['id']}@ketamine-clinic": "TENTATIVE",
        f"session-{next_week['id']}@ketamine-clinic": "CANCELLED",
    }
    event = events[f"session-{next_week['id']}@ketamine-clinic"]
    assert event.decoded("DTSTART") == aware(2026, 3, 9, 10)
    assert event["DTSTART"].params["TZID"] == "America/Los_Angeles"
    assert event.decoded("DTSTAMP").tzinfo.utcoffset(None) == dt.timedelta(0)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["America/Los_Angeles"]
    # The same UIDs on the next fetch.
    again_ics = Calendar.from_ical(portal.get("/api/v1/me/calendar.ics").content)
    assert {str(e["UID"]) for e in again_ics.walk("VEVENT")} == set(events)

    # The secret feed address, for calendar apps that cannot send a token.
    url = portal.post("/api/v1/me/calendar-feed/").json()["url"]
    anonymous = APIClient()
    feed = anonymous.get(url)
    assert feed.status_code == 200
    assert {str(e["UID"]) for e in Calendar.from_ical(feed.content).walk("VEVENT")} == set(events)
    replaced = portal.post("/api/v1/me/calendar-feed/").json()["url"]
    assert anonymous.get(url).status_code == 404  # the old address is revoked
    assert anonymous.get(replaced).status_code == 200
    feed_audit = AuditEvent.objects.filter(channel="calendar_feed").first()
    assert (feed_audit.patient_ids, feed_audit.actor_id) == ([world.patient_a.pk], None)
    assert Session.objects.filter(patient=world.patient_b, status=SessionStatus.BOOKED).count() == 1


def test_a_started_session_cannot_be_cancelled_in_the_portal(world, as_user, frozen) -> None:
    session = book(
        as_user(world.front_desk),
        world.patient_a,
        "integration",
        aware(2026, 3, 2, 9, 30),
        world.therapy_room,
        [world.therapist],
    ).json()
    frozen.move_to(aware(2026, 3, 2, 9, 45))
    refused = as_user(world.patient_a).post(f"/api/v1/me/sessions/{session['id']}/cancel/")
    assert refused.status_code == 422
    assert Session.objects.get(pk=session["id"]).status == SessionStatus.BOOKED


def test_staff_tokens_have_no_portal(world, as_user) -> None:
    assert as_user(world.front_desk).get("/api/v1/me/").status_code == 403
