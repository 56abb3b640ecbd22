"""The integration app's API: the therapist's caseload, the clinical record of a medicine session
(dose, vital signs, adverse events, discharge), integration after a medicine session (outside
therapists, declines, notes) and outcome measures. One view per action; each calls one service.

Who may do what:

- caseload: a therapist their own; a clinic admin (the clinical supervisor) any therapist of their
  clinic; everyone else 403. Another therapist's caseload is 404 to a therapist.
- clinical record: nurses and prescribers write; they, clinic admins and the session's therapist
  read.
- integration notes: the session's therapist writes; that therapist and clinical supervisors read.
- outcome measures: the patient answers in the portal; clinicians enter paper answers and read the
  trend.

Objects outside the caller's reach (another clinic's, another patient's) are 404; a role that may
see the object but not do this is 403. Every read and write of patient data writes an audit row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.access import require_roles
from clinic.api.base import PortalView, StaffView, audit
from clinic.api.idempotency import idempotent
from clinic.api.scope import series_visible, sessions_visible, staff_visible
from clinic.models import Patient, Role, StaffMember, User
from scheduling.models import Session, SessionStaff, TreatmentSeries

from .. import clinical_selectors, selectors, services
from ..models import (
    OutsideConfirmer,
    OutsideIntegration,
    QuestionnaireAssignment,
    QuestionnaireResponse,
)
from . import serializers as s

DOSING = (Role.NURSE, Role.PRESCRIBER)
CLINICIANS = (Role.THERAPIST, Role.NURSE, Role.PRESCRIBER, Role.CLINIC_ADMIN)
INTEGRATION_RECORDERS = (Role.THERAPIST, Role.CLINIC_ADMIN, Role.FRONT_DESK)


def _validated(serializer: type[drf_serializers.Serializer], data: Any) -> dict[str, Any]:
    given = serializer(data=data)
    given.is_valid(raise_exception=True)
    return dict(given.validated_data)


def _zone(clinic_zone: ZoneInfo) -> dict[str, Any]:
    return {"zone": clinic_zone}


def _patient_of_session(session: Session) -> int:
    return session.patient_id


class IntegrationStaffView(StaffView):
    """Staff views on a session, an outside integration, a series or a questionnaire."""

    queryset = Session.objects.none()

    def session_for(self, pk: int) -> Session:
        session: Session = self.scoped_object(
            sessions_visible(self.caller).select_related("clinic", "patient"), pk
        )
        return session

    @property
    def user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def staff_member(self, *roles: str) -> StaffMember:
        """The caller as a staff member holding one of ``roles`` (records name who wrote them)."""
        require_roles(self.caller, *roles)
        if self.caller.staff is None:
            raise PermissionDenied("Record this as a staff member of the clinic.")
        return self.caller.staff

    def is_session_therapist(self, session: Session) -> bool:
        staff = self.caller.staff
        return staff is not None and (
            SessionStaff.objects.filter(
                session_id=session.pk, staff_id=staff.pk, role=Role.THERAPIST
            ).exists()
        )


# ---------------------------------------------------------------------------------------------
# The caseload


class CaseloadView(IntegrationStaffView):
    """The integration caseload of a therapist, most urgent first (``integration.selectors``)."""

    serializer_class = s.CaseloadSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "therapist", OpenApiTypes.INT, description="A staff id; default: yourself."
            ),
            OpenApiParameter("page", OpenApiTypes.INT, description="From 1."),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 200; 50 if unset."),
        ],
        responses=s.CaseloadSerializer,
    )
    def get(self, request: Request) -> Response:
        require_roles(self.caller, Role.THERAPIST, Role.CLINIC_ADMIN)
        query = _validated(s.CaseloadQuerySerializer, request.query_params.dict())
        therapist = self._therapist(query.get("therapist"))
        rows = selectors.caseload(therapist, now=timezone.now())
        page = self.paginate_queryset(rows) or []  # most urgent first, then a page of them
        audit(request, "list", "caseload", [row.patient for row in page], lambda p: p.pk)
        results = s.CaseloadPatientSerializer(
            page, many=True, context=_zone(therapist.clinic.tz)
        ).data
        return Response({"therapist": therapist.pk, **self.get_paginated_response(results).data})

    def _therapist(self, therapist_id: int | None) -> StaffMember:
        caller = self.caller
        if therapist_id is None:
            if caller.staff is None or Role.THERAPIST not in caller.roles:
                raise ValidationError({"therapist": ["Name the therapist."]})
            therapist_id = caller.staff.pk
        if caller.has_any_role(Role.CLINIC_ADMIN):
            candidates = staff_visible(caller)
        elif caller.staff is not None and therapist_id == caller.staff.pk:
            candidates = StaffMember.objects.filter(pk=caller.staff.pk)
        else:
            raise NotFound()
        therapist = (
            candidates.filter(pk=therapist_id, is_active=True, role_grants__role=Role.THERAPIST)
            .select_related("clinic")
            .first()
        )
        if therapist is None:
            raise NotFound()
        return therapist


# ---------------------------------------------------------------------------------------------
# The clinical record of a medicine session


class ClinicalRecordView(IntegrationStaffView):
    serializer_class = s.ClinicalRecordSerializer

    @extend_schema(responses=s.ClinicalRecordSerializer)
    def get(self, request: Request, pk: int) -> Response:
        session = self.session_for(pk)
        if not (
            self.caller.has_any_role(*DOSING, Role.CLINIC_ADMIN)
            or self.is_session_therapist(session)
        ):
            raise PermissionDenied(
                "The clinical record is read by nurses, prescribers, clinic admins and the "
                "session's therapist."
            )
        record = selectors.clinical_record(session)
        audit(request, "read", "clinical_record", [session], _patient_of_session)
        missing = record.missing_for_completion
        data = s.ClinicalRecordSerializer(
            {
                "session": session.pk,
                "patient": session.patient_id,
                "status": session.status,
                "dose": record.dose,
                "vital_signs": record.vital_signs,
                "adverse_events": record.adverse_events,
                "can_complete": not missing,
                "missing_for_completion": missing,
            },
            context=_zone(session.clinic.tz),
        ).data
        return Response(data)


class SessionRecordCreate(IntegrationStaffView, ABC):
    """A write to the clinical record of a session: lookup (404), role (403), input (400), then
    the service and its audit row in one transaction; answered with ``serializer_class``. Each
    endpoint names its serializers and its service call (``perform``), and documents its body
    with ``_documented``."""

    roles: tuple[str, ...] = DOSING
    input_serializer: type[drf_serializers.Serializer]
    serializer_class: type[drf_serializers.Serializer]
    object_type = ""
    action_name = "create"
    answer_status: int = status.HTTP_201_CREATED

    @abstractmethod
    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        """Write the record through its service; return what was written."""

    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        session = self.session_for(pk)
        member = self.staff_member(*self.roles)
        data = _validated(self.input_serializer, request.data)
        with transaction.atomic():
            written = self.perform(session, member, data)
            audit(
                request, self.action_name, self.object_type, [written], lambda _: session.patient_id
            )
        return Response(
            self.serializer_class(written, context=_zone(session.clinic.tz)).data,
            status=self.answer_status,
        )


def _documented(
    request: type[drf_serializers.Serializer],
    response: type[drf_serializers.Serializer],
    answer_status: int = status.HTTP_201_CREATED,
) -> Any:
    """The OpenAPI description of a ``SessionRecordCreate`` endpoint's inherited ``post``."""
    responses: Any = {201: response} if answer_status == status.HTTP_201_CREATED else response
    return extend_schema_view(post=extend_schema(request=request, responses=responses))


