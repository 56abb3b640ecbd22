"""What each caller may reach. Every view starts from one of these querysets, never from
``Model.objects``, so an id outside the caller's reach is simply not found.

- superuser: every clinic, as its clinic admin (API.md);
- front desk and clinic admin: every patient and session of their own clinic;
- nurse and prescriber: the clinic's patients (screening status) and its medicine sessions, plus
  any session they are booked on;
- therapist: their caseload (the patients they hold a session with) and those patients' sessions;
- a patient's token: nothing here; the portal (``/me/``) has its own scope.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from clinic.models import Clinic, Patient, Role, Room, StaffMember
from scheduling.models import Session, SessionStaff, TreatmentSeries

from .access import Caller


def clinics_visible(caller: Caller) -> QuerySet[Clinic]:
    clinics = Clinic.objects.all()
    if caller.is_superuser:
        return clinics
    return clinics.filter(pk=caller.staff.clinic_id) if caller.staff else clinics.none()


def rooms_visible(caller: Caller) -> QuerySet[Room]:
    rooms = Room.objects.all()
    if caller.is_superuser:
        return rooms
    return rooms.filter(clinic_id=caller.staff.clinic_id) if caller.staff else rooms.none()


def staff_visible(caller: Caller) -> QuerySet[StaffMember]:
    staff = StaffMember.objects.all()
    if caller.is_superuser:
        return staff
    return staff.filter(clinic_id=caller.staff.clinic_id) if caller.staff else staff.none()


def _caseload_patient_ids(caller: Caller) -> QuerySet[SessionStaff, Any]:
    return SessionStaff.objects.filter(staff=caller.staff).values("session__patient_id")


def patients_visible(caller: Caller) -> QuerySet[Patient]:
    patients = Patient.objects.all()
    if caller.is_superuser:
        return patients
    if caller.staff is None:
        return patients.none()
    patients = patients.filter(clinic_id=caller.staff.clinic_id)
    if caller.sees_whole_clinic or caller.sees_medicine_sessions:
        return patients
    if Role.THERAPIST in caller.roles:
        return patients.filter(pk__in=_caseload_patient_ids(caller))
    return patients.none()


def sessions_visible(caller: Caller) -> QuerySet[Session]:
    sessions = Session.objects.all()
    if caller.is_superuser:
        return sessions
    if caller.staff is None:
        return sessions.none()
    sessions = sessions.filter(clinic_id=caller.staff.clinic_id)
    if caller.sees_whole_clinic:
        return sessions
    reach = Q(pk__in=SessionStaff.objects.filter(staff=caller.staff).values("session_id"))
    if caller.sees_medicine_sessions:
        reach |= Q(kind="medicine")
    if Role.THERAPIST in caller.roles:
        reach |= Q(patient_id__in=_caseload_patient_ids(caller))
    return sessions.filter(reach)


def series_visible(caller: Caller) -> QuerySet[TreatmentSeries]:
    series = TreatmentSeries.objects.all()
    if caller.is_superuser:
        return series
    return series.filter(patient__in=patients_visible(caller))
