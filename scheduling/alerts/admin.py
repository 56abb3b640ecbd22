from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import StaffAlert
from .services import staff_alert_acknowledge


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("acknowledged", "Acknowledged")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


@admin.register(StaffAlert)
class StaffAlertAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "message",
        "target_role",
        "target_staff",
        "clinic",
        "acknowledged_at",
    )
    list_filter = (OpenFilter, "kind", "target_role", "clinic")
    search_fields = ("message", "dedupe_key")
    date_hierarchy = "created_at"
    list_select_related = ("clinic", "target_staff")
    actions = ["acknowledge"]

    def get_readonly_fields(self, request: HttpRequest, obj: StaffAlert | None = None):
        return [field.name for field in StaffAlert._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StaffAlert | None = None) -> bool:
        return False

    @admin.action(description="Acknowledge the selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[StaffAlert]) -> None:
        alerts = list(queryset.filter(acknowledged_at__isnull=True))
        for alert in alerts:
            staff_alert_acknowledge(alert, by=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"{len(alerts)} alert(s) acknowledged.", messages.SUCCESS)
