"""Shapes of the clinic set-up endpoints. Input serializers check shape; services decide."""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from rest_framework import serializers

from clinic.models import (
    Channel,
    Clinic,
    Consent,
    Patient,
    Role,
    Room,
    RoomKind,
    Screening,
    ScreeningResult,
    StaffMember,
    TimeOff,
    WorkingHours,
)

from .fields import LocalTimeField, OffsetDateTimeField, StrictDateField


@cache
def _zones() -> list[str]:
    return sorted(available_timezones())


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know: a misspelt field is an error, not silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class WeeklyHoursSerializer(StrictSerializer):
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday.")
    start = LocalTimeField()
    end = LocalTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        return attrs


class WorkingHoursSerializer(serializers.ModelSerializer):
    start = LocalTimeField()
    end = LocalTimeField()

    class Meta:
        model = WorkingHours
        fields = ["id", "staff", "weekday", "start", "end"]


class ClinicSerializer(serializers.ModelSerializer):
    opening_hours = WeeklyHoursSerializer(many=True)

    class Meta:
        model = Clinic
        fields = [
            "id",
            "name",
            "timezone",
            "opening_hours",
            "late_cancel_hours",
            "no_show_after_minutes",
        ]


class ClinicCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    timezone = serializers.ChoiceField(choices=[], help_text="An IANA zone, e.g. America/Denver.")
    opening_hours = WeeklyHoursSerializer(many=True, required=False, default=list)
    late_cancel_hours = serializers.IntegerField(min_value=0, max_value=168, required=False)
    no_show_after_minutes = serializers.IntegerField(min_value=1, max_value=720, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = _zones()  # type: ignore[attr-defined]


class RoomSerializer(serializers.ModelSerializer):
    class Meta:
        model = Room
        fields = ["id", "clinic", "name", "kind", "turnover_minutes", "is_active"]


class RoomCreateSerializer(StrictSerializer):
    clinic = serializers.PrimaryKeyRelatedField(queryset=Clinic.objects.none())
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=RoomKind.choices)
    turnover_minutes = serializers.IntegerField(min_value=0, max_value=240, required=False)


class TimeOffSerializer(serializers.ModelSerializer):
    starts_at = OffsetDateTimeField(zone_of="staff.clinic.timezone")
    ends_at = OffsetDateTimeField(zone_of="staff.clinic.timezone")

    class Meta:
        model = TimeOff
        fields = ["id", "staff", "starts_at", "ends_at", "reason"]


class TimeOffCreateSerializer(StrictSerializer):
    starts_at = OffsetDateTimeField()
    ends_at = OffsetDateTimeField()
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        if (attrs["ends_at"] - attrs["starts_at"]).days > 366:
            raise serializers.ValidationError({"ends_at": ["At most a year of time off at once."]})
        return attrs


class StaffSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    roles = serializers.SerializerMethodField()
    working_hours = WorkingHoursSerializer(many=True, read_only=True)
    time_off = TimeOffSerializer(many=True, read_only=True)

    class Meta:
        model = StaffMember
        fields = [
            "id",
            "clinic",
            "username",
            "full_name",
            "roles",
            "max_concurrent_patients",
            "is_active",
            "working_hours",
            "time_off",
        ]

    def get_roles(self, member: StaffMember) -> list[str]:
        return member.roles


class StaffCreateSerializer(StrictSerializer):
    clinic = serializers.PrimaryKeyRelatedField(queryset=Clinic.objects.none())
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", max_length=150)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    full_name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, default="")
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), min_length=1, max_length=5
    )
    max_concurrent_patients = serializers.IntegerField(
        min_value=1, max_value=50, required=False, default=1
    )


class PatientSerializer(serializers.ModelSerializer):
    has_portal_login = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "clinic",
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
            "has_portal_login",
        ]

    def get_has_portal_login(self, patient: Patient) -> bool:
        return patient.user_id is not None


_PHONE = r"^\+[1-9][0-9]{6,14}$"


class PatientDetailsSerializer(StrictSerializer):
    """The fields a patient record can be created or changed with."""

    full_name = serializers.CharField(max_length=200)
    date_of_birth = StrictDateField()
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.RegexField(
        _PHONE, required=False, allow_blank=True, help_text="E.164, e.g. +14155550123"
    )
    preferred_channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    timezone = serializers.ChoiceField(choices=[], required=False, allow_blank=True)
    escort_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    escort_phone = serializers.RegexField(_PHONE, required=False, allow_blank=True)
    outside_therapist_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    outside_therapist_email = serializers.EmailField(required=False, allow_blank=True)
    outside_therapist_phone = serializers.RegexField(_PHONE, required=False, allow_blank=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = _zones()  # type: ignore[attr-defined]


class PatientCreateSerializer(PatientDetailsSerializer):
    clinic = serializers.PrimaryKeyRelatedField(queryset=Clinic.objects.none())
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", required=False)
    password = serializers.CharField(max_length=128, required=False, trim_whitespace=False)


class ScreeningSerializer(serializers.ModelSerializer):
    class Meta:
        model = Screening
        fields = [
            "id",
            "patient",
            "result",
            "contraindications",
            "cleared_by",
            "screened_on",
            "valid_until",
            "notes",
        ]


class ScreeningCreateSerializer(StrictSerializer):
    result = serializers.ChoiceField(choices=ScreeningResult.choices)
    valid_until = StrictDateField()
    screened_on = StrictDateField(required=False)
    contraindications = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50, required=False, default=list
    )
    notes = serializers.CharField(max_length=5000, required=False, default="", allow_blank=True)


class ConsentSerializer(serializers.ModelSerializer):
    signed_at = OffsetDateTimeField(zone_of="patient.clinic.timezone")

    class Meta:
        model = Consent
        fields = ["id", "patient", "signed_at", "document_version", "recorded_by"]


class ConsentCreateSerializer(StrictSerializer):
    signed_at = OffsetDateTimeField()
    document_version = serializers.CharField(max_length=50)
