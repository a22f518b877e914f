from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

app = Celery("tierdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_worker_logs(logger: logging.Logger, **kwargs: Any) -> None:
    # The worker replaces the root logger's handlers with its own, so settings.LOGGING's filter is not on
    # them: put it there too, so a worker's log carries no customer's email, phone or card number.
    from triage.log_filters import RedactPii

    for handler in logger.handlers:
        if not any(isinstance(f, RedactPii) for f in handler.filters):
            handler.addFilter(RedactPii())
