"""Inbound-email webhooks from Postmark, Mailgun and SendGrid, as plain functions over bytes and mappings.

A view does three things: authenticate (`postmark_authenticate`, `mailgun_verify`, `sendgrid_authenticate`),
parse (`postmark_parse`, `mailgun_parse`, `sendgrid_parse`; form bodies go through `parse_form` first),
and answer with `ProviderResponse.for_outcome`. Every failure is an `InboundError`; `InboundAuthError` marks
the ones where the caller did not prove it was the provider. Each parser returns the email and the event
id to store as `Message.provider_event_id`.

Provider documentation these functions follow:
- Postmark: https://postmarkapp.com/developer/webhooks/inbound-webhook,
  https://postmarkapp.com/developer/user-guide/inbound/parse-an-email,
  https://postmarkapp.com/developer/webhooks/webhooks-overview (basic auth in the URL)
- Mailgun: https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/receive-http,
  https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
- SendGrid: https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import mimetypes
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesHeaderParser, BytesParser
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis

from triage.devservices import redis_client_url
from triage.intake.mime import decode_bytes, from_parts, parse_mime
from triage.intake.types import Attachment, InboundEmail, InboundError

logger = logging.getLogger(__name__)

POSTMARK = "postmark"
MAILGUN = "mailgun"
SENDGRID = "sendgrid"
PROVIDERS = (POSTMARK, MAILGUN, SENDGRID)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20

# What a form field holds: bytes when the view passed the raw body through `parse_form` (so SendGrid's
# per-field charsets can still be applied), str when something upstream already decoded it.
FieldValue = str | bytes
Files = Mapping[str, tuple[str, str, bytes]]  # field name -> (filename, content type, content)


class InboundAuthError(InboundError):
    """The request did not prove it came from the provider: missing or wrong credentials or signature,
    a stale timestamp or a replayed token. Always permanent for this request, always answered 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


# --- authentication -------------------------------------------------------------------------------------


