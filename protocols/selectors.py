"""Reads of protocols, shaped as the rules engine's plain values."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db.models import Max, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.signals import post_delete, post_save

from clinic.models import Role, RoomKind

from .models import (
    Protocol,
    ProtocolRule,
    ProtocolStep,
    ProtocolStepRole,
    ProtocolVersion,
    SessionKind,
)
from .rules import ProtocolSpec, Rule, Step, StepRole

#: What a session of each kind needs when it is booked outside a series (or its protocol has no
#: step of that kind): its usual length, its room and the staff it needs.
KIND_DEFAULTS: dict[str, Step] = {
    SessionKind.SCREENING: Step(
        SessionKind.SCREENING, 1, 60, RoomKind.THERAPY_ROOM, (StepRole(Role.PRESCRIBER),)
    ),
    SessionKind.PREPARATION: Step(
        SessionKind.PREPARATION, 1, 60, RoomKind.THERAPY_ROOM, (StepRole(Role.THERAPIST),)
    ),
    SessionKind.MEDICINE: Step(
        SessionKind.MEDICINE,
        1,
        120,
        RoomKind.DOSING_ROOM,
        (StepRole(Role.THERAPIST, 90), StepRole(Role.NURSE, 30)),
        route="im",
    ),
    SessionKind.INTEGRATION: Step(
        SessionKind.INTEGRATION, 1, 60, RoomKind.THERAPY_ROOM, (StepRole(Role.THERAPIST),)
    ),
    SessionKind.FOLLOW_UP: Step(
        SessionKind.FOLLOW_UP, 1, 30, RoomKind.THERAPY_ROOM, (StepRole(Role.PRESCRIBER),)
    ),
}


def protocol_versions() -> QuerySet[ProtocolVersion]:
    """Every version with its steps, their roles and its rules, in three queries beside the list."""
    return ProtocolVersion.objects.select_related("protocol").prefetch_related(
        Prefetch("steps", queryset=ProtocolStep.objects.prefetch_related("roles")), "rules"
    )


def latest_versions() -> QuerySet[ProtocolVersion]:
    newest = (
        ProtocolVersion.objects.filter(protocol=OuterRef("protocol"))
        .order_by()
        .values("protocol")
        .annotate(top=Max("version"))
        .values("top")
    )
    return protocol_versions().filter(version=Subquery(newest)).order_by("protocol__name")


def step_spec(step: ProtocolStep) -> Step:
    return Step(
        kind=step.kind,
        count=step.count,
        duration_minutes=step.duration_minutes,
        room_kind=step.room_kind,
        roles=tuple(StepRole(role.role, role.minutes) for role in step.roles.all()),
        route=step.route,
        repeatable=step.repeatable,
    )


#: An IV infusion outside a series: a chair for the infusion and recovery, a nurse throughout.
IV_INFUSION_DEFAULT = Step(
    SessionKind.MEDICINE, 1, 100, RoomKind.INFUSION_CHAIR, (StepRole(Role.NURSE),), route="iv"
)


def step_for_kind(version: ProtocolVersion | None, kind: str, route: str | None = None) -> Step:
    """The step a session of ``kind`` follows: its protocol's, else the kind's clinic default."""
    if version is not None:
        for step in version.steps.all():
            if step.kind == kind:
                return step_spec(step)
    if kind == SessionKind.MEDICINE and route == "iv":
        return IV_INFUSION_DEFAULT
    return KIND_DEFAULTS[kind]


def protocol_document(version: ProtocolVersion) -> dict[str, Any]:
    """A version as API.md's protocol JSON (the form it is written in, too)."""
    return {
        "name": version.protocol.name,
        "care_model": version.protocol.care_model,
        "steps": [
            {
                "kind": step.kind,
                "count": step.count,
                **({"route": step.route} if step.route else {}),
                "duration_minutes": step.duration_minutes,
                "room_kind": step.room_kind,
                **({"repeatable": True} if step.repeatable else {}),
                "roles": [
                    {"role": role.role, **({"minutes": role.minutes} if role.minutes else {})}
                    for role in step.roles.all()
                ],
            }
            for step in version.steps.all()
        ],
        "rules": [
            {
                "type": rule.type,
                "after": rule.after,
                **({"before": rule.before} if rule.before else {}),
                **{
                    name: getattr(rule, name)
                    for name in ("days", "hours", "at_least", "count", "window_days")
                    if getattr(rule, name) is not None
                },
            }
            for rule in version.rules.all()
        ],
    }


def protocol_spec(version: ProtocolVersion) -> ProtocolSpec:
    """A version as the rules engine's value (use ``protocol_versions()`` to prefetch)."""
    return ProtocolSpec(
        name=version.protocol.name,
        care_model=version.protocol.care_model,
        steps=tuple(step_spec(step) for step in version.steps.all()),
        rules=tuple(
            Rule(
                type=rule.type,
                after=rule.after,
                before=rule.before,
                days=rule.days,
                hours=rule.hours,
                at_least=rule.at_least,
                count=rule.count,
                window_days=rule.window_days,
            )
            for rule in version.rules.all()
        ),
    )


@lru_cache(maxsize=128)
def version_spec(version_id: int) -> ProtocolSpec:
    """The rules engine's value of a protocol version, loaded once per process.

    A version does not change once made (a change makes a new version; the admin shows versions,
    steps and rules read-only, and on PostgreSQL triggers refuse any change to a version that
    governs a treatment series: scheduling migration 0006), so the planner need not read its four
    tables on every plan. Saving or deleting any protocol row clears this process's cache all the
    same, so fixtures that add a rule to a version no series uses yet read it fresh. Raises
    ``ProtocolVersion.DoesNotExist``.
    """
    return protocol_spec(protocol_versions().get(pk=version_id))


def _forget_version_specs(**_: Any) -> None:
    version_spec.cache_clear()


for _model in (Protocol, ProtocolVersion, ProtocolStep, ProtocolStepRole, ProtocolRule):
    post_save.connect(_forget_version_specs, sender=_model, dispatch_uid=f"spec-{_model.__name__}")
    post_delete.connect(
        _forget_version_specs, sender=_model, dispatch_uid=f"spec-del-{_model.__name__}"
    )
