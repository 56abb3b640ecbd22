"""The pages behind the signed links in reminders (``scheduling.links``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from clinic.audit import audit_record
from clinic.errors import DomainError
from clinic.models import AuditEvent

from . import services
from .links import InvalidLink, SessionAction, session_action_from_token
from .models import SessionStatus

TEMPLATE = "scheduling/links/session_action.html"


def _context(found: SessionAction, **extra: object) -> dict[str, object]:
    session = found.session
    tz = session.patient.tz
    return {
        "action": found.action,
        "clinic_name": session.clinic.name,
        "kind_label": session.get_kind_display().lower(),
        "starts_local": timezone.localtime(session.starts_at, tz).strftime("%A %d %B %Y, %H:%M"),
        "tz_name": str(tz),
        "status": session.status,
        "late_cancel_hours": session.clinic.late_cancel_hours,
        **extra,
    }


@never_cache
@require_http_methods(["GET", "POST"])
def session_action_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the session and one button; POST confirms or cancels it through the services."""
    try:
        found = session_action_from_token(token)
    except InvalidLink as error:
        return render(request, TEMPLATE, {"problem": str(error)}, status=404)
    session = found.session
    audit_record(
        request,
        action="read" if request.method == "GET" else found.action,
        object_type="session",
        object_ids=[session.pk],
        patient_ids=[session.patient_id],
        channel=AuditEvent.Channel.LINK,
    )
    if request.method == "GET":
        return render(request, TEMPLATE, _context(found))
    try:
        if found.action == "confirm":
            if session.status != SessionStatus.CONFIRMED:
                session = services.session_confirm(session)
        else:
            reason = request.POST.get("reason", "").strip()[:500]
            session = services.session_cancel(
                session, reason=reason or "Cancelled by the patient from a reminder"
            )
    except DomainError as error:
        return render(
            request, TEMPLATE, _context(found, problem=error.message), status=error.status
        )
    return render(request, TEMPLATE, _context(found, done=True, status=session.status))
