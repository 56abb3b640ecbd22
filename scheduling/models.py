"""Treatment series, their sessions, and the holds each session places on rooms and staff.

No double booking is enforced by PostgreSQL, not only by Python: exclusion constraints over
``tstzrange`` keep a room, a patient and a single-capacity staff member from holding two live
sessions at once. A staff member who can look after several patients (a nurse watching infusion
chairs) is checked under a row lock on the staff member in ``scheduling.services``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.postgres.fields import RangeOperators
from django.db import models
from django.db.models import F, Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from clinic.db import OverlapExclusion, TsTzRange
from clinic.models import Clinic, Patient, Role, Room, StaffMember
from protocols.models import ProtocolVersion, Route, SessionKind


class SeriesStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    ON_HOLD = "on_hold", "On hold"
    DISCONTINUED = "discontinued", "Discontinued"


class TreatmentSeries(ConcurrentTransitionMixin, models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="series")
    protocol_version = models.ForeignKey(
        ProtocolVersion, on_delete=models.PROTECT, related_name="series"
    )
    status = FSMField(default=SeriesStatus.ACTIVE, choices=SeriesStatus.choices, protected=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status_reason = models.CharField(
        max_length=500, blank=True, help_text="Why the series was put on hold or discontinued."
    )
    preferred_therapist = models.ForeignKey(
        StaffMember, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    violations = models.JSONField(
        default=list, blank=True, help_text="The rules engine's findings at the last re-check."
    )
    violations_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "treatment series"
        verbose_name_plural = "treatment series"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=SeriesStatus.values), name="series_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient}: {self.protocol_version}"

    @transition(field=status, source=SeriesStatus.ACTIVE, target=SeriesStatus.ON_HOLD)
    def hold(self) -> None:
        """Pause the series (the patient is unwell, travelling, or awaiting a new screening)."""

    @transition(field=status, source=SeriesStatus.ON_HOLD, target=SeriesStatus.ACTIVE)
    def resume(self) -> None:
        """Take the series off hold."""

    @transition(
        field=status,
        source=[SeriesStatus.ACTIVE, SeriesStatus.ON_HOLD],
        target=SeriesStatus.COMPLETED,
    )
    def complete(self) -> None:
        """Every session of the protocol has taken place (or the clinic closes the course)."""

    @transition(
        field=status,
        source=[SeriesStatus.ACTIVE, SeriesStatus.ON_HOLD],
        target=SeriesStatus.DISCONTINUED,
    )
    def discontinue(self) -> None:
        """Stop the series before its end."""


class SessionStatus(models.TextChoices):
    """Each maps to a FHIR Appointment status (see ``FHIR_APPOINTMENT_STATUS``)."""

    BOOKED = "booked", "Booked"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    LATE_CANCELLED = "late_cancelled", "Late cancelled"
    NO_SHOW = "no_show", "No-show"


#: A series still running: a patient has at most one per care model (scheduling migration 0007).
OPEN_SERIES_STATUSES: tuple[str, ...] = (SeriesStatus.ACTIVE, SeriesStatus.ON_HOLD)

#: Statuses that hold their room, patient and staff. Cancelled and no-show sessions free the slot.
#: The longest a session may hold its room (turnover included) or a staff member: a database check,
#: so that reads of busy time can bound their index scans from below.
MAX_HOLD = dt.timedelta(days=1)

LIVE_STATUSES: tuple[str, ...] = (
    SessionStatus.BOOKED,
    SessionStatus.CONFIRMED,
    SessionStatus.CHECKED_IN,
    SessionStatus.COMPLETED,
)

FHIR_APPOINTMENT_STATUS: dict[str, str] = {
    SessionStatus.BOOKED: "booked",
    SessionStatus.CONFIRMED: "booked",
    SessionStatus.CHECKED_IN: "arrived",
    SessionStatus.COMPLETED: "fulfilled",
    SessionStatus.CANCELLED: "cancelled",
    SessionStatus.LATE_CANCELLED: "cancelled",
    SessionStatus.NO_SHOW: "noshow",
}


class Session(ConcurrentTransitionMixin, models.Model):
    """One appointment. The patient holds the room from ``starts_at`` to ``ends_at`` (recovery
    included); the room stays held until ``room_released_at`` for its turnover."""

    series = models.ForeignKey(
        TreatmentSeries, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="sessions")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="sessions")
    kind = models.CharField(max_length=20, choices=SessionKind.choices)
    route = models.CharField(max_length=20, choices=Route.choices, blank=True)
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="sessions")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    room_released_at = models.DateTimeField()
    status = FSMField(default=SessionStatus.BOOKED, choices=SessionStatus.choices, protected=True)
    revision = models.PositiveIntegerField(default=1, help_text="Bumped on every change; the ETag.")
    cancel_reason = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["clinic", "starts_at"], name="session_clinic_start_idx"),
            models.Index(fields=["patient", "starts_at"], name="session_patient_start_idx"),
            models.Index(fields=["room", "starts_at"], name="session_room_start_idx"),
            models.Index(fields=["series", "starts_at"], name="session_series_start_idx"),
            models.Index(fields=["status", "starts_at"], name="session_status_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(starts_at__lt=F("ends_at")), name="session_starts_before_ends"
            ),
            models.CheckConstraint(
                condition=Q(room_released_at__gte=F("ends_at")),
                name="session_room_released_after_end",
            ),
            # Reads of busy time can then bound their index scan from below: whatever overlaps a
            # window started at most a day before it (services cap a session at 12 hours).
            models.CheckConstraint(
                condition=Q(room_released_at__lte=F("starts_at") + MAX_HOLD),
                name="session_room_held_at_most_a_day",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SessionKind.values), name="session_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=SessionStatus.values), name="session_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind="medicine") | Q(route=""), name="session_route_only_for_medicine"
            ),
            OverlapExclusion(
                name="session_room_no_overlap",
                expressions=[
                    ("room", RangeOperators.EQUAL),
                    (TsTzRange("starts_at", "room_released_at"), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=LIVE_STATUSES),
            ),
            OverlapExclusion(
                name="session_patient_no_overlap",
                expressions=[
                    ("patient", RangeOperators.EQUAL),
                    (TsTzRange("starts_at", "ends_at"), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=LIVE_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.patient} at {self.starts_at:%Y-%m-%d %H:%M}Z"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def fhir_status(self) -> str:
        return FHIR_APPOINTMENT_STATUS[self.status]

    # The lifecycle. Transitions only change the status; scheduling.services applies their side
    # effects (freeing staff holds, timestamps, audit) so that every caller gets the same ones.

    @transition(field=status, source=SessionStatus.BOOKED, target=SessionStatus.CONFIRMED)
    def confirm(self) -> None:
        """The patient confirmed they will come."""

    @transition(
        field=status,
        source=[SessionStatus.BOOKED, SessionStatus.CONFIRMED],
        target=SessionStatus.CHECKED_IN,
    )
    def check_in(self) -> None:
        """The patient arrived."""

    @transition(field=status, source=SessionStatus.CHECKED_IN, target=SessionStatus.COMPLETED)
    def complete(self) -> None:
        """The session took place."""

    @transition(
        field=status,
        source=[SessionStatus.BOOKED, SessionStatus.CONFIRMED, SessionStatus.CHECKED_IN],
        target=SessionStatus.CANCELLED,
    )
    def cancel(self) -> None:
        """Cancelled in time, or stopped after check-in (vitals out of range, patient unwell)."""

    @transition(
        field=status,
        source=[SessionStatus.BOOKED, SessionStatus.CONFIRMED],
        target=SessionStatus.LATE_CANCELLED,
    )
    def late_cancel(self) -> None:
        """Cancelled inside the clinic's late-cancellation window."""

    @transition(
        field=status,
        source=[SessionStatus.BOOKED, SessionStatus.CONFIRMED],
        target=SessionStatus.NO_SHOW,
    )
    def mark_no_show(self) -> None:
        """The patient did not come."""


