"""Broken object-level authorization, the matrix: for every endpoint that takes an id, a caller
who must not reach the object gets 404 (not 403: its existence is private) and nothing changes.

Callers: patient A's token against patient B's objects; a therapist and a front desk of the other
clinic against this clinic's objects."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import Consent, Patient, Screening, TimeOff, WorkingHours
from scheduling.models import Escort, Session, TreatmentSeries
from tests.api.conftest import World, book
from tests.factories import ProtocolVersionFactory, TreatmentSeriesFactory, aware

pytestmark = pytest.mark.django_db


def _state() -> Any:
    return (
        sorted(Session.objects.values_list("id", "status", "revision", "cancel_reason")),
        sorted(TreatmentSeries.objects.values_list("id", "status", "status_reason")),
        sorted(Patient.objects.values_list("id", "full_name", "email", "phone")),
        Screening.objects.count(),
        Consent.objects.count(),
        Escort.objects.count(),
        WorkingHours.objects.count(),
        TimeOff.objects.count(),
    )


def _targets(world: World, as_user: Any) -> dict[str, int]:
    desk = as_user(world.front_desk)
    medicine = book(
        desk,
        world.patient_b,
        "medicine",
        aware(2026, 3, 9, 9),
        world.dosing_room,
        [world.therapist, world.nurse],
    ).json()
    series = TreatmentSeriesFactory(
        patient=world.patient_b, protocol_version=ProtocolVersionFactory()
    )
    return {
        "patient": world.patient_b.pk,
        "session": medicine["id"],
        "series": series.pk,
        "staff": world.therapist.pk,
        "room": world.dosing_room.pk,
        "clinic": world.clinic.pk,
    }


def _id_requests(t: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    p, s = t["patient"], t["session"]
    return [
        ("get", f"/api/v1/patients/{p}/", {}),
        ("patch", f"/api/v1/patients/{p}/", {"full_name": "Changed"}),
        ("get", f"/api/v1/patients/{p}/screenings/", {}),
        (
            "post",
            f"/api/v1/patients/{p}/screenings/",
            {"result": "not_cleared", "valid_until": "2026-12-01"},
        ),
        ("get", f"/api/v1/patients/{p}/consents/", {}),
        (
            "post",
            f"/api/v1/patients/{p}/consents/",
            {"signed_at": "2026-03-01T10:00:00-08:00", "document_version": "v9"},
        ),
        ("get", f"/api/v1/sessions/{s}/", {}),
        ("post", f"/api/v1/sessions/{s}/cancel/", {"reason": "x"}),
        (
            "post",
            f"/api/v1/sessions/{s}/escort/",
            {"name": "X", "phone": "+14155550100", "confirmed": True},
        ),
        ("post", f"/api/v1/sessions/{s}/check-in/", {}),
        ("post", f"/api/v1/sessions/{s}/complete/", {}),
        ("post", f"/api/v1/sessions/{s}/no-show/", {}),
        ("get", f"/api/v1/series/{t['series']}/", {}),
        ("post", f"/api/v1/series/{t['series']}/hold/", {"reason": "x"}),
        ("post", f"/api/v1/series/{t['series']}/resume/", {}),
        ("post", f"/api/v1/series/{t['series']}/discontinue/", {"reason": "x"}),
        ("post", f"/api/v1/series/{t['series']}/complete/", {}),
        ("get", f"/api/v1/staff/{t['staff']}/", {}),
        (
            "post",
            f"/api/v1/staff/{t['staff']}/working-hours/",
            {"weekday": 6, "start": "10:00", "end": "11:00"},
        ),
        (
            "post",
            f"/api/v1/staff/{t['staff']}/time-off/",
            {"starts_at": "2026-04-01T08:00:00-07:00", "ends_at": "2026-04-02T08:00:00-07:00"},
        ),
        ("get", f"/api/v1/rooms/{t['room']}/", {}),
        ("get", f"/api/v1/clinics/{t['clinic']}/", {}),
    ]


def _assert_all_404(client: Any, requests: list[tuple[str, str, dict[str, Any]]]) -> None:
    answers = {
        (method, path): getattr(client, method)(path, body, format="json").status_code
        for method, path, body in requests
    }
    assert {key: code for key, code in answers.items() if code != 404} == {}


def test_patient_a_cannot_reach_patient_b(world, as_user, frozen) -> None:
    targets = _targets(world, as_user)
    before = _state()
    portal = as_user(world.patient_a)
    _assert_all_404(portal, _id_requests(targets))
    _assert_all_404(
        portal,
        [
            ("post", f"/api/v1/me/sessions/{targets['session']}/confirm/", {}),
            ("post", f"/api/v1/me/sessions/{targets['session']}/cancel/", {}),
        ],
    )
    # List filters: the portal's own lists never widen to another patient.
    own = portal.get("/api/v1/me/sessions/", {"patient": targets["patient"]}).json()
    assert own["results"] == []
    assert portal.get("/api/v1/me/series/").json()["results"] == []
    # Staff lists are not the portal's: 403, and nothing listed.
    assert portal.get("/api/v1/sessions/", {"patient": targets["patient"]}).status_code == 403
    assert portal.get("/api/v1/patients/").status_code == 403
    assert portal.get("/api/v1/day-sheet/", {"date": "2026-03-09"}).status_code == 403
    assert _state() == before


@pytest.mark.parametrize("outsider", ["other_therapist", "other_front_desk"])
def test_staff_of_another_clinic_cannot_reach_this_one(world, as_user, frozen, outsider) -> None:
    targets = _targets(world, as_user)
    before = _state()
    client = as_user(getattr(world, outsider))
    _assert_all_404(client, _id_requests(targets))
    for path, query in (
        ("/api/v1/sessions/", {"patient": targets["patient"]}),
        ("/api/v1/sessions/", {"clinic": targets["clinic"]}),
        ("/api/v1/sessions/", {"staff": targets["staff"]}),
        ("/api/v1/patients/", {"clinic": targets["clinic"]}),
        ("/api/v1/series/", {"patient": targets["patient"]}),
        ("/api/v1/rooms/", {"clinic": targets["clinic"]}),
        ("/api/v1/staff/", {"clinic": targets["clinic"]}),
    ):
        answer = client.get(path, query)
        assert (path, answer.status_code, answer.json()["count"]) == (path, 200, 0)
    assert (
        client.get(
            "/api/v1/day-sheet/", {"date": "2026-03-09", "clinic": targets["clinic"]}
        ).status_code
        == 404
    )
    # The caseload: a therapist elsewhere is not found; a front desk never reads caseloads.
    caseload = client.get("/api/v1/caseload/", {"therapist": targets["staff"]}).status_code
    assert caseload == (404 if outsider == "other_therapist" else 403)
    booked = book(
        client,
        world.patient_b,
        "integration",
        aware(2026, 3, 10, 9),
        world.therapy_room,
        [world.therapist],
    )
    assert booked.status_code in (400, 403)
    assert _state() == before


def test_a_therapist_sees_only_their_caseload(world, as_user, frozen) -> None:
    desk = as_user(world.front_desk)
    theirs = book(
        desk,
        world.patient_a,
        "integration",
        aware(2026, 3, 9, 9),
        world.therapy_room,
        [world.therapist],
    ).json()
    others = book(
        desk,
        world.patient_b,
        "follow_up",
        aware(2026, 3, 9, 11),
        world.therapy_room,
        [world.prescriber],
    ).json()
    therapist = as_user(world.therapist)
    listed = therapist.get("/api/v1/sessions/").json()["results"]
    assert [s["id"] for s in listed] == [theirs["id"]]
    assert therapist.get(f"/api/v1/sessions/{others['id']}/").status_code == 404
    assert therapist.get(f"/api/v1/patients/{world.patient_b.pk}/").status_code == 404
    assert [p["id"] for p in therapist.get("/api/v1/patients/").json()["results"]] == [
        world.patient_a.pk
    ]
