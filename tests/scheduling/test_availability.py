"""Free start times on a small hand-built clinic (America/Los_Angeles), exact to the minute."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.models import Clinic, Patient, Role, Room, RoomKind, StaffMember
from protocols.models import SessionKind
from protocols.selectors import step_for_kind
from scheduling.availability import availability
from scheduling.models import SessionStatus
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    ClosureFactory,
    RoomFactory,
    SessionFactory,
    SessionStaffFactory,
    StaffMemberFactory,
    TimeOffFactory,
    WorkingHoursFactory,
    aware,
)

pytestmark = pytest.mark.django_db

MONDAY = dt.date(2026, 3, 9)
TUESDAY = dt.date(2026, 3, 10)
#: A week before, so that nothing on the days asked about is in the past.
NOW = aware(2026, 3, 2, 9)
INTEGRATION = step_for_kind(None, SessionKind.INTEGRATION)
IV_INFUSION = step_for_kind(None, SessionKind.MEDICINE, "iv")


def local(moments: tuple[dt.datetime, ...], clinic: Clinic) -> list[str]:
    return [moment.astimezone(clinic.tz).isoformat() for moment in moments]


def monday(*times: str) -> list[str]:
    return [f"2026-03-09T{time}:00-07:00" for time in times]


@pytest.fixture
def clinic() -> Clinic:
    """Open Monday and Tuesday 09:00-12:00."""
    return ClinicFactory(
        name="Small Clinic",
        opening_hours=[(0, dt.time(9), dt.time(12)), (1, dt.time(9), dt.time(12))],
    )


@pytest.fixture
def room(clinic: Clinic) -> Room:
    return RoomFactory(
        clinic=clinic, name="Therapy 1", kind=RoomKind.THERAPY_ROOM, turnover_minutes=15
    )


def _therapist(clinic: Clinic, name: str) -> StaffMember:
    member = StaffMemberFactory(clinic=clinic, full_name=name, roles=[Role.THERAPIST])
    for weekday in (0, 1):
        WorkingHoursFactory(staff=member, weekday=weekday, start=dt.time(9), end=dt.time(12))
    return member


@pytest.fixture
def lee(clinic: Clinic) -> StaffMember:
    return _therapist(clinic, "Jordan Lee")


@pytest.fixture
def patient(clinic: Clinic) -> Patient:
    return ClearedPatientFactory(clinic=clinic, full_name="Alex Rivera")


ALL_MONDAY = monday("09:00", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00")


def test_every_quarter_hour_inside_opening_hours_and_none_on_a_closure(
    clinic: Clinic, room: Room, lee: StaffMember
) -> None:
    # given the clinic closed on Tuesday
    ClosureFactory(clinic=clinic, date=TUESDAY)

    # when an hour-long integration session is looked for on Monday and Tuesday
    found = availability(clinic, INTEGRATION, MONDAY, TUESDAY, now=NOW)

    # then Monday offers every start that ends by noon, Tuesday nothing
    assert local(found.starts, clinic) == ALL_MONDAY


def test_a_busy_room_is_held_for_its_turnover_too(
    clinic: Clinic, room: Room, lee: StaffMember
) -> None:
    # given Therapy 1 held 09:00-10:00 plus 15 minutes of turnover, by another therapist
    kim = _therapist(clinic, "Sam Kim")
    held = SessionFactory(
        patient=ClearedPatientFactory(clinic=clinic),
        room=room,
        starts_at=aware(2026, 3, 9, 9),
        ends_at=aware(2026, 3, 9, 10),
        room_released_at=aware(2026, 3, 9, 10, 15),
    )
    SessionStaffFactory(session=held, staff=kim)

    found = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=NOW)

    # then the new session, with its own turnover, starts when the room is released
    assert local(found.starts, clinic) == monday("10:15", "10:30", "10:45", "11:00")


def test_a_second_room_frees_the_morning_unless_the_busy_room_is_asked_for(
    clinic: Clinic, room: Room, lee: StaffMember
) -> None:
    other = RoomFactory(clinic=clinic, name="Therapy 2", kind=RoomKind.THERAPY_ROOM)
    SessionFactory(
        patient=ClearedPatientFactory(clinic=clinic),
        room=room,
        starts_at=aware(2026, 3, 9, 9),
        ends_at=aware(2026, 3, 9, 10),
        room_released_at=aware(2026, 3, 9, 10, 15),
    )

    anywhere = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=NOW)
    in_therapy_1 = availability(clinic, INTEGRATION, MONDAY, MONDAY, room_id=room.pk, now=NOW)
    in_therapy_2 = availability(clinic, INTEGRATION, MONDAY, MONDAY, room_id=other.pk, now=NOW)

    assert local(anywhere.starts, clinic) == ALL_MONDAY
    assert local(in_therapy_1.starts, clinic) == monday("10:15", "10:30", "10:45", "11:00")
    assert local(in_therapy_2.starts, clinic) == ALL_MONDAY


def test_cancelled_and_no_show_sessions_free_their_room(
    clinic: Clinic, room: Room, lee: StaffMember
) -> None:
    for status in (SessionStatus.CANCELLED, SessionStatus.NO_SHOW, SessionStatus.LATE_CANCELLED):
        SessionFactory(
            patient=ClearedPatientFactory(clinic=clinic),
            room=room,
            status=status,
            starts_at=aware(2026, 3, 9, 9),
            ends_at=aware(2026, 3, 9, 10),
            room_released_at=aware(2026, 3, 9, 10, 15),
        )

    found = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=NOW)

    assert local(found.starts, clinic) == ALL_MONDAY


def test_time_off_keeps_that_clinician_out_but_not_the_clinic(
    clinic: Clinic, room: Room, lee: StaffMember
) -> None:
    # given Lee off 09:30-10:30 and Kim working all morning
    kim = _therapist(clinic, "Sam Kim")
    TimeOffFactory(staff=lee, starts_at=aware(2026, 3, 9, 9, 30), ends_at=aware(2026, 3, 9, 10, 30))

    with_lee = availability(clinic, INTEGRATION, MONDAY, MONDAY, staff_id=lee.pk, now=NOW)
    with_kim = availability(clinic, INTEGRATION, MONDAY, MONDAY, staff_id=kim.pk, now=NOW)
    with_anyone = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=NOW)

    assert local(with_lee.starts, clinic) == monday("10:30", "10:45", "11:00")
    assert local(with_kim.starts, clinic) == ALL_MONDAY
    assert local(with_anyone.starts, clinic) == ALL_MONDAY


def test_working_hours_bound_a_clinician(clinic: Clinic, room: Room) -> None:
    # given a therapist who works Mondays 10:00-11:30 only
    part_time = StaffMemberFactory(clinic=clinic, full_name="Pat Doe", roles=[Role.THERAPIST])
    WorkingHoursFactory(staff=part_time, weekday=0, start=dt.time(10), end=dt.time(11, 30))

    found = availability(clinic, INTEGRATION, MONDAY, TUESDAY, staff_id=part_time.pk, now=NOW)

    assert local(found.starts, clinic) == monday("10:00", "10:15", "10:30")


def test_a_nurse_takes_three_patients_at_once_and_not_a_fourth(clinic: Clinic) -> None:
    # given four infusion chairs, a nurse with capacity 3, and three infusions 09:00-10:40
    chairs = [
        RoomFactory(clinic=clinic, name=f"Chair {n}", kind=RoomKind.INFUSION_CHAIR)
        for n in (1, 2, 3, 4)
    ]
    nia = StaffMemberFactory(
        clinic=clinic, full_name="Nia Okafor", roles=[Role.NURSE], max_concurrent_patients=3
    )
    WorkingHoursFactory(staff=nia, weekday=0, start=dt.time(9), end=dt.time(12))
    for chair in chairs[:2]:
        _infusion(clinic, chair, nia)
    two_booked = availability(clinic, IV_INFUSION, MONDAY, MONDAY, now=NOW)
    _infusion(clinic, chairs[2], nia)

    three_booked = availability(clinic, IV_INFUSION, MONDAY, MONDAY, now=NOW)

    # then with two infusions running she takes a third at any time; with three, only after
    # 10:40 (a 100-minute infusion ends by noon: 10:20 at the latest)
    assert local(two_booked.starts, clinic) == monday(
        "09:00", "09:15", "09:30", "09:45", "10:00", "10:15"
    )
    assert local(three_booked.starts, clinic) == []


def test_a_nurse_at_capacity_frees_up_when_an_infusion_ends(clinic: Clinic) -> None:
    chairs = [
        RoomFactory(clinic=clinic, name=f"Chair {n}", kind=RoomKind.INFUSION_CHAIR)
        for n in (1, 2, 3, 4)
    ]
    nia = StaffMemberFactory(
        clinic=clinic, full_name="Nia Okafor", roles=[Role.NURSE], max_concurrent_patients=3
    )
    # the nurse is at capacity 09:00-09:30 only: one of the three infusions is a short one
    _infusion(clinic, chairs[0], nia)
    _infusion(clinic, chairs[1], nia)
    _infusion(clinic, chairs[2], nia, minutes=30)

    found = availability(clinic, IV_INFUSION, MONDAY, MONDAY, now=NOW)

    assert local(found.starts, clinic) == monday("09:30", "09:45", "10:00", "10:15")


def _infusion(clinic: Clinic, chair: Room, nurse: StaffMember, minutes: int = 100) -> None:
    starts_at = aware(2026, 3, 9, 9)
    ends_at = starts_at + dt.timedelta(minutes=minutes)
    session = SessionFactory(
        patient=ClearedPatientFactory(clinic=clinic),
        room=chair,
        kind=SessionKind.MEDICINE,
        route="iv",
        starts_at=starts_at,
        ends_at=ends_at,
        room_released_at=ends_at + dt.timedelta(minutes=15),
    )
    SessionStaffFactory(session=session, staff=nurse, role=Role.NURSE)


def test_the_patient_must_be_free(
    clinic: Clinic, room: Room, lee: StaffMember, patient: Patient
) -> None:
    # given the patient in a session 10:00-11:00 in another room with another therapist
    elsewhere = RoomFactory(clinic=clinic, name="Dosing 1", kind=RoomKind.DOSING_ROOM)
    SessionFactory(
        patient=patient,
        room=elsewhere,
        starts_at=aware(2026, 3, 9, 10),
        ends_at=aware(2026, 3, 9, 11),
        room_released_at=aware(2026, 3, 9, 11, 15),
    )

    for_patient = availability(clinic, INTEGRATION, MONDAY, MONDAY, patient_id=patient.pk, now=NOW)
    for_anyone = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=NOW)

    # then the patient's turnover-free end at 11:00 is when the next session may start
    assert local(for_patient.starts, clinic) == monday("09:00", "11:00")
    assert local(for_anyone.starts, clinic) == ALL_MONDAY


def test_starts_in_the_past_are_not_offered(clinic: Clinic, room: Room, lee: StaffMember) -> None:
    found = availability(clinic, INTEGRATION, MONDAY, MONDAY, now=aware(2026, 3, 9, 10, 15))

    assert local(found.starts, clinic) == monday("10:30", "10:45", "11:00")


def test_the_spring_dst_change_skips_the_missing_hour() -> None:
    # given a clinic open on Sunday 8 March 2026 from 01:00 to 04:00 local time: clocks jump
    # from 02:00 PST to 03:00 PDT, so it is open for two real hours
    clinic = ClinicFactory(name="Night Clinic", opening_hours=[(6, dt.time(1), dt.time(4))])
    RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM)
    StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])  # no hours: works when open
    sunday = dt.date(2026, 3, 8)

    found = availability(clinic, INTEGRATION, sunday, sunday, now=NOW)

    assert local(found.starts, clinic) == [
        "2026-03-08T01:00:00-08:00",
        "2026-03-08T01:15:00-08:00",
        "2026-03-08T01:30:00-08:00",
        "2026-03-08T01:45:00-08:00",
        "2026-03-08T03:00:00-07:00",
    ]


def test_the_autumn_dst_change_offers_the_repeated_hour_twice() -> None:
    # given a clinic open on Sunday 1 November 2026 from 00:00 to 03:00: clocks go back from
    # 02:00 PDT to 01:00 PST, so it is open for four real hours
    clinic = ClinicFactory(name="Night Clinic", opening_hours=[(6, dt.time(0), dt.time(3))])
    RoomFactory(clinic=clinic, kind=RoomKind.THERAPY_ROOM)
    StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST])
    sunday = dt.date(2026, 11, 1)

    found = availability(clinic, INTEGRATION, sunday, sunday, now=NOW)

    assert local(found.starts, clinic) == [
        "2026-11-01T00:00:00-07:00",
        "2026-11-01T00:15:00-07:00",
        "2026-11-01T00:30:00-07:00",
        "2026-11-01T00:45:00-07:00",
        "2026-11-01T01:00:00-07:00",
        "2026-11-01T01:15:00-07:00",
        "2026-11-01T01:30:00-07:00",
        "2026-11-01T01:45:00-07:00",
        "2026-11-01T01:00:00-08:00",
        "2026-11-01T01:15:00-08:00",
        "2026-11-01T01:30:00-08:00",
        "2026-11-01T01:45:00-08:00",
        "2026-11-01T02:00:00-08:00",
    ]


def test_a_medicine_session_needs_its_therapist_and_a_nurse(
    clinic: Clinic, lee: StaffMember
) -> None:
    # given a dosing room and a nurse who works 10:00-12:00 only
    RoomFactory(clinic=clinic, name="Dosing 1", kind=RoomKind.DOSING_ROOM)
    nurse = StaffMemberFactory(clinic=clinic, full_name="Nia Okafor", roles=[Role.NURSE])
    WorkingHoursFactory(staff=nurse, weekday=0, start=dt.time(10), end=dt.time(12))
    medicine = step_for_kind(None, SessionKind.MEDICINE)

    with_lee = availability(clinic, medicine, MONDAY, MONDAY, staff_id=lee.pk, now=NOW)
    with_nurse = availability(clinic, medicine, MONDAY, MONDAY, staff_id=nurse.pk, now=NOW)

    # then the 120-minute session needs the nurse for its first 30 minutes from 10:00 on
    assert local(with_lee.starts, clinic) == monday("10:00")
    assert local(with_nurse.starts, clinic) == monday("10:00")


def test_one_person_with_two_roles_fills_only_one_of_them(clinic: Clinic) -> None:
    # given a dosing room and one person who is both therapist and nurse
    RoomFactory(clinic=clinic, name="Dosing 1", kind=RoomKind.DOSING_ROOM)
    both = StaffMemberFactory(clinic=clinic, roles=[Role.THERAPIST, Role.NURSE])
    medicine = step_for_kind(None, SessionKind.MEDICINE)

    alone = availability(clinic, medicine, MONDAY, MONDAY, now=NOW)
    nurse = StaffMemberFactory(clinic=clinic, roles=[Role.NURSE])
    with_a_nurse = availability(clinic, medicine, MONDAY, MONDAY, staff_id=both.pk, now=NOW)
    with_the_nurse = availability(clinic, medicine, MONDAY, MONDAY, staff_id=nurse.pk, now=NOW)

    assert alone.starts == ()
    assert local(with_a_nurse.starts, clinic) == monday("09:00", "09:15", "09:30", "09:45", "10:00")
    assert with_the_nurse.starts == with_a_nurse.starts


def test_five_queries_whatever_the_number_of_sessions(
    clinic: Clinic,
    room: Room,
    lee: StaffMember,
    patient: Patient,
    django_assert_num_queries: object,
) -> None:
    # given a week of sessions 09:00-09:30 and 11:00-11:30 in the room, each with Lee, and Lee
    # off on Tuesday
    for day in range(7):
        for hour in (9, 11):
            held = SessionFactory(
                patient=ClearedPatientFactory(clinic=clinic),
                room=room,
                starts_at=aware(2026, 3, 2 + day, hour),
                ends_at=aware(2026, 3, 2 + day, hour, 30),
                room_released_at=aware(2026, 3, 2 + day, hour, 40),
            )
            SessionStaffFactory(session=held, staff=lee)
    TimeOffFactory(staff=lee, starts_at=aware(2026, 3, 3, 9), ends_at=aware(2026, 3, 3, 12))

    # when the week is asked for, for the patient and Lee
    with django_assert_num_queries(5):  # type: ignore[operator]
        found = availability(
            clinic,
            INTEGRATION,
            dt.date(2026, 3, 2),
            dt.date(2026, 3, 8),
            patient_id=patient.pk,
            staff_id=lee.pk,
            now=NOW - dt.timedelta(days=1),
        )

    # then only Monday 09:45 leaves the hour and the room's turnover free before 11:00
    assert local(found.starts, clinic) == ["2026-03-02T09:45:00-08:00"]
