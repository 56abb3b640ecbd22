"""Integration after a medicine session, through the API: the outside therapist's integration
(recorded, then confirmed by staff or by the patient in the portal), a declined integration, and
integration notes (the session's therapist writes; that therapist and supervisors read, audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clinic.models import AuditEvent, Role
from integration.models import IntegrationDecline, IntegrationNote, OutsideIntegration
from tests.api.clinical import (
    book_integration,
    book_medicine,
    escort,
    post,
    record_medicine_session,
    tokens_outlive_the_test,
)
from tests.factories import (
    ProtocolFactory,
    ProtocolVersionFactory,
    StaffMemberFactory,
    TreatmentSeriesFactory,
    aware,
)

pytestmark = pytest.mark.django_db

START = aware(2026, 3, 2, 10)
OUTSIDE = {
    "held_on": "2026-03-04",
    "therapist_name": "Dr. Morgan Hale",
    "therapist_email": "morgan.hale@example.org",
}


@pytest.fixture(autouse=True)
def _long_tokens(monkeypatch) -> None:
    tokens_outlive_the_test(monkeypatch)


@pytest.fixture
def medicine(world, as_user, frozen) -> int:
    """A completed medicine session of patient A (no series), now 11:30 on 2 March."""
    session_id = book_medicine(world, as_user, START)
    escort(world, as_user, session_id)
    record_medicine_session(world, as_user, frozen, session_id, START)
    return session_id


def _integration_status(as_user: Any, world: Any) -> list[str]:
    rows = as_user(world.therapist).get("/api/v1/caseload/").json()["results"]
    return [m["integration"]["status"] for row in rows for m in row["medicine_sessions"]]


def test_outside_integration_recorded_then_confirmed_by_the_patient(
    world, as_user, frozen, medicine
) -> None:
    recorded = post(
        as_user(world.therapist), f"/api/v1/sessions/{medicine}/outside-integration/", OUTSIDE
    )
    assert recorded.status_code == 201
    record_id = recorded.json()["id"]
    assert recorded.json() == {
        "id": record_id,
        "medicine_session": medicine,
        "therapist_name": "Dr. Morgan Hale",
        "therapist_email": "morgan.hale@example.org",
        "therapist_phone": "",
        "held_on": "2026-03-04",
        "is_confirmed": False,
        "confirmed_by": "",
        "confirmed_at": None,
    }
    assert _integration_status(as_user, world) == ["external"]
    portal = as_user(world.patient_a)
    # Not yet held: it cannot be confirmed.
    early = post(portal, f"/api/v1/me/outside-integrations/{record_id}/confirm/")
    assert early.status_code == 422
    assert [v["rule"] for v in early.json()["violations"]] == ["outside_integration_not_yet_held"]
    assert [r["id"] for r in portal.get("/api/v1/me/outside-integrations/").json()["results"]] == [
        record_id
    ]

    frozen.move_to(aware(2026, 3, 4, 18))
    confirmed = post(portal, f"/api/v1/me/outside-integrations/{record_id}/confirm/")

    assert confirmed.status_code == 200
    assert (
        confirmed.json()["is_confirmed"],
        confirmed.json()["confirmed_by"],
        confirmed.json()["confirmed_at"],
    ) == (True, "patient", "2026-03-04T18:00:00-08:00")
    assert _integration_status(as_user, world) == ["done"]
    # Patient B does not reach it.
    other = post(as_user(world.patient_b), f"/api/v1/me/outside-integrations/{record_id}/confirm/")
    assert other.status_code == 404


def test_staff_confirm_for_the_outside_therapist(world, as_user, frozen, medicine) -> None:
    record_id = post(
        as_user(world.front_desk), f"/api/v1/sessions/{medicine}/outside-integration/", OUTSIDE
    ).json()["id"]
    frozen.move_to(aware(2026, 3, 5, 9))
    path = f"/api/v1/outside-integrations/{record_id}/confirm/"

    assert post(as_user(world.nurse), path, {"confirmed_by": "therapist"}).status_code == 403
    bad = post(as_user(world.front_desk), path, {"confirmed_by": "neighbour"})
    assert bad.status_code == 400
    assert list(bad.json()["errors"]) == ["confirmed_by"]
    assert OutsideIntegration.objects.get().confirmed_at is None
    answer = post(as_user(world.front_desk), path, {"confirmed_by": "therapist"})

    assert answer.status_code == 200
    assert answer.json()["confirmed_by"] == "therapist"
    row = AuditEvent.objects.filter(object_type="outside_integration", action="confirm").get()
    assert (row.object_ids, row.patient_ids) == ([record_id], [world.patient_a.pk])


def test_outside_integration_input(world, as_user, frozen, medicine) -> None:
    therapist = as_user(world.therapist)
    path = f"/api/v1/sessions/{medicine}/outside-integration/"
    before = post(therapist, path, {**OUTSIDE, "held_on": "2026-03-01"})
    assert before.status_code == 400
    assert before.json()["errors"] == {"held_on": ["On or after 2026-03-02."]}
    nobody = post(therapist, path, {"held_on": "2026-03-04"})
    assert nobody.status_code == 400
    assert list(nobody.json()["errors"]) == ["therapist_name"]
    assert OutsideIntegration.objects.count() == 0


def test_a_declined_integration(world, as_user, frozen, medicine) -> None:
    path = f"/api/v1/sessions/{medicine}/decline-integration/"
    assert post(as_user(world.nurse), path, {"reason": "x"}).status_code == 403
    assert post(as_user(world.front_desk), path, {}).status_code == 400

    answer = post(
        as_user(world.prescriber), path, {"reason": "Chronic pain patient; offered, declined."}
    )

    assert answer.status_code == 201
    assert answer.json() == {
        "id": IntegrationDecline.objects.get().pk,
        "medicine_session": medicine,
        "series": None,
        "reason": "Chronic pain patient; offered, declined.",
        "recorded_by": world.prescriber.pk,
        "recorded_at": "2026-03-02T11:30:00-08:00",
    }
    assert _integration_status(as_user, world) == ["declined"]
    again = post(as_user(world.front_desk), path, {"reason": "Again."})
    assert again.status_code == 400
    assert again.json()["errors"] == {"medicine_session": ["Integration already declined."]}


def test_a_kap_series_cannot_decline_its_integration(world, as_user, frozen) -> None:
    series = TreatmentSeriesFactory(
        patient=world.patient_a,
        protocol_version=ProtocolVersionFactory(protocol=ProtocolFactory(care_model="kap")),
    )
    session_id = book_medicine(world, as_user, START, series=series.pk)
    answer = post(
        as_user(world.therapist),
        f"/api/v1/sessions/{session_id}/decline-integration/",
        {"reason": "Prefers not."},
    )
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["integration_is_part_of_kap"]
    assert IntegrationDecline.objects.count() == 0


def test_an_infusion_only_series_declines_integration(world, as_user, frozen) -> None:
    series = TreatmentSeriesFactory(
        patient=world.patient_a,
        protocol_version=ProtocolVersionFactory(protocol=ProtocolFactory(care_model="infusion")),
    )
    session_id = book_medicine(world, as_user, START, series=series.pk)
    escort(world, as_user, session_id)
    record_medicine_session(world, as_user, frozen, session_id, START)
    path = f"/api/v1/series/{series.pk}/decline-integration/"
    assert post(as_user(world.nurse), path, {"reason": "x"}).status_code == 403

    answer = post(as_user(world.front_desk), path, {"reason": "Infusion only, by choice."})

    assert answer.status_code == 201
    assert (answer.json()["series"], answer.json()["medicine_session"]) == (series.pk, None)
    frozen.move_to(START + dt.timedelta(days=30))
    assert _integration_status(as_user, world) == ["declined"]


def test_a_kap_series_cannot_decline_as_a_whole(world, as_user, frozen) -> None:
    series = TreatmentSeriesFactory(
        patient=world.patient_a, protocol_version=ProtocolVersionFactory()
    )
    answer = post(
        as_user(world.front_desk),
        f"/api/v1/series/{series.pk}/decline-integration/",
        {"reason": "Prefers not."},
    )
    assert answer.status_code == 422
    assert [v["rule"] for v in answer.json()["violations"]] == ["integration_is_part_of_kap"]
    assert IntegrationDecline.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# Notes


@pytest.fixture
def integration(world, as_user, frozen, medicine) -> int:
    """An integration session of patient A with ``world.therapist`` on 4 March, checked in."""
    session_id = book_integration(world, as_user, aware(2026, 3, 4, 14))
    frozen.move_to(aware(2026, 3, 4, 14))
    checked = post(as_user(world.front_desk), f"/api/v1/sessions/{session_id}/check-in/")
    assert checked.status_code == 200
    return session_id


def test_the_sessions_therapist_writes_and_supervisors_read(
    world, as_user, frozen, integration
) -> None:
    path = f"/api/v1/sessions/{integration}/notes/"
    written = post(as_user(world.therapist), path, {"body": "  Named one change to try.  "})
    assert written.status_code == 201
    note_id = written.json()["id"]
    assert written.json() == {
        "id": note_id,
        "session": integration,
        "author": world.therapist.pk,
        "author_name": "Therapist",
        "body": "Named one change to try.",
        "created_at": "2026-03-04T14:00:00-08:00",
    }

    for reader in (world.therapist, world.admin):
        answer = as_user(reader).get(path)
        assert answer.status_code == 200
        assert [n["id"] for n in answer.json()["results"]] == [note_id]
    reads = AuditEvent.objects.filter(object_type="integration_note", action="read")
    assert sorted(reads.values_list("actor_id", "object_ids", "patient_ids")) == sorted(
        [
            (world.therapist.user_id, [note_id], [world.patient_a.pk]),
            (world.admin.user_id, [note_id], [world.patient_a.pk]),
        ]
    )


def test_who_may_not_read_or_write_notes(world, as_user, frozen, integration) -> None:
    path = f"/api/v1/sessions/{integration}/notes/"
    post(as_user(world.therapist), path, {"body": "First."})
    colleague = StaffMemberFactory(clinic=world.clinic, roles=[Role.THERAPIST])
    reads_before = AuditEvent.objects.filter(object_type="integration_note").count()

    assert as_user(world.front_desk).get(path).status_code == 403
    assert as_user(world.nurse).get(path).status_code == 404  # not a session a nurse sees
    assert as_user(world.patient_a).get(path).status_code == 404
    assert as_user(colleague).get(path).status_code == 404  # not their patient
    assert as_user(world.other_therapist).get(path).status_code == 404
    assert post(as_user(world.admin), path, {"body": "Supervisor."}).status_code == 403
    assert post(as_user(world.front_desk), path, {"body": "Desk."}).status_code == 403
    assert IntegrationNote.objects.count() == 1
    assert AuditEvent.objects.filter(object_type="integration_note").count() == reads_before


def test_notes_need_a_begun_integration_session(world, as_user, frozen, medicine) -> None:
    booked = book_integration(world, as_user, aware(2026, 3, 5, 14))
    therapist = as_user(world.therapist)
    early = post(therapist, f"/api/v1/sessions/{booked}/notes/", {"body": "Too soon."})
    assert early.status_code == 422
    assert [v["rule"] for v in early.json()["violations"]] == ["note_before_session"]
    on_medicine = post(therapist, f"/api/v1/sessions/{medicine}/notes/", {"body": "Wrong one."})
    assert on_medicine.status_code == 422
    assert [v["rule"] for v in on_medicine.json()["violations"]] == ["integration_session_only"]
    empty = post(therapist, f"/api/v1/sessions/{booked}/notes/", {"body": ""})
    assert empty.status_code == 400
    assert list(empty.json()["errors"]) == ["body"]
    assert IntegrationNote.objects.count() == 0


def test_a_booked_integration_shows_on_the_caseload(world, as_user, frozen, medicine) -> None:
    assert _integration_status(as_user, world) == ["none"]
    book_integration(world, as_user, aware(2026, 3, 5, 14))
    assert _integration_status(as_user, world) == ["booked"]
    frozen.move_to(START + dt.timedelta(days=9))
    assert _integration_status(as_user, world) == ["booked"]
