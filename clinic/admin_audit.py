"""The audit trail for the Django admin: every changelist page and change form of patient data
shown, and every addition, change and deletion saved, writes an audit row (channel ``admin``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse

from .audit import audit_record
from .models import AuditEvent


class AuditedAdminMixin:
    """Mix into a ``ModelAdmin`` of patient data; ``patient_of`` names an object's patient."""

    audit_object_type: str = ""
    patient_of: Callable[[Any], int] = staticmethod(lambda obj: obj.patient_id)

    def _audit(self, request: HttpRequest, action: str, objects: Iterable[Any]) -> None:
        items = [obj for obj in objects if obj is not None and obj.pk is not None]
        audit_record(
            request,
            action=action,
            object_type=self.audit_object_type,
            object_ids=[obj.pk for obj in items],
            patient_ids=[self.patient_of(obj) for obj in items],
            channel=AuditEvent.Channel.ADMIN,
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            self._audit(request, "list", list(changelist.result_list))
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
            self._audit(request, "read", [obj])
        return response

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, "create", [obj])
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, "update", [obj])
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        self._audit(request, "delete", list(queryset))
        return super().log_deletions(request, queryset)  # type: ignore[misc]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The trail is read here and nowhere written: no add, no change, no delete."""

    list_display = (
        "at",
        "actor_username",
        "channel",
        "action",
        "object_type",
        "object_ids",
        "patient_ids",
        "ip_address",
    )
    list_filter = ("channel", "action", "object_type")
    search_fields = ("actor_username", "path")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
