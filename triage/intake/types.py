"""What every inbound channel (provider webhooks, raw MIME, IMAP) turns an email into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class InboundError(Exception):
    """An inbound email or delivery that cannot be taken. `permanent` False means the sender should retry."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None  # without angle brackets; set for cid: inline images
    inline: bool = False


@dataclass(frozen=True)
class InboundEmail:
    message_id: str  # without angle brackets; never empty (a stable one is derived when missing)
    in_reply_to: str | None
    references: tuple[str, ...]  # without angle brackets, oldest first
    subject: str
    from_email: str  # lower-cased address, "" for a null sender (<>)
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    text: str  # the whole message as plain text (text/plain, or the HTML part turned into text)
    html: str  # the HTML part sanitised for display, "" when there is none
    reply_text: str  # only what the sender wrote this time: quoted replies and signature removed
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # selected headers, lower-case names
    auto_submitted: bool = False  # auto-replies, bulk/list mail, null or MAILER-DAEMON senders
    is_bounce: bool = False  # a delivery status report
    bounced_message_id: str | None = None  # the Message-ID of the message that bounced, when known
    raw: bytes | None = None  # the original MIME when the channel had it
