"""What follows every change to a session. The booking services call ``session_changed`` at the
end of each write, inside the write's transaction, and so must any new service that changes a
session (a reschedule): it is the one place the workers hang off the booking code."""

from __future__ import annotations

import datetime as dt

from .models import Session
from .reminders.services import reminders_sync


def session_changed(session: Session, *, now: dt.datetime | None = None) -> None:
    """Bring the session's reminders in step (same transaction) and, once the transaction has
    committed, re-validate its series in a worker."""
    reminders_sync(session, now=now)
    if session.series_id is not None:
        from .tasks import enqueue_on_commit, series_revalidate

        enqueue_on_commit(series_revalidate, session.series_id)
