from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Reminder, ReminderPolicy, ReminderStatus
from .services import reminder_retry


@admin.register(ReminderPolicy)
class ReminderPolicyAdmin(admin.ModelAdmin):
    list_display = ("clinic", "quiet_start", "quiet_end", "after_medicine_hours", "updated_at")


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    """The outbox, read-only: rows are written by the booking services and the dispatcher. The
    front desk filters on ``failed`` to see whom to call."""

    list_display = (
        "due_at",
        "status",
        "channel",
        "purpose",
        "patient",
        "session",
        "attempts",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "channel", "purpose", "clinic", ("due_at", admin.DateFieldListFilter))
    search_fields = ("session__patient__full_name", "key", "provider_message_id")
    date_hierarchy = "due_at"
    list_select_related = ("session__patient", "clinic")
    actions = ["retry"]

    def get_readonly_fields(self, request: HttpRequest, obj: Reminder | None = None):
        return [field.name for field in Reminder._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Reminder | None = None) -> bool:
        return False

    @admin.display(description="patient")
    def patient(self, reminder: Reminder) -> str:
        return reminder.session.patient.full_name

    @admin.action(description="Try the selected failed reminders again")
    def retry(self, request: HttpRequest, queryset: QuerySet[Reminder]) -> None:
        failed = list(queryset.filter(status=ReminderStatus.FAILED))
        for reminder in failed:
            reminder_retry(reminder)
        self.message_user(request, f"{len(failed)} reminder(s) queued again.", messages.SUCCESS)
