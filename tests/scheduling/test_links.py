"""The signed confirm and cancel links in reminders, opened as a patient would."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from clinic.models import AuditEvent
from scheduling import services
from scheduling.links import session_action_token, session_action_url
from scheduling.models import Session
from tests.factories import aware

pytestmark = pytest.mark.django_db

BOOKED = aware(2026, 3, 2, 12)
START = aware(2026, 3, 9, 9)


@pytest.fixture
def session(site) -> Session:
    with time_machine.travel(BOOKED, tick=False):
        return services.session_create(
            patient=site.patient(timezone="America/New_York"), kind="integration", starts_at=START
        )


def _open(
    client: Client,
    session: Session,
    action: str,
    *,
    at: dt.datetime,
    post: bool = False,
    **data: str,
):
    with time_machine.travel(BOOKED, tick=False):
        path = "/" + session_action_url(session, action).split("/", 3)[3]
    with time_machine.travel(at, tick=False):
        page = client.get(path)
        if not post:
            return page
        return client.post(path, {"csrfmiddlewaretoken": page.cookies["csrftoken"].value, **data})


def test_confirm_link_shows_the_session_then_confirms_it(session) -> None:
    client = Client(enforce_csrf_checks=True)

    page = _open(client, session, "confirm", at=aware(2026, 3, 8, 9))
    done = _open(client, session, "confirm", at=aware(2026, 3, 8, 9), post=True)

    assert page.status_code == 200
    assert "Monday 09 March 2026, 12:00" in page.content.decode()  # 09:00 in Los Angeles
    assert "America/New_York" in page.content.decode()
    assert session.patient.full_name not in page.content.decode()
    assert done.status_code == 200
    assert "is confirmed" in done.content.decode()
    session.refresh_from_db()
    assert session.status == "confirmed"
    audit = AuditEvent.objects.order_by("id")
    assert list(audit.values_list("channel", "action", "object_ids")) == [
        ("reminder_link", "read", [session.pk]),
        ("reminder_link", "read", [session.pk]),
        ("reminder_link", "confirm", [session.pk]),
    ]


def test_cancel_link_inside_the_window_is_a_late_cancellation(session) -> None:
    done = _open(
        Client(enforce_csrf_checks=True),
        session,
        "cancel",
        at=aware(2026, 3, 8, 10),
        post=True,
        reason="Car trouble",
    )

    session.refresh_from_db()
    assert (session.status, session.cancel_reason) == ("late_cancelled", "Car trouble")
    assert "counts as a late cancellation" in done.content.decode()


def test_a_post_without_the_form_token_changes_nothing(session) -> None:
    client = Client(enforce_csrf_checks=True)
    with time_machine.travel(BOOKED, tick=False):
        path = "/" + session_action_url(session, "cancel").split("/", 3)[3]
    with time_machine.travel(aware(2026, 3, 5), tick=False):
        answer = client.post(path)

    assert answer.status_code == 403
    session.refresh_from_db()
    assert session.status == "booked"


@pytest.mark.parametrize(
    ("mangle", "at"),
    [
        (lambda token: token[:-2] + "xx", aware(2026, 3, 5)),  # altered
        (lambda token: token, aware(2026, 3, 9, 9)),  # the session has started
        (lambda token: token, aware(2026, 4, 9)),  # older than any reminder could be
    ],
    ids=["altered", "started", "expired"],
)
def test_bad_links_are_refused_and_change_nothing(session, mangle, at) -> None:
    with time_machine.travel(BOOKED, tick=False):
        token = mangle(session_action_token(session, "cancel"))
    with time_machine.travel(at, tick=False):
        answer = Client().post(f"/r/{token}/")

    assert answer.status_code in (403, 404)
    with time_machine.travel(at, tick=False):
        page = Client().get(f"/r/{token}/")
    assert page.status_code == 404
    session.refresh_from_db()
    assert session.status == "booked"


def test_confirming_a_cancelled_session_explains_why_not(session) -> None:
    with time_machine.travel(BOOKED, tick=False):
        services.session_cancel(session, reason="moved away")

    answer = _open(
        Client(enforce_csrf_checks=True), session, "confirm", at=aware(2026, 3, 5), post=True
    )

    assert answer.status_code == 422
    assert f"Session {session.pk} is cancelled; it cannot be confirmed." in answer.content.decode()
