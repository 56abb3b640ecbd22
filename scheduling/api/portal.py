"""The patient portal (API.md ``/me/...``): a patient's token reaches that patient and nothing else.

Every queryset here starts from the caller's own patient row, so another patient's id is simply
not found (404). Confirm and cancel follow the clinic's policy: only a future session that is
booked or confirmed; a cancel inside the clinic's late window becomes ``late_cancelled``
(``scheduling.services.session_cancel`` decides).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from abc import ABC, abstractmethod
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from icalendar import Calendar, Event
from rest_framework import generics, renderers, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.base import PortalView as BasePortalView
from clinic.api.base import audit, page_of
from clinic.api.serializers import PatientSerializer
from clinic.audit import audit_record
from clinic.errors import RuleViolation
from clinic.models import AuditEvent, CalendarFeed, Patient
from scheduling import services
from scheduling.models import Session, SessionStatus, TreatmentSeries
from scheduling.selectors import series_with_details, sessions_with_details

from . import serializers as s
from .views import IF_MATCH, SessionFilter, check_if_match, etag

PATIENT_CHANGEABLE = (SessionStatus.BOOKED, SessionStatus.CONFIRMED)


class ClinicBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    late_cancel_hours = serializers.IntegerField()


class MeSerializer(PatientSerializer):
    clinic_details = ClinicBriefSerializer(source="clinic")

    class Meta(PatientSerializer.Meta):
        fields = [*PatientSerializer.Meta.fields, "clinic_details"]


class PortalView(BasePortalView):
    def own_sessions(self) -> QuerySet[Session]:
        return Session.objects.filter(patient=self.patient)


class MeView(PortalView):
    serializer_class = MeSerializer

    def get(self, request: Request) -> Response:
        audit(request, "read", "patient", [self.patient], lambda patient: patient.pk)
        return Response(MeSerializer(self.patient).data)


class MeSeries(PortalView):
    serializer_class = s.SeriesSerializer
    queryset = TreatmentSeries.objects.none()

    @extend_schema(responses=s.SeriesSerializer(many=True))
    def get(self, request: Request) -> Response:
        series = series_with_details(TreatmentSeries.objects.filter(patient=self.patient))
        return page_of(
            self,
            series.order_by("-created_at", "-id"),
            s.SeriesSerializer,
            audit=("series", lambda item: item.patient_id),
        )


class MeSessions(PortalView):
    serializer_class = s.SessionSerializer
    queryset = Session.objects.none()
    filterset_class = SessionFilter

    @extend_schema(responses=s.SessionSerializer(many=True))
    def get(self, request: Request) -> Response:
        sessions = sessions_with_details(self.own_sessions()).order_by("starts_at", "id")
        return page_of(
            self, sessions, s.SessionSerializer, audit=("session", lambda item: item.patient_id)
        )


def _refuse(session: Session, verb: str, why: str) -> RuleViolation:
    return RuleViolation(
        [
            {
                "rule": "patient_portal_policy",
                "message": f"Session {session.pk} {why}; it cannot be {verb} here.",
                "sessions": [session.pk],
                "suggested_fix": "Call the clinic.",
            }
        ]
    )


class MeSessionAction(PortalView, ABC):
    serializer_class = s.SessionSerializer
    queryset = Session.objects.none()
    verb = ""

    @abstractmethod
    def perform(self, session: Session, data: dict[str, Any]) -> None:
        """Run the service on the patient's own session."""

    def act(self, request: Request, pk: int, data: dict[str, Any]) -> Response:
        now = timezone.now()
        with transaction.atomic():
            session = (
                self.own_sessions()
                .select_for_update(of=("self",))
                .select_related("clinic", "patient")
                .filter(pk=pk)
                .first()
            )
            if session is None:
                raise NotFound()
            check_if_match(request, session)
            if session.starts_at <= now:
                raise _refuse(session, self.verb, "has already started")
            if session.status not in PATIENT_CHANGEABLE:
                raise _refuse(session, self.verb, f"is {session.status}")
            self.perform(session, data)
            audit(request, self.verb, "session", [session], lambda item: item.patient_id)
        session = sessions_with_details(Session.objects.filter(pk=pk)).get()
        return Response(s.SessionSerializer(session).data, headers={"ETag": etag(session)})


class MeSessionConfirm(MeSessionAction):
    verb = "confirmed"

    @extend_schema(request=None, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk, {})

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        if session.status == SessionStatus.CONFIRMED:
            return  # confirming twice is no error
        services.session_confirm(session, by=self.request.user)  # type: ignore[arg-type]


