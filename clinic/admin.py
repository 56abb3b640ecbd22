from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .admin_audit import AuditedAdminMixin
from .admin_forms import service_errors_as_form_errors
from .models import (
    Clinic,
    Closure,
    Consent,
    OpeningHours,
    Patient,
    Room,
    Screening,
    StaffMember,
    StaffRole,
    TimeOff,
    User,
    WorkingHours,
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "is_staff", "is_superuser", "is_active", "last_login")


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


class ClosureInline(admin.TabularInline):
    model = Closure
    extra = 0


class RoomInline(admin.TabularInline):
    model = Room
    extra = 0


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ("name", "timezone", "late_cancel_hours", "no_show_after_minutes")
    search_fields = ("name",)
    inlines = [OpeningHoursInline, ClosureInline, RoomInline]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("name", "clinic", "kind", "turnover_minutes", "is_active")
    list_filter = ("clinic", "kind", "is_active")
    search_fields = ("name",)


class StaffRoleInline(admin.TabularInline):
    model = StaffRole
    extra = 0


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    extra = 0


class TimeOffInline(admin.TabularInline):
    model = TimeOff
    extra = 0


class StaffMemberForm(forms.ModelForm):
    class Meta:
        model = StaffMember
        fields = ("user", "clinic", "full_name", "max_concurrent_patients", "is_active")

    def clean_max_concurrent_patients(self) -> int:
        capacity: int = self.cleaned_data["max_concurrent_patients"]
        if self.instance.pk and capacity != self.instance.max_concurrent_patients:
            from scheduling.services import staff_capacity_set

            with service_errors_as_form_errors():
                staff_capacity_set(self.instance, capacity)
        return capacity


@admin.register(StaffMember)
class StaffMemberAdmin(admin.ModelAdmin):
    form = StaffMemberForm
    list_display = ("full_name", "clinic", "role_list", "max_concurrent_patients", "is_active")
    list_filter = ("clinic", "role_grants__role", "is_active")
    search_fields = ("full_name", "user__username")
    raw_id_fields = ("user",)
    inlines = [StaffRoleInline, WorkingHoursInline, TimeOffInline]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("clinic").prefetch_related("role_grants")
        )

    @admin.display(description="roles")
    def role_list(self, obj: StaffMember) -> str:
        return ", ".join(obj.roles)


class ScreeningInline(admin.TabularInline):
    model = Screening
    extra = 0
    raw_id_fields = ("cleared_by",)


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    raw_id_fields = ("recorded_by",)


@admin.register(Patient)
class PatientAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_object_type = "patient"
    patient_of = staticmethod(lambda patient: patient.pk)
    list_display = ("full_name", "clinic", "date_of_birth", "preferred_channel", "email", "phone")
    list_filter = ("clinic", "preferred_channel")
    search_fields = ("full_name", "email", "phone")
    raw_id_fields = ("user",)
    inlines = [ScreeningInline, ConsentInline]


@admin.register(Screening)
class ScreeningAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_object_type = "screening"
    list_display = ("patient", "result", "screened_on", "valid_until", "cleared_by")
    list_filter = ("result", "patient__clinic")
    search_fields = ("patient__full_name",)
    raw_id_fields = ("patient", "cleared_by")
    date_hierarchy = "valid_until"


@admin.register(Consent)
class ConsentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_object_type = "consent"
    list_display = ("patient", "document_version", "signed_at")
    list_filter = ("document_version", "patient__clinic")
    search_fields = ("patient__full_name",)
    raw_id_fields = ("patient", "recorded_by")
