"""``manage.py seed_demo``: a demo clinic to click through. Safe to run again: it adds what is
missing and leaves the rest alone."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from clinic import services as clinic_services
from clinic.models import Clinic, Patient, Role, RoomKind, StaffMember, User
from protocols.services import protocols_load_standard
from scheduling.demo import demo_sessions_book

CLINIC_NAME = "Demo Ketamine Clinic"
WEEKDAY_HOURS = [{"weekday": day, "start": dt.time(8), "end": dt.time(18)} for day in range(5)]
SATURDAY_HOURS = [{"weekday": 5, "start": dt.time(9), "end": dt.time(13)}]
ROOMS = [
    *[(f"Infusion chair {n}", RoomKind.INFUSION_CHAIR) for n in range(1, 5)],
    ("Dosing room A", RoomKind.DOSING_ROOM),
    ("Dosing room B", RoomKind.DOSING_ROOM),
    ("Therapy room 1", RoomKind.THERAPY_ROOM),
    ("Therapy room 2", RoomKind.THERAPY_ROOM),
    ("Telehealth", RoomKind.TELEHEALTH),
]
STAFF = [
    ("frontdesk", "Fran Desk", [Role.FRONT_DESK], 1),
    ("nurse.nia", "Nia Okafor, RN", [Role.NURSE], 3),
    ("nurse.omar", "Omar Reyes, RN", [Role.NURSE], 3),
    ("dr.patel", "Dr. Asha Patel", [Role.PRESCRIBER], 1),
    ("therapist.lee", "Jordan Lee, LMFT", [Role.THERAPIST], 1),
    ("therapist.kim", "Sam Kim, PsyD", [Role.THERAPIST], 1),
    ("therapist.ruiz", "Alex Ruiz, LCSW", [Role.THERAPIST], 1),
    ("admin", "Casey Admin", [Role.CLINIC_ADMIN], 1),
]
FIRST = [
    "Avery",
    "Blake",
    "Carmen",
    "Dana",
    "Eli",
    "Farah",
    "Gus",
    "Hana",
    "Ines",
    "Jonah",
    "Kai",
    "Luca",
    "Mira",
    "Noor",
    "Owen",
    "Priya",
    "Quinn",
    "Rosa",
    "Theo",
    "Uma",
]
LAST = [
    "Nguyen",
    "Smith",
    "Garcia",
    "Johnson",
    "Khan",
    "Lopez",
    "Brown",
    "Tanaka",
    "Silva",
    "Cohen",
    "Ali",
    "Rossi",
    "Novak",
    "Haddad",
    "Walsh",
    "Iyer",
    "Moreau",
    "Diaz",
    "Berg",
    "Osei",
]


class Command(BaseCommand):
    help = (
        "Create a demo clinic with rooms, staff, 20 patients, the standard protocols and sessions."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--reset-passwords", action="store_true", help="Give every demo login a new password."
        )

    def handle(self, *args: Any, reset_passwords: bool = False, **options: Any) -> None:
        logins: list[tuple[str, str, str]] = []
        with transaction.atomic():
            clinic = self._clinic()
            self._step("Protocols")
            for version, created in protocols_load_standard():
                self.stdout.write(f"  {'loaded ' if created else 'present'} {version}")
            self._step("Staff")
            logins += self._staff(clinic, reset_passwords)
            self._step("Patients")
            logins += self._patients(clinic, reset_passwords)
        self._step("Sessions")
        booked = demo_sessions_book(clinic, progress=lambda line: self.stdout.write(f"  {line}"))
        self.stdout.write(f"  {booked} new session(s) booked")
        self._print_logins(logins)

    def _step(self, title: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(title))

    def _clinic(self) -> Clinic:
        self._step("Clinic")
        clinic = Clinic.objects.filter(name=CLINIC_NAME).first()
        if clinic is None:
            clinic = clinic_services.clinic_create(
                name=CLINIC_NAME,
                timezone_name="America/Los_Angeles",
                opening_hours=WEEKDAY_HOURS + SATURDAY_HOURS,
            )
            self.stdout.write(f"  created {clinic} (America/Los_Angeles)")
        else:
            self.stdout.write(f"  present {clinic}")
        for name, kind in ROOMS:
            if not clinic.rooms.filter(name=name).exists():
                clinic_services.room_create(clinic=clinic, name=name, kind=kind)
        self.stdout.write(f"  {clinic.rooms.count()} rooms")
        return clinic

    def _login(self, username: str, reset: bool) -> tuple[User | None, str]:
        user = User.objects.filter(username=username).first()
        password = f"demo-{secrets.token_urlsafe(9)}"
        if user is not None and reset:
            user.set_password(password)
            user.save(update_fields=["password"])
            return user, password
        return user, (password if user is None else "")

    def _staff(self, clinic: Clinic, reset: bool) -> list[tuple[str, str, str]]:
        logins = []
        for username, full_name, roles, capacity in STAFF:
            user, password = self._login(username, reset)
            if user is None:
                member = clinic_services.staff_create(
                    clinic=clinic,
                    username=username,
                    password=password,
                    full_name=full_name,
                    roles=roles,
                    max_concurrent_patients=capacity,
                )
                hours = WEEKDAY_HOURS + (SATURDAY_HOURS if Role.NURSE in roles else [])
                for entry in hours:
                    clinic_services.working_hours_add(staff=member, **entry)  # type: ignore[arg-type]
            logins.append((username, ", ".join(roles), password or "(unchanged)"))
        if not User.objects.filter(username="superuser").exists():
            password = f"demo-{secrets.token_urlsafe(9)}"
            User.objects.create_superuser("superuser", "", password)
            logins.append(("superuser", "Django superuser (admin site)", password))
        elif reset:
            user, password = self._login("superuser", True)
            logins.append(("superuser", "Django superuser (admin site)", password))
        else:
            logins.append(("superuser", "Django superuser (admin site)", "(unchanged)"))
        self.stdout.write(f"  {StaffMember.objects.filter(clinic=clinic).count()} staff members")
        return logins

    def _patients(self, clinic: Clinic, reset: bool) -> list[tuple[str, str, str]]:
        logins = []
        prescriber = StaffMember.objects.get(user__username="dr.patel")
        today = timezone.localdate(timezone=clinic.tz)
        for n, (first, last) in enumerate(zip(FIRST, LAST, strict=True), start=1):
            full_name = f"{first} {last}"
            patient = Patient.objects.filter(clinic=clinic, full_name=full_name).first()
            username = f"patient{n:02d}"
            if patient is None:
                password = f"demo-{secrets.token_urlsafe(9)}"
                patient = clinic_services.patient_create(
                    clinic=clinic,
                    full_name=full_name,
                    date_of_birth=dt.date(1960 + n, 1 + n % 12, 1 + n),
                    email=f"{first.lower()}.{last.lower()}@example.org",
                    phone=f"+1415555{n:04d}",
                    preferred_channel="sms" if n % 3 == 0 else "email",
                    username=username,
                    password=password,
                    escort_name=f"{LAST[-n]} family",
                    escort_phone=f"+1415556{n:04d}",
                    **({"outside_therapist_name": "Dr. Morgan Hale"} if n % 5 == 0 else {}),
                )
                clinic_services.screening_record(
                    patient=patient,
                    result="cleared",
                    valid_until=today + dt.timedelta(days=180),
                    cleared_by=prescriber,
                    screened_on=today - dt.timedelta(days=30),
                )
                clinic_services.consent_record(
                    patient=patient,
                    signed_at=timezone.now() - dt.timedelta(days=30),
                    document_version="KAP-consent-2026.1",
                )
                logins.append((username, f"patient portal ({full_name})", password))
            elif reset and patient.user is not None:
                _, password = self._login(patient.user.username, True)
                logins.append((patient.user.username, f"patient portal ({full_name})", password))
        self.stdout.write(f"  {Patient.objects.filter(clinic=clinic).count()} patients")
        return logins

    def _print_logins(self, logins: list[tuple[str, str, str]]) -> None:
        self._step("Logins")
        width = max(len(username) for username, _, _ in logins)
        for username, what, password in logins:
            self.stdout.write(f"  {username:<{width}}  {password:<20}  {what}")
        if any(password == "(unchanged)" for _, _, password in logins):
            self.stdout.write(
                "  Passwords are shown once; run seed_demo --reset-passwords for new ones."
            )
