"""Integration notes: written by the session's therapist only; read by that therapist and clinical
supervisors only; every read and write audited in one place."""

from __future__ import annotations

import logging

import pytest

from clinic.errors import InvalidInput, RuleViolation
from clinic.models import Role
from integration import clinical_selectors, services
from integration.errors import NotPermitted
from integration.models import IntegrationNote
from tests.factories import ClinicFactory, StaffMemberFactory, UserFactory, aware

pytestmark = pytest.mark.django_db

WRITTEN = aware(2026, 3, 3, 11, 15)


@pytest.fixture
def session(place):
    integration = place.book("integration", aware(2026, 3, 3, 10))
    place.run_integration(integration)
    return integration


@pytest.fixture
def note(place, session):
    return services.integration_note_write(
        session=session, author=place.therapist, body="Named one change to try.", now=WRITTEN
    )


def _audit(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "clinic.audit"]


def test_the_sessions_therapist_writes_a_note_and_the_write_is_audited(
    place, session, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="clinic.audit")

    note = services.integration_note_write(
        session=session, author=place.therapist, body="  Named one change to try.  ", now=WRITTEN
    )

    assert (note.author, note.body, note.created_at) == (
        place.therapist,
        "Named one change to try.",
        WRITTEN,
    )
    assert _audit(caplog) == [
        f"phi write integration_note={note.pk} session={session.pk} "
        f"patient={place.patient.pk} user={place.therapist.user_id}"
    ]


@pytest.mark.parametrize("who", ["other_therapist", "nurse", "admin", "front_desk"])
def test_nobody_else_writes_it(place, session, who) -> None:
    with pytest.raises(NotPermitted):
        services.integration_note_write(
            session=session, author=getattr(place, who), body="x", now=WRITTEN
        )
    assert IntegrationNote.objects.count() == 0


def test_notes_belong_to_integration_sessions_that_have_begun(place) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    upcoming = place.book("integration", aware(2026, 3, 4, 10))

    with pytest.raises(RuleViolation) as on_medicine:
        services.integration_note_write(
            session=medicine, author=place.therapist, body="x", now=WRITTEN
        )
    with pytest.raises(RuleViolation) as too_early:
        services.integration_note_write(
            session=upcoming, author=place.therapist, body="x", now=WRITTEN
        )
    with pytest.raises(InvalidInput) as empty:
        services.integration_note_write(
            session=upcoming, author=place.therapist, body="   ", now=WRITTEN
        )

    assert on_medicine.value.violations[0]["rule"] == "integration_session_only"
    assert too_early.value.violations[0]["rule"] == "note_before_session"
    assert empty.value.errors == {"body": ["1 to 20000 characters."]}
    assert IntegrationNote.objects.count() == 0


def test_readers(place, note, caplog) -> None:
    caplog.set_level(logging.INFO, logger="clinic.audit")
    caplog.clear()
    other_clinic_admin = StaffMemberFactory(clinic=ClinicFactory(), roles=[Role.CLINIC_ADMIN])
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)

    readers = {
        "therapist": place.therapist.user,
        "clinic admin": place.admin.user,
        "superuser": superuser,
    }
    refused = {
        "other therapist": place.other_therapist.user,
        "nurse": place.nurse.user,
        "prescriber": place.prescriber.user,
        "front desk": place.front_desk.user,
        "the patient": place.patient.user,
        "another clinic's admin": other_clinic_admin.user,
    }

    for user in readers.values():
        assert services.note_read(note, user) == note
    for user in refused.values():
        with pytest.raises(NotPermitted):
            services.note_read(note, user)

    assert _audit(caplog) == [
        f"phi read integration_note={note.pk} session={note.session_id} "
        f"patient={place.patient.pk} user={user.pk}"
        for user in readers.values()
    ]
    for who, user in {**readers, **refused}.items():
        visible = list(clinical_selectors.integration_notes_readable_by(user))
        assert visible == ([note] if who in readers else []), who


def test_a_deactivated_therapist_reads_nothing(place, note) -> None:
    place.therapist.is_active = False
    place.therapist.save()
    with pytest.raises(NotPermitted):
        services.note_read(note, place.therapist.user)


def test_session_notes_read_audits_each_note(place, session, note, caplog) -> None:
    addendum = services.integration_note_write(
        session=session, author=place.therapist, body="Addendum.", now=WRITTEN
    )
    caplog.set_level(logging.INFO, logger="clinic.audit")
    caplog.clear()

    notes = services.session_notes_read(session, place.admin.user)
    nothing = services.session_notes_read(session, place.front_desk.user)

    assert notes == [note, addendum]
    assert nothing == []
    assert [line.split()[2] for line in _audit(caplog)] == [
        f"integration_note={note.pk}",
        f"integration_note={addendum.pk}",
    ]
