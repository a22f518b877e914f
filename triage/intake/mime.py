"""Raw MIME and provider-parsed mail turned into one `InboundEmail`, normalised the same way for both.

`parse_mime` reads the message with the standard library's `email` package and hands the pieces to
`from_parts`' code path, so a message that arrives as raw MIME and the same message arriving as a
provider's parsed JSON come out alike: same ids, addresses, text, sanitised HTML, reply text, noise and
bounce flags.
"""

from __future__ import annotations

import codecs
import hashlib
import html as html_lib
import json
import mimetypes
import re
import secrets
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import lxml.etree
import lxml.html
import nh3
from charset_normalizer import from_bytes as detect_charset
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from mailparser_reply import EmailReplyParser

from triage.intake.types import Attachment, InboundEmail, InboundError

__all__ = ["decode_bytes", "from_parts", "html_to_text", "parse_mime", "sanitize_html", "strip_reply"]

# Headers kept on InboundEmail.headers (lower-case names). They are what noise, loop and bounce decisions
# are made from, so an agent can see why a message was flagged; everything else stays in `raw`.
KEPT_HEADERS = frozenset({
    "auto-submitted", "precedence", "x-auto-response-suppress", "x-autoreply", "x-autorespond",
    "list-id", "list-unsubscribe", "list-post", "return-path", "reply-to", "content-type",
    "x-failed-recipients",
})
TIERDESK_HEADER_PREFIX = "x-tierdesk-"

# A byte string with none of these headers is not an email, whatever else it has.
_EMAIL_HEADERS = frozenset({
    "from", "sender", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
    "mime-version", "received", "return-path", "reply-to", "delivered-to", "content-type",
})

_MAX_PARTS = 500  # a message with more MIME parts than this is hostile or broken; the rest is ignored
_MAX_DEPTH = 30  # nesting beyond this is not something a mail client produces
_MAX_HEADER_CHARS = 2000
_MAX_REFERENCES = 100
# mail-parser-reply's patterns are worse than quadratic in the line length (measured: one 16k-char line
# takes 15 s, a 300-char "Am … schrieb …" line 37 ms), so it reads only the first 16k characters, with
# lines over 200 characters shelved; a quote header is never that long, and a reply whose new part is
# longer than 16k characters is kept whole. Worst case measured: under a second.
_REPLY_SCAN_CHARS = 16384
_REPLY_PARSER_MAX_LINE = 200
_REPLY_MAX_LINE = 500
# The stdlib parser with policy.default costs about half a millisecond per MIME part, more with long part
# headers; a message built from a thousand parts or a hundred nested multiparts is an attack, not mail.
_MAX_PART_DELIMITERS = 500
_MAX_BOUNDARIES = 100
_BOUNDARY_PARAM_RE = re.compile(
    rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.IGNORECASE
)
_DASH_LINE_RE = re.compile(rb"^--([^\r\n]{1,202})", re.MULTILINE)
# The header registry is quadratic in time and memory on long values (measured: a 280k-char Subject of
# encoded words takes 2.7 GB), so nothing longer than these reaches it; real headers are far shorter.
_MAX_REGISTRY_CHARS = 4096
_MAX_PART_HEADER_CHARS = 1024
# Part headers (Content-Type, Content-Disposition, ...) cost up to ~10 ms per kilobyte to parse; past this
# many characters in one message, each is cut to _SHORT_PART_HEADER_CHARS. Real mail never gets near it.
_PART_HEADER_BUDGET = 32 * 1024
_SHORT_PART_HEADER_CHARS = 64


@dataclass
class _ParseState:
    budget: int = _PART_HEADER_BUDGET
    parsed: dict[tuple[str, str], Any] = field(default_factory=dict)


# Set while parse_mime runs: per message, and per thread or task, without touching the immutable policy.
_PARSE_STATE: ContextVar[_ParseState | None] = ContextVar("tierdesk_mime_parse_state", default=None)


