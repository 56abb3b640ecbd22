"""What a reminder says, rendered from templates in the patient's time zone.

Templates live in ``scheduling/templates/scheduling/reminders/<purpose>_{subject,email,sms}.txt``; a
clinic overrides one by putting a file of the same name under the project's ``templates/``.
Content is rendered when the reminder is sent, so it shows the ride home and the integration
session as they are then, not as they were at booking.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.template.loader import render_to_string

from clinic.models import Role
from protocols.models import SessionKind

from ..links import session_action_url
from ..models import LIVE_STATUSES, Session, SessionStatus
from .models import Reminder, ReminderPurpose


@dataclass(frozen=True)
class RenderedReminder:
    recipient: str
    subject: str
    body: str


def local_text(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``Tuesday 10 March 2026, 9:00 AM PDT``: a patient reads this, so no ISO format."""
    local = moment.astimezone(tz)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%A} {local.day} {local:%B %Y}, {hour}:{local:%M %p %Z}"


def _duration_text(delta: dt.timedelta) -> str:
    hours = max(round(delta.total_seconds() / 3600), 0)
    if hours >= 48:
        return f"{round(hours / 24)} days"
    return f"{hours} hours" if hours != 1 else "1 hour"


def portal_url(session: Session, action: str) -> str:
    """A signed link that confirms or cancels the session in one tap (``scheduling.links``):
    a message's link is opened with a GET and carries no bearer token."""
    return session_action_url(session, action)


def _next_integration(session: Session) -> Session | None:
    return (
        Session.objects.filter(
            patient_id=session.patient_id,
            kind=SessionKind.INTEGRATION,
            starts_at__gt=session.starts_at,
            status__in=LIVE_STATUSES,
        )
        .prefetch_related("staff_holds__staff")
        .order_by("starts_at")
        .first()
    )


def reminder_context(reminder: Reminder, *, now: dt.datetime) -> dict[str, Any]:
    session = reminder.session
    patient = session.patient
    tz = patient.tz
    context: dict[str, Any] = {
        "patient_name": patient.full_name,
        "clinic_name": session.clinic.name,
        "kind_label": session.get_kind_display().lower(),
        "is_medicine": session.kind == SessionKind.MEDICINE,
        "starts_local": local_text(session.starts_at, tz),
        "starts_in": _duration_text(session.starts_at - now),
        "tz_name": str(tz),
        "late_cancel_hours": session.clinic.late_cancel_hours,
        "confirm_url": portal_url(session, "confirm")
        if session.status == SessionStatus.BOOKED
        else "",
        "cancel_url": portal_url(session, "cancel")
        if session.status in (SessionStatus.BOOKED, SessionStatus.CONFIRMED)
        else "",
    }
    if context["is_medicine"]:
        escort = getattr(session, "escort", None)
        context["escort_name"] = escort.name if escort else ""
        context["escort_confirmed"] = bool(escort and escort.is_confirmed)
    if reminder.purpose == ReminderPurpose.AFTER_MEDICINE:
        integration = _next_integration(session)
        context["outside_therapist"] = patient.outside_therapist_name
        context["integration_local"] = local_text(integration.starts_at, tz) if integration else ""
        therapists = (
            [
                hold.staff.full_name
                for hold in integration.staff_holds.all()
                if hold.role == Role.THERAPIST
            ]
            if integration
            else []
        )
        context["integration_with"] = ", ".join(therapists)
        context["integration_confirm_url"] = (
            portal_url(integration, "confirm")
            if integration and integration.status == SessionStatus.BOOKED
            else ""
        )
    return context


def reminder_render(reminder: Reminder, *, now: dt.datetime) -> RenderedReminder:
    context = reminder_context(reminder, now=now)
    patient = reminder.session.patient
    base = f"scheduling/reminders/{reminder.purpose}"
    if reminder.channel == "sms":
        body = render_to_string(f"{base}_sms.txt", context).strip()
        return RenderedReminder(patient.phone, "", body)
    subject = " ".join(render_to_string(f"{base}_subject.txt", context).split())
    body = render_to_string(f"{base}_email.txt", context).strip() + "\n"
    return RenderedReminder(patient.email, subject, body)