def _same(given: bytes, expected: bytes) -> bool:
    # Digests first, so the comparison takes the same time whatever the lengths: compare_digest alone
    # returns early when the lengths differ, which tells an attacker the secret's length.
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def _basic_credentials(authorization_header: str | None, provider: str) -> tuple[bytes, bytes]:
    if not authorization_header or not authorization_header.strip():
        raise InboundAuthError(f"{provider} request has no Authorization header")
    scheme, _, encoded = authorization_header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InboundAuthError(f"{provider} request uses {scheme!r} authorization, not Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InboundAuthError(f"{provider} request has a malformed Basic Authorization header") from exc
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise InboundAuthError(f"{provider} request has a malformed Basic Authorization header (no ':')")
    return username, password


def _basic_auth_matches(username_given: bytes, password_given: bytes, *, username: str, password: str) -> bool:
    # Both halves are always compared (no short-circuit), so timing does not reveal which one was wrong.
    user_ok = _same(username_given, username.encode())
    password_ok = _same(password_given, password.encode())
    return user_ok & password_ok


def postmark_authenticate(authorization_header: str | None, *, username: str, password: str) -> None:
    """Check the HTTP basic credentials Postmark sends when they are embedded in the webhook URL
    (https://<username>:<password>@host/path, per Postmark's "Protecting your webhook")."""
    if not username or not password:
        # A deployment mistake, not the sender's: answer 503 so Postmark keeps retrying while it is fixed,
        # and never let an empty configured password match an empty presented one.
        raise InboundError("Postmark webhook credentials are not configured", permanent=False)
    given_user, given_password = _basic_credentials(authorization_header, "Postmark")
    if not _basic_auth_matches(given_user, given_password, username=username, password=password):
        raise InboundAuthError("Postmark request has wrong Basic credentials")


def sendgrid_authenticate(
    *, url_secret: str | None, authorization_header: str | None, secret: str, username: str, password: str
) -> None:
    """SendGrid's Inbound Parse signs nothing, so Tierdesk requires the secret in the URL path it was given
    (url_secret, as the URL pattern captured it) or basic credentials embedded in the URL; either suffices.
    A method whose configured secret is empty is switched off."""
    path_enabled = bool(secret)
    basic_enabled = bool(username and password)
    if not path_enabled and not basic_enabled:
        raise InboundError("SendGrid webhook secret and credentials are not configured", permanent=False)
    presented = False
    if url_secret is not None and path_enabled:
        presented = True
        if _same(url_secret.encode(), secret.encode()):
            return
    if authorization_header and basic_enabled:
        presented = True
        given_user, given_password = _basic_credentials(authorization_header, "SendGrid")
        if _basic_auth_matches(given_user, given_password, username=username, password=password):
            return
    if not presented:
        raise InboundAuthError("SendGrid request has neither the URL secret nor an Authorization header")
    raise InboundAuthError("SendGrid request has a wrong URL secret or wrong Basic credentials")


def mailgun_verify(
    *,
    timestamp: str,
    token: str,
    signature: str,
    signing_key: str,
    now: float | None = None,
    max_age: int = 300,
    seen: Callable[[str, int], bool],
) -> None:
    """Check Mailgun's signature: hex HMAC-SHA256 of timestamp + token under the webhook signing key
    (Mailgun's "Securing Webhooks"), a timestamp within max_age seconds either way, and a token not
    seen before. `seen(token, ttl)` records the token and says whether it was already there.

    The signature covers only timestamp + token, not the body, so the one-time token is what stops a
    captured signature from vouching for a forged email. Mailgun does not document whether a retry is
    signed afresh; if it resends the first attempt's block, a retry after a 503 arrives stale and is
    refused, and max_age would have to cover Mailgun's 8-hour retry schedule.
    """
    if not signing_key:
        raise InboundError("Mailgun webhook signing key is not configured", permanent=False)
    if not timestamp or not token or not signature:
        raise InboundAuthError("Mailgun request is missing timestamp, token or signature")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise InboundAuthError("Mailgun signature does not match (wrong signing key, or a forged request)")
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise InboundAuthError(f"Mailgun timestamp {timestamp!r} is not a whole number of seconds") from exc
    current = time.time() if now is None else now
    if abs(current - sent_at) > max_age:
        age = f"{int(current - sent_at)}s old" if current > sent_at else f"{int(sent_at - current)}s ahead"
        raise InboundAuthError(f"Mailgun timestamp is {age}, outside ±{max_age}s (stale, replayed or clock skew)")
    # Checked only after the signature, so forged requests cannot fill the cache. Remembered for twice
    # the window: a token is acceptable for up to max_age either side of its timestamp, and web workers'
    # clocks may disagree by a little.
    if seen(token, 2 * max_age):
        raise InboundAuthError("Mailgun token was already used (a replayed request)")


@functools.lru_cache(maxsize=8)
def _redis(url: str) -> redis.Redis:
    # One client (and connection pool) per URL per process; connecting is lazy. Short timeouts: a webhook
    # should fail over to the provider's retry quickly rather than hold a worker while Redis is away.
    return redis.Redis.from_url(redis_client_url(url), socket_timeout=2, socket_connect_timeout=2)


def redis_token_cache(url: str, *, prefix: str = "tierdesk:inbound:token:") -> Callable[[str, int], bool]:
    """A `seen` for `mailgun_verify`: SET key 1 NX EX ttl, so of two concurrent deliveries of one token
    exactly one is first. Redis being unreachable is a transient InboundError (the provider retries)."""
    client = _redis(url)

    def seen(token: str, ttl_seconds: int) -> bool:
        try:
            first = client.set(f"{prefix}{token}", 1, nx=True, ex=max(1, ttl_seconds))
        except redis.RedisError as exc:
            raise InboundError(f"replay cache unavailable: {exc}", permanent=False) from exc
        return not first

    return seen


# --- form bodies ----------------------------------------------------------------------------------------


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, bytes], dict[str, tuple[str, str, bytes]]]:
    """Split a multipart/form-data or application/x-www-form-urlencoded body into fields, left as bytes, and
    files (name -> (filename, content type, content)).

    Views pass request.body here rather than reading request.POST: Django decodes every field as UTF-8,
    which garbles SendGrid fields sent in other charsets beyond repair (and its parser cannot be told
    otherwise without mangling UTF-8 filenames).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InboundError("form-urlencoded body has bytes outside ASCII") from exc
        # latin-1 maps each percent-decoded byte to one code point, so encoding back gives the bytes.
        pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1", errors="strict")
        return {name: value.encode("latin-1") for name, value in pairs}, {}
    if media_type != "multipart/form-data":
        raise InboundError(
            f"expected multipart/form-data or application/x-www-form-urlencoded, got {media_type or 'nothing'}")
    # form-data is MIME multipart (RFC 7578), so the standard library's parser splits it: it keeps each
    # part's bytes as sent and decodes RFC 2231 and UTF-8 filenames.
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(envelope + body)
    except Exception as exc:  # the feed parser records defects rather than raising; this is for its bugs
        raise InboundError(f"multipart/form-data body is malformed: {exc!r}") from exc
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise InboundError("multipart/form-data body could not be split into parts (missing or wrong boundary)")
    fields: dict[str, bytes] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        content = _part_bytes(part)
        filename = part.get_filename()
        if filename is None:
            fields[name] = content
        else:
            given = part.get("content-type") is not None
            files[name] = (filename, part.get_content_type() if given else "application/octet-stream", content)
    if not fields and not files:
        raise InboundError("multipart/form-data body has no named parts (missing or wrong boundary)")
    return fields, files


def _part_bytes(part: MIMEPart) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    # A forwarded email (message/rfc822) or a multipart file: the parser opened it into a structure, so it
    # is written back out and the part's own form-data headers cut off, as mime.py does for message parts.
    # Byte-exact but for line endings, which come back as CRLF.
    data = part.as_bytes(policy=policy.HTTP)
    end = data.find(b"\r\n\r\n")
    return data[end + 4:] if end >= 0 else b""


def _field(fields: Mapping[str, FieldValue], name: str, charset: str | None = "utf-8") -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, bytes):
        # mime.decode_bytes is what MIME parts go through: the same aliases (an iso-8859-1 label over
        # windows-1252 bytes, Shift_JIS as cp932) and the same fallbacks, so a provider's pre-parsed field
        # reads exactly like the part it came from. It never raises.
        return decode_bytes(value, charset)
    return value


def _raw(fields: Mapping[str, FieldValue], name: str) -> bytes:
    value = fields.get(name)
    if isinstance(value, bytes):
        return value
    return (value or "").encode("utf-8", errors="surrogateescape")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InboundError(f"{what} is not valid JSON: {exc}") from exc


# --- shared shaping -------------------------------------------------------------------------------------


_CID_REF_RE = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _unbracket(value: object) -> str | None:
    text = _CONTROL_RE.sub("", str(value or "")).strip().strip("<>").strip()
    return text or None


def _filename(name: str, content_type: str, index: int) -> str:
    # The same rules parse_mime applies to a part's filename, so both routes name a file alike: never a
    # path, no control characters, a made-up name when the sender gave none.
    text = _CONTROL_RE.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".")
    if len(text) > 200:
        stem, dot, ext = text.rpartition(".")
        text = (stem[:190] + dot + ext[:9]) if dot and len(ext) < 10 else text[:200]
    return text or f"attachment-{index}{mimetypes.guess_extension(content_type, strict=False) or '.bin'}"


def _attachments(
    items: Iterable[tuple[str, str, bytes | None, object]], *, max_bytes: int, max_count: int, html: str,
) -> tuple[tuple[Attachment, ...], list[str]]:
    """Attachments within the limits, and the names of those left out (None content: announced, not sent)."""
    # Inline means what it means for parse_mime: shown inside the HTML, i.e. referenced by a cid: URL.
    referenced = {unquote(ref).strip().lower() for ref in _CID_REF_RE.findall(html)}
    kept: list[Attachment] = []
    dropped: list[str] = []
    for index, (filename, content_type, content, content_id) in enumerate(items, start=1):
        media_type = (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()
        name = _filename(filename, media_type, index)
        if content is None or len(kept) >= max_count or len(content) > max_bytes:
            dropped.append(name)
            continue
        cid = _unbracket(content_id)
        kept.append(Attachment(filename=name, content_type=media_type, content=content, content_id=cid,
                               inline=cid is not None and cid.lower() in referenced))
    return tuple(kept), dropped


def _noting_dropped(email: InboundEmail, dropped: list[str]) -> InboundEmail:
    # The same notes parse_mime leaves, so an agent sees that a file was not kept whichever route it took.
    if not dropped:
        return email
    names = ", ".join(dropped)
    return dataclasses.replace(email, headers={
        **email.headers, "x-tierdesk-dropped-attachments": str(len(dropped)),
        "x-tierdesk-dropped-attachment-names": names if len(names) <= 2000 else names[:1999] + "…",
    })


def _first_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    # The first of repeated headers, as parse_mime keeps them; from_parts picks the ones it needs
    # (noise, bounce and loop signals) and the threading ids are read here.
    headers: dict[str, str] = {}
    lowered: set[str] = set()
    for name, value in pairs:
        if name.lower() not in lowered:
            lowered.add(name.lower())
            headers[name] = value
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


# --- Postmark -------------------------------------------------------------------------------------------


def _postmark_address(full: object) -> str:
    if not isinstance(full, dict):
        return ""
    address = str(full.get("Email") or "").strip()
    name = str(full.get("Name") or "").strip()
    if not address:
        return ""
    if not name:
        return address
    # Quoted rather than RFC 2047-encoded: the display name stays readable as Unicode and a comma or
    # angle bracket inside it cannot split the address.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _postmark_list(payload: dict[str, Any], name: str) -> list[Any]:
    value = payload.get(name) or []
    if not isinstance(value, list):
        raise InboundError(f"Postmark {name} is not a list of {{Email, Name}} objects")
    return value


def postmark_parse(
    body: bytes, *, max_attachment_bytes: int = MAX_ATTACHMENT_BYTES, max_attachments: int = MAX_ATTACHMENTS,
) -> tuple[InboundEmail, str]:
    """Postmark's inbound JSON -> (email, Postmark's MessageID). With "Include raw email content in JSON
    payload" switched on, RawEmail is parsed instead of the pre-parsed fields."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InboundError(f"Postmark payload is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InboundError("Postmark payload is not a JSON object")
    record_type = payload.get("RecordType") or "Inbound"
    if record_type != "Inbound":
        raise InboundError(
            f"Postmark sent a {record_type!r} webhook to the inbound URL; point only the inbound stream here")
    event_id = payload.get("MessageID")
    if not isinstance(event_id, str) or not event_id.strip():
        raise InboundError("Postmark payload has no MessageID")

    raw_email = payload.get("RawEmail")
    if isinstance(raw_email, str) and raw_email.strip():
        email = parse_mime(raw_email.encode("utf-8", errors="surrogateescape"),
                           max_attachment_bytes=max_attachment_bytes, max_attachments=max_attachments)
        return email, event_id.strip()

    header_items = payload.get("Headers") or []
    if not isinstance(header_items, list) or not all(isinstance(h, dict) for h in header_items):
        raise InboundError("Postmark Headers is not a list of {Name, Value} objects")
    # The real Message-ID, In-Reply-To and References are only here: MessageID is Postmark's own id.
    headers = _first_headers((str(h["Name"]), str(h.get("Value") or "")) for h in header_items if h.get("Name"))

    raw_attachments = payload.get("Attachments") or []
    if not isinstance(raw_attachments, list):
        raise InboundError("Postmark Attachments is not a list")
    items: list[tuple[str, str, bytes | None, object]] = []
    for index, item in enumerate(raw_attachments, start=1):
        if not isinstance(item, dict):
            raise InboundError(f"Postmark attachment {index} is not an object")
        name = str(item.get("Name") or "")
        # Postmark's dashboard "Check" button posts attachments with Data instead of Content.
        content = item.get("Content") if item.get("Content") is not None else item.get("Data")
        if not isinstance(content, str):
            raise InboundError(f"Postmark attachment {index} ({name!r}) has no base64 Content")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InboundError(f"Postmark attachment {index} ({name!r}) is not valid base64") from exc
        items.append((name, str(item.get("ContentType") or ""), data, item.get("ContentID")))

    html = str(payload.get("HtmlBody") or "")
    attachments, dropped = _attachments(items, max_bytes=max_attachment_bytes, max_count=max_attachments, html=html)
    to = [a for a in map(_postmark_address, _postmark_list(payload, "ToFull")) if a]
    cc = [a for a in map(_postmark_address, _postmark_list(payload, "CcFull")) if a]
    email = from_parts(
        message_id=_header(headers, "Message-ID"),
        in_reply_to=_header(headers, "In-Reply-To"),
        references=_header(headers, "References"),
        subject=str(payload.get("Subject") or ""),
        from_header=_postmark_address(payload.get("FromFull")) or str(payload.get("From") or ""),
        to=to or str(payload.get("To") or ""),
        cc=cc or str(payload.get("Cc") or ""),
        # Postmark moves Date out of Headers into its own field, in the sending server's own format.
        date=str(payload.get("Date") or "") or _header(headers, "Date"),
        text=str(payload.get("TextBody") or ""),
        html=html,
        headers=headers,
        attachments=attachments,
        stripped_text=str(payload.get("StrippedTextReply") or "") or None,
    )
    return _noting_dropped(email, dropped), event_id.strip()


# --- Mailgun --------------------------------------------------------------------------------------------


def mailgun_parse(
    fields: Mapping[str, FieldValue], files: Files, *,
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES, max_attachments: int = MAX_ATTACHMENTS,
) -> tuple[InboundEmail, str]:
    """A Mailgun route's forward() POST -> (email, its Message-Id). A route URL ending in "mime" gets the
    message whole in body-mime; otherwise Mailgun's parsed fields, all in UTF-8, with attachment-1..N."""
    if "body-mime" in fields:
        email = parse_mime(_raw(fields, "body-mime"), max_attachment_bytes=max_attachment_bytes,
                           max_attachments=max_attachments)
        return email, email.message_id
    if "attachments" in fields and "attachment-count" not in fields:
        # store(notify=...) posts attachment URLs to fetch later, not the files.
        raise InboundError("Mailgun sent a store() notification; the route must use forward() to this URL")
    if "message-headers" not in fields and "body-plain" not in fields:
        raise InboundError("Mailgun payload has neither body-mime nor message-headers/body-plain")

    pairs = _json(_field(fields, "message-headers") or "[]", "Mailgun message-headers")
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs):
        raise InboundError("Mailgun message-headers is not a JSON list of [name, value] pairs")
    headers = _first_headers((name, value) for name, value in pairs)

    def header_or_field(name: str) -> str | None:
        # message-headers keeps the original order and spelling; the same headers also arrive as
        # top-level fields (Message-Id, In-Reply-To, ...) and are the fallback.
        return _header(headers, name) or _field(fields, name) or None

    try:
        count = int(_field(fields, "attachment-count") or "0")
    except ValueError as exc:
        raise InboundError("Mailgun attachment-count is not a number") from exc
    cid_map = _json(_field(fields, "content-id-map") or "{}", "Mailgun content-id-map")
    if not isinstance(cid_map, dict):
        raise InboundError("Mailgun content-id-map is not a JSON object")
    cid_for = {str(field_name): cid for cid, field_name in cid_map.items() if cid}  # {"<cid>": "attachment-2"}
    items: list[tuple[str, str, bytes | None, object]] = []
    for index in range(1, min(count, 1000) + 1):
        key = f"attachment-{index}"
        filename, content_type, content = files.get(key, (key, "application/octet-stream", None))
        items.append((filename, content_type, content, cid_for.get(key)))

    html = _field(fields, "body-html")
    attachments, dropped = _attachments(items, max_bytes=max_attachment_bytes, max_count=max_attachments, html=html)
    email = from_parts(
        message_id=header_or_field("Message-Id"),
        in_reply_to=header_or_field("In-Reply-To"),
        references=header_or_field("References"),
        subject=_field(fields, "subject") or _header(headers, "Subject") or "",
        from_header=_field(fields, "from") or _header(headers, "From") or _field(fields, "sender"),
        to=header_or_field("To") or _field(fields, "recipient"),
        cc=header_or_field("Cc") or "",
        date=header_or_field("Date"),
        text=_field(fields, "body-plain"),
        html=html,
        headers=headers,
        attachments=attachments,
        stripped_text=_field(fields, "stripped-text") or None,
    )
    return _noting_dropped(email, dropped), email.message_id