class _BoundedPolicy(EmailPolicy):
    """`email.policy.default` (which is `EmailPolicy()`) with a bound on the work of reading part headers.

    The feed parser re-parses each part's Content-Type three or four times and accessors parse again, so
    each value is parsed once per message (header objects are immutable), and a message whose part headers
    add up to more than the budget gets them shortened: such a message is an attack, not mail.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        state = _PARSE_STATE.get()
        if not isinstance(value, str) or state is None:
            return super().header_fetch_parse(name, value)
        key = (name.lower(), value)
        if key not in state.parsed:
            cut = value[: _MAX_PART_HEADER_CHARS if state.budget > 0 else _SHORT_PART_HEADER_CHARS]
            state.budget -= len(cut)
            state.parsed[key] = super().header_fetch_parse(name, cut)
        return state.parsed[key]


_BOUNDED_POLICY = _BoundedPolicy()

_ID_RE = re.compile(r"<([^<>]*)>")
_WS_RE = re.compile(r"\s+")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# C0 controls other than tab and newline: PostgreSQL text cannot hold NUL and none of them is content.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufeff]")
_HEADER_CONTROL_RE = re.compile("[\x00-\x1f\x7f]")
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_XML_DECLARATION_RE = re.compile(r"^<\?xml[^>]*>")
_TAG_RE = re.compile(r"<[^>]*>")
_CID_REF_RE = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- raw MIME


def parse_mime(
    raw: bytes, *, max_attachment_bytes: int = 10 * 1024 * 1024, max_attachments: int = 20
) -> InboundEmail:
    token = _PARSE_STATE.set(_ParseState())
    try:
        return _parse_mime(
            bytes(raw), max_attachment_bytes=max_attachment_bytes, max_attachments=max_attachments
        )
    finally:
        _PARSE_STATE.reset(token)


def _parse_mime(raw: bytes, *, max_attachment_bytes: int, max_attachments: int) -> InboundEmail:
    if not raw.strip():
        raise InboundError("the message is empty", permanent=True)
    _refuse_part_floods(raw)
    # The feed parser records defects instead of raising; this guard is for the parser bugs that remain.
    try:
        message = BytesParser(policy=_BOUNDED_POLICY).parsebytes(raw)
    except Exception as exc:
        raise InboundError(f"the message cannot be parsed as MIME: {exc!r}", permanent=True) from exc
    raw_headers = _raw_headers(message)
    if not _EMAIL_HEADERS & raw_headers.keys():
        raise InboundError(
            "not an email: no From, To, Subject, Date, Message-ID or other message header", permanent=True
        )

    walk = _Walk()
    walk.visit(message, parent_type="", in_related=False, depth=0)
    html = "\n".join(walk.html)
    attachments, dropped = _load_attachments(
        walk.attachments, html=html, max_bytes=max_attachment_bytes, max_count=max_attachments
    )
    notes: dict[str, str] = {}
    if dropped or walk.skipped_parts:
        notes["x-tierdesk-dropped-attachments"] = str(len(dropped) + walk.skipped_parts)
    if dropped:
        notes["x-tierdesk-dropped-attachment-names"] = _truncate(", ".join(dropped), _MAX_HEADER_CHARS)

    return _build(
        message_id=raw_headers.get("message-id"),
        in_reply_to=raw_headers.get("in-reply-to"),
        references=raw_headers.get("references"),
        subject=raw_headers.get("subject", ""),
        # A message without From is rare (some scripts); Sender is the next best answer to "who sent it".
        from_header=raw_headers.get("from") or raw_headers.get("sender") or "",
        to=raw_headers.get("to", ""),
        cc=raw_headers.get("cc", ""),
        date=raw_headers.get("date"),
        text="\n\n".join(part for part in walk.plain if part.strip()),
        html=html,
        headers=raw_headers,
        attachments=attachments,
        stripped_text=None,
        raw=raw,
        notes=notes,
    )


def _refuse_part_floods(raw: bytes) -> None:
    # Counted on the bytes before parsing, because the parsing is what costs. Only lines that open a part
    # of a declared boundary count, so a pasted SQL script full of "-- comments" is not mistaken for one.
    boundaries = {match.group(1) or match.group(2) for match in _BOUNDARY_PARAM_RE.finditer(raw)}
    if len(boundaries) > _MAX_BOUNDARIES:
        raise InboundError(
            f"the message declares more than {_MAX_BOUNDARIES} MIME boundaries", permanent=True
        )
    if not boundaries:
        return
    delimiters = 0
    for line in _DASH_LINE_RE.finditer(raw):
        if any(line.group(1).startswith(boundary) for boundary in boundaries):
            delimiters += 1
            if delimiters > _MAX_PART_DELIMITERS:
                raise InboundError(
                    f"the message has more than {_MAX_PART_DELIMITERS} MIME parts", permanent=True
                )


def _raw_headers(message: Message) -> dict[str, str]:
    """First occurrence of each header, unfolded, undecoded (RFC 2047 words are decoded later, once)."""
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        key = str(name).strip().lower()
        if key in headers:
            # To and Cc may legally be split over several headers by some mailers; keep every address.
            if key in ("to", "cc"):
                headers[key] = f"{headers[key]}, {_unfold(str(value))}"
            continue
        headers[key] = _unfold(str(value))
    return headers


@dataclass
class _FoundAttachment:
    part: Message
    content_type: str
    filename: str
    content_id: str | None
    disposition: str | None
    in_related: bool


@dataclass
class _Walk:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[_FoundAttachment] = field(default_factory=list)
    visited: int = 0
    skipped_parts: int = 0

    def visit(self, part: Message, *, parent_type: str, in_related: bool, depth: int) -> None:
        if self.visited >= _MAX_PARTS or depth > _MAX_DEPTH:
            self.skipped_parts += 1
            return
        self.visited += 1
        content_type = _safe_content_type(part)
        payload = part.get_payload()
        if content_type.startswith("multipart/") and isinstance(payload, list):
            related = in_related or content_type == "multipart/related"
            for child in payload:
                if isinstance(child, Message):
                    self.visit(child, parent_type=content_type, in_related=related, depth=depth + 1)
            return
        disposition = _safe_call(part.get_content_disposition, None)
        filename = _part_filename(part)
        maintype = content_type.split("/", 1)[0]
        is_body_type = content_type in ("text/plain", "text/html") or maintype == "multipart"
        if is_body_type and disposition != "attachment" and not filename:
            # A multipart part without a usable boundary is a body the sender meant to write; read it as text.
            text = _decode_text_part(part)
            (self.html if content_type == "text/html" else self.plain).append(text)
            return
        if parent_type == "multipart/alternative" and maintype == "text" and content_type != "text/calendar":
            # Other renderings of the same body (text/enriched, text/watch-html, AMP): nothing new to keep.
            return
        content_id = _clean_content_id(_safe_call(lambda: part.get("content-id"), None))
        self.attachments.append(_FoundAttachment(
            part=part, content_type=content_type, filename=filename, content_id=content_id,
            disposition=disposition, in_related=in_related,
        ))


def _load_attachments(
    found: Sequence[_FoundAttachment], *, html: str, max_bytes: int, max_count: int
) -> tuple[tuple[Attachment, ...], list[str]]:
    referenced = {unquote(ref).strip().lower() for ref in _CID_REF_RE.findall(html)}
    kept: list[Attachment] = []
    dropped: list[str] = []
    for index, item in enumerate(found, start=1):
        name = item.filename or _default_filename(item.content_type, index)
        if len(kept) >= max_count or _encoded_size_exceeds(item.part, max_bytes):
            dropped.append(name)
            continue
        content = _attachment_bytes(item.part, item.content_type)
        if content is None or len(content) > max_bytes:
            dropped.append(name)
            continue
        # Inline means "shown inside the HTML body": referenced by a cid: URL, or a Content-ID image in a
        # multipart/related that is not explicitly an attachment.
        inline = item.content_id is not None and (
            item.content_id.lower() in referenced or (item.in_related and item.disposition != "attachment")
        )
        kept.append(Attachment(
            filename=name, content_type=item.content_type, content=content,
            content_id=item.content_id, inline=inline,
        ))
    return tuple(kept), dropped


def _encoded_size_exceeds(part: Message, max_bytes: int) -> bool:
    """Rejects an oversized base64 attachment before decoding it into memory."""
    payload = part.get_payload()
    if not isinstance(payload, str) or len(payload) <= max_bytes:
        return False
    encoding = str(_safe_call(lambda: part.get("content-transfer-encoding", ""), "")).strip().lower()
    if encoding != "base64":
        return False
    significant = len(payload) - payload.count("\n") - payload.count("\r") - payload.count(" ")
    return significant * 3 // 4 - 2 > max_bytes


def _attachment_bytes(part: Message, content_type: str) -> bytes | None:
    if content_type.startswith("message/"):
        return _message_part_body(part)
    payload = _safe_call(lambda: part.get_payload(decode=True), None)
    if isinstance(payload, bytes):
        return payload
    return _message_part_body(part)


def _message_part_body(part: Message) -> bytes | None:
    # message/rfc822 and message/delivery-status parts hold parsed messages, not bytes; serialising the
    # part and cutting its own header block off gives back the body as it was sent.
    try:
        data = part.as_bytes()
    except Exception:
        return None
    ends = [(index, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (index := data.find(sep)) >= 0]
    if not ends:
        return b""
    index, length = min(ends)
    return data[index + length:]


def _safe_content_type(part: Message) -> str:
    content_type = _safe_call(part.get_content_type, "text/plain")
    return str(content_type).lower() if content_type else "text/plain"


def _part_filename(part: Message) -> str:
    name = _safe_call(part.get_filename, None) or _safe_call(lambda: part.get_param("name"), None)
    if isinstance(name, tuple):  # an RFC 2231 (charset, language, value) triple
        name = _safe_call(lambda: collapse_rfc2231_value(name), None)
    if not name:
        return ""
    text = _fix_surrogates(str(name))
    if "=?" in text:  # RFC 2047 inside a quoted parameter: not standard, but Outlook and Gmail send it
        text = _decode_encoded_words(text)
    text = _HEADER_CONTROL_RE.sub("", text)
    # Never let a sender choose a path.
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip().strip(".") or ""
    if len(text) > 200:
        stem, dot, ext = text.rpartition(".")
        text = (stem[: 190] + dot + ext[:9]) if dot and len(ext) < 10 else text[:200]
    return text


# Only Python's built-in table, so a default name does not depend on the machine's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()
_DEFAULT_NAMES = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/global-delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "message-headers.txt",
    "message/global-headers": "message-headers.txt",
}


def _default_filename(content_type: str, index: int) -> str:
    if content_type in _DEFAULT_NAMES:
        return _DEFAULT_NAMES[content_type]
    extension = _MIME_TYPES.guess_extension(content_type, strict=False) or ".bin"
    return f"attachment-{index}{extension}"


def _clean_content_id(value: object) -> str | None:
    if value is None:
        return None
    text = _HEADER_CONTROL_RE.sub("", _unfold(_fix_surrogates(str(value)))).strip().strip("<>").strip()
    return text[:_MAX_HEADER_CHARS] or None


def _decode_text_part(part: Message) -> str:
    payload = _safe_call(lambda: part.get_payload(decode=True), None)
    if not isinstance(payload, bytes):
        payload = b""
    charset = _safe_call(part.get_content_charset, None)
    text = _clean_text(decode_bytes(payload, charset))
    params = {
        str(key).lower(): str(value).lower()
        for key, value in (_safe_call(lambda: part.get_params(header="content-type"), None) or [])
        if isinstance(value, str)
    }
    if _safe_content_type(part) == "text/plain" and params.get("format") == "flowed":
        text = _unflow(text, delsp=params.get("delsp") == "yes")
    return text


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed back to paragraphs (Thunderbird and Apple Mail send it).

    The stdlib does not decode it and the one PyPI package for it (formatflowed) was last released in 2016.
    """
    out: list[str] = []
    paragraph: str | None = None
    depth_of_paragraph = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content.removeprefix(" ")  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if paragraph is not None and depth != depth_of_paragraph:
            out.append(_quote_prefix(depth_of_paragraph) + paragraph)
            paragraph = None
        if paragraph is None:
            paragraph, depth_of_paragraph = content, depth
        else:
            paragraph += content
        if not flowed:
            out.append(_quote_prefix(depth_of_paragraph) + paragraph)
            paragraph = None
    if paragraph is not None:
        out.append(_quote_prefix(depth_of_paragraph) + paragraph)
    return "\n".join(line.rstrip() for line in out)


