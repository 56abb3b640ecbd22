"""A staff alert, deduplicated by a key so that a scan that runs again raises nothing new."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from clinic.models import Clinic, Role, StaffMember


class AlertKind(models.TextChoices):
    """Known kinds. The column is not limited to these: other apps add their own kinds."""

    SERIES_VIOLATION = "series_violation", "Series breaks a rule"
    INTEGRATION_OVERDUE = "integration_overdue", "Integration overdue"
    SCREENING_EXPIRED = "screening_expired", "Screening lapses before a medicine session"
    ESCORT_UNCONFIRMED = "escort_unconfirmed", "Ride home not confirmed"
    REMINDER_FAILED = "reminder_failed", "Reminder could not be sent"
    PHQ9_SELF_HARM = "phq9_self_harm", "PHQ-9: thoughts of self-harm (urgent)"


class StaffAlert(models.Model):
    """For a role at a clinic (``target_role``) or one staff member (``target_staff``)."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="staff_alerts")
    kind = models.CharField(max_length=40)
    message = models.TextField()
    target_role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    target_staff = models.ForeignKey(
        StaffMember, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    series = models.ForeignKey(
        "scheduling.TreatmentSeries",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
    )
    session = models.ForeignKey(
        "scheduling.Session", on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the alert was e-mailed to the people it targets."
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["clinic", "target_role", "-created_at"],
                name="alert_open_role_idx",
                condition=Q(acknowledged_at__isnull=True),
            ),
            models.Index(
                fields=["target_staff", "-created_at"],
                name="alert_open_staff_idx",
                condition=Q(acknowledged_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(target_role="") | Q(target_staff__isnull=False),
                name="alert_has_a_target",
            ),
            models.CheckConstraint(
                condition=Q(acknowledged_at__isnull=True)
                | Q(acknowledged_at__gte=models.F("created_at")),
                name="alert_acknowledged_after_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None
