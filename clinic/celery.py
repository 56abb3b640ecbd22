"""The Celery app. Broker and schedule come from Django settings (``CELERY_*``)."""

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")

app = Celery("clinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def freeze_start_up_objects(**_: Any) -> None:
    """Move what a worker process loaded at start-up out of the garbage collector's reach, so
    full collections during tasks walk only what tasks allocate (as ``clinic/wsgi.py`` does)."""
    gc.freeze()
