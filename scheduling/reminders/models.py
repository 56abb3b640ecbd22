"""The reminder policy of a clinic and the reminder outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from clinic.models import Channel, Clinic
from protocols.models import SessionKind

#: Which channel to use: the patient's own preference, or always e-mail, or always SMS.
CHANNEL_CHOICES = ("preferred", Channel.EMAIL.value, Channel.SMS.value)


def default_schedule() -> dict[str, list[dict[str, Any]]]:
    """72 h and 24 h before a screening or medicine session (the 24 h one of a medicine session by
    e-mail and SMS both: it carries the fasting and ride-home instructions); 24 h before others."""
    day_before = [{"hours_before": 24, "channels": ["preferred"]}]
    return {
        SessionKind.SCREENING: [{"hours_before": 72, "channels": ["preferred"]}, *day_before],
        SessionKind.PREPARATION: day_before,
        SessionKind.MEDICINE: [
            {"hours_before": 72, "channels": ["preferred"]},
            {"hours_before": 24, "channels": ["email", "sms"]},
        ],
        SessionKind.INTEGRATION: day_before,
        SessionKind.FOLLOW_UP: day_before,
    }


def validate_schedule(value: object) -> None:
    """``{kind: [{"hours_before": int, "channels": [...]}, ...]}`` with known kinds and channels."""
    if not isinstance(value, dict):
        raise ValidationError("The schedule maps session kinds to lists of reminders.")
    for kind, entries in value.items():
        if kind not in SessionKind.values:
            raise ValidationError(f"{kind!r} is not a session kind.")
        if not isinstance(entries, list):
            raise ValidationError(f"{kind}: a list of reminders.")
        for entry in entries:
            hours = entry.get("hours_before") if isinstance(entry, dict) else None
            channels = entry.get("channels") if isinstance(entry, dict) else None
            if not isinstance(hours, int) or not 0 < hours <= 24 * 30:
                raise ValidationError(f"{kind}: hours_before must be 1 to 720.")
            if (
                not isinstance(channels, list)
                or not channels
                or any(channel not in CHANNEL_CHOICES for channel in channels)
            ):
                raise ValidationError(f"{kind}: channels are some of {', '.join(CHANNEL_CHOICES)}.")


class ReminderPolicy(models.Model):
    """When and how a clinic's patients are reminded. Quiet hours are in the patient's zone."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="reminder_policy")
    schedule = models.JSONField(default=default_schedule, validators=[validate_schedule])
    quiet_start = models.TimeField(
        default=dt.time(21, 0), help_text="Local time quiet hours begin."
    )
    quiet_end = models.TimeField(default=dt.time(8, 0), help_text="Local time quiet hours end.")
    after_medicine_hours = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=3,
        help_text="Hours after a completed medicine session to send the integration reminder; "
        "empty: none.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "reminder policies"

    def __str__(self) -> str:
        return f"Reminder policy of {self.clinic}"


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending (claimed by a worker)"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ReminderPurpose(models.TextChoices):
    UPCOMING = "upcoming", "Before the session"
    AFTER_MEDICINE = "after_medicine", "After a medicine session"


class Reminder(models.Model):
    """One message to one patient on one channel: a row of the outbox.

    ``key`` is unique and is the idempotency key handed to the provider. ``session_starts_at`` is
    the start the reminder was written for: a moved session gets new rows (new keys) and its old
    pending ones are cancelled. ``lease_token`` and ``leased_until`` belong to the worker sending
    it; a row whose lease ran out is claimed again and re-sent under the same key.
    """

    session = models.ForeignKey(
        "scheduling.Session", on_delete=models.CASCADE, related_name="reminders"
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=20, choices=ReminderPurpose.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    offset_minutes = models.IntegerField(
        help_text="Minutes before the start (before the session) or after the end (after it)."
    )
    session_starts_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="When it should go out, quiet hours considered.")
    next_attempt_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING
    )
    key = models.CharField(max_length=120, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.UUIDField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                name="reminder_pending_due_idx",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["leased_until"],
                name="reminder_sending_lease_idx",
                condition=Q(status="sending"),
            ),
            models.Index(fields=["session", "status"], name="reminder_session_status_idx"),
            models.Index(fields=["clinic", "status", "due_at"], name="reminder_clinic_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReminderStatus.values), name="reminder_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values), name="reminder_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(purpose__in=ReminderPurpose.values), name="reminder_purpose_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="reminder_sent_has_sent_at",
            ),
            models.CheckConstraint(
                condition=~Q(status="sending")
                | Q(lease_token__isnull=False, leased_until__isnull=False),
                name="reminder_sending_has_lease",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} by {self.channel} for session {self.session_id}"
