"""A protocol version's spec is read once per process, and read again after any protocol row
changes; a version that governs a treatment series cannot change at all (PostgreSQL triggers)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from clinic.models import User
from protocols.models import Protocol, ProtocolRule, ProtocolStep, ProtocolStepRole, ProtocolVersion
from protocols.rules import Rule
from protocols.selectors import protocol_spec, protocol_versions, version_spec
from protocols.services import protocols_load_standard
from tests.factories import (
    ProtocolRuleFactory,
    ProtocolStepFactory,
    ProtocolStepRoleFactory,
    ProtocolVersionFactory,
    TreatmentSeriesFactory,
)

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


@pytest.fixture
def kap_in_use(kap: ProtocolVersion) -> ProtocolVersion:
    TreatmentSeriesFactory(protocol_version=kap)
    return kap


def _counts(version: ProtocolVersion) -> tuple[int, int, int]:
    return (
        ProtocolStep.objects.filter(version=version).count(),
        ProtocolStepRole.objects.filter(step__version=version).count(),
        ProtocolRule.objects.filter(version=version).count(),
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda v: ProtocolRuleFactory(version=v, position=99, type="max_gap", days=30),
            id="add a rule",
        ),
        pytest.param(lambda v: v.rules.filter(type="min_gap").update(days=3), id="edit a rule"),
        pytest.param(lambda v: v.rules.all().delete(), id="delete the rules"),
        pytest.param(
            lambda v: ProtocolStepFactory(version=v, position=99, kind="screening"), id="add a step"
        ),
        pytest.param(lambda v: v.steps.filter(kind="medicine").update(count=3), id="edit a step"),
        pytest.param(
            lambda v: ProtocolStepRole.objects.filter(step__version=v).update(minutes=5),
            id="edit a step's staff",
        ),
        pytest.param(
            lambda v: ProtocolStepRoleFactory(step=v.steps.get(kind="preparation"), role="nurse"),
            id="add a step's staff",
        ),
        pytest.param(
            lambda v: ProtocolVersion.objects.filter(pk=v.pk).update(version=v.version + 10),
            id="renumber the version",
        ),
        pytest.param(
            lambda v: Protocol.objects.filter(pk=v.protocol_id).update(care_model="infusion"),
            id="change the care model",
        ),
    ],
)
def test_a_version_that_governs_a_series_cannot_change(kap_in_use: ProtocolVersion, change) -> None:
    before = (_counts(kap_in_use), version_spec(kap_in_use.pk))
    version_spec.cache_clear()

    with pytest.raises(IntegrityError, match="governs a treatment series"), transaction.atomic():
        change(kap_in_use)

    kap_in_use.refresh_from_db()
    assert (_counts(kap_in_use), version_spec(kap_in_use.pk)) == before
    assert kap_in_use.protocol.care_model == "kap"


def test_a_version_no_series_uses_can_still_change_and_so_can_its_sources(
    kap_in_use: ProtocolVersion,
) -> None:
    unused = ProtocolVersionFactory(protocol=kap_in_use.protocol, version=2)
    rule = ProtocolRuleFactory(version=unused, position=1, type="max_gap", days=30)
    ProtocolRule.objects.filter(pk=rule.pk).update(days=20)
    ProtocolVersion.objects.filter(pk=kap_in_use.pk).update(sources="Dore et al. 2019")
    Protocol.objects.filter(pk=kap_in_use.protocol_id).update(description="KAP, 6 sessions")

    assert ProtocolRule.objects.get(pk=rule.pk).days == 20
    assert ProtocolVersion.objects.get(pk=kap_in_use.pk).sources == "Dore et al. 2019"


def test_the_admin_offers_no_change_the_triggers_would_refuse(
    kap_in_use: ProtocolVersion, settings
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@x.org", "pw-0123456789"))
    protocol = kap_in_use.protocol
    role = ProtocolStepRole.objects.filter(step__version=kap_in_use).first()
    assert role is not None

    saved = admin.post(
        f"/admin/protocols/protocol/{protocol.pk}/change/",
        {
            "name": protocol.name,
            "care_model": "infusion",  # read-only: ignored
            "description": "Six medicine sessions",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    deleted = admin.post(f"/admin/protocols/protocolsteprole/{role.pk}/delete/", {"post": "yes"})
    version_deleted = admin.post(
        f"/admin/protocols/protocolversion/{kap_in_use.pk}/delete/", {"post": "yes"}
    )

    assert saved.status_code == 302
    assert deleted.status_code == 403
    assert version_deleted.status_code == 200  # "cannot delete": a series uses it
    protocol.refresh_from_db()
    assert (protocol.care_model, protocol.description) == ("kap", "Six medicine sessions")
    assert ProtocolStepRole.objects.filter(pk=role.pk).exists()
    assert ProtocolVersion.objects.filter(pk=kap_in_use.pk).exists()
