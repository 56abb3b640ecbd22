"""OpenAPI additions: every operation documents its problem+json error answers."""

from __future__ import annotations

from typing import Any

#: A violation of a rule, as the rules engine and the gates give it.
VIOLATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rule": {"type": "string"},
        "message": {"type": "string"},
        "sessions": {"type": "array", "items": {}},
        "suggested_fix": {"type": "string", "nullable": True},
    },
    "required": ["rule", "message", "sessions"],
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "violations": {"type": "array", "items": VIOLATION_SCHEMA},
    },
    "required": ["type", "title", "status", "detail"],
}

ERROR_STATUSES = {
    "400": "Malformed or invalid input (`errors` names the fields).",
    "401": "No or bad token.",
    "403": "The token lacks the right.",
    "404": "No such object, or not yours to see.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "A room, staff member or the patient is taken (`violations`).",
    "412": "`If-Match` no longer matches.",
    "415": "Send application/json.",
    "422": "A rule would be broken (`violations`), or an Idempotency-Key was reused.",
    "429": "Too many attempts.",
}


def add_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_STATUSES.items():
                existing = responses.get(code)
                if existing is None or "content" not in existing:
                    responses[code] = {
                        "description": (existing or {}).get("description") or description,
                        "content": {"application/problem+json": {"schema": ref}},
                    }
    return result
