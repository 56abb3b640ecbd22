"""Domain errors the integration services add to ``clinic.errors``."""

from __future__ import annotations

from clinic.errors import DomainError


class NotPermitted(DomainError):
    """The caller may not do this (HTTP 403): a note written by someone other than the session's
    therapist, or read by someone who is neither that therapist nor a clinical supervisor."""

    status = 403
    title = "Not permitted"
    type = "https://ketamine-clinic.invalid/problems/not-permitted"