@_documented(s.DoseInputSerializer, s.DoseRecordSerializer)
class DoseCreate(SessionRecordCreate):
    """The dose given: mg/kg is computed from the dose and the weight used."""

    serializer_class = s.DoseRecordSerializer
    input_serializer = s.DoseInputSerializer
    object_type = "dose_record"

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.dose_record(
            session=session, administered_by=member, recorded_by=self.user, **data
        )


@_documented(s.DoseEndInputSerializer, s.DoseRecordSerializer, status.HTTP_200_OK)
class DoseEnd(SessionRecordCreate):
    """When the dose (an infusion) ended."""

    serializer_class = s.DoseRecordSerializer
    input_serializer = s.DoseEndInputSerializer
    object_type = "dose_record"
    action_name = "dose_end"
    answer_status = status.HTTP_200_OK

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.dose_end_record(session=session, recorded_by=member, **data)


@_documented(s.VitalSignsInputSerializer, s.VitalSignsSerializer)
class VitalSignsCreate(SessionRecordCreate):
    """Vital signs taken before, during or after the dose."""

    serializer_class = s.VitalSignsSerializer
    input_serializer = s.VitalSignsInputSerializer
    object_type = "vital_signs"

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.vital_signs_record(session=session, recorded_by=member, **data)


@_documented(s.AdverseEventInputSerializer, s.AdverseEventSerializer)
class AdverseEventCreate(SessionRecordCreate):
    """An adverse event of the dose; a therapist present may record one too."""

    serializer_class = s.AdverseEventSerializer
    input_serializer = s.AdverseEventInputSerializer
    object_type = "adverse_event"
    roles = (*DOSING, Role.THERAPIST)

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.adverse_event_record(session=session, recorded_by=member, **data)


