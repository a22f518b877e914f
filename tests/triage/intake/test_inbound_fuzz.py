"""The webhook endpoints fuzzed with authenticated but arbitrary deliveries (hypothesis): every answer is one
of the provider's documented codes with a JSON body, never a 500, and a delivery that is not taken leaves
no row and no file behind."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import DatabaseError
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from triage.models import Message, MessageAttachment, Ticket

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "tierdesk-hypothesis"))

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "email" / "providers"
POSTMARK = json.loads((FIXTURES / "postmark_inbound.json").read_text())
BASIC = {"HTTP_AUTHORIZATION": "Basic cG06cG0tc2VjcmV0"}  # pm:pm-secret
MAILGUN_KEY = "fuzz-signing-key"
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def configured(settings: Any, tmp_path: Path) -> Path:
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    settings.MAILGUN_SIGNING_KEY = MAILGUN_KEY
    settings.SENDGRID_INBOUND_SECRET = "sg-secret"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RATE_WEBHOOK_IP = None
    return tmp_path / "media"


def state(media: Path) -> tuple[int, int, int, int]:
    files = sum(1 for p in media.rglob("*") if p.is_file()) if media.exists() else 0
    return Ticket.objects.count(), Message.objects.count(), MessageAttachment.objects.count(), files


def check(response: Any, allowed: set[int], before: tuple[int, int, int, int], media: Path) -> None:
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    body = response.json()
    if response.status_code == 200:
        assert body["outcome"] in {"created", "appended", "reopened", "duplicate", "bounce", "ignored"}
    else:
        assert body["detail"]
        assert state(media) == before, "a refused delivery wrote something"


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(sorted(POSTMARK)), json_values, max_size=4),
    raw=st.none() | st.binary(max_size=300),
)
def test_postmark_takes_or_refuses_anything_cleanly(
    configured: Path, changes: dict[str, Any], raw: bytes | None
) -> None:
    body = (
        raw
        if raw is not None
        else json.dumps({**POSTMARK, **changes, "MessageID": secrets.token_hex(8)}).encode()
    )
    before = state(configured)
    response = Client().post("/inbound/postmark/", body, content_type="application/json", **BASIC)
    check(response, {200, 403}, before, configured)


def signed(fields: dict[str, str]) -> dict[str, str]:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": timestamp, "token": token, "signature": signature}


mailgun_fields = st.dictionaries(
    st.sampled_from(
        [
            "from",
            "sender",
            "recipient",
            "subject",
            "body-plain",
            "body-html",
            "stripped-text",
            "message-headers",
            "Message-Id",
            "In-Reply-To",
            "attachment-count",
            "content-id-map",
            "body-mime",
            "attachments",
            "References",
            "Date",
        ]
    ),
    st.text(max_size=200),
    max_size=8,
)


@FUZZ
@given(fields=mailgun_fields)
def test_mailgun_takes_or_refuses_anything_cleanly(configured: Path, fields: dict[str, str]) -> None:
    before = state(configured)
    response = Client().post(
        "/inbound/mailgun/", urlencode(signed(fields)), content_type="application/x-www-form-urlencoded"
    )
    check(response, {200, 406}, before, configured)


@FUZZ
@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "email",
                    "headers",
                    "text",
                    "html",
                    "from",
                    "to",
                    "subject",
                    "charsets",
                    "attachments",
                    "attachment-info",
                    "attachment1",
                ]
            ),
            st.binary(max_size=200),
            st.booleans(),
        ),
        max_size=6,
    ),
    boundary=st.sampled_from(["xYzZY", "b"]),
    declared=st.sampled_from(["xYzZY", "other", ""]),
)
def test_sendgrid_takes_or_refuses_anything_cleanly(
    configured: Path, parts: list[tuple[str, bytes, bool]], boundary: str, declared: str
) -> None:
    chunks = []
    for name, value, is_file in parts:
        filename = f'; filename="{name}.bin"' if is_file else ""
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    before = state(configured)
    content_type = f"multipart/form-data; boundary={declared}" if declared else "multipart/form-data"
    response = Client().post("/inbound/sendgrid/sg-secret/", body, content_type=content_type)
    check(response, {200, 400}, before, configured)


def test_a_failure_after_the_attachments_were_written_leaves_no_file_and_no_row(
    configured: Path, monkeypatch: Any
) -> None:
    calls = {"n": 0}
    real_save = MessageAttachment.save

    def second_save_fails(self: MessageAttachment, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise DatabaseError("connection lost")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(MessageAttachment, "save", second_save_fails)
    response = Client().post(
        "/inbound/postmark/", json.dumps(POSTMARK), content_type="application/json", **BASIC
    )
    assert response.status_code == 503 and response["Retry-After"]
    assert calls["n"] == 2  # both attachments' files were written before the failure
    assert state(configured) == (0, 0, 0, 0)
    monkeypatch.setattr(MessageAttachment, "save", real_save)
    retried = Client().post(
        "/inbound/postmark/", json.dumps(POSTMARK), content_type="application/json", **BASIC
    )
    assert retried.status_code == 200 and state(configured) == (1, 1, 2, 2)
