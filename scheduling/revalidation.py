"""Re-checking a whole series against its protocol with the rules engine
(``protocols.rules.evaluate``): the same engine the planner and the API answer with."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from clinic.models import Role
from protocols import rules
from protocols.selectors import protocol_spec, protocol_versions

from .alerts.models import AlertKind
from .alerts.services import staff_alert_raise
from .models import LIVE_STATUSES, SeriesStatus, TreatmentSeries
from .supply import patient_gates


def violation_fingerprint(violation: dict[str, Any]) -> str:
    """A violation's identity across re-checks: its rule and the sessions it names (its message
    carries times that may be re-worded)."""
    identity = json.dumps([violation["rule"], sorted(map(str, violation["sessions"]))])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def series_revalidate(
    series: TreatmentSeries, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Evaluate the series' live sessions against its protocol version and the patient's gates;
    store the violations on the series and alert the front desk about each one that was not there
    at the last check. Returns the current violations.

    The series row is locked for the check, so two re-checks at once run one after the other and
    the second finds nothing new: a repeated or doubled task raises no second alert.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = (
            TreatmentSeries.objects.select_for_update(of=("self",))
            .select_related("patient__clinic", "protocol_version__protocol")
            .get(pk=series.pk)
        )
        if current.status != SeriesStatus.ACTIVE:
            return list(current.violations)
        sessions = current.sessions.filter(status__in=LIVE_STATUSES).prefetch_related("staff_holds")
        facts = [
            rules.SessionFact(
                ref=session.pk,
                kind=session.kind,
                starts_at=session.starts_at,
                ends_at=session.ends_at,
                room_id=session.room_id,
                staff_ids=tuple(hold.staff_id for hold in session.staff_holds.all()),
            )
            for session in sessions
        ]
        found = [
            violation.as_dict()
            for violation in rules.evaluate(
                facts,
                protocol_spec(protocol_versions().get(pk=current.protocol_version_id)),
                current.patient.clinic.tz,
                gates=patient_gates(current.patient),
                require_complete=False,
            )
        ]
        before = {violation_fingerprint(v) for v in current.violations}
        current.violations = found
        current.violations_checked_at = now
        current.save(update_fields=["violations", "violations_checked_at"])
        for violation in found:
            fingerprint = violation_fingerprint(violation)
            if fingerprint in before:
                continue
            staff_alert_raise(
                clinic=current.patient.clinic_id,
                kind=AlertKind.SERIES_VIOLATION,
                message=f"{current.patient.full_name}'s series ({current.protocol_version}): "
                f"{violation['message']}",
                dedupe_key=f"series_violation:{current.pk}:{fingerprint}:{now.isoformat()}",
                target_role=Role.FRONT_DESK,
                series_id=current.pk,
            )
    return found


def series_active_ids() -> list[int]:
    return list(
        TreatmentSeries.objects.filter(status=SeriesStatus.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
