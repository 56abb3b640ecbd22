"""Versioned protocol templates: the steps of a treatment series and the spacing rules between them.

A protocol version is immutable once written: a series pins the version it was booked under, and
editing a protocol writes a new version (``protocols.services.protocol_version_create``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from clinic.models import Role, RoomKind


class SessionKind(models.TextChoices):
    SCREENING = "screening", "Screening"
    PREPARATION = "preparation", "Preparation"
    MEDICINE = "medicine", "Medicine session"
    INTEGRATION = "integration", "Integration"
    FOLLOW_UP = "follow_up", "Follow-up"


class Route(models.TextChoices):
    IV = "iv", "Intravenous"
    IM = "im", "Intramuscular"
    SUBLINGUAL = "sublingual", "Sublingual"
    INTRANASAL = "intranasal", "Intranasal"


class CareModel(models.TextChoices):
    INFUSION = "infusion", "Infusion only"
    KAP = "kap", "Ketamine-assisted psychotherapy"
    MAINTENANCE = "maintenance", "Maintenance"


class RuleType(models.TextChoices):
    MIN_GAP = "min_gap", "Minimum gap"
    MAX_GAP = "max_gap", "Maximum gap"
    EACH_FOLLOWED_BY = "each_followed_by", "Each followed by"
    PRECEDES = "precedes", "Precedes"
    NOT_SAME_DAY = "not_same_day", "Not on the same day"
    MAX_PER_WINDOW = "max_per_window", "At most so many in a window"


class Protocol(models.Model):
    """A protocol's identity; its content lives in its versions."""

    name = models.CharField(max_length=200, unique=True)
    care_model = models.CharField(max_length=20, choices=CareModel.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(care_model__in=CareModel.values), name="protocol_care_model_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProtocolVersion(models.Model):
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    sources = models.TextField(blank=True, help_text="The literature this version follows.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["protocol", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["protocol", "version"], name="protocol_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="protocol_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.protocol.name} v{self.version}"


class ProtocolStep(models.Model):
    """``count`` sessions of one kind; ``duration_minutes`` is how long the patient holds the room,
    recovery included."""

    version = models.ForeignKey(ProtocolVersion, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20, choices=SessionKind.choices)
    count = models.PositiveSmallIntegerField()
    route = models.CharField(max_length=20, choices=Route.choices, blank=True)
    duration_minutes = models.PositiveSmallIntegerField()
    room_kind = models.CharField(max_length=20, choices=RoomKind.choices)
    repeatable = models.BooleanField(
        default=False,
        help_text="More sessions of this kind may be added to a series later (boosters).",
    )

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "position"], name="protocol_step_position_unique"
            ),
            models.UniqueConstraint(fields=["version", "kind"], name="protocol_step_kind_unique"),
            models.CheckConstraint(condition=Q(count__gte=1), name="protocol_step_count_positive"),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=5, duration_minutes__lte=720),
                name="protocol_step_duration_sane",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SessionKind.values), name="protocol_step_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(room_kind__in=RoomKind.values), name="protocol_step_room_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.count} x {self.kind} ({self.duration_minutes} min, {self.room_kind})"


class ProtocolStepRole(models.Model):
    """A staff role a step needs, for ``minutes`` from the start (the whole session when null)."""

    step = models.ForeignKey(ProtocolStep, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=20, choices=Role.choices)
    minutes = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["step", "id"]
        constraints = [
            models.UniqueConstraint(fields=["step", "role"], name="protocol_step_role_unique"),
            models.CheckConstraint(
                condition=Q(minutes__isnull=True) | Q(minutes__gte=1),
                name="protocol_step_role_minutes_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} ({self.minutes or 'whole session'} min)"


class ProtocolRule(models.Model):
    """A spacing rule as a typed row. ``after`` and ``before`` name session kinds in time order."""

    version = models.ForeignKey(ProtocolVersion, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveSmallIntegerField()
    type = models.CharField(max_length=20, choices=RuleType.choices)
    after = models.CharField(max_length=20, choices=SessionKind.choices)
    before = models.CharField(max_length=20, choices=SessionKind.choices, blank=True)
    days = models.PositiveSmallIntegerField(null=True, blank=True)
    hours = models.PositiveSmallIntegerField(null=True, blank=True)
    at_least = models.PositiveSmallIntegerField(null=True, blank=True)
    count = models.PositiveSmallIntegerField(null=True, blank=True)
    window_days = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "position"], name="protocol_rule_position_unique"
            ),
            models.CheckConstraint(
                condition=Q(type__in=RuleType.values), name="protocol_rule_type_valid"
            ),
            # The fields each rule type needs, and only those.
            models.CheckConstraint(
                condition=~Q(type__in=["min_gap", "max_gap"])
                | (
                    ~Q(before="")
                    & (
                        (Q(days__isnull=False) & Q(hours__isnull=True))
                        | (Q(days__isnull=True) & Q(hours__isnull=False))
                    )
                ),
                name="protocol_rule_gap_has_days_or_hours",
            ),
            models.CheckConstraint(
                condition=~Q(type="each_followed_by") | (~Q(before="") & Q(at_least__gte=1)),
                name="protocol_rule_followed_by_has_at_least",
            ),
            models.CheckConstraint(
                condition=~Q(type__in=["precedes", "not_same_day"]) | ~Q(before=""),
                name="protocol_rule_pair_has_before",
            ),
            models.CheckConstraint(
                condition=~Q(type="max_per_window") | Q(count__gte=1, window_days__gte=1),
                name="protocol_rule_window_has_count_and_days",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type}({self.after}, {self.before or '-'})"
