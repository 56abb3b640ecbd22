"""One exception handler for the whole API: every error is ``application/problem+json`` (RFC 9457).

Domain errors carry their own status, title and type (``clinic.errors``); DRF's exceptions are
mapped here so that bad input, missing auth, unknown ids and wrong methods all answer in the same
shape, with ``errors`` (field -> messages) for bad input and ``violations`` for broken rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from clinic.errors import DomainError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ketamine-clinic.invalid/problems/"

#: (title, type slug) for the DRF exceptions the API answers with.
_TITLES: dict[int, tuple[str, str]] = {
    400: ("Invalid input", "invalid-input"),
    401: ("Not authenticated", "not-authenticated"),
    403: ("Forbidden", "forbidden"),
    404: ("Not found", "not-found"),
    405: ("Method not allowed", "method-not-allowed"),
    406: ("Not acceptable", "not-acceptable"),
    412: ("Precondition failed", "stale-version"),
    415: ("Unsupported media type", "unsupported-media-type"),
    422: ("Rule violated", "rule-violated"),
    428: ("Precondition required", "precondition-required"),
    429: ("Too many requests", "too-many-requests"),
    500: ("Server error", "server-error"),
}


class PreconditionFailed(exceptions.APIException):
    """An ``If-Match`` that no longer matches the object's current revision."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The object changed since you read it; fetch it again."
    default_code = "precondition_failed"


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins for this username; try again later."


def problem(status_code: int, detail: str, **extra: Any) -> dict[str, Any]:
    title, slug = _TITLES.get(status_code, ("Error", "error"))
    return {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as ``{"field.0.sub": [messages]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            name = "non_field_errors" if key == "non_field_errors" and not prefix else str(key)
            flat.update(_flatten(value, f"{prefix}.{name}" if prefix else name))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        flat.setdefault(prefix or "non_field_errors", []).extend(str(e) for e in errors)
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            if value:
                flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    elif errors:
        flat.setdefault(prefix or "non_field_errors", []).append(str(errors))
    return flat


def _detail_text(detail: Any) -> str:
    if isinstance(detail, Mapping):
        inner = detail.get("detail")
        return str(inner) if inner is not None else "; ".join(str(v) for v in detail.values())
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail)
    return str(detail)


def problem_response(body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        body, status=body["status"], headers=dict(headers or {}), content_type=PROBLEM_CONTENT_TYPE
    )


def problem_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        set_rollback()
        return problem_response(exc.problem())
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    status_code = exc.status_code
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        view = context.get("view")
        request = context.get("request")
        header = view.get_authenticate_header(request) if view is not None else None
        if header:
            headers["WWW-Authenticate"] = header
        status_code = status.HTTP_401_UNAUTHORIZED
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.values()), ["Invalid input."])[0]
        return problem_response(
            problem(400, f"The request has invalid fields: {first}", errors=errors), headers
        )
    if isinstance(exc, exceptions.ParseError):
        return problem_response(
            problem(400, f"The body is not valid JSON: {_detail_text(exc.detail)}", errors={}),
            headers,
        )
    if isinstance(exc, exceptions.NotFound):
        return problem_response(problem(404, "Not found."), headers)
    return problem_response(problem(status_code, _detail_text(exc.detail)), headers)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    """An unknown URL under /api/ answers problem+json; elsewhere Django's usual page."""
    if _is_api(request):
        return JsonResponse(
            problem(404, "No such endpoint."), status=404, content_type=PROBLEM_CONTENT_TYPE
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> Any:
    if _is_api(request):
        return JsonResponse(
            problem(500, "Something went wrong on our side; it has been logged."),
            status=500,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    from django.views.defaults import server_error

    return server_error(request)
