"""Turning an inbound email into a ticket or a reply on one, exactly once.

Threading: a reply joins its ticket by In-Reply-To, then any id in References (newest first), then the
ticket token in the subject or in a plus-addressed recipient; otherwise it opens a ticket. A customer's
reply re-opens the ticket and re-runs triage. The same Message-ID (or provider event) delivered any
number of times, concurrently, is stored once: the unique constraints decide, not a prior read.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from triage import sla
from triage.intake.types import InboundEmail
from triage.models import Customer, Draft, Message, MessageAttachment, OutboundEmail, Ticket
from triage.queue import enqueue

logger = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"\b(TD-[0-9A-HJKMNP-TV-Z]{8})\b")
REOPEN_FROM = {
    Ticket.Status.AWAITING_REVIEW, Ticket.Status.NEEDS_HUMAN, Ticket.Status.APPROVED, Ticket.Status.REJECTED,
    Ticket.Status.FAILED, Ticket.Status.IGNORED,
}


@dataclass(frozen=True)
class IngestResult:
    ticket: Ticket | None
    message: Message | None
    outcome: str  # created | appended | reopened | duplicate | bounce | ignored


def _find_ticket(email: InboundEmail) -> Ticket | None:
    ids = [i for i in [email.in_reply_to, *reversed(email.references)] if i]
    if ids:
        by_id = dict(Message.objects.filter(message_id__in=ids).values_list("message_id", "ticket_id"))
        by_id.update(OutboundEmail.objects.filter(message_id__in=[f"<{i}>" for i in ids] + ids)
                     .values_list("message_id", "ticket_id"))
        for candidate in ids:
            ticket_id = by_id.get(candidate) or by_id.get(f"<{candidate}>")
            if ticket_id:
                return Ticket.objects.get(pk=ticket_id)
    tokens = TOKEN_RE.findall(email.subject) + [t for a in (*email.to, *email.cc) for t in TOKEN_RE.findall(a.upper())]
    if tokens:
        return Ticket.objects.filter(token__in=tokens).first()
    return None


def _store_attachments(message: Message, email: InboundEmail, written: list[str]) -> None:
    for attachment in email.attachments:
        name = attachment.filename or "attachment"
        stored = MessageAttachment(
            message=message, filename=name[:255], content_type=attachment.content_type[:255],
            size=len(attachment.content), content_id=(attachment.content_id or "")[:255], inline=attachment.inline,
        )
        # A random prefix: customers' file names are not trusted as paths or as unique keys.
        stored.file.save(f"{uuid.uuid4().hex}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)[-100:]}",
                         ContentFile(attachment.content), save=False)
        written.append(stored.file.name)
        stored.save()


def _discard(written: list[str]) -> None:
    # Files are written before the rows that name them commit; when the transaction rolls back they would
    # be left behind with nothing pointing at them.
    from django.core.files.storage import default_storage

    for name in written:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not remove the stored attachment %s of a message that was not kept", name)


def _message(ticket: Ticket, email: InboundEmail, provider: str, event_id: str) -> Message:
    return Message.objects.create(
        ticket=ticket, direction=Message.Direction.INBOUND, message_id=email.message_id,
        in_reply_to=email.in_reply_to or "", references=list(email.references), from_email=email.from_email,
        from_name=email.from_name, to=list(email.to), cc=list(email.cc), subject=email.subject[:998],
        text=email.text, html=email.html, reply_text=email.reply_text, headers=dict(email.headers),
        auto_submitted=email.auto_submitted, is_bounce=email.is_bounce, provider=provider,
        provider_event_id=event_id[:300], sent_at=email.date,
    )


def _record_bounce(email: InboundEmail) -> IngestResult:
    outbound = None
    if email.bounced_message_id:
        outbound = OutboundEmail.objects.filter(
            message_id__in=[email.bounced_message_id, f"<{email.bounced_message_id}>"]).first()
    if outbound is None:
        logger.info("bounce for an unknown message %s ignored", email.bounced_message_id)
        return IngestResult(None, None, "ignored")
    OutboundEmail.objects.filter(pk=outbound.pk).update(
        status=OutboundEmail.Status.BOUNCED, bounced_at=timezone.now(), bounce_detail=email.text[:2000])
    return IngestResult(outbound.ticket, None, "bounce")


def email_ingest(email: InboundEmail, *, provider: str, event_id: str = "") -> IngestResult:
    if email.is_bounce:
        return _record_bounce(email)
    existing = Message.objects.filter(message_id=email.message_id).select_related("ticket").first()
    if existing is not None:
        return IngestResult(existing.ticket, existing, "duplicate")
    written: list[str] = []
    try:
        with transaction.atomic():
            ticket = _find_ticket(email)
            if ticket is not None:
                ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
                message = _message(ticket, email, provider, event_id)
                _store_attachments(message, email, written)
                if email.auto_submitted or ticket.status not in REOPEN_FROM:
                    # An out-of-office answer to our reply, or a reply while triage is running, is kept
                    # in the thread but does not start another triage.
                    return IngestResult(ticket, message, "appended")
                Draft.objects.filter(ticket=ticket, status=Draft.Status.PENDING).update(
                    status=Draft.Status.SUPERSEDED)
                ticket.status = Ticket.Status.NEW
                ticket.save(update_fields=["status", "updated_at"])
                enqueue("classify_ticket", ticket.pk)
                return IngestResult(ticket, message, "reopened")
            now = timezone.now()
            ticket = Ticket.objects.create(
                created_at=now, sla_due_at=sla.due_at(start=now, urgency=None),
                subject=(email.subject or "(no subject)")[:500], body=email.reply_text or email.text or "(empty)",
                from_email=email.from_email or "unknown@invalid", from_name=email.from_name[:200], channel="email",
                external_id=email.message_id[:200],
                customer=Customer.objects.filter(email__iexact=email.from_email).first() if email.from_email else None,
                status=Ticket.Status.IGNORED if email.auto_submitted else Ticket.Status.NEW,
            )
            message = _message(ticket, email, provider, event_id)
            _store_attachments(message, email, written)
            if not email.auto_submitted:
                enqueue("classify_ticket", ticket.pk)
            return IngestResult(ticket, message, "created")
    except BaseException as exc:
        _discard(written)
        if not isinstance(exc, IntegrityError):
            raise
        # A concurrent delivery of the same message won; answer as it did.
        existing = Message.objects.filter(message_id=email.message_id).select_related("ticket").first()
        if existing is None and event_id:
            existing = Message.objects.filter(provider=provider, provider_event_id=event_id).first()
        if existing is None:
            raise
        return IngestResult(existing.ticket, existing, "duplicate")


def thread_text(ticket: Ticket, *, limit: int = 4000) -> str:
    """What triage reads for a ticket with a thread: the newest customer words first, then the history."""
    messages = list(ticket.messages.filter(direction=Message.Direction.INBOUND, auto_submitted=False)
                    .order_by("-created_at", "-id")[:6])
    if len(messages) <= 1:
        return ticket.body
    latest, earlier = messages[0], messages[1:]
    parts = [latest.reply_text or latest.text, "", "Earlier in this conversation:"]
    parts += [f"- {(m.reply_text or m.text)[:600]}" for m in earlier]
    return "\n".join(parts)[:limit]
