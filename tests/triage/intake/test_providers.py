"""Postmark, Mailgun and SendGrid inbound webhooks: who is let in, what the email becomes, what each is told.

The payloads in fixtures/email/providers/ are built the way each provider documents and sends them:
Postmark's inbound JSON (base64 attachments, the real Message-ID among Headers), Mailgun's forward()
multipart form (message-headers as JSON pairs, attachment-1) and its "…mime" route as form-urlencoded
body-mime, and SendGrid's Inbound Parse multipart in both raw ("email") and parsed modes, the parsed
text part left in ISO-8859-1 as SendGrid forwards it. The Mailgun fixtures are signed with
MAILGUN_KEY below. The replay checks use the real Redis that ./run test starts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from triage.intake.providers import (
    MAILGUN,
    POSTMARK,
    SENDGRID,
    InboundAuthError,
    ProviderResponse,
    mailgun_parse,
    mailgun_verify,
    parse_form,
    postmark_authenticate,
    postmark_parse,
    redis_client_url,
    redis_token_cache,
    sendgrid_authenticate,
    sendgrid_parse,
    status_for,
)
from triage.intake.types import InboundEmail, InboundError

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "email" / "providers"
MAILGUN_KEY = "mailgun-test-signing-key-7f3c"
SENDGRID_FORM = "multipart/form-data; boundary=xYzZY"
MAILGUN_FORM = "multipart/form-data; boundary=c8a4f1e27b9d4e0b8f6a3d2c1b0a9e8f"


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _sign(timestamp: str, token: str, key: str = MAILGUN_KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def _never_seen(token: str, ttl: int) -> bool:
    return False


def _real_cache() -> Callable[[str, int], bool]:
    return redis_token_cache(os.environ["REDIS_URL"])


def _fields_of(email: InboundEmail) -> dict[str, object]:
    return {
        "message_id": email.message_id, "in_reply_to": email.in_reply_to, "references": email.references,
        "subject": email.subject, "from_email": email.from_email, "from_name": email.from_name, "to": email.to,
        "cc": email.cc, "date": email.date, "text": email.text, "html": email.html,
        "reply_text": email.reply_text, "headers": dict(email.headers), "auto_submitted": email.auto_submitted,
        "is_bounce": email.is_bounce,
        "attachments": [(a.filename, a.content_type, a.content, a.content_id, a.inline) for a in email.attachments],
    }


# --- Postmark: basic auth from the webhook URL ----------------------------------------------------------


def test_postmark_accepts_the_credentials_embedded_in_its_webhook_url() -> None:
    postmark_authenticate(_basic("postmark", "s3cret:with-colon"), username="postmark", password="s3cret:with-colon")


@pytest.mark.parametrize("header", [
    _basic("postmark", "wrong"),
    _basic("someone", "s3cret"),
    _basic("postmark", ""),
    None,
    "",
    "Bearer s3cret",
    "Basic not base64!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
], ids=["wrong-password", "wrong-user", "empty-password", "missing", "blank", "not-basic", "garbled", "no-colon"])
def test_postmark_refuses_wrong_or_missing_credentials_with_401(header: str | None) -> None:
    with pytest.raises(InboundAuthError) as caught:
        postmark_authenticate(header, username="postmark", password="s3cret")
    assert caught.value.permanent and status_for(POSTMARK, caught.value) == 401


def test_postmark_without_configured_credentials_asks_for_a_retry_instead_of_letting_anyone_in() -> None:
    with pytest.raises(InboundError) as caught:
        postmark_authenticate(_basic("", ""), username="", password="")
    assert not isinstance(caught.value, InboundAuthError) and not caught.value.permanent
    assert status_for(POSTMARK, caught.value) == 503


# --- Postmark: the payload ------------------------------------------------------------------------------


def test_a_postmark_email_is_threaded_by_its_own_message_id_and_keyed_by_postmarks() -> None:
    email, event_id = postmark_parse(_fixture("postmark_inbound.json"))

    assert event_id == "73e6d360-66eb-11e1-8e72-a8904824019b"
    assert email.message_id == "CAPx7Hn2Q=f1@mail.example.org"
    assert email.in_reply_to == "td-out-41c2@tierdesk.example"
    assert email.references == ("td-in-9a01@mail.example.org", "td-out-41c2@tierdesk.example")
    assert (email.from_email, email.from_name) == ("zoe.lindqvist@example.org", "Zoë Lindqvist")
    assert email.to == ("support+td-7k3m9q2x@inbound.tierdesk.example",)  # addresses are lower-cased
    assert email.cc == ("billing@example.org",)  # the comma in "Ops, Billing" does not split the address
    assert email.subject == "Re: Invoice 2024-118 charged twice"
    assert email.date == datetime(2024, 11, 21, 9, 14, 3, tzinfo=timezone(timedelta(hours=1)))
    assert "charged twice for invoice 2024-118" in email.text
    assert "charged twice" in email.html
    assert email.reply_text.startswith("Hi,") and "Which invoice is it?" not in email.reply_text


def test_postmark_attachments_are_decoded_and_the_inline_image_keeps_its_content_id() -> None:
    payload = json.loads(_fixture("postmark_inbound.json"))
    email, _ = postmark_parse(_fixture("postmark_inbound.json"))

    pdf, logo = email.attachments
    assert (pdf.filename, pdf.content_type, pdf.content_id, pdf.inline) == (
        "statement-nov.pdf", "application/pdf", None, False)
    assert pdf.content.startswith(b"%PDF-1.4") and len(pdf.content) == payload["Attachments"][0]["ContentLength"]
    assert (logo.filename, logo.content_type, logo.content_id, logo.inline) == (
        "logo.png", "image/png", "logo.png@01DB3BE5.2F7A8C10", True)
    assert logo.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_postmark_raw_email_is_parsed_whole_when_the_stream_includes_it() -> None:
    raw = _fixture("sendgrid_message.eml").decode("latin-1")
    payload = {"MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", "RawEmail": raw, "Headers": [],
               "Attachments": [{"Name": "ignored.txt", "Content": base64.b64encode(b"x").decode(),
                                "ContentType": "text/plain", "ContentLength": 1}]}
    email, event_id = postmark_parse(json.dumps(payload).encode())

    assert event_id == "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
    assert email.message_id == "CAL3x+5fQk2@mail.gmail.com"
    assert [a.filename for a in email.attachments] == ["screenshot.png", "quota-report.pdf"]


def test_postmark_attachments_over_the_limits_are_left_out_and_noted_like_parse_mime_does() -> None:
    email, _ = postmark_parse(_fixture("postmark_inbound.json"), max_attachments=1)
    assert [a.filename for a in email.attachments] == ["statement-nov.pdf"]
    assert email.headers["x-tierdesk-dropped-attachments"] == "1"
    assert email.headers["x-tierdesk-dropped-attachment-names"] == "logo.png"

    email, _ = postmark_parse(_fixture("postmark_inbound.json"), max_attachment_bytes=100)
    assert [a.filename for a in email.attachments] == ["logo.png"]
    assert email.headers["x-tierdesk-dropped-attachment-names"] == "statement-nov.pdf"


def test_postmarks_check_button_payload_with_data_attachments_is_taken() -> None:
    # The dashboard's "Check" posts attachments under Data rather than Content (Anymail documents the same).
    payload = {"MessageID": "00000000-0000-0000-0000-000000000000", "FromFull": {"Email": "support@postmarkapp.com"},
               "Subject": "Test subject", "TextBody": "This is a test text body.",
               "Attachments": [{"Name": "test.txt", "Data": base64.b64encode(b"test").decode(),
                                "ContentType": "text/plain", "ContentLength": 4}]}
    email, _ = postmark_parse(json.dumps(payload).encode())
    assert [(a.filename, a.content) for a in email.attachments] == [("test.txt", b"test")]


@pytest.mark.parametrize(("body", "says"), [
    (b'{"MessageID": "x", "Subject": ', "not valid JSON"),
    (b"\xff\xfe not even text", "not valid JSON"),
    (b'["a", "list"]', "not a JSON object"),
    (b'{"Subject": "no id"}', "no MessageID"),
    (b'{"RecordType": "Bounce", "MessageID": "x"}', "'Bounce' webhook"),
    (b'{"MessageID": "x", "Attachments": [{"Name": "a.pdf", "Content": "%%%"}]}', "'a.pdf') is not valid base64"),
    (b'{"MessageID": "x", "Headers": {"Message-ID": "<a@b>"}}', "Headers is not a list"),
])
def test_a_malformed_postmark_payload_is_refused_for_good_and_says_why(body: bytes, says: str) -> None:
    with pytest.raises(InboundError) as caught:
        postmark_parse(body)
    assert says in caught.value.message
    assert caught.value.permanent and status_for(POSTMARK, caught.value) == 403


# --- Mailgun: signatures --------------------------------------------------------------------------------


def test_mailguns_signature_on_the_fixture_verifies_with_the_signing_key() -> None:
    fields, _ = parse_form(_fixture("mailgun_forward.multipart"), MAILGUN_FORM)
    timestamp, token, signature = (fields[k].decode() for k in ("timestamp", "token", "signature"))
    mailgun_verify(timestamp=timestamp, token=token, signature=signature, signing_key=MAILGUN_KEY,
                   now=float(timestamp) + 30, seen=_never_seen)


def test_a_good_mailgun_signature_is_accepted_once_and_its_replay_is_refused() -> None:
    seen = _real_cache()
    timestamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = _sign(timestamp, token)

    mailgun_verify(timestamp=timestamp, token=token, signature=signature, signing_key=MAILGUN_KEY, seen=seen)
    with pytest.raises(InboundAuthError, match="already used"):
        mailgun_verify(timestamp=timestamp, token=token, signature=signature, signing_key=MAILGUN_KEY, seen=seen)


@pytest.mark.parametrize("forge", [
    lambda ts, tok: _sign(ts, tok, key="someone-elses-key"),
    lambda ts, tok: _sign(ts, tok + "x"),
    lambda ts, tok: _sign(str(int(ts) + 1), tok),
    lambda ts, tok: "",
], ids=["other-key", "other-token", "other-timestamp", "empty"])
def test_a_forged_mailgun_signature_is_refused_before_the_token_is_remembered(
        forge: Callable[[str, str], str]) -> None:
    remembered: list[str] = []
    timestamp, token = str(int(time.time())), uuid.uuid4().hex

    def seen(token: str, ttl: int) -> bool:
        remembered.append(token)
        return False

    with pytest.raises(InboundAuthError) as caught:
        mailgun_verify(timestamp=timestamp, token=token, signature=forge(timestamp, token),
                       signing_key=MAILGUN_KEY, seen=seen)
    assert remembered == [] and status_for(MAILGUN, caught.value) == 401


@pytest.mark.parametrize("skew", [-301, 301, -86_400], ids=["late", "early", "a-day-old"])
def test_a_mailgun_timestamp_outside_five_minutes_is_refused_even_when_signed(skew: int) -> None:
    now = time.time()
    timestamp, token = str(int(now) + skew), uuid.uuid4().hex
    with pytest.raises(InboundAuthError, match="outside ±300s"):
        mailgun_verify(timestamp=timestamp, token=token, signature=_sign(timestamp, token),
                       signing_key=MAILGUN_KEY, now=now, seen=_never_seen)


def test_a_mailgun_timestamp_within_the_window_is_accepted() -> None:
    now = time.time()
    timestamp, token = str(int(now) - 299), uuid.uuid4().hex
    mailgun_verify(timestamp=timestamp, token=token, signature=_sign(timestamp, token),
                   signing_key=MAILGUN_KEY, now=now, seen=_never_seen)


def test_the_replay_cache_remembers_a_token_for_twice_the_window() -> None:
    ttls: list[int] = []
    timestamp, token = str(int(time.time())), uuid.uuid4().hex

    def seen(token: str, ttl: int) -> bool:
        ttls.append(ttl)
        return False

    mailgun_verify(timestamp=timestamp, token=token, signature=_sign(timestamp, token), signing_key=MAILGUN_KEY,
                   max_age=120, seen=seen)
    assert ttls == [240]


def test_an_unreachable_replay_cache_asks_mailgun_to_retry() -> None:
    seen = redis_token_cache("redis://127.0.0.1:1/0")
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    with pytest.raises(InboundError) as caught:
        mailgun_verify(timestamp=timestamp, token=token, signature=_sign(timestamp, token),
                       signing_key=MAILGUN_KEY, seen=seen)
    assert not caught.value.permanent and "replay cache unavailable" in caught.value.message
    assert status_for(MAILGUN, caught.value) == 503


def test_a_missing_mailgun_signing_key_is_a_transient_misconfiguration() -> None:
    with pytest.raises(InboundError) as caught:
        mailgun_verify(timestamp="1", token="t", signature="s", signing_key="", seen=_never_seen)
    assert not caught.value.permanent


@pytest.mark.parametrize(("url", "client_url"), [
    ("redis+socket:///srv/tierdesk/redis.sock", "unix:///srv/tierdesk/redis.sock"),
    ("redis+socket:///srv/redis.sock?virtual_host=2", "unix:///srv/redis.sock?db=2"),
    ("socket:///srv/redis.sock", "unix:///srv/redis.sock"),
    ("redis://cache.internal:6379/1", "redis://cache.internal:6379/1"),
    ("rediss://:pw@cache.internal:6380/0", "rediss://:pw@cache.internal:6380/0"),
])
def test_celerys_redis_socket_url_is_turned_into_one_redis_py_understands(url: str, client_url: str) -> None:
    assert redis_client_url(url) == client_url


# --- Mailgun: the payload -------------------------------------------------------------------------------


def test_a_mailgun_forward_is_threaded_and_keyed_by_its_message_id() -> None:
    fields, files = parse_form(_fixture("mailgun_forward.multipart"), MAILGUN_FORM)
    email, event_id = mailgun_parse(fields, files)

    assert event_id == email.message_id == "CAJ4kq8x_w3N@mail.gmail.com"
    assert email.in_reply_to == "td-out-5c1d@tierdesk.example"
    assert email.references == ("td-in-77aa@mail.example.net", "td-out-5c1d@tierdesk.example")
    assert (email.from_email, email.from_name) == ("priya.raman@example.net", "Priya Raman")
    assert email.to == ("support@mg.tierdesk.example",) and email.cc == ("lars@example.net",)
    assert email.subject == "Re: Export fails with “timeout” on large projects"
    assert email.date == datetime(2024, 11, 21, 13, 44, 2, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert "times out for projects over 2 GB" in email.text
    assert "Could you send us the export log?" not in email.reply_text


def test_mailgun_attachments_come_from_the_posted_files() -> None:
    fields, files = parse_form(_fixture("mailgun_forward.multipart"), MAILGUN_FORM)
    email, _ = mailgun_parse(fields, files)

    (log,) = email.attachments
    assert (log.filename, log.content_type, log.inline) == ("export-4471.log", "text/plain", False)
    assert log.content == files["attachment-1"][2]
    assert log.content.startswith(b"2024-11-21T08:10:01Z export started")


def test_mailgun_inline_images_are_matched_through_the_content_id_map() -> None:
    fields: dict[str, str | bytes] = {
        "message-headers": json.dumps([["Message-Id", "<cid-test@example.net>"], ["From", "a@example.net"]]),
        "body-plain": "see image", "body-html": '<p><img src="cid:part1.06090408@example.net"></p>',
        "attachment-count": "1", "content-id-map": json.dumps({"<part1.06090408@example.net>": "attachment-1"}),
    }
    email, _ = mailgun_parse(fields, {"attachment-1": ("image.png", "image/png", b"\x89PNG fake")})
    (image,) = email.attachments
    assert (image.content_id, image.inline) == ("part1.06090408@example.net", True)


def test_a_mailgun_attachment_announced_but_not_posted_is_noted_as_dropped() -> None:
    fields: dict[str, str | bytes] = {"message-headers": json.dumps([["Message-Id", "<m2@example.net>"]]),
                                      "body-plain": "two files", "attachment-count": "2"}
    email, _ = mailgun_parse(fields, {"attachment-2": ("b.txt", "text/plain", b"second")})
    assert [a.filename for a in email.attachments] == ["b.txt"]
    assert email.headers["x-tierdesk-dropped-attachment-names"] == "attachment-1"


def test_a_mailgun_mime_route_hands_the_whole_message_to_the_mime_parser() -> None:
    fields, files = parse_form(_fixture("mailgun_forward_mime.urlencoded"), "application/x-www-form-urlencoded")
    email, event_id = mailgun_parse(fields, files)

    assert event_id == email.message_id == "20241121082007.4F1A2@mail.example.com"
    assert (email.from_email, email.from_name, email.subject) == ("renee@example.com", "Renée Dubois", "Accès refusé")
    assert "je n'arrive plus à me connecter" in email.text  # ISO-8859-1 quoted-printable, decoded


@pytest.mark.parametrize(("fields", "says"), [
    ({"message-headers": "[[\"From\", ", "body-plain": "x"}, "message-headers is not valid JSON"),
    ({"message-headers": '{"From": "a@b"}', "body-plain": "x"}, "list of [name, value] pairs"),
    ({"message-headers": "[]", "body-plain": "x", "attachment-count": "two"}, "attachment-count is not a number"),
    ({"body-plain": "x", "content-id-map": "[1]"}, "content-id-map is not a JSON object"),
    ({"attachments": '[{"url": "https://storage.mailgun.net/v3/..."}]', "body-plain": "x"}, "store() notification"),
    ({"subject": "only a subject"}, "neither body-mime nor message-headers"),
])
def test_a_malformed_mailgun_payload_is_refused_for_good_and_says_why(fields: dict[str, str], says: str) -> None:
    with pytest.raises(InboundError) as caught:
        mailgun_parse(fields, {})
    assert says in caught.value.message
    assert caught.value.permanent and status_for(MAILGUN, caught.value) == 406


# --- SendGrid: URL secret or basic auth -----------------------------------------------------------------

SG = {"secret": "d9c1f0e6b2a84b7f", "username": "sendgrid", "password": "p4ss"}


@pytest.mark.parametrize(("url_secret", "header"), [
    ("d9c1f0e6b2a84b7f", None),
    (None, _basic("sendgrid", "p4ss")),
    ("wrong-secret", _basic("sendgrid", "p4ss")),
], ids=["url-secret", "basic-auth", "basic-auth-despite-a-wrong-path"])
def test_sendgrid_is_let_in_by_the_url_secret_or_basic_auth(url_secret: str | None, header: str | None) -> None:
    sendgrid_authenticate(url_secret=url_secret, authorization_header=header, **SG)


@pytest.mark.parametrize(("url_secret", "header"), [
    ("wrong-secret", None),
    ("", None),
    (None, _basic("sendgrid", "wrong")),
    (None, None),
    (None, "Basic !!"),
], ids=["wrong-secret", "empty-secret", "wrong-password", "nothing", "garbled-basic"])
def test_sendgrid_without_the_secret_or_credentials_is_refused_with_401(url_secret: str | None,
                                                                        header: str | None) -> None:
    with pytest.raises(InboundAuthError) as caught:
        sendgrid_authenticate(url_secret=url_secret, authorization_header=header, **SG)
    assert status_for(SENDGRID, caught.value) == 401


def test_a_switched_off_sendgrid_method_does_not_accept_an_empty_secret() -> None:
    with pytest.raises(InboundAuthError):
        sendgrid_authenticate(url_secret="", authorization_header=None, secret="", username="u", password="p")
    with pytest.raises(InboundError) as caught:
        sendgrid_authenticate(url_secret="", authorization_header=None, secret="", username="", password="")
    assert not caught.value.permanent


# --- SendGrid: the payload ------------------------------------------------------------------------------


def test_sendgrid_raw_and_parsed_modes_give_the_same_email() -> None:
    raw_email, raw_id = sendgrid_parse(*parse_form(_fixture("sendgrid_raw.multipart"), SENDGRID_FORM))
    parsed_email, parsed_id = sendgrid_parse(*parse_form(_fixture("sendgrid_parsed.multipart"), SENDGRID_FORM))

    assert _fields_of(parsed_email) == _fields_of(raw_email)
    assert raw_id == parsed_id == "CAL3x+5fQk2@mail.gmail.com"
    assert parsed_email.from_name == "Måns Ekström" and parsed_email.cc == ("asa.lind@example.se",)
    assert parsed_email.subject == "Re: Kvot överskriden — dashboard"
    assert parsed_email.references == ("td-in-0c3e@example.se", "td-out-88f0@tierdesk.example")


def test_sendgrid_parsed_attachments_keep_their_names_types_and_content_ids() -> None:
    fields, files = parse_form(_fixture("sendgrid_parsed.multipart"), SENDGRID_FORM)
    email, _ = sendgrid_parse(fields, files)

    screenshot, report = email.attachments
    assert (screenshot.filename, screenshot.content_type, screenshot.content_id, screenshot.inline) == (
        "screenshot.png", "image/png", "ii_m3qz1x0a0", True)
    assert screenshot.content == files["attachment1"][2] and screenshot.content.startswith(b"\x89PNG")
    assert (report.filename, report.content_type, report.content_id) == ("quota-report.pdf", "application/pdf", None)
    assert report.content.startswith(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3")


def test_a_sendgrid_attachment_name_is_never_a_path() -> None:
    fields: dict[str, str | bytes] = {
        "headers": "Message-ID: <p1@example.com>\nFrom: a@example.com\n", "attachments": "1",
        "attachment-info": json.dumps({"attachment1": {"filename": "\\share\\mail\\forwarded.msg",
                                                       "type": "message/rfc822"}})}
    email, _ = sendgrid_parse(fields, {"attachment1": ("forwarded.msg", "message/rfc822", b"Subject: hi\r\n\r\nx")})
    assert [(a.filename, a.content_type) for a in email.attachments] == [("forwarded.msg", "message/rfc822")]


def test_sendgrid_fields_are_read_in_the_charset_sendgrid_names_for_each() -> None:
    email, event_id = sendgrid_parse(*parse_form(_fixture("sendgrid_charsets.multipart"), SENDGRID_FORM))

    assert event_id == "charsets-4411@example.es"
    assert email.subject == "Facturación de noviembre"  # cp850
    assert (email.from_email, email.from_name) == ("maria.pena@example.es", "María Peña")  # UTF-8
    assert "La factura de noviembre sale duplicada… ¿podéis revisarla? – María" in email.text  # windows-1252
    assert "¿Podéis revisar la factura?" in email.html  # iso-8859-1


def test_an_unknown_sendgrid_charset_falls_back_to_utf8_instead_of_failing() -> None:
    fields: dict[str, str | bytes] = {"headers": b"Message-ID: <x1@example.com>\nFrom: a@example.com\n",
                                      "text": "caf\u00e9".encode(), "charsets": '{"text": "x-no-such-charset"}'}
    email, _ = sendgrid_parse(fields, {})
    assert "café" in email.text


@pytest.mark.parametrize(("fields", "says"), [
    ({"text": "hello", "from": "a@example.com"}, "neither 'email' (raw mode) nor 'headers' (parsed mode)"),
    ({"headers": "From: a@example.com\n", "charsets": "{not json"}, "charsets is not valid JSON"),
    ({"headers": "From: a@example.com\n", "attachment-info": "[]"}, "attachment-info is not a JSON object"),
    ({"headers": "From: a@example.com\n", "attachments": "many"}, "attachments is not a number"),
])
def test_a_malformed_sendgrid_payload_is_refused_for_good_and_says_why(fields: dict[str, str], says: str) -> None:
    with pytest.raises(InboundError) as caught:
        sendgrid_parse(fields, {})
    assert says in caught.value.message
    assert caught.value.permanent and status_for(SENDGRID, caught.value) == 400


# --- form bodies ----------------------------------------------------------------------------------------


def test_form_files_come_through_byte_for_byte() -> None:
    content = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n\r" + os.urandom(4096)
    forwarded = b"From: a@example.com\r\nSubject: the original\r\n\r\nbody\r\n"
    body = (b"--B0\r\nContent-Disposition: form-data; name=\"attachment1\"; filename=\"r\xc3\xa9sum\xc3\xa9.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
            b"--B0\r\nContent-Disposition: form-data; name=\"attachment2\"; filename=\"notype.dat\"\r\n\r\nabc\r\n"
            b"--B0\r\nContent-Disposition: form-data; name=\"attachment3\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.eml\r\n"
            b"Content-Type: message/rfc822\r\n\r\n" + forwarded + b"\r\n"
            b"--B0\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncaf\xe9\r\n--B0--\r\n")
    fields, files = parse_form(body, "multipart/form-data; boundary=B0")

    assert files["attachment1"] == ("résumé.bin", "application/octet-stream", content)
    assert files["attachment2"] == ("notype.dat", "application/octet-stream", b"abc")
    # A forwarded email stays the attachment it was, not a message the form parser opened.
    assert files["attachment3"] == ("日本.eml", "message/rfc822", forwarded)
    assert fields == {"text": b"caf\xe9"}


def test_urlencoded_forms_keep_their_bytes_for_later_decoding() -> None:
    fields, files = parse_form(b"subject=Acc%C3%A8s+refus%C3%A9&empty=&token=abc", "application/x-www-form-urlencoded")
    assert fields == {"subject": "Accès refusé".encode(), "empty": b"", "token": b"abc"} and files == {}


@pytest.mark.parametrize(("body", "content_type", "says"), [
    (b'{"event-data": {}}', "application/json", "expected multipart/form-data"),
    (b"--other\r\n\r\nx\r\n--other--\r\n", "multipart/form-data", "could not be split"),
    (b"--other\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--other--\r\n",
     "multipart/form-data; boundary=B0", "could not be split"),
    (b"--B0\r\nContent-Type: text/plain\r\n\r\nx\r\n--B0--\r\n", "multipart/form-data; boundary=B0", "no named parts"),
    (b"a=\xff", "application/x-www-form-urlencoded", "outside ASCII"),
])
def test_a_body_that_is_not_a_form_is_refused_for_good(body: bytes, content_type: str, says: str) -> None:
    with pytest.raises(InboundError) as caught:
        parse_form(body, content_type)
    assert caught.value.permanent and says in caught.value.message


# --- answering each provider ----------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "taken", "auth", "permanent", "transient"), [
    (POSTMARK, 200, 401, 403, 503),  # 403 is the one answer that stops Postmark's retries
    (MAILGUN, 200, 401, 406, 503),  # 406 is the one answer that stops Mailgun's retries
    (SENDGRID, 200, 401, 400, 503),  # SendGrid retries 5xx; a 4xx ends it
])
def test_each_outcome_gets_the_status_that_makes_the_provider_retry_only_what_can_succeed(
        provider: str, taken: int, auth: int, permanent: int, transient: int) -> None:
    assert status_for(provider, None) == taken
    assert status_for(provider, InboundAuthError("bad signature")) == auth
    assert status_for(provider, InboundError("malformed")) == permanent
    assert status_for(provider, InboundError("redis away", permanent=False)) == transient


def test_an_unknown_provider_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown inbound provider 'mandrill'"):
        status_for("mandrill", None)


def test_a_refused_login_is_challenged_without_saying_which_check_failed() -> None:
    response = ProviderResponse.for_outcome(POSTMARK, InboundAuthError("Postmark request has wrong Basic credentials"))
    assert (response.status, response.body) == (401, "authentication failed")
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    malformed = ProviderResponse.for_outcome(MAILGUN, InboundError("Mailgun message-headers is not valid JSON"))
    assert (malformed.status, malformed.body) == (406, "Mailgun message-headers is not valid JSON")
    assert ProviderResponse.for_outcome(SENDGRID, None) == ProviderResponse(200, "ok")
