"""Exclusive, atomic file delivery shared by the file backends.

A message is written to a temporary file and then ``link()``-ed to a name made from its
idempotency key. ``link`` fails when the name exists, so of any number of attempts with one key
exactly one becomes visible, and it is always whole (never a half-written file after a crash).
Files are not fsync-ed: a delivery survives the sending process being killed, not a power cut.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from django.conf import settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


def safe_name(key: str) -> str:
    return _UNSAFE.sub("_", key)


def deliver_once(directory: Path, key: str, suffix: str, content: bytes) -> bool:
    """Write ``content`` as ``directory/<key><suffix>`` unless a message with ``key`` was already
    delivered. Returns True when this call delivered it, False for a duplicate.

    Every attempt is appended to ``directory/attempts.log`` (``accepted`` or ``duplicate``), so a
    test or an operator can see how often the idempotency key saved a double send.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = safe_name(key)
    final = directory / f"{name}{suffix}"
    temporary = directory / f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    temporary.write_bytes(content)
    try:
        os.link(temporary, final)
        delivered = True
    except FileExistsError:
        delivered = False
    finally:
        temporary.unlink(missing_ok=True)
    with open(directory / "attempts.log", "a", encoding="utf-8") as log:
        log.write(f"{'accepted' if delivered else 'duplicate'} {name}\n")
    latency = settings.REMINDER_FILE_BACKEND_LATENCY
    if latency:
        time.sleep(latency)
    return delivered
