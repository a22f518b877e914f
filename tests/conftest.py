from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        raise pytest.UsageError(
            "run the suite with ./run test (it starts the embedded PostgreSQL and Redis), "
            "or set DATABASE_URL and REDIS_URL"
        )


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    from tests.support.smtp import SmtpSink

    with SmtpSink() as sink:
        yield sink


def _purge_queue() -> None:
    from triage.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("pipeline")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: Any, smtp_server: Any) -> Iterator[None]:
    """A real Celery worker process on the embedded Redis, using the test database."""
    from django.db import connection

    _purge_queue()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TIERDESK_NANO", "TIERDESK_MINI",
                                                                       "TIERDESK_LARGE"))}
    env.update({
        "TIERDESK_DB_NAME": connection.settings_dict["NAME"],
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "DB_CONN_MAX_AGE": "0",
    })
    # Open for the worker's whole life (the session); closed by the interpreter when the session ends.
    log = open(ROOT / ".tierdesk" / "test-worker.log", "w") if (ROOT / ".tierdesk").exists() else subprocess.DEVNULL  # noqa: SIM115
    # TIERDESK_TEST_WORKER_POOL=threads runs the worker tests on the threads pool (see TIERDESK_WORKER_POOL).
    pool = os.environ.get("TIERDESK_TEST_WORKER_POOL", "prefork")
    concurrency = "8" if pool == "threads" else "2"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "triage", "worker", "-Q", "pipeline,jobs,email", "--pool", pool,
         "--concurrency", concurrency, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
         "--hostname", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        from triage.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the Celery worker exited during start-up; see .tierdesk/test-worker.log")
            if app.control.ping(timeout=0.5):
                break
        else:
            raise RuntimeError("the Celery worker did not answer a ping within 60 s")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(predicate: Any, *, timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:g}s")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before Django drops the test database, end sessions that a worker or live server left open."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_sla_policy() -> Iterator[None]:
    """Each test reads the SLA policy its own database holds, not one a previous test cached."""
    from triage import sla

    sla.policy_cache_clear()
    yield
    sla.policy_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings: Any) -> None:
    """Each test counts requests against rate limits of its own: the Redis that holds the counters outlives
    tests and test runs, and every test client comes from the same address."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl-test-{uuid.uuid4().hex}:"
