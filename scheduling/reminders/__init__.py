"""Reminders as an outbox: rows written in the booking's own transaction, sent by a periodic scan.

``services.reminders_sync(session)`` keeps a session's rows in step with it (every write to a
session calls it, through ``scheduling.hooks.session_changed``); ``services.reminders_dispatch_due``
claims due rows under a lease and sends each once. ``policy`` holds the pure timing rules.
"""
