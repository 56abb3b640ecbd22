"""Admin for the integration app: readable lists with filters. Clinical records are written through
the services (API, workers), so the admin shows them and does not edit them. Integration notes are
shown only to superusers and clinic admins. Every list and page of patient data shown writes an
audit row (``clinic.admin_audit``), like the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from clinic.models import Role

from . import clinical_selectors, services
from .models import (
    AdverseEvent,
    DoseRecord,
    IntegrationDecline,
    IntegrationLink,
    IntegrationNote,
    IntegrationSafetyEvent,
    OutsideIntegration,
    QuestionnaireAssignment,
    QuestionnaireResponse,
    VitalSigns,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A clinical record: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IntegrationLink)
class IntegrationLinkAdmin(ReadOnlyAdmin):
    list_display = ("medicine_session", "integration_session", "integration_status", "linked_at")
    list_filter = ("integration_session__status", "medicine_session__clinic")
    search_fields = ("medicine_session__patient__full_name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[IntegrationLink]:
        return (
            super()
            .get_queryset(request)
            .select_related("medicine_session__patient", "integration_session__patient")
        )

    @admin.display(description="integration session status")
    def integration_status(self, link: IntegrationLink) -> str:
        return link.integration_session.status


@admin.register(OutsideIntegration)
class OutsideIntegrationAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "outside_integration"
    list_select_related = ("medicine_session",)
    patient_of = staticmethod(lambda obj: obj.medicine_session.patient_id)

    list_display = ("medicine_session", "therapist_name", "held_on", "confirmed_by", "confirmed_at")
    list_filter = ("confirmed_by", "medicine_session__clinic")
    search_fields = ("therapist_name", "medicine_session__patient__full_name")
    date_hierarchy = "held_on"


@admin.register(IntegrationDecline)
class IntegrationDeclineAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "recorded_by", "recorded_at")
    list_filter = ("recorded_by__clinic",)
    search_fields = ("medicine_session__patient__full_name", "series__patient__full_name")


def _is_supervisor(request: HttpRequest) -> bool:
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    member = clinical_selectors.staff_of(user)
    return member is not None and member.has_role(Role.CLINIC_ADMIN)


@admin.register(IntegrationNote)
class IntegrationNoteAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "integration_note"
    patient_of = staticmethod(lambda obj: obj.session.patient_id)

    """Listed without their text; opening one records the read like any other."""

    list_display = ("pk", "session", "author", "created_at")
    list_filter = ("session__clinic", "author")
    date_hierarchy = "created_at"
    fields = ("session", "author", "created_at", "body")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_supervisor(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_supervisor(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[IntegrationNote]:
        return clinical_selectors.integration_notes_readable_by(request.user)  # type: ignore[arg-type]

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> IntegrationNote | None:
        note = super().get_object(request, object_id, from_field)
        already_read: set[int] = request.__dict__.setdefault("_integration_notes_read", set())
        if note is not None and note.pk not in already_read:
            services.note_read(note, request.user)  # type: ignore[arg-type]
            already_read.add(note.pk)
        return note


@admin.register(QuestionnaireAssignment)
class QuestionnaireAssignmentAdmin(ReadOnlyAdmin):
    list_display = ("series", "instrument", "milestone", "available_from", "due_at", "withdrawn_at")
    list_filter = ("instrument", "milestone", "series__patient__clinic")
    search_fields = ("series__patient__full_name",)
    date_hierarchy = "due_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuestionnaireAssignment]:
        return super().get_queryset(request).select_related("series__patient")


@admin.register(QuestionnaireResponse)
class QuestionnaireResponseAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "questionnaire_response"
    list_select_related = ("assignment__series",)
    patient_of = staticmethod(lambda obj: obj.assignment.series.patient_id)

    list_display = ("assignment", "instrument", "total_score", "severity", "answered_at")
    list_filter = ("instrument", "severity", "assignment__milestone")
    search_fields = ("assignment__series__patient__full_name",)
    date_hierarchy = "answered_at"


@admin.register(IntegrationSafetyEvent)
class IntegrationSafetyEventAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "safety_event"
    patient_of = staticmethod(lambda obj: obj.patient_id)

    list_display = ("patient", "item_number", "answer", "raised_at", "therapist", "prescriber")
    list_filter = ("answer", "patient__clinic")
    search_fields = ("patient__full_name",)
    date_hierarchy = "raised_at"


class AdverseEventInline(admin.TabularInline):
    model = AdverseEvent
    extra = 0
    can_delete = False
    fields = ("code", "notes", "noted_at", "recorded_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DoseRecord)
class DoseRecordAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "dose_record"
    patient_of = staticmethod(lambda obj: obj.session.patient_id)

    list_display = (
        "session",
        "route",
        "dose_mg",
        "dose_mg_per_kg",
        "started_at",
        "ended_at",
        "discharged_at",
    )
    list_filter = ("route", "session__clinic", "adverse_events__code")
    search_fields = ("session__patient__full_name",)
    date_hierarchy = "started_at"
    inlines = [AdverseEventInline]
    fieldsets = (
        (
            "Dose",
            {
                "fields": (
                    "session",
                    "route",
                    "dose_mg",
                    "weight_kg",
                    "dose_mg_per_kg",
                    "started_at",
                    "ended_at",
                    "administered_by",
                    "recorded_by",
                )
            },
        ),
        (
            "Discharge",
            {
                "fields": (
                    "discharged_at",
                    "discharged_by",
                    "escort_handoff_name",
                    "is_alert_and_oriented",
                    "are_vital_signs_stable",
                    "is_walking_steadily",
                    "is_nausea_controlled",
                    "is_dissociation_resolved",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DoseRecord]:
        return super().get_queryset(request).select_related("session__patient").distinct()


@admin.register(VitalSigns)
class VitalSignsAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "vital_signs"
    list_select_related = ("session",)
    patient_of = staticmethod(lambda obj: obj.session.patient_id)

    list_display = (
        "session",
        "phase",
        "measured_at",
        "systolic_mmhg",
        "diastolic_mmhg",
        "heart_rate_bpm",
        "spo2_percent",
    )
    list_filter = ("phase", "session__clinic")
    search_fields = ("session__patient__full_name",)
    date_hierarchy = "measured_at"


@admin.register(AdverseEvent)
class AdverseEventAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    audit_object_type = "adverse_event"
    list_select_related = ("dose__session",)
    patient_of = staticmethod(lambda obj: obj.dose.session.patient_id)

    list_display = ("dose", "code", "noted_at", "recorded_by")
    list_filter = ("code", "dose__session__clinic")
    search_fields = ("dose__session__patient__full_name", "notes")
    date_hierarchy = "noted_at"
