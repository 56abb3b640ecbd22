"""Helpers that let admin forms call the services and show domain errors on the form."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django import forms

from .errors import DomainError, InvalidInput, ResourceConflict, RuleViolation


def domain_error_messages(error: DomainError) -> list[str]:
    if isinstance(error, ResourceConflict):
        return [item.message for item in error.taken]
    if isinstance(error, RuleViolation):
        return [
            str(v["message"]) + (f" {v['suggested_fix']}" if v.get("suggested_fix") else "")
            for v in error.violations
        ]
    if isinstance(error, InvalidInput) and error.errors:
        return [
            f"{field}: {message}"
            for field, messages in error.errors.items()
            for message in messages
        ]
    return [error.message]


@contextmanager
def service_errors_as_form_errors() -> Iterator[None]:
    """Run a service inside ``ModelForm.clean``; a refusal becomes the form's error list."""
    try:
        yield
    except DomainError as error:
        raise forms.ValidationError(domain_error_messages(error)) from error
