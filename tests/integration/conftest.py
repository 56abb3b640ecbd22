"""A small clinic to exercise the integration services: rooms, one of each role, a patient."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from clinic.models import Clinic, Consent, Patient, Role, Room, Screening, StaffMember
from integration import services
from protocols.models import CareModel, RuleType, SessionKind
from scheduling import services as scheduling_services
from scheduling.models import Session, TreatmentSeries
from tests.factories import (
    ClinicFactory,
    ConsentFactory,
    PatientFactory,
    ProtocolRuleFactory,
    ProtocolVersionFactory,
    RoomFactory,
    ScreeningFactory,
    StaffMemberFactory,
    TreatmentSeriesFactory,
    UserFactory,
    aware,
)

MINUTE = dt.timedelta(minutes=1)


@dataclass
class Place:
    clinic: Clinic
    dosing: Room
    dosing_b: Room
    therapy: Room
    therapy_b: Room
    therapist: StaffMember
    other_therapist: StaffMember
    nurse: StaffMember
    prescriber: StaffMember
    front_desk: StaffMember
    admin: StaffMember
    patient: Patient

    def book(
        self,
        kind: str,
        starts_at: dt.datetime,
        *,
        series: TreatmentSeries | None = None,
        patient: Patient | None = None,
        therapist: StaffMember | None = None,
    ) -> Session:
        """Book through the real service, with the room and staff the kind needs.

        Booking a medicine session needs a clearance and a consent on file. A patient with none
        gets both for the booking and loses them right after (cleared when booked, the record
        since withdrawn), so each test sets up the gate facts that check-in then sees.
        """
        therapist = therapist or self.therapist
        patient = patient or self.patient
        if kind == SessionKind.MEDICINE:
            room, staff = self.dosing, [therapist, self.nurse]
        else:
            room, staff = self.therapy, [therapist]
        on_file = (
            Screening.objects.filter(patient=patient).exists()
            or Consent.objects.filter(patient=patient).exists()
        )
        booking_clearance = (
            self.clear(patient) if kind == SessionKind.MEDICINE and not on_file else ()
        )
        session = scheduling_services.session_create(
            patient=patient,
            kind=kind,
            starts_at=starts_at,
            room=room,
            staff=staff,
            series=series,
        )
        for record in booking_clearance:
            record.delete()
        return session

    def series(
        self, care_model: str = CareModel.KAP, window_days: int | None = 7
    ) -> TreatmentSeries:
        # The version's rules first: a version that governs a series cannot change.
        version = ProtocolVersionFactory(protocol__care_model=care_model)
        if window_days is not None:
            ProtocolRuleFactory(
                version=version,
                type=RuleType.MAX_GAP,
                after=SessionKind.MEDICINE,
                before=SessionKind.INTEGRATION,
                days=window_days,
            )
        series = TreatmentSeriesFactory(
            patient=self.patient, protocol_version=version, preferred_therapist=self.therapist
        )
        TreatmentSeries.objects.filter(pk=series.pk).update(created_at=aware(2026, 2, 20, 9))
        series.refresh_from_db()
        return series

    def clear(self, patient: Patient | None = None) -> tuple[Screening, Consent]:
        """A prescriber's clearance valid through June, and a signed consent."""
        patient = patient or self.patient
        return (
            ScreeningFactory(
                patient=patient,
                cleared_by=self.prescriber,
                screened_on=dt.date(2026, 1, 5),
                valid_until=dt.date(2026, 6, 30),
            ),
            ConsentFactory(patient=patient, signed_at=aware(2026, 1, 5, 10)),
        )

    def escort(self, session: Session, *, confirmed: bool = True) -> None:
        scheduling_services.session_escort_set(
            session,
            name="Robin Nguyen",
            phone="+14155550199",
            is_confirmed=confirmed,
            now=session.starts_at - dt.timedelta(days=1),
        )

    def vitals(self, session: Session, phase: str, at: dt.datetime, **readings: int):
        values = {
            "systolic_mmhg": 124,
            "diastolic_mmhg": 78,
            "heart_rate_bpm": 72,
            "spo2_percent": 98,
        }
        values.update(readings)
        return services.vital_signs_record(
            session=session,
            phase=phase,
            measured_at=at,
            recorded_by=self.nurse,
            now=session.ends_at,
            **values,
        )

    def run_medicine(self, session: Session) -> Session:
        """Check in and record everything a medicine session needs, then complete it."""
        start = session.starts_at
        if not Screening.objects.filter(patient=session.patient).exists():
            self.clear(session.patient)
        self.escort(session)
        scheduling_services.session_check_in(session, now=start)
        self.vitals(session, "before", start + 5 * MINUTE)
        services.dose_record(
            session=session,
            route="im",
            dose_mg=Decimal("52.50"),
            weight_kg=Decimal("70.0"),
            started_at=start + 10 * MINUTE,
            ended_at=start + 11 * MINUTE,
            administered_by=self.nurse,
            now=session.ends_at,
        )
        self.vitals(session, "after", start + 90 * MINUTE)
        services.discharge_record(
            session=session,
            discharged_by=self.nurse,
            discharged_at=start + 110 * MINUTE,
            escort_handoff_name="Robin Nguyen",
            criteria=dict.fromkeys(services.DISCHARGE_CRITERIA, True),
            now=session.ends_at,
        )
        return scheduling_services.session_complete(session, now=session.ends_at)

    def run_integration(self, session: Session) -> Session:
        scheduling_services.session_check_in(session, now=session.starts_at)
        return scheduling_services.session_complete(session, now=session.ends_at)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Logins here are fixtures, not what is tested: hash their passwords cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def place() -> Place:
    # Open every day from early to late: these tests are about the clinical record, not hours.
    clinic = ClinicFactory(
        name="Harbor Ketamine Clinic",
        opening_hours=[(day, dt.time(6), dt.time(23)) for day in range(7)],
    )
    return Place(
        clinic=clinic,
        dosing=RoomFactory(clinic=clinic, name="Dosing A", kind="dosing_room"),
        dosing_b=RoomFactory(clinic=clinic, name="Dosing B", kind="dosing_room"),
        therapy=RoomFactory(clinic=clinic, name="Therapy 1", kind="therapy_room"),
        therapy_b=RoomFactory(clinic=clinic, name="Therapy 2", kind="therapy_room"),
        therapist=StaffMemberFactory(clinic=clinic, full_name="Jordan Lee", roles=[Role.THERAPIST]),
        other_therapist=StaffMemberFactory(
            clinic=clinic, full_name="Sam Kim", roles=[Role.THERAPIST]
        ),
        nurse=StaffMemberFactory(
            clinic=clinic, full_name="Nia Okafor", roles=[Role.NURSE], max_concurrent_patients=3
        ),
        prescriber=StaffMemberFactory(
            clinic=clinic, full_name="Dr. Asha Patel", roles=[Role.PRESCRIBER]
        ),
        front_desk=StaffMemberFactory(
            clinic=clinic, full_name="Fran Desk", roles=[Role.FRONT_DESK]
        ),
        admin=StaffMemberFactory(clinic=clinic, full_name="Casey Admin", roles=[Role.CLINIC_ADMIN]),
        patient=PatientFactory(
            clinic=clinic,
            full_name="Avery Stone",
            user=UserFactory(username="avery"),
            outside_therapist_name="Dr. Morgan Hale",
            outside_therapist_email="morgan.hale@example.org",
            outside_therapist_phone="+14155550177",
        ),
    )
