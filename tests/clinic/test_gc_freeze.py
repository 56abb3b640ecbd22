"""Objects made at start-up are frozen out of the garbage collector's reach (web and worker)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from celery.signals import worker_process_init

ROOT = Path(__file__).resolve().parents[2]


def test_the_wsgi_application_freezes_what_start_up_loaded() -> None:
    # given a fresh interpreter, when it loads the WSGI application as gunicorn does
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; assert gc.get_freeze_count() == 0\n"
            "import clinic.wsgi, sys\n"
            "print(gc.get_freeze_count() > 10_000, 'clinic.urls' in sys.modules)",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "clinic.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then the URLconf is loaded and everything start-up made is frozen
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


def test_a_worker_process_freezes_what_it_loaded_when_it_starts() -> None:
    import clinic.celery  # noqa: F401  (connects the signal handler)

    gc.unfreeze()
    try:
        # when Celery starts a pool process
        worker_process_init.send(sender=None)

        # then the objects loaded so far are frozen
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
