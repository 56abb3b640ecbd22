"""Writing protocol versions. A version is never edited: a change is a new version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max

from clinic.errors import InvalidInput
from clinic.models import User

from .models import Protocol, ProtocolRule, ProtocolStep, ProtocolStepRole, ProtocolVersion
from .rules import ProtocolFormatError, ProtocolSpec, protocol_from_dict, validate_protocol
from .selectors import protocol_document, protocol_versions

STANDARD_PROTOCOLS_DIR = Path(__file__).resolve().parent / "data"
RULE_FIELDS = ("days", "hours", "at_least", "count", "window_days")


@transaction.atomic
def protocol_version_create(
    document: Mapping[str, Any],
    *,
    sources: str = "",
    description: str = "",
    created_by: User | None = None,
) -> ProtocolVersion:
    """Write ``document`` (API.md's protocol JSON) as the next version of the protocol it names.

    The rules engine reads and checks the document first, so a protocol the engine could not
    apply is never stored.
    """
    spec = protocol_spec_from_document(document)
    protocol, _ = Protocol.objects.get_or_create(
        name=spec.name, defaults={"care_model": spec.care_model, "description": description}
    )
    protocol = Protocol.objects.select_for_update(of=("self",)).get(
        pk=protocol.pk
    )  # one new version at a time
    if protocol.care_model != spec.care_model:
        raise InvalidInput(
            f"{protocol.name} is a {protocol.care_model} protocol; "
            "a new version cannot change that.",
            {"care_model": [f"Must stay {protocol.care_model}."]},
        )
    latest = protocol.versions.aggregate(top=Max("version"))["top"] or 0
    version = ProtocolVersion.objects.create(
        protocol=protocol, version=latest + 1, sources=sources, created_by=created_by
    )
    for position, step_spec in enumerate(spec.steps):
        step = ProtocolStep.objects.create(
            version=version,
            position=position,
            kind=step_spec.kind,
            count=step_spec.count,
            route=step_spec.route,
            duration_minutes=step_spec.duration_minutes,
            room_kind=step_spec.room_kind,
            repeatable=step_spec.repeatable,
        )
        ProtocolStepRole.objects.bulk_create(
            ProtocolStepRole(step=step, role=role.role, minutes=role.minutes)
            for role in step_spec.roles
        )
    ProtocolRule.objects.bulk_create(
        ProtocolRule(
            version=version,
            position=position,
            type=rule.type,
            after=rule.after,
            before=rule.before,
            **{name: getattr(rule, name) for name in RULE_FIELDS},
        )
        for position, rule in enumerate(spec.rules)
    )
    return version


def protocol_spec_from_document(document: Mapping[str, Any]) -> ProtocolSpec:
    """Read and check a protocol document; every problem comes back as a field error (400)."""
    try:
        spec = protocol_from_dict(document)
    except ProtocolFormatError as error:
        raise InvalidInput("The protocol document is malformed.", error.errors) from error
    problems = validate_protocol(spec)
    if problems:
        errors: dict[str, list[str]] = {}
        for problem in problems:
            path, _, message = problem.partition(": ")
            errors.setdefault(path, []).append(message)
        raise InvalidInput("The protocol is not sound.", errors)
    return spec


def protocols_load_standard() -> list[tuple[ProtocolVersion, bool]]:
    """Load the protocols shipped in ``protocols/data``; a new version only where one changed."""
    loaded = []
    for path in sorted(STANDARD_PROTOCOLS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        document = {key: data[key] for key in ("name", "care_model", "steps", "rules")}
        current = (
            protocol_versions().filter(protocol__name=data["name"]).order_by("-version").first()
        )
        if current is not None and protocol_document(current) == document:
            loaded.append((current, False))
            continue
        version = protocol_version_create(
            document, sources=data.get("sources", ""), description=data.get("description", "")
        )
        loaded.append((version, True))
    return loaded