@_documented(s.DischargeInputSerializer, s.DoseRecordSerializer)
class DischargeCreate(SessionRecordCreate):
    """The discharge: who, when, into whose care, every criterion met."""

    serializer_class = s.DoseRecordSerializer
    input_serializer = s.DischargeInputSerializer
    object_type = "dose_record"
    action_name = "discharge"

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.discharge_record(
            session=session,
            discharged_by=member,
            discharged_at=data["discharged_at"],
            escort_handoff_name=data["escort_handoff_name"],
            criteria=data["criteria"],
        )


# ---------------------------------------------------------------------------------------------
# Integration: outside therapists, declines, notes


@_documented(s.OutsideIntegrationInputSerializer, s.OutsideIntegrationSerializer)
class OutsideIntegrationCreate(SessionRecordCreate):
    """Integration done by the patient's own therapist (who, when); done once confirmed."""

    serializer_class = s.OutsideIntegrationSerializer
    input_serializer = s.OutsideIntegrationInputSerializer
    object_type = "outside_integration"
    roles = INTEGRATION_RECORDERS

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.outside_integration_record(
            medicine_session=session, recorded_by=self.user, **data
        )


@_documented(s.DeclineInputSerializer, s.IntegrationDeclineSerializer)
class DeclineIntegration(SessionRecordCreate):
    """The patient, offered integration after this medicine session, chose none."""

    serializer_class = s.IntegrationDeclineSerializer
    input_serializer = s.DeclineInputSerializer
    object_type = "integration_decline"
    roles = (*INTEGRATION_RECORDERS, Role.PRESCRIBER)

    def perform(self, session: Session, member: StaffMember, data: dict[str, Any]) -> Any:
        return services.integration_decline_record(
            recorded_by=member, reason=data["reason"], medicine_session=session
        )