def _quote_prefix(depth: int) -> str:
    return ">" * depth + " " if depth else ""


# ------------------------------------------------------------------------------------------- charsets

# Labels that senders use but Python does not know, or where a superset is what mailers really send:
# Windows mailers write windows-1252 bytes under an iso-8859-1 label and cp932 under Shift_JIS (as the
# WHATWG encoding standard also assumes).
_CHARSET_ALIASES: dict[str, tuple[str, ...]] = {
    "ascii": ("utf-8", "cp1252", "latin-1"),
    "iso8859-1": ("utf-8", "cp1252", "latin-1"),
    "cp1252": ("cp1252", "utf-8", "latin-1"),
    "iso8859-15": ("iso8859-15", "utf-8", "cp1252"),
    "shift_jis": ("cp932", "shift_jis"),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3"),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "euc_kr": ("cp949",),
    "big5": ("big5hkscs", "cp950"),
}
_LABEL_ALIASES = {
    "ks_c_5601-1987": "cp949", "x-sjis": "shift_jis", "windows-31j": "cp932", "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman", "unicode-1-1-utf-7": "utf-7", "tis-620": "cp874", "windows-874": "cp874",
    "iso-8859-8-i": "iso8859-8", "x-gbk": "gbk",
}
# Python text codecs that no mailer means: decoding with them would turn bytes into escapes or worse.
_REFUSED_CODECS = frozenset({
    "unicode_escape", "raw_unicode_escape", "punycode", "idna", "undefined", "mbcs", "oem",
})
_DETECT_BYTES = 64 * 1024


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Bytes of a declared (or undeclared, or wrong) charset to text, never raising."""
    for encoding in _candidate_encodings(declared):
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    best = detect_charset(data[:_DETECT_BYTES]).best()
    if best is not None:
        try:
            return data.decode(best.encoding)
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("cp1252", errors="replace")


def _candidate_encodings(declared: str | None) -> tuple[str, ...]:
    label = (declared or "").strip().strip("\"'").lower()
    label = _LABEL_ALIASES.get(label, label)
    if not label:
        return ("utf-8",)
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return ("utf-8",)
    if name in _REFUSED_CODECS:
        return ("utf-8",)
    return (*_CHARSET_ALIASES.get(name, (name,)), "utf-8")


def _fix_surrogates(text: str) -> str:
    """Turns the bytes the parser kept as surrogate escapes (8-bit headers, undecodable words) into text."""
    if not _SURROGATE_RE.search(text):
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATE_RE.sub("\ufffd", text)
    return decode_bytes(data, None)


def _clean_text(text: str) -> str:
    text = _fix_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_RE.sub("", text)


# -------------------------------------------------------------------------------------------- headers


def _unfold(value: str) -> str:
    return _FOLD_RE.sub("", value)


def _decode_encoded_words(value: str) -> str:
    # decode_header raises on malformed words: binascii errors, unknown charsets, HeaderParseError.
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


def _header_text(name: str, value: object) -> str:
    """A header value as display text: unfolded, RFC 2047 words decoded, control characters removed."""
    if value is None:
        return ""
    text = _unfold(_fix_surrogates(str(value)))[:_MAX_REGISTRY_CHARS]
    if "=?" in text:
        try:
            text = str(policy.default.header_factory(name, text))
        except Exception:
            text = _decode_encoded_words(text)
        text = _fix_surrogates(text)
    text = _WS_RE.sub(" ", _HEADER_CONTROL_RE.sub(" ", text)).strip()
    return _truncate(text, _MAX_HEADER_CHARS)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _select_headers(headers: Mapping[str, str]) -> dict[str, str]:
    selected: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name).strip().lower()
        # x-tierdesk-* headers are ours: a sender must not be able to set them.
        if key in KEPT_HEADERS and key not in selected:
            selected[key] = _header_text(key, value)
    return selected


def _parse_addresses(value: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs, in order, without duplicates."""
    if value is None:
        return []
    values = [value] if isinstance(value, str) else [str(item) for item in value]
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in values:
        for name, address in _parse_address_header(item):
            address = _HEADER_CONTROL_RE.sub("", address).strip().lower()
            if address in ("", "<>") or address in seen:
                continue
            seen.add(address)
            pairs.append((name, address))
    return pairs


