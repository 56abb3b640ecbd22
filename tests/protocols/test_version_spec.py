"""A protocol version's spec is read once per process, and read again after any protocol row
changes."""

from __future__ import annotations

import pytest

from protocols.models import ProtocolVersion
from protocols.rules import Rule
from protocols.selectors import protocol_spec, protocol_versions, version_spec
from protocols.services import protocols_load_standard
from tests.factories import ProtocolRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def kap() -> ProtocolVersion:
    protocols_load_standard()
    return ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")


def test_a_version_is_read_once_then_served_without_queries(
    kap: ProtocolVersion, django_assert_num_queries
) -> None:
    expected = protocol_spec(protocol_versions().get(pk=kap.pk))

    with django_assert_num_queries(4):  # version with its protocol, steps, step roles, rules
        first = version_spec(kap.pk)
    with django_assert_num_queries(0):
        second = version_spec(kap.pk)

    assert first == expected
    assert second is first
    assert len(first.steps) == 4
    assert len(first.rules) == 9


def test_a_rule_added_to_a_version_is_read_at_the_next_plan(kap: ProtocolVersion) -> None:
    before = version_spec(kap.pk)

    ProtocolRuleFactory(
        version=kap, position=99, type="max_gap", after="preparation", before="medicine", days=30
    )

    after = version_spec(kap.pk)
    assert after.rules == (
        *before.rules,
        Rule(type="max_gap", after="preparation", before="medicine", days=30),
    )


def test_an_unknown_version_is_not_found() -> None:
    with pytest.raises(ProtocolVersion.DoesNotExist):
        version_spec(0)
