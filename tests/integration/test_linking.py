"""An integration session booked after a medicine session links to the latest preceding medicine
session lacking integration; the integration status of each medicine session, read in bulk."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.errors import InvalidInput
from integration import clinical_selectors, services
from integration.models import IntegrationLink
from scheduling import services as scheduling_services
from scheduling.models import Session
from tests.factories import OutsideIntegrationFactory, aware

pytestmark = pytest.mark.django_db


def _links() -> list[tuple[int, int]]:
    return list(
        IntegrationLink.objects.order_by("integration_session_id").values_list(
            "medicine_session_id", "integration_session_id"
        )
    )


def test_integration_links_to_the_medicine_session_before_it_once(place) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    integration = place.book("integration", aware(2026, 3, 3, 10))

    first = services.integration_link(integration)
    again = services.integration_link(integration)

    assert first == again
    assert _links() == [(medicine.pk, integration.pk)]


def test_latest_preceding_medicine_session_lacking_integration(place) -> None:
    m1 = place.book("medicine", aware(2026, 3, 2, 9))
    m2 = place.book("medicine", aware(2026, 3, 5, 9))
    after_m2 = place.book("integration", aware(2026, 3, 6, 10))
    second = place.book("integration", aware(2026, 3, 7, 10))
    third = place.book("integration", aware(2026, 3, 9, 10))

    services.integration_link(after_m2)  # M2 is the latest lacking integration
    services.integration_link(second)  # M2 has its integration now; M1 still lacks one
    services.integration_link(third)  # both have integration: the latest, M2, gets a second

    assert _links() == [(m2.pk, after_m2.pk), (m1.pk, second.pk), (m2.pk, third.pk)]


def test_a_cancelled_integration_leaves_its_medicine_session_lacking_again(place) -> None:
    m1 = place.book("medicine", aware(2026, 3, 2, 9))
    m2 = place.book("medicine", aware(2026, 3, 5, 9))
    for_m1 = place.book("integration", aware(2026, 3, 3, 10))
    for_m2 = place.book("integration", aware(2026, 3, 6, 10))
    services.integration_links_sync(place.patient)
    scheduling_services.session_cancel(for_m1, reason="unwell", now=aware(2026, 2, 20, 9))

    replacement = place.book("integration", aware(2026, 3, 9, 10))
    services.integration_link(replacement)

    assert _links() == [(m1.pk, for_m1.pk), (m2.pk, for_m2.pk), (m1.pk, replacement.pk)]


def test_outside_integration_counts_as_integration(place) -> None:
    m1 = place.book("medicine", aware(2026, 3, 2, 9))
    m2 = place.book("medicine", aware(2026, 3, 5, 9))
    OutsideIntegrationFactory(medicine_session=m2, held_on=dt.date(2026, 3, 6))
    integration = place.book("integration", aware(2026, 3, 7, 10))

    services.integration_link(integration)

    assert _links() == [(m1.pk, integration.pk)]


def test_cancelled_medicine_sessions_and_later_ones_are_not_candidates(place) -> None:
    m1 = place.book("medicine", aware(2026, 3, 2, 9))
    m2 = place.book("medicine", aware(2026, 3, 5, 9))
    later = place.book("medicine", aware(2026, 3, 12, 9))
    scheduling_services.session_cancel(m2, reason="travel", now=aware(2026, 2, 20, 9))
    integration = place.book("integration", aware(2026, 3, 6, 10))

    services.integration_link(integration)

    assert _links() == [(m1.pk, integration.pk)]
    assert later.integration_links.count() == 0


def test_within_a_series_only_its_own_medicine_sessions(place) -> None:
    series = place.series()
    outside_series = place.book("medicine", aware(2026, 3, 5, 9))
    in_series = place.book("medicine", aware(2026, 3, 2, 9), series=series)
    integration = place.book("integration", aware(2026, 3, 6, 10), series=series)
    standalone = place.book("integration", aware(2026, 3, 7, 10))

    services.integration_link(integration)
    services.integration_link(standalone)

    assert _links() == [(in_series.pk, integration.pk), (outside_series.pk, standalone.pk)]


def test_nothing_to_link_and_a_cancelled_integration_does_not_count(place) -> None:
    before_any = place.book("integration", aware(2026, 3, 1, 10))
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    cancelled = place.book("integration", aware(2026, 3, 3, 10))
    scheduling_services.session_cancel(cancelled, reason="unwell", now=aware(2026, 2, 20, 9))
    rebooked = place.book("integration", aware(2026, 3, 4, 10))

    assert services.integration_link(before_any) is None
    # The link written at booking stays as history; the medicine session lacked integration
    # again once it was cancelled, so the new booking is linked to it.
    assert _links() == [(medicine.pk, cancelled.pk), (medicine.pk, rebooked.pk)]


def test_sync_passes_over_what_cannot_be_linked_in_one_query(
    place, django_assert_num_queries
) -> None:
    for day in range(1, 9):  # no medicine session before any of these
        place.book("integration", aware(2026, 3, day, 10))
    series = place.series()
    place.book("medicine", aware(2026, 3, 9, 9))  # not in the series
    in_series = place.book("integration", aware(2026, 3, 10, 10), series=series)

    with django_assert_num_queries(1):
        assert services.integration_links_sync(place.patient) == []
    assert _links() == []
    assert services.integration_link(in_series) is None


def test_only_integration_sessions_are_linked(place) -> None:
    medicine = place.book("medicine", aware(2026, 3, 2, 9))
    with pytest.raises(InvalidInput):
        services.integration_link(medicine)
    assert _links() == []


def test_booking_pairs_a_whole_series_in_order_and_sync_is_idempotent(place) -> None:
    series = place.series()
    sessions = [
        place.book(kind, aware(2026, 3, day, 9), series=series)
        for kind, day in [
            ("medicine", 2),
            ("integration", 3),
            ("medicine", 5),
            ("integration", 6),
            ("medicine", 9),
            ("integration", 10),
        ]
    ]

    # Booking links each integration session as it is written; a sync finds nothing left.
    again = services.integration_links_sync(place.patient)

    ids = [s.pk for s in sessions]
    links = IntegrationLink.objects.order_by("integration_session__starts_at")
    assert [(link.medicine_session_id, link.integration_session_id) for link in links] == [
        (ids[0], ids[1]),
        (ids[2], ids[3]),
        (ids[4], ids[5]),
    ]
    assert again == []


def test_statuses_of_a_course_in_a_fixed_number_of_queries(
    place, django_assert_num_queries
) -> None:
    series = place.series(window_days=3)
    done = place.book("medicine", aware(2026, 3, 2, 9), series=series)
    booked = place.book("medicine", aware(2026, 3, 5, 9), series=series)
    overdue = place.book("medicine", aware(2026, 3, 9, 9), series=series)
    waiting = place.book("medicine", aware(2026, 3, 12, 9), series=series)
    for medicine in (done, booked, overdue, waiting):
        place.run_medicine(medicine)
    after_done = place.book("integration", aware(2026, 3, 3, 10), series=series)
    place.book("integration", aware(2026, 3, 7, 10), series=series)
    services.integration_links_sync(place.patient)
    place.run_integration(after_done)
    medicine_sessions = list(clinical_selectors.medicine_sessions_of(place.patient.pk))

    with django_assert_num_queries(5):
        statuses = clinical_selectors.integration_statuses(
            medicine_sessions, now=aware(2026, 3, 13, 12)
        )

    assert {pk: (s.status, s.days_overdue) for pk, s in statuses.items()} == {
        done.pk: ("done", 0),
        booked.pk: ("booked", 0),
        overdue.pk: ("overdue", 1),  # due 12 March with a 3-day window
        waiting.pk: ("none", 0),
    }
    assert statuses[overdue.pk].due_on == dt.date(2026, 3, 12)


def test_statuses_load_the_clinics_time_zones_in_one_query(
    place, django_assert_num_queries
) -> None:
    for day in (2, 5, 9):
        place.run_medicine(place.book("medicine", aware(2026, 3, day, 9)))
    plain = list(Session.objects.filter(kind="medicine"))

    with django_assert_num_queries(4):  # no series: no protocol windows to read
        statuses = clinical_selectors.integration_statuses(plain, now=aware(2026, 3, 13, 12))

    assert [statuses[s.pk].status for s in plain] == ["overdue", "overdue", "none"]
