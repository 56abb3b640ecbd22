"""Channel backends: how a reminder leaves the building.

E-mail goes through Django's e-mail framework (``EMAIL_BACKEND``: any SMTP relay, anymail, or our
file outbox); SMS through the small interface in ``sms`` (``SMS_BACKEND``). Both are handed the
reminder's idempotency key; a backend that can deduplicate on it makes sending exactly once.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A channel refused a message. ``is_permanent``: retrying cannot help (a bad address)."""

    def __init__(self, message: str, *, is_permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.is_permanent = is_permanent
