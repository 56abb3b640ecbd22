"""Clinic set-up (API.md): clinics, rooms, staff with hours and time off, patients with screening
and consent. Each view scopes by the caller, checks the role, calls a service, and audits reads and
writes of patient data."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from clinic import services
from clinic.models import Clinic, Patient, Role, Room, StaffMember, TimeOff
from clinic.models import Consent as ConsentModel
from clinic.models import Screening as ScreeningModel

from . import serializers as s
from .access import require_roles
from .base import StaffView, audit, page_of
from .filters import IdFilter
from .idempotency import idempotent
from .scope import clinics_visible, patients_visible, rooms_visible, staff_visible


def _scope_clinic_field(serializer: Any, queryset: QuerySet[Clinic]) -> None:
    serializer.fields["clinic"].queryset = queryset


class ClinicList(StaffView):
    serializer_class = s.ClinicSerializer

    def get_queryset(self) -> QuerySet[Clinic]:
        return clinics_visible(self.caller).prefetch_related("opening_hours")

    @extend_schema(responses=s.ClinicSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(self, self.get_queryset(), s.ClinicSerializer)

    @extend_schema(request=s.ClinicCreateSerializer, responses={201: s.ClinicSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        if not self.caller.is_superuser:
            raise PermissionDenied("Only a superuser opens a new clinic.")
        data = s.ClinicCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        clinic = services.clinic_create(
            name=fields.pop("name"), timezone_name=fields.pop("timezone"), **fields
        )
        clinic = self.get_queryset().get(pk=clinic.pk)
        return Response(s.ClinicSerializer(clinic).data, status=status.HTTP_201_CREATED)


class ClinicDetail(StaffView):
    serializer_class = s.ClinicSerializer
    queryset = Clinic.objects.none()

    def get_queryset(self) -> QuerySet[Clinic]:
        return clinics_visible(self.caller).prefetch_related("opening_hours")

    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ClinicSerializer(self.scoped_object(self.get_queryset(), pk)).data)


class RoomFilter(django_filters.FilterSet):
    clinic = IdFilter(field_name="clinic_id")

    class Meta:
        model = Room
        fields = ["clinic", "kind", "is_active"]


class RoomList(StaffView):
    serializer_class = s.RoomSerializer
    filterset_class = RoomFilter

    def get_queryset(self) -> QuerySet[Room]:
        return rooms_visible(self.caller).order_by("clinic_id", "kind", "name", "id")

    @extend_schema(responses=s.RoomSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(self, self.get_queryset(), s.RoomSerializer)

    @extend_schema(request=s.RoomCreateSerializer, responses={201: s.RoomSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        require_roles(self.caller, Role.CLINIC_ADMIN)
        data = s.RoomCreateSerializer(data=request.data)
        _scope_clinic_field(data, clinics_visible(self.caller))
        data.is_valid(raise_exception=True)
        room = services.room_create(**data.validated_data)
        return Response(s.RoomSerializer(room).data, status=status.HTTP_201_CREATED)


class RoomDetail(StaffView):
    serializer_class = s.RoomSerializer
    queryset = Room.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        return Response(s.RoomSerializer(self.scoped_object(rooms_visible(self.caller), pk)).data)


class StaffFilter(django_filters.FilterSet):
    clinic = IdFilter(field_name="clinic_id")
    role = django_filters.ChoiceFilter(field_name="role_grants__role", choices=Role.choices)

    class Meta:
        model = StaffMember
        fields = ["clinic", "is_active", "role"]


def _staff_queryset(queryset: QuerySet[StaffMember]) -> QuerySet[StaffMember]:
    return queryset.select_related("user", "clinic").prefetch_related(
        "role_grants",
        "working_hours",
        Prefetch("time_off", queryset=TimeOff.objects.select_related("staff__clinic")),
    )


class StaffList(StaffView):
    serializer_class = s.StaffSerializer
    filterset_class = StaffFilter

    def get_queryset(self) -> QuerySet[StaffMember]:
        return _staff_queryset(staff_visible(self.caller)).order_by("clinic_id", "full_name", "id")

    @extend_schema(responses=s.StaffSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(self, self.get_queryset(), s.StaffSerializer)

    @extend_schema(request=s.StaffCreateSerializer, responses={201: s.StaffSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        require_roles(self.caller, Role.CLINIC_ADMIN)
        data = s.StaffCreateSerializer(data=request.data)
        _scope_clinic_field(data, clinics_visible(self.caller))
        data.is_valid(raise_exception=True)
        member = services.staff_create(**data.validated_data)
        member = self.get_queryset().get(pk=member.pk)
        return Response(s.StaffSerializer(member).data, status=status.HTTP_201_CREATED)


class StaffDetail(StaffView):
    serializer_class = s.StaffSerializer
    queryset = StaffMember.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        member = self.scoped_object(_staff_queryset(staff_visible(self.caller)), pk)
        return Response(s.StaffSerializer(member).data)


class StaffWorkingHoursCreate(StaffView):
    serializer_class = s.WorkingHoursSerializer
    queryset = StaffMember.objects.none()

    @extend_schema(request=s.WeeklyHoursSerializer, responses={201: s.WorkingHoursSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        member = self.scoped_object(staff_visible(self.caller), pk)
        require_roles(self.caller, Role.CLINIC_ADMIN)
        data = s.WeeklyHoursSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hours = services.working_hours_add(staff=member, **data.validated_data)
        return Response(s.WorkingHoursSerializer(hours).data, status=status.HTTP_201_CREATED)


class StaffTimeOffCreate(StaffView):
    serializer_class = s.TimeOffSerializer
    queryset = StaffMember.objects.none()

    @extend_schema(request=s.TimeOffCreateSerializer, responses={201: s.TimeOffSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        member = self.scoped_object(staff_visible(self.caller).select_related("clinic"), pk)
        require_roles(self.caller, Role.CLINIC_ADMIN)
        data = s.TimeOffCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        time_off = services.time_off_add(staff=member, **data.validated_data)
        return Response(s.TimeOffSerializer(time_off).data, status=status.HTTP_201_CREATED)


class PatientFilter(django_filters.FilterSet):
    clinic = IdFilter(field_name="clinic_id")
    name = django_filters.CharFilter(
        field_name="full_name", lookup_expr="icontains", max_length=200
    )

    class Meta:
        model = Patient
        fields = ["clinic", "name"]


def _patient_id(patient: Patient) -> int:
    return patient.pk


class PatientList(StaffView):
    serializer_class = s.PatientSerializer
    filterset_class = PatientFilter

    def get_queryset(self) -> QuerySet[Patient]:
        return patients_visible(self.caller).order_by("clinic_id", "full_name", "id")

    @extend_schema(responses=s.PatientSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(
            self, self.get_queryset(), s.PatientSerializer, audit=("patient", _patient_id)
        )

    @extend_schema(request=s.PatientCreateSerializer, responses={201: s.PatientSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        require_roles(self.caller, Role.FRONT_DESK, Role.CLINIC_ADMIN)
        data = s.PatientCreateSerializer(data=request.data)
        _scope_clinic_field(data, clinics_visible(self.caller))
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            patient = services.patient_create(**data.validated_data)
            audit(request, "create", "patient", [patient], _patient_id)
        return Response(s.PatientSerializer(patient).data, status=status.HTTP_201_CREATED)


class PatientDetail(StaffView):
    serializer_class = s.PatientSerializer
    queryset = Patient.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller), pk)
        audit(request, "read", "patient", [patient], _patient_id)
        return Response(s.PatientSerializer(patient).data)

    @extend_schema(request=s.PatientDetailsSerializer, responses=s.PatientSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller), pk)
        require_roles(self.caller, Role.FRONT_DESK, Role.CLINIC_ADMIN)
        data = s.PatientDetailsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            patient = services.patient_update(patient, **data.validated_data)
            audit(request, "update", "patient", [patient], _patient_id)
        return Response(s.PatientSerializer(patient).data)


class PatientScreenings(StaffView):
    serializer_class = s.ScreeningSerializer
    queryset = ScreeningModel.objects.none()

    @extend_schema(responses=s.ScreeningSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller), pk)
        screenings = ScreeningModel.objects.filter(patient=patient).order_by("-screened_on", "-id")
        return page_of(
            self, screenings, s.ScreeningSerializer, audit=("screening", lambda x: x.patient_id)
        )

    @extend_schema(request=s.ScreeningCreateSerializer, responses={201: s.ScreeningSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller).select_related("clinic"), pk)
        require_roles(self.caller, Role.PRESCRIBER, Role.NURSE, Role.CLINIC_ADMIN)
        data = s.ScreeningCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            screening = services.screening_record(
                patient=patient, cleared_by=self.caller.staff, **data.validated_data
            )
            audit(request, "create", "screening", [screening], lambda x: x.patient_id)
        return Response(s.ScreeningSerializer(screening).data, status=status.HTTP_201_CREATED)


class PatientConsents(StaffView):
    serializer_class = s.ConsentSerializer
    queryset = ConsentModel.objects.none()

    @extend_schema(responses=s.ConsentSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller), pk)
        consents = (
            ConsentModel.objects.filter(patient=patient)
            .select_related("patient__clinic")
            .order_by("-signed_at", "-id")
        )
        return page_of(
            self, consents, s.ConsentSerializer, audit=("consent", lambda x: x.patient_id)
        )

    @extend_schema(request=s.ConsentCreateSerializer, responses={201: s.ConsentSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        patient = self.scoped_object(patients_visible(self.caller).select_related("clinic"), pk)
        require_roles(
            self.caller,
            Role.FRONT_DESK,
            Role.NURSE,
            Role.PRESCRIBER,
            Role.THERAPIST,
            Role.CLINIC_ADMIN,
        )
        data = s.ConsentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            consent = services.consent_record(
                patient=patient, recorded_by=self.caller.staff, **data.validated_data
            )
            audit(request, "create", "consent", [consent], lambda x: x.patient_id)
        return Response(s.ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)
