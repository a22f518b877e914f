"""No customer's email address, phone number or card number in the log, whichever path logged it: a refused
webhook, sign-in attempts, the broker being down, a failed send retried by Celery, an unhandled error."""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from kombu.exceptions import OperationalError

from tests.security.conftest import gunicorn
from tests.support.data import triaged_history
from triage import services, tasks
from triage.log_filters import RedactPii, redact_text
from triage.models import Draft, OutboundEmail

pytestmark = pytest.mark.django_db

EMAIL = "ana.lopez@example.com"
PHONE = "+34 612 345 678"
CARD = "4111 1111 1111 1111"
FORBIDDEN = (EMAIL, PHONE, "612345678", "612 345 678", CARD, "4111111111111111")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email" / "providers"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the configured console handler writes (settings.LOGGING), captured instead of printed."""
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactPii) for f in h.filters)]
    assert handlers, "settings.LOGGING has no handler with the PII filter"
    stream = io.StringIO()
    previous = [h.setStream(stream) for h in handlers]  # type: ignore[attr-defined]
    logging.getLogger().setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            handler.setStream(old)  # type: ignore[attr-defined]


def assert_clean(text: str) -> None:
    leaked = [value for value in FORBIDDEN if value in text]
    assert not leaked, f"{leaked} in the log:\n{text}"


def test_a_refused_webhook_does_not_log_what_the_sender_wrote(
    client: Client, settings: Any, log_output: io.StringIO
) -> None:
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    payload = json.loads((FIXTURES / "postmark_inbound.json").read_text())
    payload["Attachments"] = [
        {"Name": f"{EMAIL}, {PHONE}, {CARD}.pdf", "Content": "not base64!", "ContentType": "application/pdf"}
    ]
    response = client.post(
        "/inbound/postmark/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"pm:pm-secret").decode(),
    )
    assert response.status_code == 403
    text = log_output.getvalue()
    assert "inbound postmark refused" in text and "[EMAIL]" in text and "[CARD]" in text and "[PHONE]" in text
    assert_clean(text)


def test_sign_in_attempts_with_an_email_as_username_are_logged_without_it(
    client: Client, log_output: io.StringIO
) -> None:
    for _ in range(6):
        client.post("/login/", {"username": EMAIL, "password": CARD})
    text = log_output.getvalue()
    assert "Locking out" in text and "locked out" in text
    assert_clean(text)


def test_the_broker_down_warning_and_its_traceback_are_clean(
    log_output: io.StringIO, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError(f"Error 111 connecting to redis while publishing for {EMAIL}")

    monkeypatch.setattr(tasks.classify_ticket, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        _ticket, _ = services.ticket_create(
            subject=f"Call me on {PHONE}", body=f"Card {CARD}", from_email=EMAIL
        )
    text = log_output.getvalue()
    assert "broker unavailable" in text and "OperationalError" in text
    assert_clean(text)


def test_a_failed_send_retried_by_celery_is_logged_without_the_recipient(
    log_output: io.StringIO, monkeypatch: Any
) -> None:
    triaged_history()
    draft = Draft.objects.filter(status=Draft.Status.PENDING).select_related("ticket").first()
    assert draft is not None
    draft.ticket.from_email = EMAIL
    draft.ticket.save(update_fields=["from_email"])
    services.draft_approve(
        ticket_id=draft.ticket_id,
        draft_id=draft.pk,
        user=User.objects.create(username="x"),
        final_text=f"We will call you on {PHONE}.",
    )

    def refused(self: Any, fail_silently: bool = False) -> int:
        raise smtplib.SMTPRecipientsRefused(
            {EMAIL: (550, f"5.1.1 <{EMAIL}>: Recipient address rejected".encode())}
        )

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refused)
    outbound = OutboundEmail.objects.get()
    tasks.send_outbound_email.apply(args=(outbound.pk,))
    text = log_output.getvalue()
    assert "SMTPRecipientsRefused" in text and "[EMAIL]" in text
    assert_clean(text)


def test_an_unhandled_error_and_its_traceback_are_clean(
    settings: Any, log_output: io.StringIO, monkeypatch: Any
) -> None:
    from triage.intake import views

    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError(f"cannot thread the reply from {EMAIL} ({PHONE})")

    monkeypatch.setattr(views, "email_ingest", broken)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/inbound/postmark/",
        (FIXTURES / "postmark_inbound.json").read_bytes(),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"pm:pm-secret").decode(),
    )
    assert response.status_code == 500
    text = log_output.getvalue()
    assert "Internal Server Error" in text and "Traceback" in text and "ValueError" in text
    assert_clean(text)


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-22 02:11:37.461671+00:00 cleaned up",  # timestamps stay readable
        "ticket 1042 queued for classify_ticket(1042,)",
        "order 370795561790 shipped",
    ],
)
def test_the_filter_leaves_ordinary_log_lines_alone(line: str) -> None:
    assert redact_text(line) == line


@pytest.mark.django_db(transaction=True)
def test_gunicorn_access_lines_carry_no_query_string_secret_or_address(tmp_path: Path) -> None:
    key = services.api_key_create(name="access-log")[1]
    access = tmp_path / "access.log"
    with gunicorn(
        tmp_path / "gunicorn.log",
        "--workers",
        "1",
        "--access-logfile",
        str(access),
        TIERDESK_SENDGRID_INBOUND_SECRET="sg-url-secret-42",
    ) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for path, headers in (
            (f"/api/v1/tickets?search={quote(EMAIL)}", {"Authorization": f"Bearer {key}"}),
            (
                f"/api/v1/tickets?search={quote(PHONE)}",
                {"Authorization": f"Bearer {key}", "Referer": f"/?q={EMAIL}"},
            ),
            ("/inbound/sendgrid/sg-url-secret-42/", {}),
        ):
            conn.request("POST" if "inbound" in path else "GET", path, headers=headers)
            conn.getresponse().read()
        conn.close()
    text = access.read_text()
    assert text.count("/api/v1/tickets ") == 2 and "/inbound/sendgrid/[SECRET]/" in text
    assert "sg-url-secret-42" not in text and "search=" not in text
    assert_clean(text)
    assert "ana.lopez%40example.com" not in text
