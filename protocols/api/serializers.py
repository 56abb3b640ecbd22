"""A protocol as API.md's JSON document, checked strictly for shape. The rules engine's
``validate_protocol`` adds the deeper checks (rules that contradict each other) when it lands."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from clinic.api.serializers import StrictSerializer
from clinic.models import Role, RoomKind
from protocols.models import CareModel, ProtocolVersion, Route, RuleType, SessionKind
from protocols.selectors import protocol_document

#: Which numeric fields each rule type takes; every other one must be left out.
RULE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # rule type -> (required fields, optional fields)
    RuleType.MIN_GAP: ({"before"}, {"days", "hours"}),
    RuleType.MAX_GAP: ({"before"}, {"days", "hours"}),
    RuleType.EACH_FOLLOWED_BY: ({"before", "at_least"}, set()),
    RuleType.PRECEDES: ({"before"}, set()),
    RuleType.NOT_SAME_DAY: ({"before"}, set()),
    RuleType.MAX_PER_WINDOW: ({"count", "window_days"}, set()),
}


class StepRoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)
    minutes = serializers.IntegerField(min_value=1, max_value=720, required=False)


class StepSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=SessionKind.choices)
    count = serializers.IntegerField(min_value=1, max_value=50)
    route = serializers.ChoiceField(choices=Route.choices, required=False)
    duration_minutes = serializers.IntegerField(min_value=5, max_value=720)
    room_kind = serializers.ChoiceField(choices=RoomKind.choices)
    repeatable = serializers.BooleanField(required=False)
    roles = StepRoleSerializer(many=True, allow_empty=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "route" in attrs and attrs["kind"] != SessionKind.MEDICINE:
            raise serializers.ValidationError({"route": ["Only a medicine step has a route."]})
        roles = [role["role"] for role in attrs["roles"]]
        if len(roles) != len(set(roles)):
            raise serializers.ValidationError({"roles": ["Each role at most once."]})
        for role in attrs["roles"]:
            if role.get("minutes", 0) > attrs["duration_minutes"]:
                raise serializers.ValidationError(
                    {"roles": ["A role's minutes cannot exceed the step's duration."]}
                )
        return attrs


class RuleSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=RuleType.choices)
    after = serializers.ChoiceField(choices=SessionKind.choices)
    before = serializers.ChoiceField(choices=SessionKind.choices, required=False)
    days = serializers.IntegerField(min_value=0, max_value=365, required=False)
    hours = serializers.IntegerField(min_value=0, max_value=8760, required=False)
    at_least = serializers.IntegerField(min_value=1, max_value=50, required=False)
    count = serializers.IntegerField(min_value=1, max_value=50, required=False)
    window_days = serializers.IntegerField(min_value=1, max_value=365, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        required, optional = RULE_FIELDS[attrs["type"]]
        given = set(attrs) - {"type", "after"}
        problems: dict[str, list[str]] = {}
        for name in sorted(required - given):
            problems[name] = [f"A {attrs['type']} rule needs {name}."]
        for name in sorted(given - required - optional):
            problems[name] = [f"A {attrs['type']} rule does not take {name}."]
        if (
            attrs["type"] in (RuleType.MIN_GAP, RuleType.MAX_GAP)
            and len(given & {"days", "hours"}) != 1
        ):
            problems["days"] = ["Give days or hours (one of them)."]
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class ProtocolDocumentSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    care_model = serializers.ChoiceField(choices=CareModel.choices)
    steps = StepSerializer(many=True, allow_empty=False, max_length=10)  # type: ignore[call-arg]
    rules = RuleSerializer(many=True, required=False, default=list, max_length=50)  # type: ignore[call-arg]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kinds = [step["kind"] for step in attrs["steps"]]
        if len(kinds) != len(set(kinds)):
            raise serializers.ValidationError({"steps": ["Each session kind in one step only."]})
        return attrs


class ProtocolVersionSerializer(serializers.Serializer):
    """A stored version: ``id`` and ``version`` beside the document it was written as."""

    id = serializers.IntegerField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    care_model = serializers.ChoiceField(choices=CareModel.choices)
    steps = StepSerializer(many=True)
    rules = RuleSerializer(many=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: ProtocolVersion) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "version": instance.version,
            **protocol_document(instance),
            "created_at": instance.created_at.isoformat(),
        }
