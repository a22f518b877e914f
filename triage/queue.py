"""Publishing work to the worker by task name, so that no domain module imports `triage.tasks` (which imports
them all to call them). A task is looked up in Celery's registry, the same object `triage.tasks` defines."""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction

logger = logging.getLogger(__name__)


# The apps' task modules, by name: a worker imports them when it starts, a web process here.
TASK_MODULES = ("triage.tasks", "kb.tasks")


@functools.cache
def _registered() -> None:
    # Once, the first time a process queues work. Not Celery's `import_default_modules`: in a web process that
    # runs django.setup() again, which configures logging anew and drops the handlers already in place.
    for module in TASK_MODULES:
        importlib.import_module(module)


def task(name: str) -> Task:
    """The registered task `name` ("triage.classify_ticket", "kb.reembed_chunks"), in any process."""
    _registered()
    return current_app.tasks[name]


def publish(task_name: str, *args: Any) -> bool:
    """Queue `triage.<task_name>` now, trying the broker once; False (logged) if the broker is unavailable.
    A task name that is not registered is a bug, not an outage: it raises."""
    registered = task(f"triage.{task_name}")
    try:
        registered.apply_async(args=args, retry=False)
    except Exception:  # kombu/redis raise a variety of connection errors
        logger.warning("broker unavailable; %s%r was not queued", task_name, args, exc_info=True)
        return False
    return True


def enqueue(task_name: str, *args: Any) -> None:
    """Queue a task once the transaction commits. A broker outage never fails the request: the row is
    already stored, and the sweeper re-queues work that has not moved."""
    transaction.on_commit(lambda: publish(task_name, *args))
