"""Placeholder: the shared dataclasses. The rules engine lands from the rules-planner branch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepRole:
    role: str
    minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    count: int
    duration_minutes: int
    room_kind: str
    roles: tuple[StepRole, ...] = ()
    route: str = ""
    repeatable: bool = False
