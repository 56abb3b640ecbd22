"""Booking and the front desk's reads (API.md): sessions, their lifecycle, series and the day
sheet (the caseload is ``integration.api``). One view per action; each calls one service.

Session edits honour ``If-Match`` (the session's ``revision``, also its ``ETag``): the session
row is locked, the revision compared, and the service run, all in one transaction, so two
front-desk clients cannot overwrite each other.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from functools import reduce
from typing import Any
from zoneinfo import ZoneInfo

import django_filters
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.access import Caller, caller_of, require_roles
from clinic.api.base import StaffView, audit, page_of
from clinic.api.errors import PreconditionFailed
from clinic.api.filters import IdFilter
from clinic.api.idempotency import idempotent
from clinic.api.scope import (
    clinics_visible,
    patients_visible,
    rooms_visible,
    series_visible,
    sessions_visible,
    staff_visible,
)
from clinic.models import Role, StaffMember, User
from integration import gates as safety_gates
from protocols.models import SessionKind
from scheduling import services
from scheduling.models import (
    SeriesStatus,
    Session,
    SessionStaff,
    SessionStatus,
    TreatmentSeries,
)
from scheduling.selectors import (
    day_sheet,
    local_day_bounds,
    series_with_details,
    series_with_sessions,
    sessions_with_details,
)

from . import booking_serializers as bs
from . import serializers as s

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The session's ETag (its revision); a stale one answers 412.",
)


def etag(session: Session) -> str:
    return f'"{session.revision}"'


def check_if_match(request: Request, session: Session) -> None:
    """412 unless ``If-Match`` is absent, ``*``, or names the session's current revision."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return
    tags = {part.strip().removeprefix("W/").strip('"') for part in header.split(",")}
    if str(session.revision) not in tags:
        raise PreconditionFailed(
            f"Session {session.pk} is at revision {session.revision}; fetch it again."
        )


def _patient_of_session(session: Session) -> int:
    return session.patient_id


def session_zones(caller: Caller, clinic_id: int | None) -> list[tuple[Q, ZoneInfo]]:
    """The zones a list's dates are read in, each with the sessions it applies to: the filtered
    clinic's, else the caller's (a staff member's or a patient's clinic); a caller of no one
    clinic (a superuser) gets each session's own clinic's zone."""
    clinic = None
    if caller.patient is not None:
        clinic = caller.patient.clinic
    elif clinic_id is not None:
        clinic = clinics_visible(caller).filter(pk=clinic_id).first()
    elif caller.staff is not None:
        clinic = caller.staff.clinic
    if clinic is not None:
        return [(Q(), clinic.tz)]
    names = clinics_visible(caller).order_by().values_list("timezone", flat=True).distinct()
    return [(Q(clinic__timezone=name), ZoneInfo(name)) for name in sorted(names)]


class SessionFilter(django_filters.FilterSet):
    date_from = django_filters.DateFilter(method="filter_dates", help_text="Local date, inclusive.")
    date_to = django_filters.DateFilter(method="filter_dates", help_text="Local date, inclusive.")
    clinic = IdFilter(field_name="clinic_id")
    room = IdFilter(field_name="room_id")
    staff = IdFilter(method="filter_staff")
    patient = IdFilter(field_name="patient_id")
    series = IdFilter(field_name="series_id")
    kind = django_filters.ChoiceFilter(choices=SessionKind.choices)
    status = django_filters.MultipleChoiceFilter(choices=SessionStatus.choices)

    class Meta:
        model = Session
        fields = ["date_from", "date_to", "clinic", "room", "staff", "patient", "series"]

    def filter_staff(self, queryset: QuerySet[Session], name: str, value: int) -> QuerySet[Session]:
        holding = SessionStaff.objects.filter(staff_id=value).values("session_id")
        return queryset.filter(pk__in=holding)

    def filter_dates(self, queryset: QuerySet[Session], name: str, value: Any) -> QuerySet[Session]:
        return queryset  # both dates are applied together in filter_queryset

    def filter_queryset(self, queryset: QuerySet[Session]) -> QuerySet[Session]:
        queryset = super().filter_queryset(queryset)
        date_from = self.form.cleaned_data.get("date_from")
        date_to = self.form.cleaned_data.get("date_to")
        problems = s.date_range_errors(date_from, date_to)
        for name, day in (("date_from", date_from), ("date_to", date_to)):
            if day is not None and not 1900 <= day.year <= 2200:
                problems[name] = ["The year must be between 1900 and 2200."]
        if problems:
            raise ValidationError(problems)
        if date_from is None and date_to is None:
            return queryset
        within = []
        for sessions, zone in session_zones(
            caller_of(self.request), self.form.cleaned_data.get("clinic")
        ):
            if date_from is not None:
                sessions &= Q(starts_at__gte=local_day_bounds(date_from, zone)[0])
            if date_to is not None:
                sessions &= Q(starts_at__lt=local_day_bounds(date_to, zone)[1])
            within.append(sessions)
        return queryset.filter(reduce(operator.or_, within)) if within else queryset.none()


