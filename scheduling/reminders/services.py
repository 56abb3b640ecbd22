"""Writing and sending reminders.

``reminders_sync`` runs inside the transaction that changes a session, so the outbox can never
disagree with the booking. ``reminders_dispatch_due`` is the only sender: it claims due rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` under a lease, sends each with its idempotency key, and marks
it sent only if it still holds the lease. Any number of dispatchers may run at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from clinic.models import Clinic

from ..alerts.models import AlertKind
from ..alerts.services import staff_alert_raise
from ..models import Session, SessionStatus
from ..notifications import DeliveryError
from ..notifications.email import email_send
from ..notifications.sms import SmsBackend, sms_backend
from . import policy
from .content import reminder_render
from .models import Reminder, ReminderPolicy, ReminderPurpose, ReminderStatus

logger = logging.getLogger(__name__)

#: A reminder written (or revived) later than this after its due time is not written at all: a
#: session booked 30 hours ahead gets no "72 hours before" reminder.
LATE_WRITE_GRACE = dt.timedelta(minutes=15)


def _lease_safety() -> dt.timedelta:
    """A claimed reminder is not sent when less than this is left of its lease; it is left for
    the next claim instead, so a slow batch never sends a row another worker may already own."""
    return min(dt.timedelta(seconds=5), dt.timedelta(seconds=settings.REMINDER_LEASE_SECONDS / 5))


def reminder_policy_for(clinic: Clinic | int) -> ReminderPolicy:
    """The clinic's policy; a clinic without one gets the default, unsaved.

    Reading writes nothing: a booking never takes the policy row's lock, so a new clinic's first
    bookings do not queue on it. A clinic admin saves its own policy in the admin.
    """
    clinic_id = clinic if isinstance(clinic, int) else clinic.pk
    found = ReminderPolicy.objects.filter(clinic_id=clinic_id).first()
    return found if found is not None else ReminderPolicy(clinic_id=clinic_id)


# ---------------------------------------------------------------------------------------------
# Writing


def reminders_sync(session: Session, *, now: dt.datetime | None = None) -> None:
    """Make the session's reminder rows match the session as it is now.

    Call it inside the transaction that booked, moved, cancelled or otherwise changed the
    session (``scheduling.hooks.session_changed`` does). Rows that should exist and do not are
    written; pending rows that no longer should (the session moved, was cancelled, checked in)
    are cancelled and will never be sent. Rows already sent, failed, or being sent are left as
    they are. Safe to call any number of times.

    ``now`` is the moment the change is recorded (services may pass a past instant); whether a
    reminder is too late to write is always judged against the real clock.
    """
    real_now = timezone.now()
    reminder_policy = reminder_policy_for(session.clinic_id)
    patient = session.patient
    planned = policy.reminders_planned(
        session_id=session.pk,
        kind=session.kind,
        status=session.status,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        tz=patient.tz,
        schedule=reminder_policy.schedule,
        quiet=policy.QuietHours(reminder_policy.quiet_start, reminder_policy.quiet_end),
        after_medicine_hours=reminder_policy.after_medicine_hours,
        preferred=patient.preferred_channel,
        has_email=bool(patient.email),
        has_phone=bool(patient.phone),
    )
    too_late = real_now - LATE_WRITE_GRACE
    with transaction.atomic():
        existing = {
            row.key: row
            for row in Reminder.objects.select_for_update(of=("self",)).filter(session=session)
        }
        new_rows: list[Reminder] = []
        changed: list[Reminder] = []
        for plan in planned:
            row = existing.pop(plan.key, None)
            if row is None:
                if plan.due_at >= too_late:
                    new_rows.append(
                        Reminder(
                            session=session,
                            clinic_id=session.clinic_id,
                            purpose=plan.purpose,
                            channel=plan.channel,
                            offset_minutes=plan.offset_minutes,
                            session_starts_at=session.starts_at,
                            due_at=plan.due_at,
                            next_attempt_at=plan.due_at,
                            key=plan.key,
                        )
                    )
            elif row.status == ReminderStatus.CANCELLED and plan.due_at >= too_late:
                row.status = ReminderStatus.PENDING
                row.due_at = row.next_attempt_at = plan.due_at
                row.last_error = ""
                row.lease_token = row.leased_until = None
                changed.append(row)
            elif row.status == ReminderStatus.PENDING and row.due_at != plan.due_at:
                row.next_attempt_at = (
                    max(plan.due_at, row.next_attempt_at) if row.attempts else plan.due_at
                )
                row.due_at = plan.due_at
                changed.append(row)
        reason = _why_not_wanted(session)
        for row in existing.values():
            # A row being sent is cancelled too: its worker checks the row just before handing
            # it to the provider (see ``_deliver``) and then leaves it alone.
            if row.status in (ReminderStatus.PENDING, ReminderStatus.SENDING):
                row.status = ReminderStatus.CANCELLED
                row.last_error = reason
                changed.append(row)
        Reminder.objects.bulk_create(new_rows)
        for row in changed:
            row.updated_at = real_now
        if changed:
            Reminder.objects.bulk_update(
                changed,
                [
                    "status",
                    "due_at",
                    "next_attempt_at",
                    "last_error",
                    "lease_token",
                    "leased_until",
                    "updated_at",
                ],
            )


def _why_not_wanted(session: Session) -> str:
    if session.status in policy.AWAITED_STATUSES:
        return (
            f"Session moved to {session.starts_at.astimezone(dt.UTC).isoformat()}, "
            "or the policy changed."
        )
    return f"Session is {session.status}."


# ---------------------------------------------------------------------------------------------
# Sending


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    lease_lost: int = 0
    batches: int = 0
    failed_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "lease_lost": self.lease_lost,
            "batches": self.batches,
        }


def _is_stale(reminder: Reminder, now: dt.datetime) -> str:
    """Why a claimed reminder must not go out any more ("" when it may)."""
    session = reminder.session
    if reminder.purpose == ReminderPurpose.UPCOMING:
        if session.status not in policy.AWAITED_STATUSES:
            return f"Session is {session.status}."
        if session.starts_at != reminder.session_starts_at:
            return f"Session moved to {session.starts_at.astimezone(dt.UTC).isoformat()}."
    elif session.status != SessionStatus.COMPLETED:
        return f"Session is {session.status}."
    return ""


def _fail(reminder: Reminder, error: str, report: DispatchReport) -> None:
    reminder.status = ReminderStatus.FAILED
    reminder.last_error = error
    report.failed += 1
    report.failed_ids.append(reminder.pk)


def _claim(now: dt.datetime, limit: int, report: DispatchReport) -> tuple[int, list[Reminder]]:
    """Lease up to ``limit`` due reminders to this caller, in one short transaction.

    Rows other dispatchers hold are skipped, not waited for. Rows whose lease ran out (their
    worker died) are claimed again: they are re-sent under the same idempotency key, so a message
    that did reach the provider before the crash is not delivered twice where the provider
    deduplicates. Stale rows (session moved or cancelled since) are cancelled here, never sent.
    Returns how many rows were claimed and those of them leased for sending.
    """
    lease = dt.timedelta(seconds=settings.REMINDER_LEASE_SECONDS)
    with transaction.atomic():
        # Two queries, each served by its partial index, rather than one OR over both states.
        rows = _lock_claimable(Q(status=ReminderStatus.SENDING, leased_until__lte=now), limit)
        if len(rows) < limit:
            rows += _lock_claimable(
                Q(status=ReminderStatus.PENDING, next_attempt_at__lte=now), limit - len(rows)
            )
        token, leased_until = uuid.uuid4(), now + lease
        leased: list[Reminder] = []
        closed: list[Reminder] = []
        for row in rows:
            stale = _is_stale(row, now)
            if stale:
                row.status, row.last_error = ReminderStatus.CANCELLED, stale
                report.cancelled += 1
                closed.append(row)
            elif row.purpose == ReminderPurpose.UPCOMING and row.session.starts_at <= now:
                _fail(row, "Not sent before the session started.", report)
                closed.append(row)
            elif row.attempts >= settings.REMINDER_MAX_ATTEMPTS:
                _fail(row, f"Gave up after {row.attempts} attempts. {row.last_error}", report)
                closed.append(row)
            else:
                row.status, row.lease_token, row.leased_until = (
                    ReminderStatus.SENDING,
                    token,
                    leased_until,
                )
                row.attempts += 1
                leased.append(row)
        if leased:
            Reminder.objects.filter(pk__in=[row.pk for row in leased]).update(
                status=ReminderStatus.SENDING,
                attempts=F("attempts") + 1,
                lease_token=token,
                leased_until=leased_until,
                updated_at=now,
            )
        for row in closed:
            Reminder.objects.filter(pk=row.pk).update(
                status=row.status,
                last_error=row.last_error[:2000],
                lease_token=None,
                leased_until=None,
                updated_at=now,
            )
        _alert_failures([row for row in closed if row.status == ReminderStatus.FAILED])
    return len(rows), leased


def _lock_claimable(condition: Q, limit: int) -> list[Reminder]:
    """Lock up to ``limit`` rows in due order: a plain index scan of the outbox alone, so the
    plan stays cheap whatever the statistics say; the sessions are read in a second query."""
    rows = list(
        Reminder.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(condition)
        .order_by("next_attempt_at", "id")[:limit]
    )
    sessions = Session.objects.select_related("patient__clinic", "clinic", "escort").in_bulk(
        {row.session_id for row in rows}
    )
    for row in rows:
        row.session = sessions[row.session_id]
    return rows


def _alert_failures(rows: list[Reminder]) -> None:
    for row in rows:
        session = row.session
        staff_alert_raise(
            clinic=session.clinic_id,
            kind=AlertKind.REMINDER_FAILED,
            message=f"The {row.get_purpose_display().lower()} {row.channel} reminder to "
            f"{session.patient.full_name} for the {session.kind} session on "
            f"{session.starts_at.astimezone(session.clinic.tz):%Y-%m-%d %H:%M} could not be "
            f"sent: {row.last_error}",
            dedupe_key=f"reminder_failed:{row.pk}",
            target_role="front_desk",
            session_id=session.pk,
            series_id=session.series_id,
        )


def _send(reminder: Reminder, sms: SmsBackend, now: dt.datetime) -> tuple[str, str]:
    """Hand the reminder to its channel; returns (recipient, provider message id)."""
    rendered = reminder_render(reminder, now=now)
    if reminder.channel == "sms":
        return rendered.recipient, sms.send(
            to=rendered.recipient, body=rendered.body, idempotency_key=reminder.key
        )
    return rendered.recipient, email_send(
        to=rendered.recipient,
        subject=rendered.subject,
        body=rendered.body,
        idempotency_key=reminder.key,
    )


def _record(reminder: Reminder, *, was_sent: bool = False, **fields: object) -> bool:
    """Write the outcome only if this caller still holds the lease it claimed the row with.

    A message that went out is recorded as sent even if the session was moved or cancelled
    while it was on its way (the row was cancelled under the worker's feet): the record says
    what happened. Any other outcome leaves a cancelled row cancelled.
    """
    statuses = (
        (ReminderStatus.SENDING, ReminderStatus.CANCELLED)
        if was_sent
        else (ReminderStatus.SENDING,)
    )
    updated = Reminder.objects.filter(
        pk=reminder.pk, status__in=statuses, lease_token=reminder.lease_token
    ).update(lease_token=None, leased_until=None, updated_at=timezone.now(), **fields)
    return updated == 1


def _current_claim(reminder: Reminder) -> tuple[str, uuid.UUID | None] | None:
    """The row's status and lease token as they are now (a move or a cancellation may have
    committed after the claim, or another worker may have claimed it again)."""
    return Reminder.objects.filter(pk=reminder.pk).values_list("status", "lease_token").first()


def _deliver(reminder: Reminder, sms: SmsBackend, report: DispatchReport) -> None:
    now = timezone.now()
    assert reminder.leased_until is not None
    if now >= reminder.leased_until - _lease_safety():
        report.lease_lost += 1  # left for the next claim, which re-sends under the same key
        return
    current = _current_claim(reminder)
    if current != (ReminderStatus.SENDING, reminder.lease_token):
        if current is not None and current[0] == ReminderStatus.CANCELLED:
            report.cancelled += 1
        else:
            report.lease_lost += 1
        return
    try:
        recipient, provider_id = _send(reminder, sms, now)
    except DeliveryError as error:
        _delivery_failed(reminder, error.message, error.is_permanent, report)
        return
    except Exception as error:
        logger.exception("Reminder %s: unexpected error while sending", reminder.pk)
        _delivery_failed(reminder, f"{type(error).__name__}: {error}", False, report)
        return
    if _record(
        reminder,
        was_sent=True,
        status=ReminderStatus.SENT,
        sent_at=timezone.now(),
        recipient=recipient[:254],
        provider_message_id=provider_id[:255],
        last_error="",
    ):
        report.sent += 1
    else:
        report.lease_lost += 1


def _delivery_failed(
    reminder: Reminder, error: str, is_permanent: bool, report: DispatchReport
) -> None:
    logger.warning(
        "Reminder %s not delivered (attempt %s): %s", reminder.pk, reminder.attempts, error
    )
    if is_permanent or reminder.attempts >= settings.REMINDER_MAX_ATTEMPTS:
        if _record(reminder, status=ReminderStatus.FAILED, last_error=error[:2000]):
            report.failed += 1
            reminder.status, reminder.last_error = ReminderStatus.FAILED, error
            with transaction.atomic():
                _alert_failures([reminder])
        return
    delay = policy.retry_delay(
        reminder.attempts,
        base_seconds=settings.REMINDER_RETRY_BASE_SECONDS,
        max_seconds=settings.REMINDER_RETRY_MAX_SECONDS,
    )
    if _record(
        reminder,
        status=ReminderStatus.PENDING,
        next_attempt_at=timezone.now() + delay,
        last_error=error[:2000],
    ):
        report.retried += 1


def reminders_dispatch_due(
    *,
    batch_size: int | None = None,
    time_budget: float | None = None,
    progress: Callable[[DispatchReport], None] | None = None,
) -> DispatchReport:
    """Send every reminder that is due, batch by batch, until none is left or the time budget
    (``REMINDER_DISPATCH_SECONDS``) is spent. Safe to run in any number of processes at once."""
    batch_size = batch_size or settings.REMINDER_BATCH_SIZE
    budget = settings.REMINDER_DISPATCH_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    report = DispatchReport()
    sms = sms_backend()
    with _asynchronous_commit():
        while time.monotonic() < deadline:
            claimed, batch = _claim(timezone.now(), batch_size, report)
            if not claimed:
                break
            report.batches += 1
            for reminder in batch:
                _deliver(reminder, sms, report)
            if progress is not None:
                progress(report)
    return report


@contextmanager
def _asynchronous_commit() -> Iterator[None]:
    """The dispatcher's commits do not wait for the WAL flush (PostgreSQL's
    ``synchronous_commit = off``): a claim or a "sent" mark costs a fraction of a millisecond
    instead of a disk flush. Other transactions see each commit at once, so claims stay exclusive;
    only a crash of PostgreSQL itself (not of a worker) can forget the last fraction of a second
    of marks, and those reminders are then sent again under their idempotency keys."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")


def reminders_due_count(now: dt.datetime | None = None, *, at_most: int | None = None) -> int:
    """How many reminders are due (counting no further than ``at_most``, which keeps the
    dispatcher's question cheap on a large backlog)."""
    due = Reminder.objects.filter(
        status=ReminderStatus.PENDING, next_attempt_at__lte=now or timezone.now()
    ).order_by()
    return (due[:at_most] if at_most is not None else due).count()


def reminder_retry(reminder: Reminder, *, now: dt.datetime | None = None) -> Reminder:
    """Give a failed reminder another round of attempts (the front desk fixed the address)."""
    now = now or timezone.now()
    with transaction.atomic():
        current = (
            Reminder.objects.select_for_update(of=("self",))
            .select_related("session")
            .get(pk=reminder.pk)
        )
        if current.status != ReminderStatus.FAILED:
            return current
        current.status = ReminderStatus.PENDING
        current.attempts = 0
        current.next_attempt_at = now
        current.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    return current