def _parse_address_header(value: str) -> list[tuple[str, str]]:
    text = _unfold(_fix_surrogates(value)).strip()
    if not text:
        return []
    if len(text) <= _MAX_REGISTRY_CHARS:
        parsed = _safe_call(lambda: policy.default.header_factory("to", text).addresses, None)
        if parsed is not None:
            return [(_header_text("to", a.display_name), str(a.addr_spec)) for a in parsed]
    # The lenient, regex-based parser: fast on a list of hundreds of recipients. Display names are still
    # RFC 2047 words here (they cannot contain a bare comma), so they are decoded afterwards.
    return [(_header_text("to", name), address) for name, address in getaddresses([text])]


def _parse_sender(value: str) -> tuple[str, str]:
    text = _unfold(_fix_surrogates(value or "")).strip()
    if not text or text.replace(" ", "") == "<>":
        return "", ""
    for name, address in _parse_address_header(text):
        address = _HEADER_CONTROL_RE.sub("", address).strip().lower()
        if address == "<>":
            address = ""
        return name, address
    return "", ""


def _ids(value: str | Sequence[str] | None) -> list[str]:
    """Message ids without angle brackets, in order; junk between them (comments, dates) is ignored."""
    if value is None:
        return []
    values = [value] if isinstance(value, str) else [str(item) for item in value]
    found: dict[str, None] = {}
    for item in values:
        item = _HEADER_CONTROL_RE.sub(" ", _unfold(_fix_surrogates(item)))
        # Some mailers drop the brackets; a bare token then only counts if it looks like an id.
        candidates = _ID_RE.findall(item) or [t.strip("<>,;\"'()[]") for t in item.split() if "@" in t]
        for candidate in candidates:
            cleaned = _WS_RE.sub("", candidate).strip("<>")
            if cleaned and len(cleaned) <= 998:
                found.setdefault(cleaned, None)
    ids = list(found)
    if len(ids) > _MAX_REFERENCES:
        # Threading needs the root and the most recent ids; a chain this long is otherwise noise.
        ids = ids[:1] + ids[-(_MAX_REFERENCES - 1):]
    return ids


