"""Tokens (API.md): ``POST /auth/token/`` gives ``{access, refresh}``, ``/auth/token/refresh/``
gives a new access token (and a new refresh token: refresh tokens rotate and the old one is
blacklisted). djangorestframework-simplejwt does the signing; this module adds the login lockout.

django-axes counts failed logins per username; a locked-out username is refused with 429 before
its password is even checked, for ``AXES_COOLOFF_TIME``.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)

from .errors import LockedOut


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField(required=False)


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Log in with a username and password (staff or patient portal)."""

    serializer_class = TokenObtainPairSerializer

    @extend_schema(
        request=TokenObtainPairSerializer,
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description="Wrong login.")},
        auth=[],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data
        username = data.get("username") if isinstance(data, dict) else None
        if isinstance(username, str) and AxesProxyHandler.is_locked(
            request, {"username": username}
        ):
            raise LockedOut(wait=settings.AXES_COOLOFF_TIME.total_seconds())
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Trade a refresh token for a new access token (and a new refresh token)."""

    serializer_class = TokenRefreshSerializer

    @extend_schema(
        request=TokenRefreshSerializer,
        responses={200: AccessTokenSerializer, 401: OpenApiResponse(description="Bad token.")},
        auth=[],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
