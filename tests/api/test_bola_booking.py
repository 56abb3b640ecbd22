"""Object-level authorization of whole-series booking and of moving a session: a caller who must
not reach the patient or the session is refused, and nothing is written.

Callers: patient A's token against patient B's session; the other clinic's front desk against
this clinic's patients and sessions."""

from __future__ import annotations

from typing import Any

import pytest

from clinic.models import AuditEvent
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from scheduling import services
from scheduling.models import Session, SessionStaff, TreatmentSeries
from tests.factories import aware

pytestmark = pytest.mark.django_db


@pytest.fixture
def kap(db: Any) -> ProtocolVersion:
    protocols_load_standard()
    return ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")


@pytest.fixture
def session_of_b(world, frozen) -> Session:
    return services.session_create(
        patient=world.patient_b,
        kind="integration",
        starts_at=aware(2026, 3, 4, 14),
        room=world.therapy_room,
        staff=[world.therapist],
    )


def _state() -> Any:
    return (
        TreatmentSeries.objects.count(),
        sorted(Session.objects.values_list("id", "starts_at", "ends_at", "room_id", "revision")),
        sorted(SessionStaff.objects.values_list("session_id", "staff_id", "starts_at")),
    )


@pytest.mark.parametrize("who", ["patient_a", "other_front_desk"])
def test_someone_else_session_cannot_be_moved(world, as_user, session_of_b, who) -> None:
    before = _state()

    response = as_user(getattr(world, who)).post(
        f"/api/v1/sessions/{session_of_b.pk}/reschedule/",
        {"starts_at": "2026-03-05T14:00:00-08:00", "cascade": False},
        format="json",
    )

    assert response.status_code == 404
    assert response.json()["detail"] == "Not found."
    assert _state() == before
    assert AuditEvent.objects.count() == 0


def test_an_unknown_session_is_404_like_an_invisible_one(world, as_user, session_of_b) -> None:
    response = as_user(world.front_desk).post(
        f"/api/v1/sessions/{session_of_b.pk + 1000}/reschedule/",
        {"starts_at": "2026-03-05T14:00:00-08:00"},
        format="json",
    )

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
def test_the_other_clinic_cannot_plan_or_book_for_this_clinic_patient(
    world, as_user, frozen, kap, path
) -> None:
    before = _state()

    response = as_user(world.other_front_desk).post(
        path,
        {"patient": world.patient_a.pk, "protocol": kap.pk, "earliest_start": "2026-03-02"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "patient": [f'Invalid pk "{world.patient_a.pk}" - object does not exist.']
    }
    assert _state() == before
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
def test_the_other_clinic_cannot_name_this_clinic_therapist(
    world, as_user, frozen, kap, path
) -> None:
    """Its own patient, with this clinic's therapist as the wish: an unknown therapist."""
    response = as_user(world.other_front_desk).post(
        path,
        {
            "patient": world.other_patient.pk,
            "protocol": kap.pk,
            "earliest_start": "2026-03-02",
            "preferences": {"therapist": world.therapist.pk},
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "preferences.therapist": [
            f"No therapist with id {world.therapist.pk} in the patient's clinic."
        ]
    }
    assert _state() == (0, [], [])


@pytest.mark.parametrize("path", ["/api/v1/series/plan/", "/api/v1/series/"])
def test_a_patient_token_cannot_plan_or_book_even_for_itself(
    world, as_user, frozen, kap, path
) -> None:
    response = as_user(world.patient_a).post(
        path,
        {"patient": world.patient_a.pk, "protocol": kap.pk, "earliest_start": "2026-03-02"},
        format="json",
    )

    assert response.status_code == 403
    assert _state() == (0, [], [])
