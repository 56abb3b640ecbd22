"""Celery tasks. Each takes ids, loads, and calls a service; each is idempotent and safe to run
twice or in two workers at once. None is ever scheduled with an ETA: periodic work is a scan of
the database started by beat (schedules stored in django-celery-beat's tables, written by
migration ``scheduling.0004``), and retries of a reminder are rows with a later
``next_attempt_at``, not delayed messages in the broker.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import enforcement, revalidation
from .alerts import services as alert_services
from .alerts.models import StaffAlert
from .models import TreatmentSeries
from .reminders import services as reminder_services

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Send ``task`` after the current transaction commits. A broker that is down must not fail
    a booking that has already committed: the failure is logged and the periodic scans catch up."""

    def send() -> None:
        try:
            task.apply_async(args=args, retry=False)
        except Exception:
            logger.exception(
                "Could not enqueue %s%r; the periodic scan will catch up", task.name, args
            )

    transaction.on_commit(send)


@shared_task(name="scheduling.reminders_dispatch_due", ignore_result=True)
def reminders_dispatch_due(fan_out: bool = True) -> dict[str, int]:
    """Beat starts this every 30 s. With more due than one batch it starts helpers (at most
    ``REMINDER_DISPATCH_FAN_OUT`` dispatchers per tick), which share the work through
    ``SKIP LOCKED``."""
    if fan_out:
        most = settings.REMINDER_DISPATCH_FAN_OUT * settings.REMINDER_BATCH_SIZE
        backlog = reminder_services.reminders_due_count(at_most=most)
        helpers = min(
            settings.REMINDER_DISPATCH_FAN_OUT - 1, backlog // settings.REMINDER_BATCH_SIZE
        )
        for _ in range(max(helpers, 0)):
            reminders_dispatch_due.apply_async(kwargs={"fan_out": False})
    report = reminder_services.reminders_dispatch_due()
    if report.batches:
        logger.info("Reminders dispatched: %s", report.as_dict())
    return report.as_dict()


@shared_task(name="scheduling.series_revalidate", ignore_result=True)
def series_revalidate(series_id: int) -> int:
    series = TreatmentSeries.objects.filter(pk=series_id).first()
    if series is None:
        return 0
    return len(revalidation.series_revalidate(series))


@shared_task(name="scheduling.series_revalidate_all", ignore_result=True)
def series_revalidate_all() -> int:
    """Nightly: every active series, each in its own transaction."""
    done = 0
    for series_id in revalidation.series_active_ids():
        series_revalidate(series_id)
        done += 1
    return done


@shared_task(name="scheduling.no_shows_mark", ignore_result=True)
def no_shows_mark() -> int:
    return len(enforcement.no_shows_mark())


@shared_task(name="scheduling.integration_overdue_scan", ignore_result=True)
def integration_overdue_scan() -> int:
    return enforcement.integration_overdue_scan()


@shared_task(name="scheduling.screening_expiry_scan", ignore_result=True)
def screening_expiry_scan() -> int:
    return enforcement.screening_expiry_scan()


@shared_task(name="scheduling.escort_unconfirmed_scan", ignore_result=True)
def escort_unconfirmed_scan() -> int:
    return enforcement.escort_unconfirmed_scan()


@shared_task(
    name="scheduling.staff_alert_notify",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=240,
    max_retries=5,
)
def staff_alert_notify(alert_id: int) -> int:
    alert = StaffAlert.objects.filter(pk=alert_id).first()
    return alert_services.staff_alert_notify(alert) if alert is not None else 0


@shared_task(name="scheduling.staff_alerts_notify_pending", ignore_result=True)
def staff_alerts_notify_pending() -> int:
    """Every few minutes: e-mail alerts whose notification was lost (broker down, worker died)."""
    stale = timezone.now() - dt.timedelta(minutes=2)
    sent = 0
    for alert in StaffAlert.objects.filter(notified_at__isnull=True, created_at__lte=stale)[:500]:
        sent += alert_services.staff_alert_notify(alert)
    return sent