class SeriesDeclineIntegration(IntegrationStaffView):
    """An infusion-only patient chose no integration therapy for the whole series."""

    serializer_class = s.IntegrationDeclineSerializer
    queryset = TreatmentSeries.objects.none()

    @extend_schema(
        request=s.DeclineInputSerializer, responses={201: s.IntegrationDeclineSerializer}
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        series: TreatmentSeries = self.scoped_object(
            series_visible(self.caller).select_related(
                "patient__clinic", "protocol_version__protocol"
            ),
            pk,
        )
        member = self.staff_member(*INTEGRATION_RECORDERS, Role.PRESCRIBER)
        data = _validated(s.DeclineInputSerializer, request.data)
        with transaction.atomic():
            decline = services.integration_decline_record(
                recorded_by=member, reason=data["reason"], series=series
            )
            audit(request, "create", "integration_decline", [decline], lambda _: series.patient_id)
        return Response(
            s.IntegrationDeclineSerializer(decline, context=_zone(series.patient.clinic.tz)).data,
            status=status.HTTP_201_CREATED,
        )


class OutsideIntegrationConfirm(IntegrationStaffView):
    """Staff record the outside therapist's (or the patient's) confirmation."""

    serializer_class = s.OutsideIntegrationSerializer
    queryset = OutsideIntegration.objects.none()

    @extend_schema(
        request=s.OutsideConfirmInputSerializer, responses=s.OutsideIntegrationSerializer
    )
    def post(self, request: Request, pk: int) -> Response:
        record = self.scoped_object(
            OutsideIntegration.objects.filter(
                medicine_session__in=sessions_visible(self.caller)
            ).select_related("medicine_session__clinic"),
            pk,
        )
        require_roles(self.caller, *INTEGRATION_RECORDERS)
        data = _validated(s.OutsideConfirmInputSerializer, request.data)
        return _confirm(request, record, data["confirmed_by"])


def _confirm(request: Request, record: OutsideIntegration, confirmed_by: str) -> Response:
    with transaction.atomic():
        confirmed = services.outside_integration_confirm(record, confirmed_by=confirmed_by)
        audit(
            request,
            "confirm",
            "outside_integration",
            [confirmed],
            lambda _: record.medicine_session.patient_id,
        )
    zone = record.medicine_session.clinic.tz
    return Response(s.OutsideIntegrationSerializer(confirmed, context=_zone(zone)).data)


class SessionNotes(IntegrationStaffView):
    """Integration notes: written by the session's therapist; read by that therapist and clinical
    supervisors (clinic admins) only. Every read is audited."""

    serializer_class = s.IntegrationNoteSerializer

    @extend_schema(responses=s.IntegrationNoteSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        session = self.session_for(pk)
        if not (
            clinical_selectors.is_clinical_supervisor(self.user, session.clinic_id)
            or self.is_session_therapist(session)
        ):
            raise PermissionDenied(
                "Integration notes are read by the session's therapist and clinical supervisors."
            )
        notes = services.session_notes_read(session, self.user)
        page = self.paginate_queryset(notes)
        rows = page if page is not None else notes
        audit(request, "read", "integration_note", rows, lambda _: session.patient_id)
        data = s.IntegrationNoteSerializer(rows, many=True, context=_zone(session.clinic.tz)).data
        return self.get_paginated_response(data)

    @extend_schema(request=s.NoteInputSerializer, responses={201: s.IntegrationNoteSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        session = self.session_for(pk)
        member = self.staff_member(Role.THERAPIST)
        data = _validated(s.NoteInputSerializer, request.data)
        with transaction.atomic():
            note = services.integration_note_write(
                session=session, author=member, body=data["body"]
            )
            audit(request, "create", "integration_note", [note], lambda _: session.patient_id)
        return Response(
            s.IntegrationNoteSerializer(note, context=_zone(session.clinic.tz)).data,
            status=status.HTTP_201_CREATED,
        )


# ---------------------------------------------------------------------------------------------
# Outcome measures (staff)


def _with_is_answered(
    assignments: QuerySet[QuestionnaireAssignment],
) -> QuerySet[QuestionnaireAssignment]:
    return assignments.annotate(
        is_answered=Exists(QuestionnaireResponse.objects.filter(assignment_id=OuterRef("pk")))
    )


def _answer(request: Request, assignment: QuestionnaireAssignment, answers: list[int]) -> Response:
    with transaction.atomic():
        response = services.questionnaire_answer(
            assignment,
            answers=answers,
            answered_by=request.user,  # type: ignore[arg-type]
        )
        audit(
            request,
            "create",
            "questionnaire_response",
            [response],
            lambda _: assignment.series.patient_id,
        )
    zone = assignment.series.patient.clinic.tz
    return Response(
        s.QuestionnaireResponseSerializer(response, context=_zone(zone)).data,
        status=status.HTTP_201_CREATED,
    )


class QuestionnaireAnswerStaff(IntegrationStaffView):
    """A clinician enters the answers the patient gave on paper."""

    serializer_class = s.QuestionnaireResponseSerializer
    queryset = QuestionnaireAssignment.objects.none()

    @extend_schema(
        request=s.AnswersInputSerializer, responses={201: s.QuestionnaireResponseSerializer}
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        assignment = self.scoped_object(
            QuestionnaireAssignment.objects.filter(
                series__in=series_visible(self.caller)
            ).select_related("series__patient__clinic"),
            pk,
        )
        require_roles(self.caller, *CLINICIANS)
        data = _validated(s.AnswersInputSerializer, request.data)
        return _answer(request, assignment, data["answers"])


class SeriesClinicalView(IntegrationStaffView):
    queryset = TreatmentSeries.objects.none()

    def series_for(self, pk: int) -> TreatmentSeries:
        series: TreatmentSeries = self.scoped_object(
            series_visible(self.caller).select_related("patient__clinic"), pk
        )
        require_roles(self.caller, *CLINICIANS)
        return series


class SeriesScores(SeriesClinicalView):
    """The PHQ-9 and GAD-7 trend of a series: each score and its change from baseline."""

    serializer_class = s.SeriesScoresSerializer

    @extend_schema(responses=s.SeriesScoresSerializer)
    def get(self, request: Request, pk: int) -> Response:
        series = self.series_for(pk)
        trends = clinical_selectors.score_trend(series)
        audit(request, "read", "series_scores", [series], lambda item: item.patient_id)
        data = s.SeriesScoresSerializer(
            s.trends_of(series.pk, trends), context=_zone(series.patient.clinic.tz)
        ).data
        return Response(data)


class SeriesQuestionnaires(SeriesClinicalView):
    """The questionnaires a series asks for, answered or not (withdrawn ones left out)."""

    serializer_class = s.QuestionnaireAssignmentSerializer

    @extend_schema(responses=s.QuestionnaireAssignmentSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        series = self.series_for(pk)
        assignments = _with_is_answered(
            QuestionnaireAssignment.objects.filter(series=series, withdrawn_at__isnull=True)
        ).order_by("due_at", "instrument", "pk")
        return _page(self, assignments, series.patient, s.QuestionnaireAssignmentSerializer)


def _page(
    view: generics.GenericAPIView,
    rows_source: Any,
    patient: Patient,
    serializer: Callable[..., Any],
    object_type: str = "questionnaire_assignment",
) -> Response:
    page = view.paginate_queryset(rows_source)
    rows = page if page is not None else list(rows_source)
    audit(view.request, "list", object_type, rows, lambda _: patient.pk)
    data = serializer(rows, many=True, context=_zone(patient.clinic.tz)).data
    return view.get_paginated_response(data)


# ---------------------------------------------------------------------------------------------
# The patient portal


class MeQuestionnaires(PortalView):
    """The questionnaires the patient can answer now."""

    serializer_class = s.QuestionnaireAssignmentSerializer
    queryset = QuestionnaireAssignment.objects.none()

    @extend_schema(responses=s.QuestionnaireAssignmentSerializer(many=True))
    def get(self, request: Request) -> Response:
        open_now = clinical_selectors.questionnaires_open_for(self.patient.pk, now=timezone.now())
        return _page(self, open_now, self.patient, s.QuestionnaireAssignmentSerializer)


class MeQuestionnaireAnswer(PortalView):
    """The patient answers; the server scores."""

    serializer_class = s.QuestionnaireResponseSerializer
    queryset = QuestionnaireAssignment.objects.none()

    @extend_schema(
        request=s.AnswersInputSerializer, responses={201: s.QuestionnaireResponseSerializer}
    )
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        assignment = (
            QuestionnaireAssignment.objects.filter(series__patient=self.patient, pk=pk)
            .select_related("series__patient__clinic")
            .first()
        )
        if assignment is None:
            raise NotFound()
        data = _validated(s.AnswersInputSerializer, request.data)
        return _answer(request, assignment, data["answers"])


class MeScores(PortalView):
    """The patient's own score trends, one entry per series, newest series first."""

    serializer_class = s.SeriesScoresSerializer
    queryset = TreatmentSeries.objects.none()

    @extend_schema(responses=s.SeriesScoresSerializer(many=True))
    def get(self, request: Request) -> Response:
        series = TreatmentSeries.objects.filter(patient=self.patient).order_by("-created_at", "-pk")
        page = self.paginate_queryset(series)
        rows = list(page if page is not None else series)
        trends = clinical_selectors.score_trends([item.pk for item in rows])
        audit(request, "list", "series_scores", rows, lambda item: item.patient_id)
        data = s.SeriesScoresSerializer(
            [s.trends_of(item.pk, trends[item.pk]) for item in rows],
            many=True,
            context=_zone(self.patient.clinic.tz),
        ).data
        return self.get_paginated_response(data)


class MeOutsideIntegrations(PortalView):
    """The patient's outside-therapist integrations, to confirm the ones that took place."""

    serializer_class = s.OutsideIntegrationSerializer
    queryset = OutsideIntegration.objects.none()

    @extend_schema(responses=s.OutsideIntegrationSerializer(many=True))
    def get(self, request: Request) -> Response:
        records = OutsideIntegration.objects.filter(
            medicine_session__patient=self.patient
        ).order_by("held_on", "pk")
        return _page(
            self, records, self.patient, s.OutsideIntegrationSerializer, "outside_integration"
        )


class MeOutsideIntegrationConfirm(PortalView):
    """The patient confirms their outside integration session took place."""

    serializer_class = s.OutsideIntegrationSerializer
    queryset = OutsideIntegration.objects.none()

    @extend_schema(request=None, responses=s.OutsideIntegrationSerializer)
    def post(self, request: Request, pk: int) -> Response:
        record = (
            OutsideIntegration.objects.filter(medicine_session__patient=self.patient, pk=pk)
            .select_related("medicine_session__clinic")
            .first()
        )
        if record is None:
            raise NotFound()
        return _confirm(request, record, OutsideConfirmer.PATIENT)
