"""Who is calling, and what they may reach.

Every view builds a ``Caller`` once and scopes its querysets by it: staff reach their own clinic,
a superuser every clinic (as its clinic admin), a patient only ``/me/...``. Staff endpoints that
take the id of patient data answer a patient's token with 404, never 403, so that not even the
existence of another patient's object leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import permissions
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from clinic.models import Patient, Role, StaffMember, StaffRole, User


@dataclass(frozen=True)
class Caller:
    user: User
    staff: StaffMember | None
    patient: Patient | None
    roles: frozenset[str]

    @property
    def is_superuser(self) -> bool:
        return bool(self.user.is_superuser)

    @property
    def clinic_id(self) -> int | None:
        return self.staff.clinic_id if self.staff is not None else None

    @property
    def is_staff_member(self) -> bool:
        return self.staff is not None or self.is_superuser

    def has_any_role(self, *roles: str) -> bool:
        """Superusers hold every role in every clinic (API.md: whatever a clinic admin may)."""
        return self.is_superuser or bool(self.roles.intersection(roles))

    def may_reach_clinic(self, clinic_id: int | None) -> bool:
        return self.is_superuser or (clinic_id is not None and clinic_id == self.clinic_id)

    @property
    def sees_whole_clinic(self) -> bool:
        """Front desk and clinic admins see every patient and session of their clinic."""
        return self.has_any_role(Role.FRONT_DESK, Role.CLINIC_ADMIN)

    @property
    def sees_medicine_sessions(self) -> bool:
        return self.has_any_role(Role.NURSE, Role.PRESCRIBER)


def _related(user: User, name: str) -> Any:
    """A reverse one-to-one (the staff or patient profile): loaded with the user by the
    authentication class, or fetched here."""
    try:
        return getattr(user, name)
    except ObjectDoesNotExist:
        return None


def caller_of(request: Request) -> Caller:
    """The caller, loaded once per request (two queries at most) and kept on the request."""
    cached = getattr(request, "_clinic_caller", None)
    if cached is not None:
        return cached
    user: User = request.user  # type: ignore[assignment]
    if not user.is_authenticated:  # the schema generator's fake request
        return Caller(user=user, staff=None, patient=None, roles=frozenset())
    staff = _related(user, "staff_profile")
    if staff is not None and not staff.is_active:
        staff = None
    patient = None
    if staff is None and not user.is_superuser:
        patient = _related(user, "patient_profile")
    roles = (
        frozenset(StaffRole.objects.filter(staff=staff).values_list("role", flat=True))
        if staff is not None
        else frozenset()
    )
    caller = Caller(user=user, staff=staff, patient=patient, roles=roles)
    request._clinic_caller = caller  # type: ignore[attr-defined]
    return caller


class IsClinicStaff(permissions.BasePermission):
    """Staff endpoints. A patient's token gets 404 where the URL names an object (its existence
    may be another patient's private data) and 403 on lists and creation."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        caller = caller_of(request)
        if caller.is_staff_member:
            return True
        if getattr(view, "kwargs", {}).get("pk") is not None:
            raise NotFound()
        return False


class IsPatient(permissions.BasePermission):
    """Portal endpoints: a patient's own login."""

    message = "This endpoint is for a patient's own portal login."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return caller_of(request).patient is not None


def require_roles(caller: Caller, *roles: str) -> None:
    """403 unless the caller holds one of ``roles`` (superusers hold them all)."""
    if not caller.has_any_role(*roles):
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied(f"This needs one of the roles: {', '.join(roles)}.")