class MeSessionCancel(MeSessionAction):
    verb = "cancelled"

    @extend_schema(request=s.CancelSerializer, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        given = s.CancelSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        return self.act(request, pk, dict(given.validated_data))

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_cancel(
            session,
            reason=data.get("reason") or "Cancelled by the patient",
            by=self.request.user,  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------------------------
# The calendar feed


class ICalendarRenderer(renderers.BaseRenderer):
    media_type = "text/calendar"
    format = "ics"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        if isinstance(data, bytes | str):
            return data
        return json.dumps(data).encode()


STATUS_ICAL = {
    SessionStatus.BOOKED: "TENTATIVE",
    SessionStatus.CONFIRMED: "CONFIRMED",
    SessionStatus.CHECKED_IN: "CONFIRMED",
    SessionStatus.COMPLETED: "CONFIRMED",
    SessionStatus.CANCELLED: "CANCELLED",
    SessionStatus.LATE_CANCELLED: "CANCELLED",
    SessionStatus.NO_SHOW: "CANCELLED",
}


def calendar_for(patient: Patient, sessions: list[Session]) -> bytes:
    """An iCalendar of ``sessions``: one VEVENT each with a UID that never changes, DTSTAMP in UTC,
    local start and end with the clinic's VTIMEZONE, and STATUS:CANCELLED once cancelled."""
    calendar = Calendar()
    calendar.add("prodid", "-//Ketamine clinic//Patient sessions//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{patient.clinic.name}: my sessions")
    for session in sessions:
        zone = session.clinic.tz
        event = Event()
        event.add("uid", f"session-{session.pk}@ketamine-clinic")
        event.add("dtstamp", session.updated_at.astimezone(dt.UTC))
        event.add("dtstart", session.starts_at.astimezone(zone))
        event.add("dtend", session.ends_at.astimezone(zone))
        event.add("sequence", session.revision)
        event.add("summary", f"{session.get_kind_display()} at {session.clinic.name}")
        event.add("location", f"{session.clinic.name}, {session.room.name}")
        event.add("status", STATUS_ICAL[session.status])
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def _calendar_sessions(patient: Patient) -> list[Session]:
    return list(
        Session.objects.filter(patient=patient)
        .select_related("clinic", "room")
        .order_by("starts_at", "id")
    )


def _ics_response(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, max-age=300"
    return response


class MeCalendar(PortalView):
    renderer_classes = [ICalendarRenderer, renderers.JSONRenderer]

    @extend_schema(responses={(200, "text/calendar"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        sessions = _calendar_sessions(self.patient)
        audit(request, "read", "session", sessions, lambda item: item.patient_id)
        return _ics_response(calendar_for(self.patient, sessions))


def _feed_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CalendarFeedSerializer(serializers.Serializer):
    url = serializers.CharField()


class MeCalendarFeed(PortalView):
    serializer_class = CalendarFeedSerializer

    @extend_schema(
        request=None,
        responses={201: CalendarFeedSerializer},
        description="A new secret feed address for calendar apps (which cannot send a bearer "
        "token). It replaces, and so revokes, any earlier one; keep it private.",
    )
    def post(self, request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        CalendarFeed.objects.update_or_create(
            patient=self.patient,
            defaults={"token_hash": _feed_hash(token), "created_at": timezone.now()},
        )
        url = request.build_absolute_uri(reverse("calendar-feed", kwargs={"token": token}))
        return Response({"url": url}, status=status.HTTP_201_CREATED)


class CalendarFeedView(generics.GenericAPIView):
    """The feed at its secret address: no bearer token, the address is the credential."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    renderer_classes = [ICalendarRenderer, renderers.JSONRenderer]

    @extend_schema(
        auth=[],
        responses={
            (200, "text/calendar"): OpenApiTypes.STR,
            404: OpenApiResponse(description="No such feed."),
        },
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        if len(token) > 100:
            raise NotFound()
        feed = (
            CalendarFeed.objects.select_related("patient__clinic")
            .filter(token_hash=_feed_hash(token))
            .first()
        )
        if feed is None:
            raise NotFound()
        sessions = _calendar_sessions(feed.patient)
        audit_record(
            request,
            action="read",
            object_type="session",
            object_ids=[session.pk for session in sessions],
            patient_ids=[feed.patient_id],
            channel=AuditEvent.Channel.CALENDAR_FEED,
        )
        return _ics_response(calendar_for(feed.patient, sessions))