# --- SendGrid -------------------------------------------------------------------------------------------


def _header_block(block: bytes) -> dict[str, str]:
    # Raw (undecoded, unfolded) values, first occurrence first, as parse_mime reads a message's header:
    # from_parts decodes RFC 2047 words once, whichever route the message took.
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(block.replace(b"\r\n", b"\n").strip() + b"\n\n")
    return _first_headers((name, re.sub(r"\r?\n(?=[ \t])", "", str(value))) for name, value in parsed.raw_items())


def sendgrid_parse(
    fields: Mapping[str, FieldValue], files: Files, *,
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES, max_attachments: int = MAX_ATTACHMENTS,
) -> tuple[InboundEmail, str]:
    """SendGrid Inbound Parse -> (email, its Message-ID). With "POST the raw, full MIME message" the message
    comes whole in `email`; otherwise as SendGrid's parsed fields, each in the charset `charsets` names."""
    if "email" in fields:
        email = parse_mime(_raw(fields, "email"), max_attachment_bytes=max_attachment_bytes,
                           max_attachments=max_attachments)
        return email, email.message_id
    if "headers" not in fields:
        raise InboundError("SendGrid payload has neither 'email' (raw mode) nor 'headers' (parsed mode)")

    charsets = _json(_field(fields, "charsets") or "{}", "SendGrid charsets")
    if not isinstance(charsets, dict):
        raise InboundError("SendGrid charsets is not a JSON object")

    def text_of(name: str) -> str:
        charset = charsets.get(name)
        return _field(fields, name, charset if isinstance(charset, str) else "utf-8")

    headers = _header_block(_raw(fields, "headers"))
    info = _json(_field(fields, "attachment-info") or "{}", "SendGrid attachment-info")
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise InboundError("SendGrid attachment-info is not a JSON object of objects")
    try:
        count = int(_field(fields, "attachments") or "0")
    except ValueError as exc:
        raise InboundError("SendGrid attachments is not a number") from exc
    items: list[tuple[str, str, bytes | None, object]] = []
    for index in range(1, min(count, 1000) + 1):
        key = f"attachment{index}"
        filename, content_type, content = files.get(key, (key, "application/octet-stream", None))
        meta = info.get(key, {})
        # attachment-info has the name and type from the message itself; the file part's may be generic.
        items.append((str(meta.get("filename") or meta.get("name") or filename),
                      str(meta.get("type") or content_type), content, meta.get("content-id")))

    html = text_of("html")
    attachments, dropped = _attachments(items, max_bytes=max_attachment_bytes, max_count=max_attachments, html=html)
    email = from_parts(
        message_id=_header(headers, "Message-ID"),
        in_reply_to=_header(headers, "In-Reply-To"),
        references=_header(headers, "References"),
        # SendGrid's own fields are already decoded (in their charsets); the header block is the fallback.
        subject=text_of("subject") if "subject" in fields else _header(headers, "Subject") or "",
        from_header=text_of("from") or _header(headers, "From") or "",
        to=text_of("to") or _header(headers, "To") or "",
        cc=text_of("cc") or _header(headers, "Cc") or "",
        date=_header(headers, "Date"),
        text=text_of("text"),
        html=html,
        headers=headers,
        attachments=attachments,
    )
    return _noting_dropped(email, dropped), email.message_id


