"""Reads of the reminder outbox: what the front desk sees (failed reminders) and per session."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from ..models import Session
from .models import Reminder, ReminderStatus


def reminders(
    *,
    clinic_id: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    due_from: dt.datetime | None = None,
    due_to: dt.datetime | None = None,
) -> QuerySet[Reminder]:
    """Reminders with their session and patient, newest due first: one query for a page."""
    rows = Reminder.objects.select_related("session__patient", "clinic")
    if clinic_id is not None:
        rows = rows.filter(clinic_id=clinic_id)
    if status is not None:
        rows = rows.filter(status=status)
    if channel is not None:
        rows = rows.filter(channel=channel)
    if due_from is not None:
        rows = rows.filter(due_at__gte=due_from)
    if due_to is not None:
        rows = rows.filter(due_at__lt=due_to)
    return rows.order_by("-due_at", "-id")


def reminders_failed(*, clinic_id: int | None = None) -> QuerySet[Reminder]:
    """Reminders that could not be delivered: the front desk calls these patients."""
    return reminders(clinic_id=clinic_id, status=ReminderStatus.FAILED)


def reminders_for_session(session: Session) -> QuerySet[Reminder]:
    return Reminder.objects.filter(session=session).order_by("due_at", "channel", "id")
