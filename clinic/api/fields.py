"""Serializer fields for the API's time rules: offsets required in, the clinic's zone out."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

#: Instants outside these years are typing mistakes, and beyond them Python's datetime overflows.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200


@extend_schema_field(OpenApiTypes.DATETIME)
class OffsetDateTimeField(serializers.Field):
    """An ISO 8601 instant. Input must carry an offset (a naive time is ambiguous across a DST
    change and across clinics); output is in the time zone named by ``zone_of`` (a dotted path on
    the object, e.g. ``"clinic.timezone"``) or in the one the serializer's context gives."""

    default_error_messages = {
        "invalid": "Give an ISO 8601 date and time, e.g. 2026-03-09T09:00:00-07:00.",
        "naive": "Give a UTC offset, e.g. 2026-03-09T09:00:00-07:00.",
        "range": f"The year must be between {EARLIEST_YEAR} and {LATEST_YEAR}.",
    }

    def __init__(self, *, zone_of: str | None = None, **kwargs: Any) -> None:
        self.zone_of = zone_of
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dt.datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except (ValueError, OverflowError):
            value = None
        if value is None:
            self.fail("invalid")
        assert value is not None
        if timezone.is_naive(value):
            self.fail("naive")
        if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            self.fail("range")
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            self.fail("range")
        raise AssertionError  # unreachable

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        if value is None:
            return None
        zone = self._zone(instance)
        return (value, zone)

    def _zone(self, instance: Any) -> ZoneInfo | None:
        if self.zone_of:
            target: Any = instance
            for part in self.zone_of.split("."):
                target = getattr(target, part, None) if target is not None else None
            if isinstance(target, str) and target:
                return ZoneInfo(target)
        zone = self.context.get("zone")
        return zone if isinstance(zone, ZoneInfo) else None

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, tuple):
            moment, zone = value
        else:
            moment, zone = value, self.context.get("zone")
        if zone is not None:
            moment = moment.astimezone(zone)
        return str(moment.isoformat())


@extend_schema_field(OpenApiTypes.DATE)
class StrictDateField(serializers.DateField):
    """A ``YYYY-MM-DD`` date within sane years."""

    def to_internal_value(self, value: Any) -> dt.date:
        if not isinstance(value, str):
            self.fail("invalid", format="YYYY-MM-DD")
        result = super().to_internal_value(value)
        if not EARLIEST_YEAR <= result.year <= LATEST_YEAR:
            raise serializers.ValidationError(
                f"The year must be between {EARLIEST_YEAR} and {LATEST_YEAR}."
            )
        return result


@extend_schema_field({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"})
class LocalTimeField(serializers.TimeField):
    """A local wall-clock time ``HH:MM``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M", "%H:%M:%S"], **kwargs)

    def to_internal_value(self, value: Any) -> dt.time:
        if not isinstance(value, str):
            self.fail("invalid", format="HH:MM")
        return super().to_internal_value(value)


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``, nothing else: ``"yes"``, ``"true"`` and ``1`` are refused
    rather than read as a wish (DRF's own field takes them all)."""

    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
