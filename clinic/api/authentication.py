"""Bearer-token authentication for the API (djangorestframework-simplejwt's, one query)."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from clinic.models import User


class ClinicJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer authentication, loading the user with their staff or patient profile
    and its clinic in one query (every view needs them to scope its querysets)."""

    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as error:
            raise InvalidToken("Token contained no recognizable user identification") from error
        user = (
            User.objects.select_related("staff_profile__clinic", "patient_profile__clinic")
            .filter(pk=user_id, is_active=True)
            .first()
        )
        if user is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        return user


class ClinicJWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme (bearer JWT) for the class above."""

    target_class = "clinic.api.authentication.ClinicJWTAuthentication"
    name = "jwtAuth"
