"""What every API view shares: the caller, scoped lookups, pages, and the audit of patient data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import generics
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.audit import audit_record
from clinic.models import Patient

from .access import Caller, IsClinicStaff, IsPatient, caller_of


class StaffView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, IsClinicStaff]

    @property
    def caller(self) -> Caller:
        return caller_of(self.request)

    def scoped_object(self, queryset: QuerySet[Any], pk: Any) -> Any:
        """The object among those the caller may reach; 404 otherwise (existence is private)."""
        return get_object_or_404(queryset, pk=pk)


class PortalView(generics.GenericAPIView):
    """A patient-portal view: a patient's token only, and that patient at hand."""

    permission_classes = [IsAuthenticated, IsPatient]

    @property
    def patient(self) -> Patient:
        patient = caller_of(self.request).patient
        assert patient is not None
        return patient


def page_of(
    view: generics.GenericAPIView,
    queryset: QuerySet[Any],
    serializer: Callable[..., Any],
    *,
    audit: tuple[str, Callable[[Any], int]] | None = None,
    context: dict[str, Any] | None = None,
) -> Response:
    """One page of ``queryset``, serialized; with ``audit=(object_type, patient_of)`` one audit
    row names every object on the page and its patients."""
    page = view.paginate_queryset(view.filter_queryset(queryset))
    rows: Sequence[Any] = page if page is not None else list(queryset)
    data = serializer(rows, many=True, context={**view.get_serializer_context(), **(context or {})})
    if audit is not None:
        object_type, patient_of = audit
        audit_record(
            view.request,
            action="list",
            object_type=object_type,
            object_ids=[row.pk for row in rows],
            patient_ids=[patient_of(row) for row in rows],
        )
    return view.get_paginated_response(data.data)


def audit(
    request: Request,
    action: str,
    object_type: str,
    objects: Iterable[Any],
    patient_of: Callable[[Any], int],
) -> None:
    items = list(objects)
    audit_record(
        request,
        action=action,
        object_type=object_type,
        object_ids=[item.pk for item in items],
        patient_ids=[patient_of(item) for item in items],
    )
