from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from clinic.admin_audit import AuditedAdminMixin
from clinic.admin_forms import domain_error_messages, service_errors_as_form_errors
from clinic.errors import DomainError
from clinic.models import StaffMember, User

from . import services
from .models import Escort, Session, SessionStaff, TreatmentSeries


class SessionInline(admin.TabularInline):
    model = Session
    extra = 0
    can_delete = False
    fields = ("kind", "starts_at", "ends_at", "room", "status")
    readonly_fields = fields
    show_change_link = True
    ordering = ("starts_at",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(TreatmentSeries)
class TreatmentSeriesAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_object_type = "series"
    list_display = ("patient", "protocol_version", "status", "created_at", "violation_count")
    list_filter = ("status", "protocol_version__protocol", "patient__clinic")
    search_fields = ("patient__full_name",)
    raw_id_fields = ("patient", "preferred_therapist")
    readonly_fields = (
        "status",
        "status_changed_at",
        "status_changed_by",
        "status_reason",
        "violations",
        "violations_checked_at",
        "created_at",
        "created_by",
    )
    inlines = [SessionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # booked whole, all or nothing: POST /api/v1/series/ (services.series_book)

    def get_queryset(self, request: HttpRequest) -> QuerySet[TreatmentSeries]:
        return super().get_queryset(request).select_related("patient", "protocol_version__protocol")

    @admin.display(description="violations")
    def violation_count(self, series: TreatmentSeries) -> int:
        return len(series.violations)


class SessionAddForm(forms.ModelForm):
    """Booking through the admin goes through ``session_create``, like every other caller."""

    staff = forms.ModelMultipleChoiceField(
        queryset=StaffMember.objects.filter(is_active=True), required=False
    )
    ends_at = forms.DateTimeField(required=False, help_text="Left empty: the kind's usual length.")
    booked_by: User | None = None

    class Meta:
        model = Session
        fields = ("patient", "series", "kind", "route", "room", "starts_at", "ends_at")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.errors:
            return data
        with service_errors_as_form_errors():
            self.instance = services.session_create(
                patient=data["patient"],
                kind=data["kind"],
                starts_at=data["starts_at"],
                ends_at=data.get("ends_at"),
                room=data["room"],
                staff=list(data.get("staff") or []),
                series=data.get("series"),
                route=data.get("route") or None,
                created_by=self.booked_by,
            )
        return data

    def _post_clean(self) -> None:
        """The service validated and wrote the session; the model's own validation is not re-run."""


class SessionStaffInline(admin.TabularInline):
    model = SessionStaff
    extra = 0
    can_delete = False
    fields = ("staff", "role", "starts_at", "ends_at", "is_active")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _run_service(
    admin_view: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Session], action: str
) -> None:
    done = 0
    for session in queryset:
        try:
            if action == "cancel":
                services.session_cancel(session, reason="Cancelled in the admin", by=request.user)  # type: ignore[arg-type]
            else:
                getattr(services, f"session_{action}")(session, by=request.user)
            done += 1
        except DomainError as error:
            admin_view.message_user(
                request,
                f"Session {session.pk}: {' '.join(domain_error_messages(error))}",
                messages.ERROR,
            )
    if done:
        admin_view.message_user(request, f"{done} session(s) updated.", messages.SUCCESS)


class EscortInline(admin.StackedInline):
    model = Escort
    extra = 0
    can_delete = False
    fields = ("name", "phone", "is_confirmed", "confirmed_at", "recorded_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_object_type = "session"
    list_display = ("starts_at", "ends_at", "kind", "patient", "room", "status", "series")
    list_filter = ("clinic", "kind", "status", "room")
    search_fields = ("patient__full_name",)
    date_hierarchy = "starts_at"
    raw_id_fields = ("patient", "series")
    inlines = [SessionStaffInline, EscortInline]
    actions = ["confirm", "check_in", "complete", "mark_no_show", "cancel"]
    readonly_fields = (
        "patient",
        "series",
        "clinic",
        "kind",
        "route",
        "room",
        "starts_at",
        "ends_at",
        "room_released_at",
        "status",
        "revision",
        "cancel_reason",
        "status_changed_at",
        "status_changed_by",
        "created_at",
        "created_by",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return (
            super()
            .get_queryset(request)
            .select_related("patient", "room", "series__protocol_version__protocol")
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            user = request.user

            class SessionAddFormForUser(SessionAddForm):
                booked_by = user

            kwargs["form"] = SessionAddFormForUser
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Session | None = None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Session | None = None):
        if obj is None:
            return ("patient", "series", "kind", "route", "room", "staff", "starts_at", "ends_at")
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: Session, form: forms.ModelForm, change: bool
    ) -> None:
        """Creation happened in ``SessionAddForm.clean`` through the service; edits go through
        the actions (cancel, check in...) and the reschedule service."""

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets, change: bool
    ) -> None:
        """Staff holds were written by the service."""

    def has_delete_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        return False  # sessions are cancelled, never deleted: their history is clinical record

    @admin.action(description="Confirm selected sessions")
    def confirm(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        self._audit(request, "confirm", list(queryset))
        _run_service(self, request, queryset, "confirm")

    @admin.action(description="Check in selected sessions")
    def check_in(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        self._audit(request, "check_in", list(queryset))
        _run_service(self, request, queryset, "check_in")

    @admin.action(description="Complete selected sessions")
    def complete(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        self._audit(request, "complete", list(queryset))
        _run_service(self, request, queryset, "complete")

    @admin.action(description="Mark selected sessions as no-show")
    def mark_no_show(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        self._audit(request, "mark_no_show", list(queryset))
        _run_service(self, request, queryset, "mark_no_show")

    @admin.action(description="Cancel selected sessions")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        self._audit(request, "cancel", list(queryset))
        _run_service(self, request, queryset, "cancel")


# The workers' admin pages (reminder outbox and policy, staff alerts) live beside their services.
from .alerts import admin as _alerts_admin  # noqa: E402, F401
from .reminders import admin as _reminders_admin  # noqa: E402, F401