def _parse_date(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = _header_text("date", value)
        if not text:
            return None
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        # RFC 5322's "-0000" means UTC with the sender's zone unknown; providers' naive values are UTC too.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# ------------------------------------------------------------------------------------ provider parts


def from_parts(
    *,
    message_id: str | None,
    in_reply_to: str | None,
    references: str | Sequence[str] | None,
    subject: str,
    from_header: str,
    to: str | Sequence[str],
    cc: str | Sequence[str],
    date: str | datetime | None,
    text: str,
    html: str,
    headers: Mapping[str, str],
    attachments: Sequence[Attachment],
    stripped_text: str | None = None,
    raw: bytes | None = None,
) -> InboundEmail:
    return _build(
        message_id=message_id, in_reply_to=in_reply_to, references=references, subject=subject,
        from_header=from_header, to=to, cc=cc, date=date, text=text, html=html, headers=headers,
        attachments=attachments, stripped_text=stripped_text, raw=raw, notes={},
    )


def _build(
    *,
    message_id: str | None,
    in_reply_to: str | None,
    references: str | Sequence[str] | None,
    subject: str,
    from_header: str,
    to: str | Sequence[str],
    cc: str | Sequence[str],
    date: str | datetime | None,
    text: str,
    html: str,
    headers: Mapping[str, str],
    attachments: Sequence[Attachment],
    stripped_text: str | None,
    raw: bytes | None,
    notes: Mapping[str, str],
) -> InboundEmail:
    kept = _select_headers(headers or {})
    from_name, from_email = _parse_sender(from_header)
    to_addresses = tuple(address for _, address in _parse_addresses(to))
    cc_addresses = tuple(address for _, address in _parse_addresses(cc))
    subject_text = _header_text("subject", subject)
    sent_at = _parse_date(date)

    body_text = _clean_text(text or "").strip("\n")
    safe_html = sanitize_html(html) if html and html.strip() else ""
    if not body_text.strip() and safe_html:
        body_text = html_to_text(safe_html)
    if stripped_text is not None and stripped_text.strip():
        reply_text = strip_reply(_clean_text(stripped_text))
    else:
        reply_text = strip_reply(body_text)

    attachments = tuple(attachments)
    bounce = _bounce(
        kept, from_email=from_email, subject=subject_text, text=body_text, attachments=attachments
    )
    reasons = _noise_reasons(kept, from_email=from_email)
    if bounce.report_type:
        reasons.append(f"report:{bounce.report_type}")

    out_headers = dict(kept)
    out_headers.update(
        {k.lower(): v for k, v in notes.items() if k.lower().startswith(TIERDESK_HEADER_PREFIX)}
    )
    if reasons:
        out_headers["x-tierdesk-noise"] = ", ".join(reasons)
    if bounce.actions:
        out_headers["x-tierdesk-dsn-action"] = ", ".join(bounce.actions)

    ids = _ids(message_id)
    reply_ids = _ids(in_reply_to)
    return InboundEmail(
        message_id=ids[0] if ids else _generated_message_id(
            raw, from_email=from_email, to=to_addresses, subject=subject_text, date=sent_at, text=body_text,
            html=safe_html,
        ),
        in_reply_to=reply_ids[0] if reply_ids else None,
        references=tuple(_ids(references)),
        subject=subject_text,
        from_email=from_email,
        from_name=from_name,
        to=to_addresses,
        cc=cc_addresses,
        date=sent_at,
        text=body_text,
        html=safe_html,
        reply_text=reply_text,
        attachments=attachments,
        headers=out_headers,
        auto_submitted=bool(reasons),
        is_bounce=bounce.is_bounce,
        bounced_message_id=bounce.message_id,
        raw=raw,
    )


def _generated_message_id(
    raw: bytes | None, *, from_email: str, to: Sequence[str], subject: str, date: datetime | None,
    text: str, html: str,
) -> str:
    # Stable, so a redelivered copy of the same message gets the same id and is deduplicated.
    if raw is not None:
        digest = hashlib.sha256(raw).hexdigest()
    else:
        fields = [from_email, list(to), subject, date.isoformat() if date else None, text, html]
        digest = hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8", "replace")).hexdigest()
    return f"generated-{digest}@tierdesk.invalid"


# ------------------------------------------------------------------------------------ noise and bounces

_NOISE_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "postmaster"})
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered mail|returned mail|mail delivery (?:failed|failure|subsystem)|"
    r"delivery (?:status notification|failure|has failed)|failure notice|non[- ]?delivery|"
    r"unzustellbar|nicht zustellbar|non remis|no entregado|non recapitabile",
    re.IGNORECASE,
)
_RETURNED_MESSAGE_TYPES = frozenset({
    "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers",
})
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ACTION_RE = re.compile(r"^Action:[ \t]*([A-Za-z-]+)", re.MULTILINE | re.IGNORECASE)
_INLINE_MESSAGE_ID_RE = re.compile(r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+)>", re.MULTILINE | re.IGNORECASE)


