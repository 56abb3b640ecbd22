"""``Idempotency-Key`` on creating POSTs (API.md).

The same key and body replay the first answer with its status; the same key with another body is
422. Keys are per user. The key's row is inserted (``INSERT ... ON CONFLICT DO NOTHING``) in the
same transaction as the creation: a concurrent duplicate blocks on the unique index until the first
request commits (and then replays its answer) or rolls back (and then runs itself), so two
duplicates never both create. Only
successful answers are kept: a refused request wrote nothing, and its retry simply runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clinic.errors import DomainError
from clinic.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency key reused"
    type = "https://ketamine-clinic.invalid/problems/idempotency-key-reused"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


class _Unsuccessful(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def idempotent(method: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a view's ``post``."""

    @wraps(method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return method(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationError({HEADER: [f"1 to {MAX_KEY_LENGTH} printable characters."]})
        fingerprint = _fingerprint(request)
        try:
            with transaction.atomic():
                record_id = _claim(int(request.user.pk or 0), key, fingerprint)
                if record_id is None:
                    return _replay(request, key, fingerprint)
                response = method(view, request, *args, **kwargs)
                if not 200 <= response.status_code < 300:
                    raise _Unsuccessful(response)
                IdempotencyKey.objects.filter(pk=record_id).update(
                    status_code=response.status_code,
                    response_body=json.loads(json.dumps(response.data, cls=DjangoJSONEncoder)),
                )
                return response
        except _Unsuccessful as unsuccessful:
            return unsuccessful.response

    return wrapper


def _claim(user_id: int, key: str, fingerprint: str) -> int | None:
    """Insert the key's row, or find it taken: one statement, no savepoint. A concurrent insert of
    the same key makes this wait until that transaction ends (PostgreSQL's unique index)."""
    table = IdempotencyKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, key, fingerprint, status_code, response_body,"
            " created_at) VALUES (%s, %s, %s, 0, %s, %s)"
            " ON CONFLICT (user_id, key) DO NOTHING RETURNING id",
            [user_id, key, fingerprint, "{}", timezone.now()],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _replay(request: Request, key: str, fingerprint: str) -> Response:
    first = IdempotencyKey.objects.get(user=request.user, key=key)  # type: ignore[misc]
    if first.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"The Idempotency-Key {key!r} was used with another request; use a new key."
        )
    return Response(
        first.response_body, status=first.status_code, headers={"Idempotent-Replayed": "true"}
    )
