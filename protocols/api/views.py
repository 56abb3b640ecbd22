"""Protocols (API.md): list the versions, read one, write a new version (clinic admins)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.api.access import require_roles
from clinic.api.base import StaffView, page_of
from clinic.api.idempotency import idempotent
from clinic.models import Role
from protocols import services
from protocols.models import CareModel, ProtocolVersion
from protocols.selectors import latest_versions, protocol_versions

from .serializers import ProtocolDocumentSerializer, ProtocolVersionSerializer


class ProtocolFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="protocol__name", max_length=200)
    care_model = django_filters.ChoiceFilter(
        field_name="protocol__care_model", choices=CareModel.choices
    )
    latest = django_filters.BooleanFilter(method="filter_latest", help_text="Newest versions only.")

    class Meta:
        model = ProtocolVersion
        fields = ["name", "care_model", "latest"]

    def filter_latest(
        self, queryset: QuerySet[ProtocolVersion], name: str, value: bool | None
    ) -> QuerySet[ProtocolVersion]:
        return queryset.filter(pk__in=latest_versions().values("pk")) if value else queryset


class ProtocolList(StaffView):
    serializer_class = ProtocolVersionSerializer
    filterset_class = ProtocolFilter

    def get_queryset(self) -> QuerySet[ProtocolVersion]:
        return protocol_versions().order_by("protocol__name", "-version")

    @extend_schema(responses=ProtocolVersionSerializer(many=True))
    def get(self, request: Request) -> Response:
        return page_of(self, self.get_queryset(), ProtocolVersionSerializer)

    @extend_schema(request=ProtocolDocumentSerializer, responses={201: ProtocolVersionSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        require_roles(self.caller, Role.CLINIC_ADMIN)
        data = ProtocolDocumentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.protocol_version_create(
            data.validated_data,
            created_by=request.user,  # type: ignore[arg-type]
        )
        version = self.get_queryset().get(pk=version.pk)
        return Response(ProtocolVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class ProtocolDetail(StaffView):
    serializer_class = ProtocolVersionSerializer
    queryset = ProtocolVersion.objects.none()

    def get(self, request: Request, pk: int) -> Response:
        version = self.scoped_object(protocol_versions(), pk)
        return Response(ProtocolVersionSerializer(version).data)
