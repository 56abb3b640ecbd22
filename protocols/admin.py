from django.contrib import admin
from django.http import HttpRequest

from .models import Protocol, ProtocolRule, ProtocolStep, ProtocolStepRole, ProtocolVersion


class ProtocolVersionInline(admin.TabularInline):
    model = ProtocolVersion
    extra = 0
    fields = ("version", "created_at", "created_by")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin):
    list_display = ("name", "care_model", "created_at")
    list_filter = ("care_model",)
    search_fields = ("name",)
    inlines = [ProtocolVersionInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Protocol | None = None) -> tuple:
        # A protocol's versions are read as its care model: a new protocol is another name.
        return ("care_model",) if obj is not None else ()


class ReadOnlyInline(admin.TabularInline):
    """A version is immutable once written; a change is a new version (POST /api/v1/protocols/)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ProtocolStepInline(ReadOnlyInline):
    model = ProtocolStep
    fields = (
        "position",
        "kind",
        "count",
        "route",
        "duration_minutes",
        "room_kind",
        "repeatable",
        "needs",
    )
    readonly_fields = fields

    @admin.display(description="staff needed")
    def needs(self, step: ProtocolStep) -> str:
        return ", ".join(
            f"{r.role} ({r.minutes or step.duration_minutes} min)" for r in step.roles.all()
        )


class ProtocolRuleInline(ReadOnlyInline):
    model = ProtocolRule
    fields = (
        "position",
        "type",
        "after",
        "before",
        "days",
        "hours",
        "at_least",
        "count",
        "window_days",
    )
    readonly_fields = fields


@admin.register(ProtocolVersion)
class ProtocolVersionAdmin(admin.ModelAdmin):
    list_display = ("protocol", "version", "created_at", "created_by")
    list_filter = ("protocol__care_model", "protocol")
    search_fields = ("protocol__name",)
    readonly_fields = ("protocol", "version", "sources", "created_at", "created_by")
    inlines = [ProtocolStepInline, ProtocolRuleInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("protocol", "created_by")


@admin.register(ProtocolStepRole)
class ProtocolStepRoleAdmin(admin.ModelAdmin):
    list_display = ("step", "role", "minutes")
    readonly_fields = ("step", "role", "minutes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # part of its version, which does not change
