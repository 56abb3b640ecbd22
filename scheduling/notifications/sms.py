"""SMS: a small backend interface of ours. A clinic plugs in its gateway by pointing
``SMS_BACKEND`` at a class with this ``send`` method (the provider's SDK lives inside it only).

A gateway that accepts an idempotency key (most do, as a client reference or a header) should be
passed ``idempotency_key`` so that a re-send after a worker crash is dropped by the gateway.
"""

from __future__ import annotations

import json
import sys
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from . import DeliveryError
from .files import deliver_once, safe_name


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        """Hand one text message to the gateway; return the gateway's message id.

        Raise ``DeliveryError`` when it is refused (``is_permanent=True`` for a bad number).
        Sending twice with one ``idempotency_key`` must deliver once.
        """
        ...


class FileSmsBackend:
    """The default: one JSON file per message in ``REMINDER_OUTBOX_DIR/sms``, named by its key.
    A second send with the same key is recognised and not written again."""

    def __init__(self) -> None:
        self.directory = settings.REMINDER_OUTBOX_DIR / "sms"

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        if not to:
            raise DeliveryError("The patient has no phone number.", is_permanent=True)
        content = json.dumps({"to": to, "body": body, "key": idempotency_key}).encode()
        deliver_once(self.directory, idempotency_key, ".json", content)
        return f"file:{safe_name(idempotency_key)}"


class ConsoleSmsBackend:
    """Writes each message to standard output: for development. It cannot deduplicate."""

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        if not to:
            raise DeliveryError("The patient has no phone number.", is_permanent=True)
        sys.stdout.write(f"SMS to {to} [{idempotency_key}]\n{body}\n\n")
        sys.stdout.flush()
        return f"console:{idempotency_key}"


def sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.SMS_BACKEND)()
    return backend
