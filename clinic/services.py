"""Writing the clinic's nouns: sites, rooms, staff and their hours, patients, screening, consent."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import InvalidInput
from .models import (
    Clinic,
    Consent,
    OpeningHours,
    Patient,
    Role,
    Room,
    Screening,
    ScreeningResult,
    StaffMember,
    StaffRole,
    TimeOff,
    User,
    WorkingHours,
    validate_timezone,
)


def _weekly_hours(
    entries: Iterable[Mapping[str, object]], field: str
) -> list[tuple[int, dt.time, dt.time]]:
    """Check a list of ``{weekday, start, end}``: weekdays 0-6, start before end, no overlaps."""
    hours: list[tuple[int, dt.time, dt.time]] = []
    for entry in entries:
        weekday, start, end = entry["weekday"], entry["start"], entry["end"]
        if not isinstance(weekday, int) or not 0 <= weekday <= 6:
            raise InvalidInput(
                "weekday is 0 (Monday) to 6 (Sunday).", {field: ["weekday is 0 to 6."]}
            )
        if not isinstance(start, dt.time) or not isinstance(end, dt.time) or start >= end:
            raise InvalidInput(
                "Each start must be before its end.", {field: ["start must be before end."]}
            )
        hours.append((weekday, start, end))
    hours.sort()
    for (day_a, _, end_a), (day_b, start_b, _) in itertools.pairwise(hours):
        if day_a == day_b and start_b < end_a:
            raise InvalidInput(
                "Hours on the same day overlap.", {field: ["Hours on the same day overlap."]}
            )
    return hours


@transaction.atomic
def clinic_create(
    *,
    name: str,
    timezone_name: str,
    opening_hours: Sequence[Mapping[str, object]] = (),
    **settings: int,
) -> Clinic:
    try:
        validate_timezone(timezone_name)
    except ValidationError as error:
        raise InvalidInput(error.messages[0], {"timezone": error.messages}) from error
    hours = _weekly_hours(opening_hours, "opening_hours")
    if Clinic.objects.filter(name=name).exists():
        raise InvalidInput(
            f"A clinic named {name!r} exists.", {"name": ["A clinic with this name exists."]}
        )
    clinic = Clinic.objects.create(name=name, timezone=timezone_name, **settings)
    OpeningHours.objects.bulk_create(
        OpeningHours(clinic=clinic, weekday=day, start=start, end=end) for day, start, end in hours
    )
    return clinic


def room_create(
    *, clinic: Clinic, name: str, kind: str, turnover_minutes: int | None = None
) -> Room:
    if Room.objects.filter(clinic=clinic, name=name).exists():
        raise InvalidInput(
            f"{clinic.name} already has a room named {name!r}.", {"name": ["Already taken."]}
        )
    extra = {} if turnover_minutes is None else {"turnover_minutes": turnover_minutes}
    return Room.objects.create(clinic=clinic, name=name, kind=kind, **extra)


def _user_create(username: str, password: str, *, email: str = "", name: str = "") -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput(
            f"The username {username!r} is taken.", {"username": ["This username is taken."]}
        )
    user = User(username=username, email=email, first_name=name[:150])
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput("The password is too weak.", {"password": error.messages}) from error
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as error:  # the same username, created a moment ago by someone else
        raise InvalidInput(
            f"The username {username!r} is taken.", {"username": ["This username is taken."]}
        ) from error
    return user


@transaction.atomic
def staff_create(
    *,
    clinic: Clinic,
    username: str,
    password: str,
    full_name: str,
    roles: Sequence[str],
    max_concurrent_patients: int = 1,
    email: str = "",
) -> StaffMember:
    unknown = sorted(set(roles) - set(Role.values))
    if unknown or not roles:
        raise InvalidInput(
            "Unknown or missing roles.", {"roles": [f"Each one of {', '.join(Role.values)}."]}
        )
    if max_concurrent_patients < 1:
        raise InvalidInput(
            "Capacity must be at least 1.", {"max_concurrent_patients": ["At least 1."]}
        )
    user = _user_create(username, password, email=email, name=full_name)
    member = StaffMember.objects.create(
        user=user,
        clinic=clinic,
        full_name=full_name,
        max_concurrent_patients=max_concurrent_patients,
    )
    StaffRole.objects.bulk_create(StaffRole(staff=member, role=role) for role in sorted(set(roles)))
    if Role.CLINIC_ADMIN in roles:
        _admin_site_grant(user)
    return member


CLINIC_ADMIN_GROUP = "Clinic admins"
ADMIN_SITE_APPS = ("clinic", "protocols", "scheduling", "integration", "django_celery_beat")


def _admin_site_grant(user: User) -> None:
    """A clinic admin manages the clinic in the Django admin: staff status and the group that holds
    the permissions on the clinic's own apps."""
    group, created = Group.objects.get_or_create(name=CLINIC_ADMIN_GROUP)
    if created or not group.permissions.exists():
        group.permissions.set(
            Permission.objects.filter(content_type__app_label__in=ADMIN_SITE_APPS)
        )
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(group)


@transaction.atomic
def working_hours_add(
    *, staff: StaffMember, weekday: int, start: dt.time, end: dt.time
) -> WorkingHours:
    existing = [
        {"weekday": hours.weekday, "start": hours.start, "end": hours.end}
        for hours in WorkingHours.objects.select_for_update(of=("self",)).filter(
            staff=staff, weekday=weekday
        )
    ]
    _weekly_hours([*existing, {"weekday": weekday, "start": start, "end": end}], "working_hours")
    return WorkingHours.objects.create(staff=staff, weekday=weekday, start=start, end=end)


