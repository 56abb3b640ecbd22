"""The admin shows every integration record read-only; integration notes only to superusers and
clinic admins, and opening a note is an audited read."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from clinic import services as clinic_services
from clinic.models import AuditEvent, Role
from integration import services
from tests.factories import (
    AdverseEventFactory,
    IntegrationDeclineFactory,
    IntegrationLinkFactory,
    IntegrationSafetyEventFactory,
    OutsideIntegrationFactory,
    QuestionnaireAssignmentFactory,
    StaffMemberFactory,
    UserFactory,
    VitalSignsFactory,
    aware,
)

pytestmark = pytest.mark.django_db

BODY = "Named one change to try this week."


@pytest.fixture(autouse=True)
def _plain_static_files(settings) -> None:
    """The admin's pages without a collectstatic manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def note(place):
    session = place.book("integration", aware(2026, 3, 3, 10))
    place.run_integration(session)
    return services.integration_note_write(
        session=session, author=place.therapist, body=BODY, now=aware(2026, 3, 3, 11, 15)
    )


def _url(model: str, action: str = "changelist", *args: object) -> str:
    return reverse(f"admin:integration_{model}_{action}", args=args)


def test_every_record_is_listed_and_viewable_read_only(client) -> None:
    records = {
        "integrationlink": IntegrationLinkFactory(),
        "outsideintegration": OutsideIntegrationFactory(),
        "integrationdecline": IntegrationDeclineFactory(),
        "questionnaireassignment": QuestionnaireAssignmentFactory(),
        "integrationsafetyevent": IntegrationSafetyEventFactory(),
        "vitalsigns": VitalSignsFactory(),
        "adverseevent": AdverseEventFactory(),
    }
    records["questionnaireresponse"] = records["integrationsafetyevent"].response
    records["doserecord"] = records["adverseevent"].dose
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))

    for model, record in records.items():
        assert client.get(_url(model)).status_code == 200, model
        page = client.get(_url(model, "change", record.pk))
        assert page.status_code == 200, model
        assert b'name="_save"' not in page.content, model
        assert client.get(_url(model, "add")).status_code == 403, model


def test_a_clinic_admin_opens_a_note_and_the_read_is_audited(place, note, client, caplog) -> None:
    supervisor = clinic_services.staff_create(
        clinic=place.clinic,
        username="casey",
        password="a-long-enough-passphrase-9",
        full_name="Casey Supervisor",
        roles=[Role.CLINIC_ADMIN],
    )
    client.force_login(supervisor.user)
    caplog.set_level(logging.INFO, logger="clinic.audit")
    caplog.clear()

    listing = client.get(_url("integrationnote"))
    page = client.get(_url("integrationnote", "change", note.pk))

    assert listing.status_code == 200
    assert BODY.encode() not in listing.content
    assert page.status_code == 200
    assert BODY.encode() in page.content
    assert [r.getMessage() for r in caplog.records if r.name == "clinic.audit"] == [
        f"phi read integration_note={note.pk} session={note.session_id} "
        f"patient={place.patient.pk} user={supervisor.user_id}"
    ]
    rows = AuditEvent.objects.filter(channel="admin", object_type="integration_note")
    assert sorted(rows.values_list("action", "object_ids", "patient_ids")) == [
        ("list", [note.pk], [place.patient.pk]),
        ("read", [note.pk], [place.patient.pk]),
    ]


def test_other_admin_users_do_not_see_notes(place, note, client) -> None:
    nurse = StaffMemberFactory(clinic=place.clinic, roles=[Role.NURSE])
    nurse.user.is_staff = True
    nurse.user.save()
    nurse.user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="integration")
    )
    client.force_login(nurse.user)

    assert client.get(_url("integrationnote")).status_code == 403
    assert client.get(_url("integrationnote", "change", note.pk)).status_code == 403
    assert client.get(_url("doserecord")).status_code == 200
