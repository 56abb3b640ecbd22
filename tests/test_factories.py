"""Every factory builds a valid row that passes the database's constraints."""

from __future__ import annotations

import factory
import pytest

from tests import factories

pytestmark = pytest.mark.django_db

ALL = [
    value
    for value in vars(factories).values()
    if isinstance(value, type)
    and issubclass(value, factory.django.DjangoModelFactory)
    and value is not factories.factory.django.DjangoModelFactory
]


def test_there_is_a_factory_for_every_model() -> None:
    from django.apps import apps

    ours = {
        model
        for app in ("clinic", "protocols", "scheduling", "integration")
        for model in apps.get_app_config(app).get_models()
    }
    assert ours == {f._meta.model for f in ALL}


@pytest.mark.parametrize("model_factory", ALL, ids=lambda f: f.__name__)
def test_factory_creates_a_row(model_factory: type[factory.django.DjangoModelFactory]) -> None:
    instance = model_factory()
    assert type(instance).objects.filter(pk=instance.pk).count() == 1
