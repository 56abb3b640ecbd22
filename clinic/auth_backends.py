"""The login lockout's place among the authentication backends."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check, for logins that come with a request (the API's token view, the admin).

    A login with no request (a management command, a script, a test calling ``authenticate``)
    has no client to count failures for; axes would refuse it outright, so it is left to the
    next backend."""

    def authenticate(
        self,
        request: Any,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
