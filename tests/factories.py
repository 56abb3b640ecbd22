"""factory_boy factories for every model, shared by the apps' tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from clinic import models as clinic_models
from integration import models as integration_models
from protocols import models as protocol_models
from scheduling import models as scheduling_models

LA = "America/Los_Angeles"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery-staple")


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Clinic
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Clinic {n}")
    timezone = LA

    @factory.post_generation
    def opening_hours(self, create: bool, extracted: object, **kwargs: object) -> None:
        """Open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00 unless told otherwise."""
        if not create:
            return
        hours = (
            extracted
            if extracted is not None
            else [
                *[(day, dt.time(8), dt.time(18)) for day in range(5)],
                (5, dt.time(9), dt.time(13)),
            ]
        )
        for weekday, start, end in hours:
            clinic_models.OpeningHours.objects.create(
                clinic=self, weekday=weekday, start=start, end=end
            )


class OpeningHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.OpeningHours

    clinic = factory.SubFactory(ClinicFactory, opening_hours=[])
    weekday = 6
    start = dt.time(10)
    end = dt.time(14)


class ClosureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Closure

    clinic = factory.SubFactory(ClinicFactory)
    date = dt.date(2026, 12, 25)
    reason = "Holiday"


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Room

    clinic = factory.SubFactory(ClinicFactory)
    name = factory.Sequence(lambda n: f"Room {n}")
    kind = clinic_models.RoomKind.THERAPY_ROOM
    turnover_minutes = 15


class StaffMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.StaffMember
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    clinic = factory.SubFactory(ClinicFactory)
    full_name = factory.Sequence(lambda n: f"Staff Member {n}")
    max_concurrent_patients = 1

    @factory.post_generation
    def roles(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            for role in extracted or [clinic_models.Role.THERAPIST]:
                clinic_models.StaffRole.objects.create(staff=self, role=role)


class StaffRoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.StaffRole

    staff = factory.SubFactory(StaffMemberFactory, roles=[])
    role = clinic_models.Role.NURSE


class WorkingHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.WorkingHours

    staff = factory.SubFactory(StaffMemberFactory)
    weekday = 0
    start = dt.time(8)
    end = dt.time(18)


class TimeOffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.TimeOff

    staff = factory.SubFactory(StaffMemberFactory)
    starts_at = dt.datetime(2026, 3, 9, 16, tzinfo=dt.UTC)
    ends_at = dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC)
    reason = "Conference"


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Patient

    clinic = factory.SubFactory(ClinicFactory)
    full_name = factory.Sequence(lambda n: f"Patient {n}")
    date_of_birth = dt.date(1985, 5, 17)
    email = factory.Sequence(lambda n: f"patient{n}@example.org")
    phone = factory.Sequence(lambda n: f"+1415555{n:04d}")
    preferred_channel = clinic_models.Channel.EMAIL


class ScreeningFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Screening

    patient = factory.SubFactory(PatientFactory)
    result = clinic_models.ScreeningResult.CLEARED
    cleared_by = factory.SubFactory(
        StaffMemberFactory,
        clinic=factory.SelfAttribute("..patient.clinic"),
        roles=[clinic_models.Role.PRESCRIBER],
    )
    screened_on = dt.date(2026, 1, 5)
    valid_until = dt.date(2026, 7, 5)


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.Consent

    patient = factory.SubFactory(PatientFactory)
    signed_at = dt.datetime(2026, 1, 5, 17, tzinfo=dt.UTC)
    document_version = "KAP-consent-2026.1"


class ProtocolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = protocol_models.Protocol

    name = factory.Sequence(lambda n: f"Protocol {n}")
    care_model = protocol_models.CareModel.KAP


class ProtocolVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = protocol_models.ProtocolVersion

    protocol = factory.SubFactory(ProtocolFactory)
    version = factory.Sequence(lambda n: n + 1)


class ProtocolStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = protocol_models.ProtocolStep

    version = factory.SubFactory(ProtocolVersionFactory)
    position = factory.Sequence(lambda n: n)
    kind = protocol_models.SessionKind.INTEGRATION
    count = 1
    duration_minutes = 60
    room_kind = clinic_models.RoomKind.THERAPY_ROOM


class ProtocolStepRoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = protocol_models.ProtocolStepRole

    step = factory.SubFactory(ProtocolStepFactory)
    role = clinic_models.Role.THERAPIST


class ProtocolRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = protocol_models.ProtocolRule

    version = factory.SubFactory(ProtocolVersionFactory)
    position = factory.Sequence(lambda n: n)
    type = protocol_models.RuleType.MIN_GAP
    after = protocol_models.SessionKind.MEDICINE
    before = protocol_models.SessionKind.INTEGRATION
    days = 1


class TreatmentSeriesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = scheduling_models.TreatmentSeries

    patient = factory.SubFactory(PatientFactory)
    protocol_version = factory.SubFactory(ProtocolVersionFactory)


class SessionFactory(factory.django.DjangoModelFactory):
    """A row written directly, bypassing the booking service: for constraint tests and fixtures."""

    class Meta:
        model = scheduling_models.Session

    patient = factory.SubFactory(PatientFactory)
    clinic = factory.SelfAttribute("patient.clinic")
    room = factory.SubFactory(RoomFactory, clinic=factory.SelfAttribute("..patient.clinic"))
    kind = protocol_models.SessionKind.INTEGRATION
    starts_at = dt.datetime(2026, 3, 9, 17, tzinfo=dt.UTC)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(hours=1))
    room_released_at = factory.LazyAttribute(lambda o: o.ends_at + dt.timedelta(minutes=15))


class SessionStaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = scheduling_models.SessionStaff

    session = factory.SubFactory(SessionFactory)
    staff = factory.SubFactory(StaffMemberFactory, clinic=factory.SelfAttribute("..session.clinic"))
    role = clinic_models.Role.THERAPIST
    starts_at = factory.SelfAttribute("session.starts_at")
    ends_at = factory.SelfAttribute("session.ends_at")
    is_exclusive = factory.LazyAttribute(lambda o: o.staff.max_concurrent_patients == 1)


def aware(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = LA
) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


def now() -> dt.datetime:
    return timezone.now()


class EscortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = scheduling_models.Escort

    session = factory.SubFactory(SessionFactory, kind=protocol_models.SessionKind.MEDICINE)
    name = "Robin Nguyen"
    phone = "+14155550199"


class ClearedPatientFactory(PatientFactory):
    """A patient a prescriber has cleared (January to July 2026) and who has signed consent:
    ready for medicine sessions."""

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def clearance(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            ScreeningFactory(patient=self)
            ConsentFactory(patient=self)


# ---------------------------------------------------------------------------------------------
# integration


class MedicineSessionFactory(SessionFactory):
    """A medicine session row in a dosing room, written directly (no gates, no holds)."""

    kind = protocol_models.SessionKind.MEDICINE
    route = protocol_models.Route.IM
    room = factory.SubFactory(
        RoomFactory,
        clinic=factory.SelfAttribute("..patient.clinic"),
        kind=clinic_models.RoomKind.DOSING_ROOM,
    )
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(hours=2))


class IntegrationLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.IntegrationLink

    medicine_session = factory.SubFactory(MedicineSessionFactory)
    integration_session = factory.SubFactory(
        SessionFactory,
        patient=factory.SelfAttribute("..medicine_session.patient"),
        kind=protocol_models.SessionKind.INTEGRATION,
        starts_at=factory.LazyAttribute(
            lambda o: o.factory_parent.medicine_session.starts_at + dt.timedelta(days=1)
        ),
    )


class OutsideIntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.OutsideIntegration

    medicine_session = factory.SubFactory(MedicineSessionFactory)
    therapist_name = "Dr. Morgan Hale"
    therapist_email = "morgan.hale@example.org"
    held_on = dt.date(2026, 3, 11)


class IntegrationDeclineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.IntegrationDecline

    medicine_session = factory.SubFactory(MedicineSessionFactory)
    series = None
    reason = "Infusion only: the patient prefers not to start talk therapy now."
    recorded_by = factory.SubFactory(
        StaffMemberFactory, clinic=factory.SelfAttribute("..medicine_session.clinic")
    )
    recorded_at = dt.datetime(2026, 3, 9, 20, tzinfo=dt.UTC)


class IntegrationNoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.IntegrationNote

    session = factory.SubFactory(SessionFactory, kind=protocol_models.SessionKind.INTEGRATION)
    author = factory.SubFactory(
        StaffMemberFactory, clinic=factory.SelfAttribute("..session.clinic")
    )
    body = "Explored the imagery of the session; the patient named one change to try this week."
    created_at = dt.datetime(2026, 3, 9, 18, 30, tzinfo=dt.UTC)


class QuestionnaireAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.QuestionnaireAssignment

    series = factory.SubFactory(TreatmentSeriesFactory)
    instrument = integration_models.Instrument.PHQ9
    milestone = integration_models.Milestone.BASELINE
    available_from = dt.datetime(2026, 3, 2, 17, tzinfo=dt.UTC)
    due_at = dt.datetime(2026, 3, 9, 17, tzinfo=dt.UTC)


class QuestionnaireResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.QuestionnaireResponse

    assignment = factory.SubFactory(QuestionnaireAssignmentFactory)
    instrument = factory.SelfAttribute("assignment.instrument")
    answers = [1, 1, 1, 1, 1, 1, 1, 1, 0]
    total_score = 8
    severity = integration_models.Severity.MILD
    answered_at = dt.datetime(2026, 3, 8, 17, tzinfo=dt.UTC)


class IntegrationSafetyEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.IntegrationSafetyEvent

    response = factory.SubFactory(
        QuestionnaireResponseFactory,
        answers=[0, 0, 0, 0, 0, 0, 0, 0, 1],
        total_score=1,
        severity=integration_models.Severity.MINIMAL,
    )
    patient = factory.SelfAttribute("response.assignment.series.patient")
    item_number = 9
    answer = 1
    raised_at = factory.SelfAttribute("response.answered_at")


class DoseRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.DoseRecord

    session = factory.SubFactory(MedicineSessionFactory)
    route = protocol_models.Route.IM
    dose_mg = Decimal("52.50")
    weight_kg = Decimal("70.0")
    dose_mg_per_kg = Decimal("0.750")
    started_at = factory.LazyAttribute(lambda o: o.session.starts_at + dt.timedelta(minutes=10))
    ended_at = factory.LazyAttribute(lambda o: o.started_at + dt.timedelta(minutes=1))
    administered_by = factory.SubFactory(
        StaffMemberFactory,
        clinic=factory.SelfAttribute("..session.clinic"),
        roles=[clinic_models.Role.NURSE],
    )


class VitalSignsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.VitalSigns

    session = factory.SubFactory(MedicineSessionFactory)
    phase = integration_models.VitalsPhase.BEFORE
    measured_at = factory.LazyAttribute(lambda o: o.session.starts_at + dt.timedelta(minutes=5))
    systolic_mmhg = 124
    diastolic_mmhg = 78
    heart_rate_bpm = 72
    spo2_percent = 98
    recorded_by = factory.SubFactory(
        StaffMemberFactory,
        clinic=factory.SelfAttribute("..session.clinic"),
        roles=[clinic_models.Role.NURSE],
    )


class AdverseEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = integration_models.AdverseEvent

    dose = factory.SubFactory(DoseRecordFactory)
    code = integration_models.AdverseEventCode.NAUSEA
    noted_at = factory.LazyAttribute(lambda o: o.dose.started_at + dt.timedelta(minutes=30))
    recorded_by = factory.SelfAttribute("dose.administered_by")


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.AuditEvent

    channel = clinic_models.AuditEvent.Channel.API
    action = "read"
    object_type = "patient"
    object_ids = factory.List([1])
    patient_ids = factory.List([1])


class IdempotencyKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.IdempotencyKey

    user = factory.SubFactory(UserFactory)
    key = factory.Sequence(lambda n: f"key-{n}")
    fingerprint = "0" * 64
    status_code = 201
    response_body = factory.Dict({"id": 1})


class CalendarFeedFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = clinic_models.CalendarFeed

    patient = factory.SubFactory(PatientFactory)
    token_hash = factory.Sequence(lambda n: f"{n:064d}")


# --- Workers and reminders (issue 5) ---------------------------------------------------------


class ReminderPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = scheduling_models.ReminderPolicy
        django_get_or_create = ("clinic",)

    clinic = factory.SubFactory(ClinicFactory)


class ReminderFactory(factory.django.DjangoModelFactory):
    """An outbox row written directly: for dispatcher tests and the benchmark."""

    class Meta:
        model = scheduling_models.Reminder

    session = factory.SubFactory(SessionFactory)
    clinic = factory.SelfAttribute("session.clinic")
    purpose = "upcoming"
    channel = clinic_models.Channel.EMAIL
    offset_minutes = 24 * 60
    session_starts_at = factory.SelfAttribute("session.starts_at")
    due_at = factory.LazyAttribute(lambda o: o.session_starts_at - dt.timedelta(days=1))
    next_attempt_at = factory.SelfAttribute("due_at")
    key = factory.Sequence(lambda n: f"test-reminder-{n}")


class StaffAlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = scheduling_models.StaffAlert

    clinic = factory.SubFactory(ClinicFactory)
    kind = "series_violation"
    message = "A medicine session has no integration session after it."
    target_role = clinic_models.Role.FRONT_DESK
    dedupe_key = factory.Sequence(lambda n: f"test-alert-{n}")
