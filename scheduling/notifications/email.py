"""E-mail through Django's e-mail framework, with the idempotency key as the Message-ID.

``FileOutboxEmailBackend`` (the default) writes one ``.eml`` per message named by that key and
never writes a key twice. An SMTP relay gets the same Message-ID, but plain SMTP has no
deduplication: see the README's "Workers and reminders" for what that guarantees.
"""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from . import DeliveryError
from .files import deliver_once


def message_id_for(key: str) -> str:
    return f"<{key}@{settings.REMINDER_MESSAGE_ID_DOMAIN}>"


class FileOutboxEmailBackend(BaseEmailBackend):
    """One ``.eml`` file per message in ``REMINDER_OUTBOX_DIR/email``, named by the left part of its
    Message-ID (the reminder's idempotency key)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = settings.REMINDER_OUTBOX_DIR / "email"
        for message in email_messages:
            key = str(message.extra_headers.get("Message-ID", "")).strip("<>").split("@")[0]
            if not key:
                raise ValueError("FileOutboxEmailBackend needs a Message-ID on every message.")
            deliver_once(directory, key, ".eml", message.message().as_bytes())
        return len(email_messages)


def email_send(
    *, to: str, subject: str, body: str, idempotency_key: str, connection: Any = None
) -> str:
    """Send one message; return the provider's message id (anymail's) or our Message-ID."""
    if not to:
        raise DeliveryError("No e-mail address.", is_permanent=True)
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": message_id_for(idempotency_key)},
        connection=connection or get_connection(fail_silently=False),
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        raise DeliveryError(
            f"Recipient refused: {error.recipients!r}", is_permanent=min(codes, default=500) >= 500
        ) from error
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"SMTP {error.smtp_code}: {error.smtp_error!r}", is_permanent=error.smtp_code >= 500
        ) from error
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"{type(error).__name__}: {error}") from error
    status = getattr(message, "anymail_status", None)
    provider_id = getattr(status, "message_id", None) if status is not None else None
    return str(provider_id or message_id_for(idempotency_key))
