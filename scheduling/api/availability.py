"""``GET /api/v1/availability/``: the free start times of one session of a kind (API.md).

Not a paginated list: one clinic, one kind and at most ``MAX_DAYS`` days answer in one body
``{clinic, kind, route, duration_minutes, date_from, date_to, starts}``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.base import StaffView, audit
from clinic.api.fields import OffsetDateTimeField, StrictDateField
from clinic.api.scope import clinics_visible, patients_visible, rooms_visible, staff_visible
from clinic.api.serializers import StrictSerializer
from protocols.models import Route, SessionKind
from protocols.selectors import step_for_kind
from scheduling.availability import availability

#: The longest stretch one request may ask for; longer ones are refused, not truncated.
MAX_DAYS = 31


def _id_field() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class AvailabilityQuerySerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=SessionKind.choices)
    route = serializers.ChoiceField(choices=Route.choices, required=False)
    date_from = StrictDateField()
    date_to = StrictDateField()
    clinic = _id_field()
    patient = _id_field()
    staff = _id_field()
    room = _id_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["date_to"] < attrs["date_from"]:
            raise ValidationError({"date_to": ["Must be on or after date_from."]})
        if (attrs["date_to"] - attrs["date_from"]).days >= MAX_DAYS:
            raise ValidationError(
                {"date_to": [f"At most {MAX_DAYS} days from date_from: absurd ranges refused."]}
            )
        if "route" in attrs and attrs["kind"] != SessionKind.MEDICINE:
            raise ValidationError({"route": ["Only a medicine session has a route."]})
        return attrs


class AvailabilitySerializer(serializers.Serializer):
    clinic = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=SessionKind.choices)
    route = serializers.CharField(help_text="The medicine route; empty for other kinds.")
    duration_minutes = serializers.IntegerField(help_text="How long the session holds the room.")
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    starts = serializers.ListField(
        child=OffsetDateTimeField(),
        help_text="Free start times in the clinic's zone, in time order.",
    )


def _parameter(name: str, kind: Any, description: str, **extra: Any) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description, **extra)


class AvailabilityView(StaffView):
    serializer_class = AvailabilitySerializer

    @extend_schema(
        summary="Free start times for one session of a kind",
        description="Every quarter-hour start (local time) from date_from to date_to, not in "
        "the past, at which a session of the kind fits: clinic open, a room of the right kind "
        "free with its turnover, the roles staffed by people working, not on time off and under "
        f"capacity, the patient free. At most {MAX_DAYS} days. Not paginated.",
        parameters=[
            _parameter("kind", str, "Session kind.", required=True, enum=SessionKind.values),
            _parameter("date_from", OpenApiTypes.DATE, "Local date, inclusive.", required=True),
            _parameter("date_to", OpenApiTypes.DATE, "Local date, inclusive.", required=True),
            _parameter("route", str, "Medicine only (iv books a chair).", enum=Route.values),
            _parameter("clinic", OpenApiTypes.INT, "Default: your clinic."),
            _parameter("patient", OpenApiTypes.INT, "The patient must be free too."),
            _parameter("staff", OpenApiTypes.INT, "This clinician must take one of the roles."),
            _parameter("room", OpenApiTypes.INT, "Only this room."),
        ],
        responses=AvailabilitySerializer,
    )
    def get(self, request: Request) -> Response:
        query = AvailabilityQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        given = query.validated_data
        caller = self.caller
        clinic_id = given.get("clinic", caller.clinic_id)
        if clinic_id is None:
            raise ValidationError({"clinic": ["Name the clinic."]})
        clinic = clinics_visible(caller).filter(pk=clinic_id).first()
        if clinic is None:
            raise NotFound()
        step = step_for_kind(None, given["kind"], given.get("route"))
        patient = None
        if "patient" in given:
            patient = patients_visible(caller).filter(pk=given["patient"], clinic=clinic).first()
            if patient is None:
                raise NotFound()
        problems: dict[str, list[str]] = {}
        if "staff" in given:
            member = (
                staff_visible(caller)
                .filter(pk=given["staff"], clinic=clinic)
                .prefetch_related("role_grants")
                .first()
            )
            if member is None:
                raise NotFound()
            needed = {need.role for need in step.roles}
            if not member.is_active:
                problems["staff"] = [f"{member.full_name} no longer works here."]
            elif not needed.intersection(member.roles):
                problems["staff"] = [
                    f"{member.full_name} has none of the roles a {step.kind} session needs "
                    f"({', '.join(sorted(needed))})."
                ]
        if "room" in given:
            room = rooms_visible(caller).filter(pk=given["room"], clinic=clinic).first()
            if room is None:
                raise NotFound()
            if not room.is_active:
                problems["room"] = [f"{room.name} is out of service."]
            elif room.kind != step.room_kind:
                problems["room"] = [
                    f"A {step.kind} session needs a room of kind {step.room_kind}; "
                    f"{room.name} is a {room.kind}."
                ]
        if problems:
            raise ValidationError(problems)
        found = availability(
            clinic,
            step,
            given["date_from"],
            given["date_to"],
            patient_id=patient.pk if patient is not None else None,
            staff_id=given.get("staff"),
            room_id=given.get("room"),
        )
        if patient is not None:
            audit(request, "read", "availability", [patient], lambda item: item.pk)
        body = {
            "clinic": clinic.pk,
            "kind": step.kind,
            "route": step.route if step.kind == SessionKind.MEDICINE else "",
            "duration_minutes": step.duration_minutes,
            "date_from": found.date_from,
            "date_to": found.date_to,
            "starts": list(found.starts),
        }
        return Response(AvailabilitySerializer(body, context={"zone": clinic.tz}).data)
