"""Schemathesis against the generated OpenAPI schema, through the live WSGI application.

Every operation gets generated requests (valid and invalid) with a real bearer token: a superuser's
for the staff endpoints, patient A's for the portal. Checks: no server error, answers that conform
to the documented schema and status codes, and no operation that works without its token."""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, ignored_auth]


#: Loaded when the module is collected: the schema view needs no database. (schemathesis's lazy
#: fixture loader does not work with pytest 9.2 yet.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Django closes "old" connections when a request finishes; its own test client switches that
    off, schemathesis's WSGI client does not, and the test's transaction would be lost."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def booked(world):
    """Sessions, a series, a screening and a consent, so that lists answer with real rows."""
    from django.utils import timezone

    from scheduling import services
    from tests.factories import (
        ConsentFactory,
        ProtocolVersionFactory,
        ScreeningFactory,
        TreatmentSeriesFactory,
    )

    today = timezone.localdate()
    ScreeningFactory(  # cleared through the coming year: the medicine session's gate
        patient=world.patient_a,
        cleared_by=world.prescriber,
        screened_on=today,
        valid_until=today + dt.timedelta(days=365),
    )
    start = timezone.now().replace(microsecond=0) + dt.timedelta(days=2)
    series = TreatmentSeriesFactory(
        patient=world.patient_a, protocol_version=ProtocolVersionFactory()
    )
    medicine = services.session_create(
        patient=world.patient_a,
        kind="medicine",
        starts_at=start,
        room=world.dosing_room,
        staff=[world.therapist, world.nurse],
        series=series,
    )
    services.session_escort_set(medicine, name="Robin", phone="+14155550100", is_confirmed=True)
    services.session_create(
        patient=world.patient_a,
        kind="integration",
        starts_at=start + dt.timedelta(days=1),
        room=world.therapy_room,
        staff=[world.therapist],
        series=series,
    )
    ConsentFactory(patient=world.patient_a, document_version="schema-test")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case, world, booked) -> None:
    user = world.patient_a.user if case.path.startswith("/api/v1/me/") else world.superuser
    token = client_for(user)._credentials["HTTP_AUTHORIZATION"]
    case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)
