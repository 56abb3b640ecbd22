"""Shapes of whole-series booking and of a move: the plan request, the planned sessions and the
answer to a reschedule. Shape only; the planner and the services decide."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinic.api.access import Caller
from clinic.api.fields import (
    LocalTimeField,
    OffsetDateTimeField,
    StrictBooleanField,
    StrictDateField,
)
from clinic.api.scope import patients_visible, staff_visible
from clinic.api.serializers import StrictSerializer
from clinic.models import Patient, Role
from protocols.models import ProtocolVersion, SessionKind
from scheduling.models import SeriesStatus
from scheduling.planner import PlannedSession, Preferences

from .serializers import SessionSerializer


class PreferencesSerializer(StrictSerializer):
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        allow_empty=False,
        max_length=7,
        help_text="Local weekdays the sessions may fall on, 0 = Monday.",
    )
    earliest_time = LocalTimeField(
        required=False, help_text="No session starts before this local time."
    )
    latest_start = LocalTimeField(
        required=False, help_text="No session starts after this local time."
    )
    therapist = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="A therapist's staff id: granted whenever the planner can.",
    )

    def validate_weekdays(self, weekdays: list[int]) -> list[int]:
        if len(set(weekdays)) != len(weekdays):
            raise serializers.ValidationError("Each weekday once.")
        return weekdays

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        earliest, latest = attrs.get("earliest_time"), attrs.get("latest_start")
        if earliest is not None and latest is not None and earliest > latest:
            raise serializers.ValidationError(
                {"latest_start": ["Must be at or after earliest_time."]}
            )
        return attrs


class SeriesPlanInputSerializer(StrictSerializer):
    """``protocol`` is a protocol version's id, as ``GET /protocols/`` answers it."""

    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.none())
    protocol = serializers.PrimaryKeyRelatedField(queryset=ProtocolVersion.objects.all())
    earliest_start = StrictDateField(help_text="The first local day a session may fall on.")
    preferences = PreferencesSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        therapist_id = attrs.get("preferences", {}).get("therapist")
        if therapist_id is not None:
            therapists = self.context["staff"].filter(
                pk=therapist_id,
                clinic_id=attrs["patient"].clinic_id,
                is_active=True,
                role_grants__role=Role.THERAPIST,
            )
            if not therapists.exists():
                raise serializers.ValidationError(
                    {
                        "preferences": {
                            "therapist": [
                                f"No therapist with id {therapist_id} in the patient's clinic."
                            ]
                        }
                    }
                )
        return attrs

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``services.series_plan`` and ``services.series_book``."""
        data = self.validated_data
        given = data.get("preferences", {})
        weekdays = given.get("weekdays")
        return {
            "patient": data["patient"],
            "protocol_version": data["protocol"],
            "earliest_start": data["earliest_start"],
            "preferences": Preferences(
                weekdays=frozenset(weekdays) if weekdays is not None else None,
                earliest_time=given.get("earliest_time"),
                latest_start=given.get("latest_start"),
                therapist_id=given.get("therapist"),
            ),
        }


def series_request(caller: Caller, data: Any) -> SeriesPlanInputSerializer:
    """The plan or booking request, validated against what the caller may reach: a patient or a
    therapist outside it is an unknown id (400), as in ``POST /sessions/``."""
    given = SeriesPlanInputSerializer(data=data, context={"staff": staff_visible(caller)})
    given.fields["patient"].queryset = patients_visible(caller).select_related("clinic")  # type: ignore[attr-defined]
    given.is_valid(raise_exception=True)
    return given


class PlannedHoldSerializer(serializers.Serializer):
    staff = serializers.IntegerField(source="staff_id")
    role = serializers.CharField()
    starts_at = OffsetDateTimeField(source="start")
    ends_at = OffsetDateTimeField(source="end")


class PlannedSessionSerializer(serializers.Serializer):
    """A session of the plan; times in the clinic's zone (the serializer context's ``zone``)."""

    index = serializers.IntegerField(help_text="Position in the series order.")
    kind = serializers.ChoiceField(choices=SessionKind.choices)
    route = serializers.CharField(help_text="Medicine sessions only; empty otherwise.")
    starts_at = OffsetDateTimeField()
    ends_at = OffsetDateTimeField()
    room = serializers.IntegerField(source="room_id")
    staff = serializers.SerializerMethodField()
    staff_holds = PlannedHoldSerializer(source="staff", many=True)

    @extend_schema_field({"type": "array", "items": {"type": "integer"}})
    def get_staff(self, planned: PlannedSession) -> list[int]:
        return [hold.staff_id for hold in planned.staff]


class ViolationSerializer(serializers.Serializer):
    rule = serializers.CharField()
    message = serializers.CharField()
    sessions = serializers.ListField(
        child=serializers.JSONField(), help_text="Session ids, or indexes in the plan."
    )
    suggested_fix = serializers.CharField(allow_null=True)


class SeriesPlanSerializer(serializers.Serializer):
    """``sessions`` is empty when no plan exists; ``violations`` then say what blocked it."""

    sessions = PlannedSessionSerializer(many=True)
    violations = ViolationSerializer(many=True)


class RescheduleInputSerializer(StrictSerializer):
    starts_at = OffsetDateTimeField()
    cascade = StrictBooleanField(
        required=False,
        default=False,
        help_text="Move the later sessions of the series as little as needed to keep every rule.",
    )


class RescheduledSeriesSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=SeriesStatus.choices)
    violations = ViolationSerializer(many=True)


class RescheduleSerializer(serializers.Serializer):
    """The moved session, its series as re-validated now (null outside a series), and every
    session that moved (the session itself first, then those the cascade moved)."""

    session = SessionSerializer()
    series = RescheduledSeriesSerializer(allow_null=True)
    moved = SessionSerializer(many=True)