def _noise_reasons(headers: Mapping[str, str], *, from_email: str) -> list[str]:
    """Why a message must get no automatic answer (RFC 3834 and what mailers really send); [] for a person."""
    reasons: list[str] = []
    auto = headers.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        reasons.append(f"auto-submitted:{auto}")
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _NOISE_PRECEDENCE:
        reasons.append(f"precedence:{precedence}")
    if "x-auto-response-suppress" in headers:
        # Exchange sets it on its own auto-replies and on mail from systems that ask not to be answered.
        reasons.append("x-auto-response-suppress")
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        reasons.append("x-autoreply")
    if "list-id" in headers or "list-unsubscribe" in headers or "list-post" in headers:
        # RFC 3834 §2: never auto-respond to list mail. List-Unsubscribe is what every bulk sender adds
        # (Gmail and Yahoo require it since 2024) and what a person's own mail client never does.
        reasons.append("list")
    if not from_email or headers.get("return-path", "").replace(" ", "") == "<>":
        reasons.append("null-sender")
    if from_email.split("@", 1)[0] in _DAEMON_LOCALPARTS:
        reasons.append("mailer-daemon")
    return reasons


@dataclass(frozen=True)
class _Bounce:
    is_bounce: bool = False
    message_id: str | None = None
    report_type: str | None = None
    actions: tuple[str, ...] = ()


def _bounce(
    headers: Mapping[str, str], *, from_email: str, subject: str, text: str, attachments: Sequence[Attachment]
) -> _Bounce:
    content_type, params = _content_type(headers.get("content-type", ""))
    report_type = None
    if content_type == "multipart/report":
        report_type = params.get("report-type", "").strip().lower() or "unknown"
    actions: tuple[str, ...] = ()
    if report_type == "delivery-status":
        found: dict[str, None] = {}
        for attachment in attachments:
            if attachment.content_type in _DSN_TYPES:
                for action in _ACTION_RE.findall(attachment.content.decode("utf-8", "replace")):
                    found.setdefault(action.lower(), None)
        actions = tuple(found)
        # A "delayed" or "delivered" report is a notice, not a failure: the message may still arrive.
        is_bounce = not actions or "failed" in actions
    elif report_type is not None:
        is_bounce = False  # read receipts (disposition-notification), abuse reports (feedback-report)
    else:
        daemon = not from_email or from_email.split("@", 1)[0] in _DAEMON_LOCALPARTS
        is_bounce = daemon and (bool(_BOUNCE_SUBJECT_RE.search(subject)) or "x-failed-recipients" in headers)
    if not is_bounce:
        return _Bounce(report_type=report_type, actions=actions)
    return _Bounce(
        is_bounce=True, message_id=_returned_message_id(text, attachments), report_type=report_type,
        actions=actions,
    )


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    try:
        header: Any = policy.default.header_factory("content-type", value[:_MAX_PART_HEADER_CHARS])
        return str(header.content_type).lower(), {str(k).lower(): str(v) for k, v in header.params.items()}
    except Exception:
        return value.split(";", 1)[0].strip().lower(), {}


def _returned_message_id(text: str, attachments: Sequence[Attachment]) -> str | None:
    for attachment in attachments:
        if attachment.content_type in _RETURNED_MESSAGE_TYPES:
            try:
                returned = BytesHeaderParser(policy=policy.compat32).parsebytes(attachment.content)
                ids = _ids(str(returned.get("message-id", "")))
            except Exception:
                ids = []
            if ids:
                return ids[0]
    # Non-standard bounces (qmail, some Exim setups) paste the returned message into the text.
    match = _INLINE_MESSAGE_ID_RE.search(text)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------- HTML

_ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
    "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol",
    "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "tt", "u", "ul",
})
# Removed with everything inside them; other unknown tags (font, o:p, form...) are unwrapped to their text.
_DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "title", "noscript", "template", "iframe", "object", "embed", "applet", "frame",
    "frameset", "svg", "math", "head",
})
_ALLOWED_ATTRIBUTES = {
    "*": {"dir", "lang"},
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start", "type"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    is_cid = value.strip().lower().startswith("cid:")
    if tag == "img" and attribute == "src":
        # Only images carried in the message itself: a remote image is a tracking pixel at best and tells
        # the sender when an agent opened the ticket.
        return value if is_cid else None
    if attribute == "href" and is_cid:
        return None
    return value


# html5ever (inside nh3) is quadratic in the nesting of block elements: 100,000 nested <div>s take 100 s.
_BLOCK_TAG_RE = re.compile(
    r"<(/?)(?:div|blockquote|ul|ol|dl|center|section|article|aside|header|footer|nav|main|figure|details"
    r"|fieldset|address|menu|dir|form|pre|listing|dialog|hgroup|h[1-6])\b",
    re.IGNORECASE,
)
_MAX_BLOCK_DEPTH = 2000


def _block_nesting_exceeds(html: str, limit: int) -> bool:
    depth = 0
    for match in _BLOCK_TAG_RE.finditer(html):
        if match.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def _text_as_html(text: str) -> str:
    paragraphs = [html_lib.escape(p).replace("\n", "<br>") for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)


def sanitize_html(html: str) -> str:
    """HTML safe to show an agent: allow-listed tags and attributes; cid: images kept for the UI to map."""
    if not html:
        return ""
    html = _clean_text(html)
    if _block_nesting_exceeds(html, _MAX_BLOCK_DEPTH):
        # No mail client nests blocks this deep; show the text rather than spend minutes sanitising.
        return _text_as_html(html_to_text(html))
    return nh3.clean(
        html,
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        url_schemes=set(_URL_SCHEMES),
        url_relative="deny",  # a relative link in an email has no base to resolve against
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    ).strip()


def _text_config() -> ParserConfig:
    css = dict(CSS_PROFILES["strict"])
    # Mail HTML is laid out with nested tables; rendering them as text tables pads every line to the widest
    # cell. One row per line, cells separated by a space, reads better and is what agents and models need.
    css.update({
        "table": HtmlElement(display=Display.block),
        "tr": HtmlElement(display=Display.block),
        "td": HtmlElement(display=Display.inline, suffix=" ", limit_whitespace_affixes=True),
        "th": HtmlElement(display=Display.inline, suffix=" ", limit_whitespace_affixes=True),
    })
    tables_off: Any = {"table": None, "tr": None, "td": None, "th": None}
    return ParserConfig(
        css=css,
        display_links=True,
        display_images=True,
        custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
            start_tag_mapping=tables_off, end_tag_mapping=tables_off
        ),
    )


_TEXT_CONFIG = _text_config()


def html_to_text(html: str) -> str:
    """Readable text: paragraphs and line breaks kept, list items bulleted, links as [text](url)."""
    cleaned = _XML_DECLARATION_RE.sub("", _clean_text(html or "").strip(), count=1)
    if not cleaned:
        return ""
    try:
        # huge_tree lifts libxml2's nesting limit from 256 to 2048 levels (below it, text is silently dropped;
        # long Outlook threads get past 256). A parser per call: lxml parsers must not be shared by threads.
        tree = lxml.html.document_fromstring(cleaned, parser=lxml.html.HTMLParser(huge_tree=True))
    except (lxml.etree.ParserError, ValueError):
        return _tidy_text(html_lib.unescape(_TAG_RE.sub(" ", cleaned)))
    for anchor in tree.iter("a"):
        href = (anchor.get("href") or "").strip()
        label = anchor.text_content().strip()
        # "[https://x](https://x)" and "[a@b](mailto:a@b)" say the same thing twice.
        if not href or href.startswith("#") or href in (label, f"mailto:{label}"):
            anchor.attrib.pop("href", None)
    try:
        text = Inscriptis(tree, _TEXT_CONFIG).get_text()
    except RecursionError:  # inscriptis walks the tree recursively; absurd nesting gets plain text instead
        text = str(tree.text_content())
    return _tidy_text(text)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\xa0", " ").split("\n")]
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------------------- reply text

# Every language mail-parser-reply knows except Polish, whose pattern splits on one "Data:" or "Do:" line.
_REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "da", "sv", "cs", "ja", "ko", "zh"]
_REPLY_PARSER = EmailReplyParser(languages=_REPLY_LANGUAGES)

