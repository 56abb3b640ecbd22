"""A small clinic like the demo one: open Monday to Friday 08:00-18:00 and Saturday 09:00-13:00
in America/Los_Angeles, with the standard protocols loaded."""

from __future__ import annotations

import pytest

from clinic.models import Role, RoomKind
from protocols.models import ProtocolVersion
from protocols.services import protocols_load_standard
from tests.factories import (
    ClearedPatientFactory,
    ClinicFactory,
    RoomFactory,
    StaffMemberFactory,
)


class Site:
    """The clinic and its people, by name."""

    def __init__(self) -> None:
        self.clinic = ClinicFactory(name="Bay Clinic")
        self.chairs = [
            RoomFactory(clinic=self.clinic, name=f"Chair {n}", kind=RoomKind.INFUSION_CHAIR)
            for n in (1, 2)
        ]
        self.dosing = [
            RoomFactory(clinic=self.clinic, name=f"Dosing {n}", kind=RoomKind.DOSING_ROOM)
            for n in ("A", "B")
        ]
        self.therapy = [
            RoomFactory(clinic=self.clinic, name=f"Therapy {n}", kind=RoomKind.THERAPY_ROOM)
            for n in (1, 2)
        ]
        self.lee = StaffMemberFactory(
            clinic=self.clinic, full_name="Jordan Lee", roles=[Role.THERAPIST]
        )
        self.kim = StaffMemberFactory(
            clinic=self.clinic, full_name="Sam Kim", roles=[Role.THERAPIST]
        )
        self.nia = StaffMemberFactory(
            clinic=self.clinic,
            full_name="Nia Okafor",
            roles=[Role.NURSE],
            max_concurrent_patients=3,
        )
        self.patel = StaffMemberFactory(
            clinic=self.clinic, full_name="Asha Patel", roles=[Role.PRESCRIBER]
        )
        protocols_load_standard()
        self.kap = ProtocolVersion.objects.get(protocol__name="Ketamine-assisted psychotherapy")
        self.infusion = ProtocolVersion.objects.get(protocol__name="IV ketamine infusion induction")
        self.short = ProtocolVersion.objects.get(protocol__name="KAP short course")
        self.booster = ProtocolVersion.objects.get(protocol__name="Maintenance booster infusion")

    def patient(self, **kwargs: object):
        return ClearedPatientFactory(clinic=self.clinic, **kwargs)


@pytest.fixture
def site(db: None) -> Site:
    return Site()
