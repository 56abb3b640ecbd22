"""Raising, notifying and acknowledging staff alerts."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from clinic.models import Clinic, StaffMember, User

from .models import StaffAlert

logger = logging.getLogger(__name__)


def staff_alert_raise(
    *,
    clinic: Clinic | int,
    kind: str,
    message: str,
    dedupe_key: str,
    target_role: str = "",
    target_staff: StaffMember | None = None,
    series_id: int | None = None,
    session_id: int | None = None,
) -> tuple[StaffAlert, bool]:
    """Raise an alert once per ``dedupe_key``; returns ``(alert, created)``.

    The unique key makes a scan that runs twice (or twice at once) raise one alert; a new alert
    is e-mailed to its targets after the transaction commits.
    """
    if not target_role and target_staff is None:
        raise ValueError("An alert needs a target role or a target staff member.")
    clinic_id = clinic if isinstance(clinic, int) else clinic.pk
    with transaction.atomic():
        alert, created = StaffAlert.objects.get_or_create(
            dedupe_key=dedupe_key[:200],
            defaults={
                "clinic_id": clinic_id,
                "kind": kind,
                "message": message,
                "target_role": target_role,
                "target_staff": target_staff,
                "series_id": series_id,
                "session_id": session_id,
            },
        )
    if created:
        from scheduling.tasks import enqueue_on_commit, staff_alert_notify

        enqueue_on_commit(staff_alert_notify, alert.pk)
    return alert, created


def staff_alert_recipients(alert: StaffAlert) -> list[str]:
    """E-mail addresses of the active staff the alert targets."""
    if alert.target_staff_id is not None:
        users = User.objects.filter(staff_profile__id=alert.target_staff_id)
    else:
        users = User.objects.filter(
            staff_profile__clinic_id=alert.clinic_id,
            staff_profile__is_active=True,
            staff_profile__role_grants__role=alert.target_role,
        )
    return sorted(
        set(users.filter(is_active=True).exclude(email="").values_list("email", flat=True))
    )


def staff_alert_notify(alert: StaffAlert, *, now: dt.datetime | None = None) -> int:
    """E-mail an alert to its targets once; returns how many addresses it went to.

    The row is locked while it is sent and stamped ``notified_at`` in the same transaction, so two
    workers never both send it. A worker killed after the relay accepted the message and before
    the commit leaves it unstamped and it is sent again (at least once, with the same Message-ID).
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = (
            StaffAlert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("clinic")
            .filter(pk=alert.pk, notified_at__isnull=True)
            .first()
        )
        if current is None:
            return 0
        recipients = staff_alert_recipients(current)
        if recipients:
            body = render_to_string(
                "scheduling/alerts/alert_email.txt",
                {
                    "alert": current,
                    "raised_local": current.created_at.astimezone(current.clinic.tz).strftime(
                        "%Y-%m-%d %H:%M %Z"
                    ),
                    "admin_url": f"{settings.PORTAL_BASE_URL}/admin/scheduling/staffalert/"
                    f"{current.pk}/change/",
                },
            )
            EmailMessage(
                subject=f"[{current.clinic.name}] {current.message[:120]}",
                body=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=recipients,
                headers={
                    "Message-ID": f"<alert-{current.pk}@{settings.REMINDER_MESSAGE_ID_DOMAIN}>"
                },
            ).send()
        current.notified_at = now
        current.save(update_fields=["notified_at"])
    return len(recipients)


def staff_alert_acknowledge(
    alert: StaffAlert, *, by: User | None, now: dt.datetime | None = None
) -> StaffAlert:
    """Mark an alert as seen and dealt with; acknowledging twice keeps the first time."""
    now = now or timezone.now()
    with transaction.atomic():
        current = StaffAlert.objects.select_for_update(of=("self",)).get(pk=alert.pk)
        if current.acknowledged_at is None:
            current.acknowledged_at = max(now, current.created_at)
            current.acknowledged_by = by
            current.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return current