# Quote headers mail-parser-reply 1.36 misses: its Spanish pattern wants two spaces before "escribió", its
# French look-ahead rejects any line with "le " in a name (case-insensitively, so "Example Shop"), and it
# has no Portuguese. Matched per line (or a line and the next, for Gmail's wrapping) so cost stays linear.
_EXTRA_QUOTE_HEADER_RE = re.compile(
    r"(?:El\s.{1,300}\sescribi[óo]\s?:"
    r"|Le\s.{1,300}\sa\s[ée]crit\s?:"
    r"|Em\s.{1,300}\sescreveu\s?:"
    r"|-{2,}\s*(?:Original Message|Forwarded message|Mensaje original|Mensaje reenviado|Message d'origine"
    r"|Message transf[ée]r[ée]|Urspr[üu]ngliche Nachricht|Weitergeleitete Nachricht|Messaggio originale"
    r"|Messaggio inoltrato|Oorspronkelijk bericht|Doorgestuurd bericht|Mensagem original"
    r"|Mensagem encaminhada)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:"
    r"|D[ée]but du message r[ée]exp[ée]di[ée]\s?:"
    r"|-{2,3} Below this line is a copy of the message\.?)",  # qmail's bounce
    re.IGNORECASE,
)
_SENT_FROM_RE = re.compile(
    r"(?:sent from (?:my )?[\w .'’-]{1,40}|sent with [\w .'’-]{1,40}|get outlook for (?:ios|android)\b.*"
    r"|sent from (?:mail|outlook) for windows.*|von meinem [\w .-]{1,30} gesendet"
    r"|gesendet von (?:meinem )?[\w .-]{1,40}"
    r"|enviado desde mi [\w .-]{1,40}|envoy[ée] de mon [\w .-]{1,40}|inviato da(?:l mio)? [\w .-]{1,40}"
    r"|verzonden (?:vanaf|met) (?:mijn )?[\w .-]{1,40}|enviado do meu [\w .-]{1,40}"
    r"|skickat från min [\w .-]{1,40}"
    r"|sendt fra min [\w .-]{1,40}|(?:iphone|android|ipad)から送信)",
    re.IGNORECASE,
)
_RULE_RE = re.compile(r"_{30,}")
# An attribution line ("Ana wrote:", "2025年3月3日 … :") carries a date, a time or an address.
_ATTRIBUTION_HINT_RE = re.compile(r"@|\d{1,2}:\d{2}|\b(?:19|20)\d{2}\b|\d{4}年")


def strip_reply(text: str) -> str:
    """What the sender wrote this time: quoted replies, forwarded originals and the signature removed.

    Falls back to the whole text when nothing would be left (a bare forward, or a message that is all quote).
    """
    full = _clean_text(text or "").strip()
    if not full:
        return ""
    reply = _split_latest_reply(full)
    lines = _cut_extra_quote_header(reply.split("\n"))
    lines = _drop_quoted_lines(lines)
    lines = _cut_signature(lines)
    result = _BLANK_RUN_RE.sub("\n\n", "\n".join(line.rstrip() for line in lines)).strip()
    return result or full


def _split_latest_reply(full: str) -> str:
    head = full
    if len(full) > _REPLY_SCAN_CHARS:
        head = full[: full.rfind("\n", 0, _REPLY_SCAN_CHARS) + 1 or _REPLY_SCAN_CHARS]
    nonce = secrets.token_hex(4)
    shelved: dict[str, str] = {}
    guarded_lines = []
    for index, line in enumerate(head.split("\n")):
        if len(line) > _REPLY_PARSER_MAX_LINE:
            key = f"\ue000{nonce}.{index}\ue001"
            shelved[key] = line
            line = key
        guarded_lines.append(line)
    replies = _REPLY_PARSER.read(text="\n".join(guarded_lines)).replies
    # A message that starts with a quote header has nothing new above it, and a long message with no
    # header in its first 16k characters is kept whole rather than cut at an arbitrary point.
    if not replies or replies[0].headers or (len(replies) == 1 and head is not full):
        return full
    latest = str(replies[0].full_body)
    for key, line in shelved.items():
        latest = latest.replace(key, line)
    return latest


def _cut_extra_quote_header(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        stripped = line.strip().lstrip("> ")
        if not stripped or len(stripped) > _REPLY_MAX_LINE:
            continue
        if _EXTRA_QUOTE_HEADER_RE.fullmatch(stripped):
            return lines[:index]
        if index + 1 < len(lines) and len(lines[index + 1]) <= _REPLY_MAX_LINE:
            joined = f"{stripped} {lines[index + 1].strip()}"
            if _EXTRA_QUOTE_HEADER_RE.fullmatch(joined):
                return lines[:index]
    return lines


def _drop_quoted_lines(lines: list[str]) -> list[str]:
    first = next((i for i, line in enumerate(lines) if line.lstrip().startswith(">")), None)
    if first is None:
        return lines
    # Remove the attribution right above the first quoted block (a header in a language we do not know):
    # a paragraph of one or two lines (Gmail wraps long ones), or else the paragraph's last line.
    end = first - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    paragraph_start = end
    while paragraph_start > 0 and lines[paragraph_start - 1].strip():
        paragraph_start -= 1
    for start in dict.fromkeys((paragraph_start if end - paragraph_start < 2 else end, end)):
        attribution = " ".join(line.strip() for line in lines[start:end + 1])
        if (end >= 0 and attribution.endswith(":") and len(attribution) <= 300
                and _ATTRIBUTION_HINT_RE.search(attribution)):
            lines = lines[:start] + lines[end + 1:]
            break
    return [line for line in lines if not line.lstrip().startswith(">")]


def _cut_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        stripped = line.strip()
        # "-- " is the RFC 3676 signature delimiter (mail-parser-reply has already stripped the space); a
        # long underscore rule is Outlook's separator or a list server's footer.
        if stripped == "--" or _RULE_RE.fullmatch(stripped) or (
            len(stripped) <= 80 and _SENT_FROM_RE.fullmatch(stripped)
        ):
            return lines[:index]
    return lines


def _safe_call(function: Any, default: Any) -> Any:
    """Calls an `email` accessor that parses a header; the header registry still crashes on some junk."""
    try:
        return function()
    except Exception:
        return default

