"""Polling a mailbox over IMAPS, for teams without an inbound email provider.

Each message is fetched without marking it read, taken through the same parsing and ingest as every
other channel, and only then moved (or flagged): a crash between the two leaves the message in the
folder, and the next poll's ingest recognises its Message-ID as a duplicate.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
from dataclasses import dataclass

from triage.intake.ingest import email_ingest
from triage.intake.mime import parse_mime
from triage.intake.types import InboundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    move_to: str | None = None  # None: flag as \\Seen and leave in place
    ca_file: str | None = None  # a private CA (tests, self-hosted servers); None uses the system's


@dataclass(frozen=True)
class PollResult:
    taken: int
    duplicates: int
    refused: int


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def poll(mailbox: Mailbox, *, max_attachment_bytes: int, max_attachments: int, limit: int = 200) -> PollResult:
    context = ssl.create_default_context(cafile=mailbox.ca_file)
    taken = duplicates = refused = 0
    try:
        client = imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=context, timeout=30)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise InboundError(f"cannot connect to {mailbox.host}:{mailbox.port}: {exc}", permanent=False) from exc
    try:
        try:
            client.login(mailbox.user, mailbox.password)
        except imaplib.IMAP4.error as exc:
            raise InboundError(f"IMAP login refused for {mailbox.user}: {exc}", permanent=True) from exc
        status, _ = client.select(_quote(mailbox.folder))
        if status != "OK":
            raise InboundError(f"no folder {mailbox.folder!r} on {mailbox.host}")
        if mailbox.move_to:
            client.create(_quote(mailbox.move_to))  # "already exists" is fine
        criteria = "UNDELETED" if mailbox.move_to else "UNSEEN UNDELETED"
        status, data = client.uid("SEARCH", None, criteria)
        uids = data[0].split()[:limit] if status == "OK" and data and data[0] else []
        can_move = b"MOVE" in b" ".join(c.encode() if isinstance(c, str) else c for c in client.capabilities)
        for uid in uids:
            status, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple) and len(p) == 2), None)
            if status != "OK" or raw is None:
                continue
            try:
                email = parse_mime(raw, max_attachment_bytes=max_attachment_bytes, max_attachments=max_attachments)
                result = email_ingest(email, provider="imap")
            except InboundError as exc:
                if not exc.permanent:
                    raise
                # Left where it is, flagged for a person, and not fetched again (it is now \\Seen).
                logger.warning("IMAP message %s refused: %s", uid.decode(), exc.message)
                client.uid("STORE", uid, "+FLAGS", "(\\Seen \\Flagged)")
                refused += 1
                continue
            duplicates += result.outcome == "duplicate"
            taken += result.outcome != "duplicate"
            if mailbox.move_to:
                if can_move:
                    client.uid("MOVE", uid, _quote(mailbox.move_to))
                else:
                    client.uid("COPY", uid, _quote(mailbox.move_to))
                    client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
            else:
                client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        if mailbox.move_to and not can_move:
            client.expunge()
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return PollResult(taken=taken, duplicates=duplicates, refused=refused)