class SessionStaff(models.Model):
    """A staff member held by a session for ``[starts_at, ends_at)``: the nurse for the infusion
    minutes, the therapist for the whole medicine phase.

    ``is_active`` mirrors the session being live and ``is_exclusive`` the staff member's capacity
    being one: the exclusion constraint cannot join to either, so the services keep both in step.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="staff_holds")
    staff = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="holds")
    role = models.CharField(max_length=20, choices=Role.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    is_active = models.BooleanField(default=True)
    is_exclusive = models.BooleanField(default=True)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = "staff hold"
        indexes = [models.Index(fields=["staff", "starts_at"], name="staffhold_staff_start_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "staff"], name="staffhold_one_per_session_staff"
            ),
            models.CheckConstraint(
                condition=Q(starts_at__lt=F("ends_at")), name="staffhold_starts_before_ends"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__lte=F("starts_at") + MAX_HOLD),
                name="staffhold_at_most_a_day",
            ),
            OverlapExclusion(
                name="staffhold_single_capacity_no_overlap",
                expressions=[
                    ("staff", RangeOperators.EQUAL),
                    (TsTzRange("starts_at", "ends_at"), RangeOperators.OVERLAPS),
                ],
                condition=Q(is_active=True, is_exclusive=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.staff} as {self.role} {self.starts_at:%Y-%m-%d %H:%M}Z"


class Escort(models.Model):
    """The ride home after a medicine session: no driving until the next day. The front desk
    records who collects the patient and confirms it before the session."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="escort")
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=32)
    is_confirmed = models.BooleanField(default=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(is_confirmed=False) | Q(confirmed_at__isnull=False),
                name="escort_confirmed_has_time",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} for session {self.session_id}"


# The workers' models live beside their services; importing them here registers them with the app.
from .alerts.models import StaffAlert  # noqa: E402, F401
from .reminders.models import Reminder, ReminderPolicy  # noqa: E402, F401
