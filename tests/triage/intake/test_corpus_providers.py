"""The corpus through every provider endpoint: the same message from Postmark, Mailgun and SendGrid is
one message, threaded like the raw path threads it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client

from triage.intake.mime import parse_mime
from triage.models import Message, Ticket

pytestmark = pytest.mark.django_db

CORPUS = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "email").glob("*.eml"))
KEY = "corpus-signing-key"


def postmark(client: Client, raw: bytes) -> Any:
    # Postmark's "include raw email content" option: the whole MIME in RawEmail beside the parsed fields.
    email = parse_mime(raw)
    payload = {"MessageID": secrets.token_hex(8), "From": email.from_email, "Subject": email.subject,
               "TextBody": email.text, "HtmlBody": "", "Headers": [], "Attachments": [],
               "RawEmail": raw.decode("utf-8", "surrogateescape")}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogateescape")
    auth = "Basic " + base64.b64encode(b"pm:pm-secret").decode()
    return client.post("/inbound/postmark/", body, content_type="application/json", HTTP_AUTHORIZATION=auth)


def mailgun(client: Client, raw: bytes) -> Any:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    form = urlencode({"body-mime": raw.decode("latin-1"), "timestamp": timestamp, "token": token,
                      "signature": signature}, encoding="latin-1")
    return client.post("/inbound/mailgun/mime", form, content_type="application/x-www-form-urlencoded")


def sendgrid(client: Client, raw: bytes) -> Any:
    boundary = "xYzZY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n".encode() + raw
            + f"\r\n--{boundary}--\r\n".encode())
    return client.post("/inbound/sendgrid/sg-secret/", body, content_type=f"multipart/form-data; boundary={boundary}")


def test_every_provider_delivers_the_corpus_as_the_raw_path_does(client: Client, settings: Any,
                                                                 tmp_path: Path) -> None:
    # All through pytest-django's `settings`: mixing it with an override_settings decorator would leak
    # the decorator's values into later tests when the fixture restores.
    settings.MEDIA_ROOT = str(tmp_path)
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    settings.MAILGUN_SIGNING_KEY, settings.SENDGRID_INBOUND_SECRET = KEY, "sg-secret"
    for path in CORPUS:
        raw = path.read_bytes()
        answers = [send(client, raw) for send in (postmark, mailgun, sendgrid)]
        assert [a.status_code for a in answers] == [200, 200, 200], (path.name, [a.content for a in answers])
        outcomes = [a.json()["outcome"] for a in answers]
        assert outcomes[1:] in (["duplicate", "duplicate"], ["ignored", "ignored"], ["bounce", "bounce"]), \
            (path.name, outcomes)
    via_providers = sorted(Message.objects.values_list("message_id", "ticket__status"))
    ticket_count = Ticket.objects.count()
    Message.objects.all().delete()
    Ticket.objects.all().delete()
    call_command("ingest_email", *map(str, CORPUS))
    assert sorted(Message.objects.values_list("message_id", "ticket__status")) == via_providers
    assert Ticket.objects.count() == ticket_count
