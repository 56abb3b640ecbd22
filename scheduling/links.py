"""Signed links in reminders: one tap from an e-mail or SMS to confirm or cancel a session.

A link in a message is opened with a GET and carries no bearer token, so it cannot be the
portal's ``POST /api/v1/me/sessions/{id}/confirm/``. It is a signed token naming one session,
one action and the patient; opening it shows the session and a button, and the button's POST
(CSRF-protected) calls the same services as the portal. The token expires when the session
starts and is useless for anything else: it shows no name and reads no other record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from .models import Session

SALT = "scheduling.links.session-action"
ACTIONS = ("confirm", "cancel")
#: How long before its session a link may have been written (the longest reminder offset).
LONGEST_NOTICE = dt.timedelta(days=30)


@dataclass(frozen=True)
class SessionAction:
    session: Session
    action: str


class InvalidLink(Exception):
    """The link was altered, has expired, or names a session that no longer exists."""


def session_action_token(session: Session, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return signing.dumps({"s": session.pk, "p": session.patient_id, "a": action}, salt=SALT)


def session_action_url(session: Session, action: str) -> str:
    path = reverse("session-action-link", kwargs={"token": session_action_token(session, action)})
    return f"{settings.PORTAL_BASE_URL}{path}"


def session_action_from_token(token: str, *, now: dt.datetime | None = None) -> SessionAction:
    """The session and action a link names, or ``InvalidLink``."""
    now = now or timezone.now()
    try:
        data = signing.loads(token, salt=SALT, max_age=LONGEST_NOTICE)
    except signing.BadSignature as error:  # includes SignatureExpired
        raise InvalidLink("This link is not valid.") from error
    session = (
        Session.objects.select_related("clinic", "patient")
        .filter(pk=data.get("s"), patient_id=data.get("p"))
        .first()
    )
    if session is None or data.get("a") not in ACTIONS:
        raise InvalidLink("This link is not valid.")
    if session.starts_at <= now:
        raise InvalidLink("This session has already started; please call the clinic.")
    return SessionAction(session, data["a"])