# --- answering the provider -----------------------------------------------------------------------------

# Basic-auth clients may send credentials only after a challenge, so a 401 always carries one.
BASIC_CHALLENGE = 'Basic realm="tierdesk-inbound", charset="UTF-8"'

_PERMANENT_STATUS = {
    # Postmark retries every non-200 answer ten times over about 10.5 hours; 403 alone stops it.
    # https://postmarkapp.com/developer/user-guide/inbound/parse-an-email
    # https://postmarkapp.com/support/article/understanding-inbound-webhook-retries-in-postmark
    POSTMARK: 403,
    # Mailgun retries every answer but 200 and 406 for 8 hours; 406 means "rejected, do not retry".
    # https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/receive-http
    MAILGUN: 406,
    # SendGrid names 5xx answers as the ones it queues and retries, for up to 3 days; 2xx ends it. So 400
    # should end it too. The same page also says any non-2xx counts as undelivered; if that means 4xx is
    # retried as well, a malformed payload just fails the same way again until SendGrid drops it.
    # https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email
    SENDGRID: 400,
}


def status_for(provider: str, error: InboundError | None) -> int:
    """The HTTP status for an outcome, per the provider's retry contract (see ProviderResponse)."""
    if provider not in _PERMANENT_STATUS:
        raise ValueError(f"unknown inbound provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if error is None:
        # Exactly 200: Postmark treats any other code, 201 and 204 included, as a failure to retry.
        return 200
    if isinstance(error, InboundAuthError):
        return 401
    if not error.permanent:
        return 503
    return _PERMANENT_STATUS[provider]


@dataclass(frozen=True)
class ProviderResponse:
    """What a webhook view answers, chosen so each provider retries exactly what is worth retrying.

    | outcome                                   | Postmark | Mailgun | SendGrid |
    |-------------------------------------------|----------|---------|----------|
    | taken, or a duplicate already taken       | 200      | 200     | 200      |
    | authentication failed (InboundAuthError)  | 401      | 401     | 401      |
    | permanent: malformed, wrong webhook type  | 403      | 406     | 400      |
    | transient: Redis/database away, misconfig | 503      | 503     | 503      |

    - 200, not 201/204: Postmark retries any non-200, Mailgun documents only 200 as success.
    - A duplicate (same event id or Message-ID) is a success: the first delivery was stored, and a non-200
      would make the provider send it again and again.
    - 401 is retried by Postmark (only 403 stops it) and Mailgun (only 406 stops it), which is wanted: a
      rotated secret or signing key that is wrong on our side must not lose mail while it is fixed, and a
      forger gains nothing from a retry. SendGrid's page says it retries 5xx answers; whether it also retries
      4xx is not stated, so a wrong SendGrid secret may lose mail: watch the 401 rate after rotating it.
    - 403/406/400 stop the retries for a payload that can never be taken; the error message says why.
    - 503 for transient failures: all three providers retry it (Postmark ~10.5 h, Mailgun 8 h, SendGrid
      3 days). Unconfigured secrets are transient too, so mail waits at the provider until they are set.
    """

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_outcome(cls, provider: str, error: InboundError | None) -> ProviderResponse:
        status = status_for(provider, error)
        if error is None:
            return cls(status, "ok")
        if isinstance(error, InboundAuthError):
            # Which check failed stays in the log, not in the answer to a possible forger.
            return cls(status, "authentication failed", {"WWW-Authenticate": BASIC_CHALLENGE})
        return cls(status, error.message)


def redis_token_release(url: str, token: str, *, prefix: str = "tierdesk:inbound:token:") -> None:
    """Forget a token whose delivery failed transiently, so the provider's retry of it is not a replay."""
    # On failure the retry will be refused as a replay and logged; nothing more can be done here.
    with contextlib.suppress(redis.RedisError):
        _redis(url).delete(f"{prefix}{token}")
