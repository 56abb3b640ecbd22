"""Re-checking a whole series against its protocol with the rules engine.

PENDING THE RULES ENGINE MERGE: ``protocols.rules.evaluate`` and its dataclasses land from the
rules-planner branch. Until then ``series_revalidate`` records nothing and says so; the tests in
``tests/workers/test_revalidation.py`` are skipped. After the merge the lookups below become plain
imports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from clinic.models import Role

from .alerts.models import AlertKind
from .alerts.services import staff_alert_raise
from .models import LIVE_STATUSES, SeriesStatus, TreatmentSeries

logger = logging.getLogger(__name__)


def _rules() -> Any:
    return importlib.import_module("protocols.rules")


def rules_engine_available() -> bool:
    return hasattr(_rules(), "evaluate")


def violation_fingerprint(violation: dict[str, Any]) -> str:
    """A violation's identity across re-checks: its rule and the sessions it names (its message
    carries times that may be re-worded)."""
    identity = json.dumps([violation["rule"], sorted(map(str, violation["sessions"]))])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _protocol_spec(series: TreatmentSeries) -> Any:
    rules = _rules()
    version = series.protocol_version
    from protocols.selectors import step_spec

    return rules.ProtocolSpec(
        name=version.protocol.name,
        care_model=version.protocol.care_model,
        steps=tuple(step_spec(step) for step in version.steps.all()),
        rules=tuple(
            rules.Rule(
                type=rule.type,
                after=rule.after,
                before=rule.before,
                days=rule.days,
                hours=rule.hours,
                at_least=rule.at_least,
                count=rule.count,
                window_days=rule.window_days,
            )
            for rule in version.rules.all()
        ),
    )


def _gates(series: TreatmentSeries) -> Any:
    rules = _rules()
    patient = series.patient
    tz = patient.clinic.tz
    consents = sorted(c.signed_at.astimezone(tz).date() for c in patient.consents.all())
    return rules.PatientGates(
        screenings=tuple(
            rules.ScreeningFact(
                is_cleared=s.result == "cleared",
                valid_until=s.valid_until,
                cleared_on=s.screened_on,
            )
            for s in patient.screenings.all()
        ),
        consent_signed_on=consents[0] if consents else None,
    )


def series_revalidate(
    series: TreatmentSeries, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Evaluate the series' live sessions against its protocol version and gates; store the
    violations on the series and alert the front desk about each one that was not there at the
    last check. Returns the current violations. Idempotent: a second run raises nothing."""
    if not rules_engine_available():
        logger.warning("Series %s not re-validated: the rules engine is not installed.", series.pk)
        return []
    rules = _rules()
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
                _protocol_spec(current),
                current.patient.clinic.tz,
                gates=_gates(current),
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
