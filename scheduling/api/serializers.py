"""Shapes of sessions, series and the day sheet. Times are in the clinic's zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.api.fields import OffsetDateTimeField, StrictDateField
from clinic.api.schema import VIOLATION_SCHEMA
from clinic.api.serializers import StrictSerializer
from clinic.models import Patient, Room, StaffMember
from protocols.models import Route, SessionKind
from scheduling.models import Escort, Session, SessionStaff, SessionStatus, TreatmentSeries

ZONE = "clinic.timezone"


class StaffHoldSerializer(serializers.ModelSerializer):
    staff_name = serializers.CharField(source="staff.full_name")
    starts_at = OffsetDateTimeField(zone_of="session.clinic.timezone")
    ends_at = OffsetDateTimeField(zone_of="session.clinic.timezone")

    class Meta:
        model = SessionStaff
        fields = ["staff", "staff_name", "role", "starts_at", "ends_at"]


class EscortSerializer(serializers.ModelSerializer):
    confirmed = serializers.BooleanField(source="is_confirmed")
    confirmed_at = OffsetDateTimeField(zone_of="session.clinic.timezone", allow_null=True)

    class Meta:
        model = Escort
        fields = ["name", "phone", "confirmed", "confirmed_at"]


class SessionSerializer(serializers.ModelSerializer):
    patient_name = serializers.CharField(source="patient.full_name")
    room_name = serializers.CharField(source="room.name")
    starts_at = OffsetDateTimeField(zone_of=ZONE)
    ends_at = OffsetDateTimeField(zone_of=ZONE)
    status_changed_at = OffsetDateTimeField(zone_of=ZONE, allow_null=True)
    staff = serializers.SerializerMethodField()
    staff_holds = serializers.SerializerMethodField()
    escort = serializers.SerializerMethodField()
    fhir_status = serializers.CharField()

    class Meta:
        model = Session
        fields = [
            "id",
            "patient",
            "patient_name",
            "clinic",
            "series",
            "kind",
            "route",
            "status",
            "fhir_status",
            "starts_at",
            "ends_at",
            "room",
            "room_name",
            "staff",
            "staff_holds",
            "escort",
            "revision",
            "cancel_reason",
            "status_changed_at",
        ]

    def _holds(self, session: Session) -> list[SessionStaff]:
        holds = list(session.staff_holds.all())
        for hold in holds:
            hold.session = session
        return holds

    def get_staff(self, session: Session) -> list[int]:
        return [hold.staff_id for hold in self._holds(session)]

    @extend_schema_field(StaffHoldSerializer(many=True))
    def get_staff_holds(self, session: Session) -> list[dict[str, Any]]:
        return StaffHoldSerializer(self._holds(session), many=True).data  # type: ignore[return-value]

    @extend_schema_field(EscortSerializer(allow_null=True))
    def get_escort(self, session: Session) -> dict[str, Any] | None:
        if not hasattr(session, "escort"):
            return None
        escort = session.escort
        escort.session = session
        return EscortSerializer(escort).data


class SessionCreateSerializer(StrictSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.none())
    kind = serializers.ChoiceField(choices=SessionKind.choices)
    starts_at = OffsetDateTimeField()
    ends_at = OffsetDateTimeField(required=False)
    series = serializers.PrimaryKeyRelatedField(
        queryset=TreatmentSeries.objects.none(), required=False, allow_null=True
    )
    route = serializers.ChoiceField(choices=Route.choices, required=False)
    room = serializers.PrimaryKeyRelatedField(
        queryset=Room.objects.none(),
        required=False,
        allow_null=True,
        help_text="Left out (or null): a free room of the session's kind is chosen.",
    )
    staff = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        allow_empty=True,
        max_length=5,
        help_text="Staff ids, each taking one of the session's roles; roles left open (all of "
        "them when left out) are filled with free clinicians, the series' preferred therapist "
        "first.",
    )

    def validate_staff(self, ids: list[int]) -> list[StaffMember]:
        """The staff members, in the order given, among those the caller may book (one query
        for them and one for their roles)."""
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("Each staff member once.")
        found = {member.pk: member for member in self.context["staff"].filter(pk__in=ids)}
        unknown = [str(pk) for pk in ids if pk not in found]
        if unknown:
            raise serializers.ValidationError(f"Unknown staff member id(s): {', '.join(unknown)}.")
        return [found[pk] for pk in ids]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "route" in attrs and attrs["kind"] != SessionKind.MEDICINE:
            raise serializers.ValidationError({"route": ["Only a medicine session has a route."]})
        ends_at = attrs.get("ends_at")
        if ends_at is not None and ends_at <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        return attrs


class CancelSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class SeriesReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class EscortInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    phone = serializers.RegexField(r"^\+?[0-9 ()-]{6,32}$", max_length=32)
    confirmed = serializers.BooleanField()


class SeriesSerializer(serializers.ModelSerializer):
    patient_name = serializers.CharField(source="patient.full_name")
    protocol = serializers.IntegerField(source="protocol_version_id")
    protocol_name = serializers.CharField(source="protocol_version.protocol.name")
    protocol_version = serializers.IntegerField(source="protocol_version.version")
    violations = serializers.JSONField()
    violations_checked_at = OffsetDateTimeField(zone_of="patient.clinic.timezone", allow_null=True)
    status_changed_at = OffsetDateTimeField(zone_of="patient.clinic.timezone", allow_null=True)
    created_at = OffsetDateTimeField(zone_of="patient.clinic.timezone")

    class Meta:
        model = TreatmentSeries
        fields = [
            "id",
            "patient",
            "patient_name",
            "protocol",
            "protocol_name",
            "protocol_version",
            "status",
            "status_changed_at",
            "status_reason",
            "preferred_therapist",
            "violations",
            "violations_checked_at",
            "created_at",
        ]


class SeriesDetailSerializer(SeriesSerializer):
    sessions = SessionSerializer(many=True)

    class Meta(SeriesSerializer.Meta):
        fields = [*SeriesSerializer.Meta.fields, "sessions"]


class DaySessionSerializer(SessionSerializer):
    """A session on the day sheet; a medicine session still to check in says what would refuse
    its check-in now (screening, consent, ride home), so the nurse sees it before the patient
    arrives."""

    check_in_blockers = serializers.SerializerMethodField()

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "check_in_blockers"]

    @extend_schema_field({"type": "array", "items": VIOLATION_SCHEMA})
    def get_check_in_blockers(self, session: Session) -> list[dict[str, Any]]:
        return self.context.get("check_in_blockers", {}).get(session.pk, [])


class DayRoomSerializer(serializers.Serializer):
    room = serializers.SerializerMethodField()
    sessions = DaySessionSerializer(many=True)

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "kind": {"type": "string"},
            },
        }
    )
    def get_room(self, day: Any) -> dict[str, Any]:
        return {"id": day.room.pk, "name": day.room.name, "kind": day.room.kind}


class DayHoldSerializer(serializers.Serializer):
    session = serializers.IntegerField(source="session_id")
    role = serializers.CharField()
    starts_at = OffsetDateTimeField(zone_of="session.clinic.timezone")
    ends_at = OffsetDateTimeField(zone_of="session.clinic.timezone")
    kind = serializers.CharField(source="session.kind")
    status = serializers.ChoiceField(source="session.status", choices=SessionStatus.choices)
    patient = serializers.IntegerField(source="session.patient_id")
    patient_name = serializers.CharField(source="session.patient.full_name")
    room = serializers.IntegerField(source="session.room_id")


class DayStaffSerializer(serializers.Serializer):
    staff = serializers.IntegerField(source="staff.pk")
    full_name = serializers.CharField(source="staff.full_name")
    holds = DayHoldSerializer(many=True)


class DaySheetSerializer(serializers.Serializer):
    clinic = serializers.IntegerField(source="clinic.pk")
    date = serializers.DateField()
    timezone = serializers.CharField(source="clinic.timezone")
    rooms = DayRoomSerializer(many=True)
    staff = DayStaffSerializer(many=True)


class DaySheetQuerySerializer(StrictSerializer):
    date = StrictDateField()
    clinic = serializers.IntegerField(required=False, min_value=1)


def date_range_errors(date_from: dt.date | None, date_to: dt.date | None) -> dict[str, list[str]]:
    if date_from and date_to and date_to < date_from:
        return {"date_to": ["Must be on or after date_from."]}
    if date_from and date_to and (date_to - date_from).days > 366:
        return {"date_to": ["At most a year between date_from and date_to."]}
    return {}
