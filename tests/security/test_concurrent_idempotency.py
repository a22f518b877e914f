"""100 identical requests at once against a real gunicorn (two worker processes, threads in each): one
ticket, one message, and every client told the same story."""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.security.conftest import gunicorn
from triage import devservices, services
from triage.models import IdempotencyRecord, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email" / "providers"
CLIENTS = 100
# A Redis database of its own: the tickets stored here queue triage that no test worker should take.
BROKER_DB = 14


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    broker = f"{os.environ['REDIS_URL'].split('?')[0]}?virtual_host={BROKER_DB}"
    try:
        with gunicorn(
            tmp_path / "gunicorn.log",
            "--workers",
            "2",
            "--threads",
            "16",
            "--backlog",
            "256",
            "--log-level",
            "warning",
            REDIS_URL=broker,
            LOG_LEVEL="WARNING",
            TIERDESK_POSTMARK_INBOUND_USER="pm",
            TIERDESK_POSTMARK_INBOUND_PASSWORD="pm-secret",
        ) as port:
            yield port
    finally:
        redis.Redis.from_url(devservices.redis_client_url(broker)).flushdb()


def all_at_once(port: int, path: str, body: bytes, headers: dict[str, str]) -> list[tuple[int, Any]]:
    start = threading.Barrier(CLIENTS)

    def one(_: int) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.connect()
        start.wait()  # every connection open, then all requests leave together
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        conn.close()
        return response.status, payload

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def test_100_concurrent_posts_with_one_idempotency_key_make_one_ticket(server: int) -> None:
    key = services.api_key_create(name="concurrent")[1]
    body = json.dumps(
        {"subject": "Where is my order?", "body": "It has not arrived.", "from_email": "ana@example.com"}
    ).encode()
    answers = all_at_once(
        server,
        "/api/v1/tickets",
        body,
        {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": "order-1042",
        },
    )
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 201}, [a for a in answers if a[0] not in (200, 201)][:3]
    assert statuses.count(201) == 1
    assert len({payload["id"] for _, payload in answers}) == 1
    assert Ticket.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_a_webhook_redelivered_100_times_at_once_is_stored_once(server: int) -> None:
    body = (FIXTURES / "postmark_inbound.json").read_bytes()
    answers = all_at_once(
        server,
        "/inbound/postmark/",
        body,
        {
            "Authorization": "Basic " + base64.b64encode(b"pm:pm-secret").decode(),
            "Content-Type": "application/json",
        },
    )
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    outcomes = sorted(payload["outcome"] for _, payload in answers)
    assert outcomes == ["created"] + ["duplicate"] * (CLIENTS - 1)
    assert len({payload["ticket"] for _, payload in answers}) == 1
    assert Message.objects.count() == 1 and Ticket.objects.count() == 1