class SessionList(StaffView):
    serializer_class = s.SessionSerializer
    filterset_class = SessionFilter

    def get_queryset(self) -> QuerySet[Session]:
        return sessions_with_details(sessions_visible(self.caller)).order_by("starts_at", "id")

    @extend_schema(responses=s.SessionSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(
            self,
            self.get_queryset(),
            s.SessionSerializer,
            audit=("session", _patient_of_session),
        )

    @extend_schema(request=s.SessionCreateSerializer, responses={201: s.SessionSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        require_roles(self.caller, Role.FRONT_DESK, Role.CLINIC_ADMIN)
        data = s.SessionCreateSerializer(
            data=request.data,
            context={"staff": staff_visible(self.caller).prefetch_related("role_grants")},
        )
        data.fields["patient"].queryset = patients_visible(self.caller).select_related("clinic")  # type: ignore[attr-defined]
        data.fields["series"].queryset = series_with_details(series_visible(self.caller))  # type: ignore[attr-defined]
        data.fields["room"].queryset = rooms_visible(self.caller)  # type: ignore[attr-defined]
        data.is_valid(raise_exception=True)
        fields = {"room": None, "staff": [], **data.validated_data}
        if fields["starts_at"] < timezone.now():
            raise ValidationError({"starts_at": ["That time has passed; book a future time."]})
        with transaction.atomic():
            session = services.session_create(created_by=request.user, **fields)  # type: ignore[arg-type]
            audit(request, "create", "session", [session], _patient_of_session)
        _attach_new_session_details(session, fields["staff"])
        return Response(
            s.SessionSerializer(session).data,
            status=status.HTTP_201_CREATED,
            headers={"ETag": etag(session)},
        )


def _attach_new_session_details(session: Session, staff: list[StaffMember]) -> None:
    """Give a session just booked what the serializer reads, from what is already in memory:
    its clinic, its staff holds (one query) with their staff (one more for any the service
    chose), and no escort yet."""
    session.clinic = session.patient.clinic
    members = {member.pk: member for member in staff}
    holds = list(SessionStaff.objects.filter(session=session).order_by("starts_at", "id"))
    if chosen := {hold.staff_id for hold in holds} - members.keys():  # chosen by the service
        members.update(StaffMember.objects.in_bulk(chosen))
    for hold in holds:
        hold.staff = members[hold.staff_id]
        hold.session = session
    session._prefetched_objects_cache = {"staff_holds": holds}  # type: ignore[attr-defined]
    session._state.fields_cache["escort"] = None


class SessionDetail(StaffView):
    serializer_class = s.SessionSerializer
    queryset = Session.objects.none()

    @extend_schema(responses=s.SessionSerializer)
    def get(self, request: Request, pk: int) -> Response:
        session = self.scoped_object(sessions_with_details(sessions_visible(self.caller)), pk)
        audit(request, "read", "session", [session], _patient_of_session)
        return Response(s.SessionSerializer(session).data, headers={"ETag": etag(session)})


class SessionAction(StaffView, ABC):
    """Lock the session, check ``If-Match`` and the caller's role, run the service, answer the
    session with its new ETag."""

    serializer_class = s.SessionSerializer
    queryset = Session.objects.none()
    action_name = ""
    roles: tuple[str, ...] = ()
    input_serializer: type[drf_serializers.Serializer] | None = None

    @property
    def user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    @abstractmethod
    def perform(self, session: Session, data: dict[str, Any]) -> Any:
        """Run the service; what it returns goes to ``audited`` and ``answer``."""

    def audited(self, session: Session, outcome: Any) -> list[Session]:
        return [session]

    def answer(self, pk: int, outcome: Any) -> Response:
        session = sessions_with_details(Session.objects.filter(pk=pk)).get()
        return Response(s.SessionSerializer(session).data, headers={"ETag": etag(session)})

    def act(self, request: Request, pk: int) -> Response:
        visible = sessions_visible(self.caller)
        data: dict[str, Any] = {}
        if self.input_serializer is not None:
            given = self.input_serializer(data=request.data)
            given.is_valid(raise_exception=True)
            data = dict(given.validated_data)
        with transaction.atomic():
            session = (
                visible.select_for_update(of=("self",))
                .select_related("clinic", "patient")
                .filter(pk=pk)
                .first()
            )
            if session is None:
                raise NotFound()
            require_roles(self.caller, *self.roles)
            check_if_match(request, session)
            outcome = self.perform(session, data)
            audit(
                request,
                self.action_name,
                "session",
                self.audited(session, outcome),
                _patient_of_session,
            )
        return self.answer(pk, outcome)


FRONT = (Role.FRONT_DESK, Role.CLINIC_ADMIN)


class SessionCancel(SessionAction):
    """Cancel; inside the clinic's late window it becomes late_cancelled."""

    action_name = "cancel"
    roles = (*FRONT, Role.NURSE, Role.PRESCRIBER)
    input_serializer = s.CancelSerializer

    @extend_schema(request=s.CancelSerializer, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_cancel(session, reason=data.get("reason", ""), by=self.user)


class SessionEscort(SessionAction):
    """Record the ride home for a medicine session."""

    action_name = "escort"
    roles = (*FRONT, Role.NURSE)
    input_serializer = s.EscortInputSerializer

    @extend_schema(
        request=s.EscortInputSerializer, responses=s.SessionSerializer, parameters=[IF_MATCH]
    )
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_escort_set(
            session,
            name=data["name"],
            phone=data["phone"],
            is_confirmed=data["confirmed"],
            by=self.user,
        )


class SessionCheckIn(SessionAction):
    """The patient arrived."""

    action_name = "check_in"
    roles = (*FRONT, Role.NURSE)

    @extend_schema(request=None, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_check_in(session, by=self.user)


class SessionComplete(SessionAction):
    """The session took place."""

    action_name = "complete"
    roles = (*FRONT, Role.NURSE, Role.PRESCRIBER, Role.THERAPIST)

    @extend_schema(request=None, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_complete(session, by=self.user)


class SessionNoShow(SessionAction):
    """The patient did not come."""

    action_name = "no_show"
    roles = FRONT

    @extend_schema(request=None, responses=s.SessionSerializer, parameters=[IF_MATCH])
    def post(self, request: Request, pk: int) -> Response:
        return self.act(request, pk)

    def perform(self, session: Session, data: dict[str, Any]) -> None:
        services.session_mark_no_show(session, by=self.user)


class SeriesFilter(django_filters.FilterSet):
    patient = IdFilter(field_name="patient_id")
    status = django_filters.ChoiceFilter(choices=SeriesStatus.choices)

    class Meta:
        model = TreatmentSeries
        fields = ["patient", "status"]


class SeriesList(StaffView):
    serializer_class = s.SeriesSerializer
    queryset = TreatmentSeries.objects.none()
    filterset_class = SeriesFilter

    @extend_schema(responses=s.SeriesSerializer(many=True))
    def get(self, request: Request) -> Response:
        series = series_with_details(series_visible(self.caller)).order_by("-created_at", "-id")
        return page_of(
            self, series, s.SeriesSerializer, audit=("series", lambda item: item.patient_id)
        )

    @extend_schema(request=bs.SeriesPlanInputSerializer, responses={201: s.SeriesDetailSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        """Plan and book a whole series, every session or none (``services.series_book``)."""
        require_roles(self.caller, *FRONT)
        given = bs.series_request(self.caller, request.data)
        with transaction.atomic():
            booked = services.series_book(created_by=request.user, **given.service_arguments())  # type: ignore[arg-type]
            audit(request, "create", "series", [booked], lambda item: item.patient_id)
            audit(request, "create", "session", booked.sessions.all(), _patient_of_session)
        series = series_with_sessions(TreatmentSeries.objects.filter(pk=booked.pk)).get()
        return Response(s.SeriesDetailSerializer(series).data, status=status.HTTP_201_CREATED)


class SeriesDetail(StaffView):
    serializer_class = s.SeriesDetailSerializer
    queryset = TreatmentSeries.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        series = self.scoped_object(series_with_sessions(series_visible(self.caller)), pk)
        audit(request, "read", "series", [series], lambda item: item.patient_id)
        return Response(s.SeriesDetailSerializer(series).data)


class SeriesAction(StaffView, ABC):
    """Find the series, check the caller's role, run the lifecycle service (which locks it),
    answer the series with its sessions. Front desk and clinic admins; a series out of reach is
    404."""

    serializer_class = s.SeriesDetailSerializer
    queryset = TreatmentSeries.objects.none()
    action_name = ""
    input_serializer: type[drf_serializers.Serializer] = s.SeriesReasonSerializer

    @property
    def user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    @abstractmethod
    def perform(self, series: TreatmentSeries, reason: str) -> list[Session]:
        """Run the service; answer the sessions it changed besides the series (audited)."""

    def post(self, request: Request, pk: int) -> Response:
        given = self.input_serializer(data=request.data)
        given.is_valid(raise_exception=True)
        with transaction.atomic():
            series = series_visible(self.caller).filter(pk=pk).first()  # the service locks it
            if series is None:
                raise NotFound()
            require_roles(self.caller, *FRONT)
            changed = self.perform(series, given.validated_data.get("reason", ""))
            audit(request, self.action_name, "series", [series], lambda item: item.patient_id)
            if changed:
                audit(request, "cancel", "session", changed, _patient_of_session)
        answer = series_with_sessions(TreatmentSeries.objects.filter(pk=pk)).get()
        return Response(s.SeriesDetailSerializer(answer).data)


def _documented_series_action(summary: str, description: str) -> Any:
    return extend_schema(
        summary=summary,
        description=description,
        request=s.SeriesReasonSerializer,
        responses=s.SeriesDetailSerializer,
    )


@extend_schema_view(
    post=_documented_series_action(
        "Put a series on hold",
        "Its booked sessions stay booked; nothing new is booked into it until it is resumed. "
        "422 unless active.",
    )
)
class SeriesHold(SeriesAction):
    action_name = "hold"

    def perform(self, series: TreatmentSeries, reason: str) -> list[Session]:
        services.series_hold(series, reason=reason, by=self.user)
        return []


@extend_schema_view(
    post=_documented_series_action("Resume a series on hold", "422 unless on hold.")
)
class SeriesResume(SeriesAction):
    action_name = "resume"

    def perform(self, series: TreatmentSeries, reason: str) -> list[Session]:
        services.series_resume(series, by=self.user)
        return []


@extend_schema_view(
    post=_documented_series_action(
        "Discontinue a series",
        "Stops it before its end: its sessions still to come are cancelled (never as late "
        "cancellations) with their reminders. 422 once completed or discontinued.",
    )
)
class SeriesDiscontinue(SeriesAction):
    action_name = "discontinue"

    def perform(self, series: TreatmentSeries, reason: str) -> list[Session]:
        _, cancelled = services.series_discontinue(series, reason=reason, by=self.user)
        return cancelled


@extend_schema_view(
    post=_documented_series_action(
        "Complete a series by hand",
        "A series completes by itself when its last needed session is completed; this closes one "
        "whose course ended otherwise (integration with an outside therapist). 422 while "
        "sessions are still to come.",
    )
)
class SeriesComplete(SeriesAction):
    action_name = "complete"

    def perform(self, series: TreatmentSeries, reason: str) -> list[Session]:
        services.series_complete(series, reason=reason, by=self.user)
        return []


class DaySheetView(StaffView):
    serializer_class = s.DaySheetSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("date", OpenApiTypes.DATE, required=True),
            OpenApiParameter("clinic", OpenApiTypes.INT, description="Default: your clinic."),
        ],
        responses=s.DaySheetSerializer,
    )
    def get(self, request: Request) -> Response:
        query = s.DaySheetQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        clinic_id = query.validated_data.get("clinic", self.caller.clinic_id)
        if clinic_id is None:
            raise ValidationError({"clinic": ["Name the clinic."]})
        clinic = clinics_visible(self.caller).filter(pk=clinic_id).first()
        if clinic is None:
            raise NotFound()
        sheet = day_sheet(clinic, query.validated_data["date"], sessions_visible(self.caller))
        sessions = [session for room in sheet.rooms for session in room.sessions]
        audit(request, "list", "session", sessions, _patient_of_session)
        blockers = safety_gates.check_in_blockers(sessions)
        return Response(s.DaySheetSerializer(sheet, context={"check_in_blockers": blockers}).data)
