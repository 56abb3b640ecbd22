"""Query-parameter filters shared by the lists."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms

MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """An object id. One outside the caller's reach filters to an empty page, like one that does
    not exist: a filter is no oracle for another clinic's or patient's ids."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
