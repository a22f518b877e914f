"""The provider endpoints: authenticated deliveries become tickets; forged, replayed and bad ones write nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings

from triage.models import Message, Ticket

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "email" / "providers"
KEY = "view-test-signing-key"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@override_settings(POSTMARK_INBOUND_USER="pm", POSTMARK_INBOUND_PASSWORD="pm-secret")
def test_postmark_delivery_creates_a_ticket_once(client: Client) -> None:
    body = (FIXTURES / "postmark_inbound.json").read_bytes()
    ok = client.post("/inbound/postmark/", body, content_type="application/json",
                     HTTP_AUTHORIZATION=basic("pm", "pm-secret"))
    assert ok.status_code == 200 and ok.json()["outcome"] == "created"
    again = client.post("/inbound/postmark/", body, content_type="application/json",
                        HTTP_AUTHORIZATION=basic("pm", "pm-secret"))
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert Ticket.objects.count() == 1 and Message.objects.get().provider == "postmark"


@override_settings(POSTMARK_INBOUND_USER="pm", POSTMARK_INBOUND_PASSWORD="pm-secret")
def test_postmark_refuses_wrong_credentials_and_malformed_json_without_writing(client: Client) -> None:
    body = (FIXTURES / "postmark_inbound.json").read_bytes()
    forged = client.post("/inbound/postmark/", body, content_type="application/json",
                         HTTP_AUTHORIZATION=basic("pm", "guess"))
    assert forged.status_code == 401
    bad = client.post("/inbound/postmark/", b"{not json", content_type="application/json",
                      HTTP_AUTHORIZATION=basic("pm", "pm-secret"))
    assert bad.status_code == 403 and bad.json()["detail"]  # 403 tells Postmark not to retry
    assert Ticket.objects.count() == 0


def mailgun_form(**overrides: str) -> dict[str, str]:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    form = {
        "sender": "lena@example.com", "from": "Lena Fischer <lena@example.com>", "recipient": "support@shop.example",
        "subject": "Refund for order 1042", "body-plain": "Hello, the jacket arrived torn. I want a refund.",
        "stripped-text": "Hello, the jacket arrived torn. I want a refund.",
        "Message-Id": f"<{token[:12]}@mail.example.com>", "timestamp": timestamp, "token": token,
        "signature": hmac.new(KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest(),
    }
    form.update(overrides)
    return form


@override_settings(MAILGUN_SIGNING_KEY=KEY)
def test_mailgun_accepts_a_signed_delivery_and_refuses_its_replay(client: Client) -> None:
    form = mailgun_form()
    body = urlencode(form)
    first = client.post("/inbound/mailgun/", body, content_type="application/x-www-form-urlencoded")
    assert first.status_code == 200, first.content
    ticket = Ticket.objects.get()
    assert ticket.from_email == "lena@example.com" and "jacket arrived torn" in ticket.body
    replay = client.post("/inbound/mailgun/", body, content_type="application/x-www-form-urlencoded")
    assert replay.status_code == 401 and Ticket.objects.count() == 1


@override_settings(MAILGUN_SIGNING_KEY=KEY)
def test_mailgun_refuses_forged_and_stale_signatures(client: Client) -> None:
    forged = mailgun_form(signature="0" * 64)
    assert client.post("/inbound/mailgun/", urlencode(forged),
                       content_type="application/x-www-form-urlencoded").status_code == 401
    old = str(int(time.time()) - 10 * 3600)
    stale = mailgun_form(timestamp=old)
    stale["signature"] = hmac.new(KEY.encode(), f"{old}{stale['token']}".encode(), hashlib.sha256).hexdigest()
    assert client.post("/inbound/mailgun/", urlencode(stale),
                       content_type="application/x-www-form-urlencoded").status_code == 401
    assert Ticket.objects.count() == 0


@override_settings(MAILGUN_SIGNING_KEY=KEY)
def test_a_transient_failure_answers_503_and_the_retry_is_not_a_replay(client: Client, monkeypatch: Any) -> None:
    from django.db import DatabaseError

    from triage.intake import views

    form = urlencode(mailgun_form())
    real = views.email_ingest

    def database_down(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(views, "email_ingest", database_down)
    down = client.post("/inbound/mailgun/", form, content_type="application/x-www-form-urlencoded")
    assert down.status_code == 503 and down["Retry-After"] == "60"
    monkeypatch.setattr(views, "email_ingest", real)
    retry = client.post("/inbound/mailgun/", form, content_type="application/x-www-form-urlencoded")
    assert retry.status_code == 200 and Ticket.objects.count() == 1


@override_settings(SENDGRID_INBOUND_SECRET="sg-path-secret-123")
def test_sendgrid_raw_mode_with_the_url_secret(client: Client) -> None:
    body = (FIXTURES / "sendgrid_raw.multipart").read_bytes()
    ok = client.post("/inbound/sendgrid/sg-path-secret-123/", body,
                     content_type="multipart/form-data; boundary=xYzZY")
    assert ok.status_code == 200, ok.content
    wrong = client.post("/inbound/sendgrid/nope/", body, content_type="multipart/form-data; boundary=xYzZY")
    assert wrong.status_code == 401
    assert Ticket.objects.count() == 1


def test_unconfigured_providers_are_not_found(client: Client) -> None:
    assert client.post("/inbound/postmark/", b"{}", content_type="application/json").status_code == 404
    assert client.post("/inbound/mailgun/", b"", content_type="application/x-www-form-urlencoded").status_code == 404
    assert client.get("/inbound/postmark/").status_code in (404, 405)
