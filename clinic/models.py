"""The clinic's nouns: sites, rooms, staff, patients, screening and consent."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, available_timezones

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


def validate_timezone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


class User(AbstractUser):
    """A login: a staff member's, a patient's portal login, or a superuser's."""


class Weekday(models.IntegerChoices):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


class Clinic(models.Model):
    name = models.CharField(max_length=200, unique=True)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    late_cancel_hours = models.PositiveSmallIntegerField(
        default=24, help_text="A cancellation closer than this to the start is a late cancellation."
    )
    no_show_after_minutes = models.PositiveSmallIntegerField(
        default=30, help_text="A session not checked in this long after its start is a no-show."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class OpeningHours(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["clinic", "weekday", "start"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(start__lt=F("end")), name="opening_hours_start_before_end"
            ),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="opening_hours_weekday_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class Closure(models.Model):
    """A whole local day on which the clinic is closed (holiday, training day)."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="closures")
    date = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["clinic", "date"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "date"], name="closure_one_per_clinic_day")
        ]

    def __str__(self) -> str:
        return f"{self.clinic} closed {self.date}"


class RoomKind(models.TextChoices):
    INFUSION_CHAIR = "infusion_chair", "Infusion chair"
    DOSING_ROOM = "dosing_room", "Dosing room"
    THERAPY_ROOM = "therapy_room", "Therapy room"
    TELEHEALTH = "telehealth", "Telehealth"


class Room(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="rooms")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=RoomKind.choices)
    turnover_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="Cleaning and reset time the room is held after each session."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["clinic", "kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="room_name_unique_per_clinic"),
            models.CheckConstraint(condition=Q(kind__in=RoomKind.values), name="room_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Role(models.TextChoices):
    FRONT_DESK = "front_desk", "Front desk"
    NURSE = "nurse", "Nurse"
    PRESCRIBER = "prescriber", "Prescriber"
    THERAPIST = "therapist", "Therapist"
    CLINIC_ADMIN = "clinic_admin", "Clinic admin"


class StaffMember(models.Model):
    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="staff_profile")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="staff")
    full_name = models.CharField(max_length=200)
    max_concurrent_patients = models.PositiveSmallIntegerField(
        default=1,
        help_text="How many patients this person can look after at once: a nurse monitors several "
        "infusion chairs, a therapist sits with one patient.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["clinic", "full_name"]
        verbose_name = "staff member"
        constraints = [
            models.CheckConstraint(
                condition=Q(max_concurrent_patients__gte=1), name="staff_capacity_at_least_one"
            )
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def roles(self) -> list[str]:
        return sorted(grant.role for grant in self.role_grants.all())

    def has_role(self, role: str) -> bool:
        return role in self.roles


class StaffRole(models.Model):
    staff = models.ForeignKey(StaffMember, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        ordering = ["staff", "role"]
        constraints = [
            models.UniqueConstraint(fields=["staff", "role"], name="staff_role_unique"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="staff_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.staff}: {self.get_role_display()}"


class WorkingHours(models.Model):
    staff = models.ForeignKey(StaffMember, on_delete=models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["staff", "weekday", "start"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(start__lt=F("end")), name="working_hours_start_before_end"
            ),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="working_hours_weekday_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.staff} {self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class TimeOff(models.Model):
    staff = models.ForeignKey(StaffMember, on_delete=models.CASCADE, related_name="time_off")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["staff", "starts_at"]
        verbose_name_plural = "time off"
        constraints = [
            models.CheckConstraint(
                condition=Q(starts_at__lt=F("ends_at")), name="time_off_starts_before_ends"
            )
        ]

    def __str__(self) -> str:
        return f"{self.staff} off {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"


class Patient(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    full_name = models.CharField(max_length=200)
    date_of_birth = models.DateField()
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True, help_text="E.164, e.g. +14155550123")
    preferred_channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.EMAIL
    )
    timezone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_timezone],
        help_text="The patient's own time zone for reminders; the clinic's when blank.",
    )
    user = models.OneToOneField(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="patient_profile"
    )
    escort_name = models.CharField(max_length=200, blank=True)
    escort_phone = models.CharField(max_length=32, blank=True)
    outside_therapist_name = models.CharField(max_length=200, blank=True)
    outside_therapist_email = models.EmailField(blank=True)
    outside_therapist_phone = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["clinic", "full_name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(preferred_channel__in=Channel.values), name="patient_channel_valid"
            ),
            models.CheckConstraint(
                condition=~Q(preferred_channel="sms") | ~Q(phone=""),
                name="patient_sms_needs_phone",
            ),
            models.CheckConstraint(
                condition=~Q(preferred_channel="email") | ~Q(email=""),
                name="patient_email_needs_address",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone else self.clinic.tz


class ScreeningResult(models.TextChoices):
    CLEARED = "cleared", "Cleared"
    NOT_CLEARED = "not_cleared", "Not cleared"


class Screening(models.Model):
    """The medical screening that gates every medicine session: blood pressure and
    cardiovascular health, psychosis history, substance use, psychiatric history, current
    medications, readiness."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="screenings")
    result = models.CharField(max_length=20, choices=ScreeningResult.choices)
    contraindications = models.JSONField(default=list, blank=True)
    cleared_by = models.ForeignKey(
        StaffMember,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="screenings_cleared",
    )
    screened_on = models.DateField(default=timezone.localdate)
    valid_until = models.DateField()
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient", "-screened_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(result__in=ScreeningResult.values), name="screening_result_valid"
            ),
            models.CheckConstraint(
                condition=Q(valid_until__gte=F("screened_on")),
                name="screening_valid_until_after_screened_on",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient}: {self.get_result_display()} until {self.valid_until}"

    def is_valid_on(self, day: dt.date) -> bool:
        return (
            self.result == ScreeningResult.CLEARED and self.screened_on <= day <= self.valid_until
        )


class Consent(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    signed_at = models.DateTimeField()
    document_version = models.CharField(max_length=50)
    recorded_by = models.ForeignKey(
        StaffMember, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient", "-signed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "document_version"], name="consent_once_per_document_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient} consented to {self.document_version}"


class AuditEvent(models.Model):
    """Who read or wrote which patient data, when, and from where. Append-only: the application
    never updates or deletes a row, PostgreSQL refuses to (a trigger, migration 0002), and the
    admin shows the table read-only.

    One row per request: a list read records every id it returned in ``object_ids`` and the
    patients concerned in ``patient_ids`` (GIN-indexed on PostgreSQL, so "who saw this patient's
    data" is one indexed query). The actor is kept by id and name, not by foreign key, so the
    trail outlives the login and no cascade can ever try to rewrite it.
    """

    class Channel(models.TextChoices):
        API = "api", "REST API"
        ADMIN = "admin", "Django admin"
        CALENDAR_FEED = "calendar_feed", "Calendar feed"
        LINK = "reminder_link", "Link in a reminder"

    at = models.DateTimeField(default=timezone.now)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40)
    object_ids = models.JSONField(default=list)
    patient_ids = models.JSONField(default=list)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["at"], name="audit_at_idx"),
            models.Index(fields=["actor_id", "at"], name="audit_actor_at_idx"),
        ]

    def __str__(self) -> str:
        who = self.actor_username or "-"
        return f"{self.at:%Y-%m-%d %H:%M:%S}Z {who} {self.action} {self.object_type}"


class IdempotencyKey(models.Model):
    """The first answer to a creating POST sent with an ``Idempotency-Key``, replayed on retry.

    The row is written in the same transaction as the creation itself: a concurrent duplicate
    waits on the unique index until the first commits (then replays its answer) or rolls back
    (then runs itself), so the creation happens once.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class CalendarFeed(models.Model):
    """A secret address for a patient's calendar feed: calendar apps cannot send a bearer token.

    Only a hash of the secret is stored; a new secret replaces the old one (and revokes it).
    """

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="calendar_feed")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Calendar feed of patient {self.patient_id}"
