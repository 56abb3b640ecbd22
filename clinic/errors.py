"""Domain errors. Services raise these; the API's exception handler turns each into a problem+json
answer (``status`` below), the admin shows ``message``, and tasks record them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    status = 400
    title = "Bad request"
    type = "about:blank"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def problem(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.message,
        }


class InvalidInput(DomainError):
    """Well-formed input that makes no sense (an unknown room, an end before its start)."""

    status = 400
    title = "Invalid input"
    type = "https://ketamine-clinic.invalid/problems/invalid-input"

    def __init__(self, message: str, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = {key: list(value) for key, value in (errors or {}).items()}

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "errors": self.errors}


@dataclass(frozen=True)
class TakenResource:
    """What is taken: ``resource`` is room, patient or staff; ``id`` the object's id."""

    resource: str
    id: int
    message: str
    sessions: tuple[int | str, ...] = field(default=())

    def as_violation(self) -> dict[str, Any]:
        return {
            "rule": f"{self.resource}_taken",
            "message": self.message,
            "sessions": list(self.sessions),
            "suggested_fix": "Choose another time, or another "
            + (
                "room."
                if self.resource == "room"
                else "staff member."
                if self.resource == "staff"
                else "slot."
            ),
        }


def sentences(messages: Iterable[str]) -> str:
    """Messages joined into one detail: each a sentence, separated by a space."""
    return " ".join(m if m.endswith((".", "?", "!")) else f"{m}." for m in messages)


class ResourceConflict(DomainError):
    """A room, a patient or a staff member is already held at that time (HTTP 409)."""

    status = 409
    title = "Resource taken"
    type = "https://ketamine-clinic.invalid/problems/resource-taken"

    def __init__(self, taken: Sequence[TakenResource]) -> None:
        super().__init__(sentences(item.message for item in taken))
        self.taken = tuple(taken)

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "violations": [item.as_violation() for item in self.taken]}


class RuleViolation(DomainError):
    """A protocol, clinic or safety rule would be broken (HTTP 422). ``violations`` are the rules
    engine's ``Violation.as_dict()`` values."""

    status = 422
    title = "Rule violated"
    type = "https://ketamine-clinic.invalid/problems/rule-violated"

    def __init__(self, violations: Sequence[Mapping[str, Any]], message: str | None = None) -> None:
        self.violations = [dict(v) for v in violations]
        super().__init__(message or sentences(str(v["message"]) for v in self.violations))

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "violations": self.violations}


class IllegalTransition(RuleViolation):
    """A status change the session's (or with ``noun="Series"``, the series') lifecycle does not
    allow."""

    def __init__(self, object_id: int, current: str, action: str, *, noun: str = "Session") -> None:
        super().__init__(
            [
                {
                    "rule": "status_transition",
                    "message": f"{noun} {object_id} is {current}; it cannot be {action}.",
                    "sessions": [object_id] if noun == "Session" else [],
                    "suggested_fix": None,
                }
            ]
        )


class StaleVersion(DomainError):
    """An ``If-Match`` revision that no longer matches (HTTP 412)."""

    status = 412
    title = "Precondition failed"
    type = "https://ketamine-clinic.invalid/problems/stale-version"