def time_off_add(
    *, staff: StaffMember, starts_at: dt.datetime, ends_at: dt.datetime, reason: str = ""
) -> TimeOff:
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise InvalidInput("Times need a UTC offset.", {"starts_at": ["Give an offset."]})
    if ends_at <= starts_at:
        raise InvalidInput(
            "ends_at must be after starts_at.", {"ends_at": ["Must be after starts_at."]}
        )
    return TimeOff.objects.create(staff=staff, starts_at=starts_at, ends_at=ends_at, reason=reason)


@transaction.atomic
def patient_create(
    *,
    clinic: Clinic,
    full_name: str,
    date_of_birth: dt.date,
    email: str = "",
    phone: str = "",
    preferred_channel: str = "email",
    username: str = "",
    password: str = "",
    **details: str,
) -> Patient:
    """Register a patient; a username and password also create the patient's portal login."""
    if date_of_birth >= timezone.localdate(timezone=clinic.tz):
        raise InvalidInput(
            "The date of birth is in the future.", {"date_of_birth": ["Must be in the past."]}
        )
    contact = {"email": email, "sms": phone}
    if preferred_channel not in contact:
        raise InvalidInput("Unknown channel.", {"preferred_channel": ["email or sms."]})
    if not contact[preferred_channel]:
        field = "email" if preferred_channel == "email" else "phone"
        raise InvalidInput(
            f"Reminders by {preferred_channel} need a {field}.",
            {field: [f"Required for {preferred_channel}."]},
        )
    if bool(username) != bool(password):
        raise InvalidInput(
            "A portal login needs both a username and a password.", {"password": ["Give both."]}
        )
    user = _user_create(username, password, email=email, name=full_name) if username else None
    return Patient.objects.create(
        clinic=clinic,
        full_name=full_name,
        date_of_birth=date_of_birth,
        email=email,
        phone=phone,
        preferred_channel=preferred_channel,
        user=user,
        **details,
    )


def screening_record(
    *,
    patient: Patient,
    result: str,
    valid_until: dt.date,
    contraindications: Sequence[str] = (),
    cleared_by: StaffMember | None = None,
    screened_on: dt.date | None = None,
    notes: str = "",
) -> Screening:
    """Record a screening. Only a prescriber can clear a patient for medicine sessions."""
    screened_on = screened_on or timezone.localdate(timezone=patient.clinic.tz)
    if result not in ScreeningResult.values:
        raise InvalidInput("Unknown result.", {"result": ["cleared or not_cleared."]})
    if valid_until < screened_on:
        raise InvalidInput(
            "valid_until is before the screening.", {"valid_until": ["On or after today."]}
        )
    if result == ScreeningResult.CLEARED and (
        cleared_by is None or not cleared_by.has_role(Role.PRESCRIBER)
    ):
        raise InvalidInput(
            "Only a prescriber can clear a patient.", {"result": ["Clearance needs a prescriber."]}
        )
    return Screening.objects.create(
        patient=patient,
        result=result,
        valid_until=valid_until,
        contraindications=list(contraindications),
        cleared_by=cleared_by,
        screened_on=screened_on,
        notes=notes,
    )


def consent_record(
    *,
    patient: Patient,
    signed_at: dt.datetime,
    document_version: str,
    recorded_by: StaffMember | None = None,
) -> Consent:
    if timezone.is_naive(signed_at):
        raise InvalidInput("signed_at needs a UTC offset.", {"signed_at": ["Give an offset."]})
    if signed_at > timezone.now() + dt.timedelta(minutes=5):
        raise InvalidInput(
            "signed_at is in the future.", {"signed_at": ["Cannot be in the future."]}
        )
    consent, created = Consent.objects.get_or_create(
        patient=patient,
        document_version=document_version,
        defaults={"signed_at": signed_at, "recorded_by": recorded_by},
    )
    if not created:
        raise InvalidInput(
            f"Consent to {document_version} is already on file.",
            {"document_version": ["Already signed."]},
        )
    return consent


PATIENT_EDITABLE_FIELDS = (
    "full_name",
    "date_of_birth",
    "email",
    "phone",
    "preferred_channel",
    "timezone",
    "escort_name",
    "escort_phone",
    "outside_therapist_name",
    "outside_therapist_email",
    "outside_therapist_phone",
)


@transaction.atomic
def patient_update(patient: Patient, **changes: object) -> Patient:
    """Change a patient's details; the reminder channel must keep an address to reach them by."""
    unknown = sorted(set(changes) - set(PATIENT_EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput("Unknown fields.", {name: ["Cannot be changed."] for name in unknown})
    current = (
        Patient.objects.select_for_update(of=("self",)).select_related("clinic").get(pk=patient.pk)
    )
    for name, value in changes.items():
        setattr(current, name, value)
    if current.date_of_birth >= timezone.localdate(timezone=current.clinic.tz):
        raise InvalidInput(
            "The date of birth is in the future.", {"date_of_birth": ["Must be in the past."]}
        )
    if current.timezone:
        try:
            validate_timezone(current.timezone)
        except ValidationError as error:
            raise InvalidInput(error.messages[0], {"timezone": error.messages}) from error
    contact = {"email": current.email, "sms": current.phone}
    if current.preferred_channel not in contact:
        raise InvalidInput("Unknown channel.", {"preferred_channel": ["email or sms."]})
    if not contact[current.preferred_channel]:
        field = "email" if current.preferred_channel == "email" else "phone"
        raise InvalidInput(
            f"Reminders by {current.preferred_channel} need a {field}.",
            {field: [f"Required for {current.preferred_channel}."]},
        )
    if changes:
        current.save(update_fields=list(changes))
    return current
