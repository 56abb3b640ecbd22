from __future__ import annotations

import pytest

from protocols.models import Protocol, ProtocolVersion
from protocols.selectors import protocol_document, step_for_kind
from protocols.services import protocol_version_create, protocols_load_standard

pytestmark = pytest.mark.django_db


def test_standard_protocols_load_once() -> None:
    first = protocols_load_standard()
    second = protocols_load_standard()

    assert [(str(version), created) for version, created in first] == [
        ("IV ketamine infusion induction v1", True),
        ("Ketamine-assisted psychotherapy v1", True),
        ("KAP short course v1", True),
        ("Maintenance booster infusion v1", True),
    ]
    assert [created for _, created in second] == [False, False, False, False]
    assert ProtocolVersion.objects.count() == 4


def test_kap_as_shipped() -> None:
    protocols_load_standard()
    kap = ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")

    document = protocol_document(kap)

    assert [
        (s["kind"], s["count"], s["duration_minutes"], s["room_kind"]) for s in document["steps"]
    ] == [
        ("screening", 1, 60, "therapy_room"),
        ("preparation", 2, 60, "therapy_room"),
        ("medicine", 6, 120, "dosing_room"),
        ("integration", 6, 60, "therapy_room"),
    ]
    assert document["steps"][2]["roles"] == [
        {"role": "therapist", "minutes": 90},
        {"role": "nurse", "minutes": 30},
    ]
    assert {
        "type": "each_followed_by",
        "after": "medicine",
        "before": "integration",
        "at_least": 1,
    } in document["rules"]
    assert step_for_kind(kap, "medicine").route == "im"
    assert "doi:" in kap.sources


def test_editing_a_protocol_writes_a_new_version() -> None:
    protocols_load_standard()
    booster = ProtocolVersion.objects.get(protocol__name="Maintenance booster infusion")
    document = protocol_document(booster)
    document["rules"][0]["days"] = 21

    new = protocol_version_create(document)

    assert (new.version, new.protocol_id) == (2, booster.protocol_id)
    assert protocol_document(booster)["rules"][0]["days"] == 14
    assert protocol_document(new)["rules"][0]["days"] == 21
    assert Protocol.objects.count() == 4


def test_an_unsound_protocol_is_refused_with_field_errors() -> None:
    from clinic.errors import InvalidInput

    protocols_load_standard()
    document = protocol_document(ProtocolVersion.objects.get(protocol__name="KAP short course"))
    document["steps"][1]["count"] = "three"
    document["rules"].append({"type": "min_gap", "after": "medicine", "before": "integration"})

    with pytest.raises(InvalidInput) as malformed:
        protocol_version_create(document)
    document["steps"][1]["count"] = 3
    with pytest.raises(InvalidInput) as unsound:
        protocol_version_create(document)

    assert malformed.value.errors == {"steps[1].count": ["must be a whole number"]}
    assert unsound.value.errors == {"rules[7].days": ["min_gap needs days or hours"]}
    assert ProtocolVersion.objects.count() == 4
