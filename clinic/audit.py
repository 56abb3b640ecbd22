"""The audit trail of patient data: one function writes it, for the API and the admin alike."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .models import AuditEvent


def client_address(request: HttpRequest) -> str | None:
    """The caller's address. Behind a proxy (``AUDIT_TRUSTED_PROXIES`` > 0) the address that many
    hops from the right of ``X-Forwarded-For``; otherwise the socket's peer."""
    hops = int(getattr(settings, "AUDIT_TRUSTED_PROXIES", 0))
    if hops:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return _valid_address(forwarded[-hops])
        else:
            return None
    return _valid_address(request.META.get("REMOTE_ADDR", ""))


def _valid_address(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def audit_record(
    request: HttpRequest | Any,
    *,
    action: str,
    object_type: str,
    object_ids: Iterable[int],
    patient_ids: Iterable[int],
    channel: str = AuditEvent.Channel.API,
) -> AuditEvent:
    """Write one audit row for this request (one INSERT, whatever the number of objects)."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        user = None
    return AuditEvent.objects.create(
        actor_id=user.pk if user is not None else None,
        actor_username=user.get_username() if user is not None else "",
        channel=channel,
        action=action,
        object_type=object_type,
        object_ids=sorted({int(pk) for pk in object_ids}),
        patient_ids=sorted({int(pk) for pk in patient_ids}),
        ip_address=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
        method=request.method or "",
        path=request.get_full_path()[:500],
    )
