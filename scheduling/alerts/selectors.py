"""Reads of staff alerts, for the admin and (later) the API."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from clinic.models import StaffMember

from .models import StaffAlert


def staff_alerts(
    *,
    clinic_id: int | None = None,
    kind: str | None = None,
    is_open: bool | None = None,
) -> QuerySet[StaffAlert]:
    alerts = StaffAlert.objects.select_related(
        "clinic", "target_staff", "acknowledged_by", "session", "series"
    )
    if clinic_id is not None:
        alerts = alerts.filter(clinic_id=clinic_id)
    if kind is not None:
        alerts = alerts.filter(kind=kind)
    if is_open is not None:
        alerts = alerts.filter(acknowledged_at__isnull=is_open)
    return alerts.order_by("-created_at", "-id")


def staff_alerts_for(staff: StaffMember, *, is_open: bool = True) -> QuerySet[StaffAlert]:
    """The alerts a staff member should see: addressed to them, or to one of their roles at
    their clinic."""
    roles = list(staff.role_grants.values_list("role", flat=True))
    return staff_alerts(is_open=is_open).filter(
        Q(target_staff=staff) | Q(clinic_id=staff.clinic_id, target_role__in=roles)
    )
