"""Writes. Each function runs in one transaction and defers side effects (tasks, email) to commit."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import secrets
import uuid
from datetime import timedelta
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from rapidfuzz.distance import Levenshtein

from triage import blanks, controls, policy, sla
from triage.access import is_agent
from triage.audit import audit
from triage.errors import ApplicationError
from triage.llm import replies
from triage.models import (
    ApiKey,
    AuditEvent,
    Customer,
    Draft,
    IdempotencyRecord,
    Job,
    Message,
    OutboundEmail,
    ReviewAction,
    Ticket,
    TicketNote,
)
from triage.queue import enqueue

logger = logging.getLogger(__name__)

KEY_PREFIX = "tdk_"


# --- API keys -----------------------------------------------------------------------------------

def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(name=name, prefix=raw[:12], key_hash=_hash_key(raw))
    return key, raw


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    key = ApiKey.objects.filter(key_hash=_hash_key(raw), revoked_at__isnull=True).first()
    now = timezone.now()
    # "Last used" to the minute is enough, and saves a write on nearly every request.
    if key is not None and (key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1)):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


# --- Intake -------------------------------------------------------------------------------------

# A send still claimed after SEND_CLAIM_EXPIRES_S lost its worker (killed mid-send). It is sent again with the
# same Message-ID: if the first attempt did reach the SMTP server, receiving systems and threading treat the
# second as the same message, which is as close to exactly once as SMTP allows.
def _send_claim_expires() -> timedelta:
    return timedelta(seconds=settings.SEND_CLAIM_EXPIRES_S)


_STEP_TASKS = {
    Ticket.Status.NEW: "classify_ticket",
    Ticket.Status.CLASSIFYING: "classify_ticket",
    Ticket.Status.ROUTING: "route_ticket",
    Ticket.Status.DRAFTING: "draft_ticket",
}


def stalled_work_requeue(*, older_than: timedelta | None = None, limit: int = 500) -> int:
    """Re-queue pipeline steps and outbox rows that have not moved for STALLED_AFTER_S (worker killed, broker
    restarted); every step is safe to run twice."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.STALLED_AFTER_S))
    count = 0
    stalled = list(Ticket.objects.filter(status__in=list(_STEP_TASKS), updated_at__lt=cutoff)
                   .order_by("updated_at").values_list("pk", "status")[:limit])
    # Re-queued tickets count as moved: while a deep backlog is worked through, each waiting ticket gets at
    # most one extra task per stall window rather than one per sweep.
    Ticket.objects.filter(pk__in=[pk for pk, _status in stalled]).update(updated_at=timezone.now())
    for ticket_id, status in stalled:
        with transaction.atomic():
            enqueue(_STEP_TASKS[status], ticket_id)
        count += 1
    queued = OutboundEmail.objects.filter(
        Q(status=OutboundEmail.Status.QUEUED, created_at__lt=cutoff)
        | Q(status=OutboundEmail.Status.SENDING, claimed_at__lt=timezone.now() - _send_claim_expires())
    )
    for outbound_id in queued.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            enqueue("send_outbound_email", outbound_id)
        count += 1
    # Background jobs: queued while the broker was down, or running on a worker that died.
    from triage.jobs import STALE_AFTER

    jobs = Job.objects.filter(
        Q(status=Job.Status.QUEUED, created_at__lt=cutoff)
        | Q(status=Job.Status.RUNNING, started_at__lt=timezone.now() - STALE_AFTER)
    )
    for job_id in jobs.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            enqueue("run_job", job_id)
        count += 1
    return count


def _request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def ticket_create(
    *,
    subject: str,
    body: str,
    from_email: str,
    from_name: str = "",
    external_id: str = "",
    metadata: dict[str, Any] | None = None,
    channel: str = "api",
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
) -> tuple[Ticket, bool]:
    """Store a ticket and queue its triage. Returns (ticket, created)."""
    if idempotency_key is not None and api_key is None:
        raise ApplicationError("an Idempotency-Key needs an authenticated client")

    def insert() -> Ticket:
        now = timezone.now()
        return Ticket.objects.create(
            subject=subject, body=body, from_email=from_email, from_name=from_name,
            external_id=external_id, metadata=metadata or {}, channel=channel, api_key=api_key,
            customer=Customer.objects.filter(email__iexact=from_email).first(),
            created_at=now, sla_due_at=sla.due_at(start=now, urgency=None),
        )

    if idempotency_key is None:
        # One INSERT is atomic by itself: a transaction around it would add only BEGIN and COMMIT round trips
        # to every ticket. Outside a transaction the task is queued at once, after the row is committed;
        # inside a caller's, on commit as always.
        ticket = insert()
        enqueue("classify_ticket", ticket.pk)
        return ticket, True
    payload = {
        "subject": subject, "body": body, "from_email": from_email, "from_name": from_name,
        "external_id": external_id, "metadata": metadata or {},
    }
    digest = _request_hash(payload)
    try:
        with transaction.atomic():
            existing = IdempotencyRecord.objects.select_related("ticket").filter(
                api_key=api_key, key=idempotency_key
            ).first()
            if existing is not None:
                return _replay(existing, digest), False
            ticket = insert()
            IdempotencyRecord.objects.create(
                api_key=api_key, key=idempotency_key, request_hash=digest, ticket=ticket
            )
            enqueue("classify_ticket", ticket.pk)
            return ticket, True
    except IntegrityError:
        # A concurrent request with the same key won the race; answer as it did.
        existing = IdempotencyRecord.objects.select_related("ticket").get(api_key=api_key, key=idempotency_key)
        return _replay(existing, digest), False


def _replay(record: IdempotencyRecord, digest: str) -> Ticket:
    if record.request_hash != digest:
        raise ApplicationError(
            "this Idempotency-Key was already used with a different request body",
            status=422,
            extra={"ticket_id": record.ticket_id},
        )
    return record.ticket


# --- Agents' changes to a ticket ----------------------------------------------------------------

# How the ticket's audit trail names a change, for the message an agent gets when their form is stale.
CHANGE_WORDS = {
    "draft.approve": "approved the draft",
    "draft.edit_approve": "edited and approved the draft",
    "draft.reject": "rejected the draft",
    "draft.regenerate": "asked for a new draft",
    "draft.create": "wrote a new draft",
    "reply.send": "sent a reply",
    "ticket.escalate": "escalated the ticket to the large tier",
    "ticket.to_human": "sent the ticket to the human queue",
    "ticket.assign": "reassigned the ticket",
    "ticket.correct.intent": "corrected the intent",
    "ticket.correct.urgency": "corrected the urgency",
    "ticket.correct.sentiment": "corrected the sentiment",
}


def _last_change(ticket_id: int) -> tuple[str, str]:
    """Who made the ticket's latest recorded change, and what it was, in words."""
    last = (AuditEvent.objects.filter(object_type="Ticket", object_id=str(ticket_id))
            .exclude(action="ticket.note").select_related("actor").order_by("-created_at", "-id").first())
    if last is None:
        return "", "changed it"
    who = last.actor.get_username() if last.actor is not None else "the pipeline"
    return who, CHANGE_WORDS.get(last.action, "changed it")


def ticket_lock_for_change(*, ticket_id: int, expected_revision: int | None, bump: bool = True) -> Ticket:
    """Lock the ticket for an agent's change and bump its revision.

    A form carries the revision it was rendered at; if another agent (or the pipeline, with a new draft)
    changed the ticket since, the change is refused with 409 rather than silently overwriting theirs.
    `bump=False` checks without bumping, for an addition (a note) that changes nothing an agent has open.
    Call inside a transaction.
    """
    ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
    if ticket is None:
        raise ApplicationError("no such ticket", status=404)
    if expected_revision is not None and expected_revision != ticket.revision:
        who, what = _last_change(ticket_id)
        someone = who or "Someone"
        raise ApplicationError(
            f"{someone} {what} since you opened this ticket, so nothing of yours was saved. Reload the ticket "
            "to see their change, then try again.",
            status=409, extra={"revision": ticket.revision, "changed_by": who},
        )
    if bump:
        Ticket.objects.filter(pk=ticket_id).update(revision=F("revision") + 1, updated_at=timezone.now())
        ticket.revision += 1
    return ticket


def ticket_assign(*, ticket_id: int, assignee: Any | None, actor: Any, expected_revision: int | None = None) -> Ticket:
    """Give the ticket to an agent (or to nobody). Only agents and admins can hold tickets."""
    if assignee is not None and (not assignee.is_active or not is_agent(assignee)):
        raise ApplicationError(f"{assignee.get_username()} is not an active agent")
    with transaction.atomic():
        ticket = ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision, bump=False)
        if ticket.assignee_id == (assignee.pk if assignee is not None else None):
            return ticket  # already theirs: nothing changes, so no other agent's open form goes stale
        before = ticket.assignee.get_username() if ticket.assignee_id else None
        after = assignee.get_username() if assignee is not None else None
        ticket.assignee = assignee
        ticket.revision += 1
        Ticket.objects.filter(pk=ticket_id).update(assignee=assignee, revision=F("revision") + 1,
                                                   updated_at=timezone.now())
        audit(actor=actor, action="ticket.assign", obj=ticket, before={"assignee": before}, after={"assignee": after})
    return ticket


BULK_ACTIONS = ("take", "assign", "unassign", "approve", "reject")
BULK_MAX = 200


def tickets_bulk(*, action: str, ticket_ids: list[int], actor: Any, assignee: Any | None = None,
                 reason: str = "") -> tuple[int, list[tuple[int, str]]]:
    """Apply one action to many tickets, each in its own transaction: returns (done, [(ticket id, why not)]).

    One ticket that cannot take the action (its draft was already sent, say) does not stop the rest.
    """
    if action not in BULK_ACTIONS:
        raise ApplicationError(f"{action!r} is not a bulk action; choose one of {', '.join(BULK_ACTIONS)}")
    ids = sorted(set(ticket_ids))  # a fixed lock order, so two bulk actions cannot deadlock
    if not ids:
        raise ApplicationError("select at least one ticket")
    if len(ids) > BULK_MAX:
        raise ApplicationError(f"select at most {BULK_MAX} tickets at a time")
    if action == "assign" and assignee is None:
        raise ApplicationError("choose who to assign the tickets to")
    if action == "reject" and not reason.strip():
        raise ApplicationError("say why the drafts are rejected")
    pending = dict(Draft.objects.filter(ticket_id__in=ids, status=Draft.Status.PENDING)
                   .order_by("ticket_id", "created_at", "id").values_list("ticket_id", "pk"))
    done, failed = 0, []
    for ticket_id in ids:
        try:
            if action in ("take", "assign", "unassign"):
                target = actor if action == "take" else assignee if action == "assign" else None
                ticket_assign(ticket_id=ticket_id, assignee=target, actor=actor)
            elif ticket_id not in pending:
                raise ApplicationError("no draft is waiting for review")
            elif action == "approve":
                draft_approve(ticket_id=ticket_id, draft_id=pending[ticket_id], user=actor, final_text=None)
            else:
                draft_reject(ticket_id=ticket_id, draft_id=pending[ticket_id], user=actor, reason=reason)
        except ApplicationError as exc:
            failed.append((ticket_id, exc.message))
        else:
            done += 1
    return done, failed


# --- Review and reply ---------------------------------------------------------------------------

def _diff(before: str, after: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "draft", "sent"
    ))


def _reply_subject(subject: str, token: str) -> str:
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    return subject if token in subject else f"{subject} [{token}]"


def reply_to_address(token: str) -> str:
    """support@example.com → support+TD-XXXXXXXX@example.com: replies find their ticket by address too."""
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    local, _, domain = address.partition("@")
    return formataddr((name, f"{local}+{token}@{domain}")) if domain else settings.DEFAULT_FROM_EMAIL


def _thread_headers(ticket: Ticket) -> tuple[str, list[str]]:
    """In-Reply-To and References for a reply: the customer's latest message and its ancestry."""
    latest = ticket.messages.filter(direction="inbound").order_by("-created_at", "-id").first()
    if latest is None:
        return "", []
    return latest.message_id, [*latest.references, latest.message_id][-20:]


def _pending_draft_for_update(*, ticket_id: int, draft_id: int) -> Draft:
    """The draft an agent decides on, locked; refused unless it is this ticket's and still pending."""
    draft = Draft.objects.select_for_update().select_related("ticket").filter(pk=draft_id, ticket_id=ticket_id).first()
    if draft is None:
        raise ApplicationError("no such draft on this ticket", status=404)
    if draft.status != Draft.Status.PENDING:
        raise ApplicationError(f"this draft was already {draft.status}", status=409)
    return draft


def _refuse_prompt_leak(text: str) -> None:
    """No reply goes out repeating the model's instructions, whatever else an agent accepts in a draft.

    Other failed gates are the agent's call; this one is not: a prompt-injected ticket could otherwise have a
    model mail its system prompt to whoever wrote in. The agent can still edit the leaked part out and send."""
    leak = policy.prompt_leak(text, canary=settings.PROMPT_CANARY, prompts=controls.system_prompts())
    if not leak.passed:
        raise ApplicationError(
            f"This reply repeats the model's confidential instructions ({', '.join(leak.matches)}). Remove "
            "that part before approving, or reject the draft.",
            extra={"gate": policy.PROMPT_LEAK},
        )


def draft_approve(*, ticket_id: int, draft_id: int, user: AbstractBaseUser, final_text: str | None,
                  expected_revision: int | None = None) -> ReviewAction:
    with transaction.atomic():
        ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision)
        draft = _pending_draft_for_update(ticket_id=ticket_id, draft_id=draft_id)
        text = draft.body if final_text is None else final_text.strip()
        if not text:
            raise ApplicationError("the reply is empty")
        _refuse_unsendable(text)
        edited = text != draft.body
        review = ReviewAction.objects.create(
            ticket=draft.ticket, draft=draft, user=user,
            action=ReviewAction.Action.EDIT_APPROVE if edited else ReviewAction.Action.APPROVE,
            drafted_text=draft.body, final_text=text, diff=_diff(draft.body, text) if edited else "",
            edit_distance=Levenshtein.distance(draft.body, text) if edited else 0,
        )
        draft.status = Draft.Status.APPROVED
        draft.save(update_fields=["status"])
        audit(actor=user, action=f"draft.{review.action}", obj=draft.ticket, before={"draft": draft.pk},
              after={"draft": "approved", "edit_distance": review.edit_distance})
        _reply_queue(ticket=draft.ticket, review=review)
        return review


REPLY_MAX_CHARS = 50_000


def reply_send(*, ticket_id: int, user: AbstractBaseUser, text: str, expected_revision: int | None) -> ReviewAction:
    """Send a reply the agent wrote in the composer (from scratch or from a macro), with no draft behind it.

    A draft still pending is superseded: the customer has their answer, and approving that draft later would
    send them a second one.
    """
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Write the reply before sending it: the composer is empty.")
    if len(text) > REPLY_MAX_CHARS:
        raise ApplicationError(f"a reply holds at most {REPLY_MAX_CHARS:,} characters; this one has {len(text):,}")
    _refuse_unsendable(text)
    with transaction.atomic():
        ticket = ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision)
        superseded = list(Draft.objects.select_for_update().filter(ticket_id=ticket_id, status=Draft.Status.PENDING)
                          .values_list("pk", flat=True))
        Draft.objects.filter(pk__in=superseded).update(status=Draft.Status.SUPERSEDED)
        review = ReviewAction.objects.create(
            ticket=ticket, draft=None, user=user, action=ReviewAction.Action.COMPOSE, drafted_text="",
            final_text=text,
        )
        audit(actor=user, action="reply.send", obj=ticket, before={"status": ticket.status, "drafts": superseded},
              after={"status": Ticket.Status.APPROVED, "review": review.pk, "characters": len(text)})
        _reply_queue(ticket=ticket, review=review)
        return review


def _refuse_unsendable(text: str) -> None:
    """What no reply may carry, however it was written: unfilled blanks and the model's instructions."""
    refusal = blanks.refusal(text)
    if refusal is not None:
        raise ApplicationError(refusal, extra={"blanks": blanks.blanks(text)})
    _refuse_prompt_leak(text)


def _reply_queue(*, ticket: Ticket, review: ReviewAction) -> OutboundEmail:
    """The ticket is answered: mark it so and put the reply in the outbox, sent by a task after commit."""
    now = timezone.now()
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.APPROVED, updated_at=now)
    Ticket.objects.filter(pk=ticket.pk, first_response_at__isnull=True).update(first_response_at=now)
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "tierdesk.localhost"
    in_reply_to, references = _thread_headers(ticket)
    outbound = OutboundEmail.objects.create(
        ticket=ticket, review=review, to_email=ticket.from_email,
        # Citation markers are for the agent; the customer reads the reply without them.
        subject=_reply_subject(ticket.subject, ticket.token), body=replies.strip_markers(review.final_text),
        message_id=f"<tierdesk.{ticket.pk}.{uuid.uuid4().hex}@{domain}>",
        in_reply_to=in_reply_to, references=references,
    )
    enqueue("send_outbound_email", outbound.pk)
    return outbound


def draft_reject(*, ticket_id: int, draft_id: int, user: AbstractBaseUser, reason: str,
                 expected_revision: int | None = None) -> ReviewAction:
    reason = reason.strip()
    if not reason:
        raise ApplicationError("say why the draft is rejected")
    with transaction.atomic():
        ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision)
        draft = _pending_draft_for_update(ticket_id=ticket_id, draft_id=draft_id)
        review = ReviewAction.objects.create(
            ticket_id=ticket_id, draft=draft, user=user, action=ReviewAction.Action.REJECT,
            drafted_text=draft.body, reason=reason[:500],
        )
        draft.status = Draft.Status.REJECTED
        draft.save(update_fields=["status"])
        audit(actor=user, action="draft.reject", obj=draft.ticket, before={"draft": draft.pk},
              after={"draft": "rejected", "reason": review.reason})
        # The customer still needs an answer: the ticket goes to the human queue.
        Ticket.objects.filter(pk=ticket_id).update(status=Ticket.Status.NEEDS_HUMAN, updated_at=timezone.now())
        return review


INSTRUCTION_MAX_CHARS = 1000


def _request_text(value: str, *, what: str, empty: str) -> str:
    text = " ".join((value or "").split())
    if not text:
        raise ApplicationError(empty)
    if len(text) > INSTRUCTION_MAX_CHARS:
        raise ApplicationError(f"{what} holds at most {INSTRUCTION_MAX_CHARS:,} characters; this one has {len(text):,}")
    return text


def draft_regenerate(*, ticket_id: int, draft_id: int, user: AbstractBaseUser, instruction: str,
                     expected_revision: int | None) -> ReviewAction:
    """Replace a pending draft with a new one from the same tier, written to the agent's instruction.

    The new draft is written by the worker (steps.ticket_draft answers the recorded request), so the request
    returns at once and the ticket shows `drafting` until the draft arrives.
    """
    text = _request_text(instruction, what="an instruction", empty="say what the new draft should do differently")
    with transaction.atomic():
        ticket = ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision)
        draft = _pending_draft_for_update(ticket_id=ticket_id, draft_id=draft_id)
        review = ReviewAction.objects.create(
            ticket_id=ticket_id, draft=draft, user=user, action=ReviewAction.Action.REGENERATE,
            drafted_text=draft.body, reason=text,
        )
        draft.status = Draft.Status.SUPERSEDED
        draft.save(update_fields=["status"])
        audit(actor=user, action="draft.regenerate", obj=ticket, before={"draft": draft.pk, "tier": draft.tier},
              after={"instruction": text})
        Ticket.objects.filter(pk=ticket_id).update(status=Ticket.Status.DRAFTING, updated_at=timezone.now())
        enqueue("draft_ticket", ticket_id)
        return review


ESCALATABLE = (Ticket.Status.AWAITING_REVIEW, Ticket.Status.NEEDS_HUMAN)


def escalation_refusal(*, status: str, classified: bool, pending_draft_tier: str | None) -> str | None:
    """Why the ticket cannot be escalated by hand now, or None if it can (the page hides the form then)."""
    if status not in ESCALATABLE:
        return f"a ticket that is {Ticket.Status(status).label.lower()} cannot be escalated"
    if not classified:
        return "no tier classified this ticket, so the large tier has nothing to draft from; answer it by hand"
    if pending_draft_tier == "large":
        return "the large tier wrote this draft; regenerate it with an instruction instead"
    return None


def escalation_allowed(*, ticket: Ticket, runs: list[Any], draft: Draft | None) -> bool:
    pending = draft.tier if draft is not None and draft.status == Draft.Status.PENDING else None
    return escalation_refusal(status=ticket.status, classified=bool(runs), pending_draft_tier=pending) is None


def ticket_escalate(*, ticket_id: int, user: AbstractBaseUser, reason: str,
                    expected_revision: int | None) -> ReviewAction:
    """Send the ticket to the large tier by hand: its pending draft (if any) is superseded and large drafts anew.

    The route decision (reason `manual_escalation`) is made by the worker with the draft, under the switches
    and caps in force then: with large switched off, the ticket stays with a person.
    """
    text = _request_text(reason, what="a reason", empty="say why this ticket needs the large tier")
    with transaction.atomic():
        ticket = ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision)
        draft = Draft.objects.select_for_update().filter(ticket_id=ticket_id, status=Draft.Status.PENDING).first()
        refusal = escalation_refusal(status=ticket.status, classified=ticket.triage_runs.exists(),
                                     pending_draft_tier=draft.tier if draft is not None else None)
        if refusal is not None:
            raise ApplicationError(refusal, status=409)
        review = ReviewAction.objects.create(
            ticket_id=ticket_id, draft=draft, user=user, action=ReviewAction.Action.ESCALATE,
            drafted_text=draft.body if draft is not None else "", reason=text,
        )
        if draft is not None:
            draft.status = Draft.Status.SUPERSEDED
            draft.save(update_fields=["status"])
        audit(actor=user, action="ticket.escalate", obj=ticket, before={"lane": ticket.lane},
              after={"lane": "large", "reason": text})
        Ticket.objects.filter(pk=ticket_id).update(
            status=Ticket.Status.DRAFTING, lane="large", high_risk=True, human_review_required=True,
            updated_at=timezone.now(),
        )
        enqueue("draft_ticket", ticket_id)
        return review


def outbound_send(*, outbound_id: int) -> bool:
    """Send one queued reply. The conditional claim means a redelivered task cannot send it twice."""
    now = timezone.now()
    # Claimable: queued, failed, or a send whose worker died mid-send (claimed long ago, never finished).
    claimed = OutboundEmail.objects.filter(
        Q(status__in=[OutboundEmail.Status.QUEUED, OutboundEmail.Status.FAILED])
        | Q(status=OutboundEmail.Status.SENDING, claimed_at__lt=now - _send_claim_expires()),
        pk=outbound_id,
    ).update(status=OutboundEmail.Status.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    if claimed != 1:
        return False
    outbound = OutboundEmail.objects.select_related("ticket").get(pk=outbound_id)  # claimed above, so it exists
    headers = {"Message-ID": outbound.message_id, "X-Tierdesk-Ticket": outbound.ticket.token}
    if outbound.in_reply_to:
        headers["In-Reply-To"] = f"<{outbound.in_reply_to}>"
        headers["References"] = " ".join(f"<{r}>" for r in outbound.references)
    message = EmailMessage(
        subject=outbound.subject, body=outbound.body, to=[outbound.to_email], headers=headers,
        reply_to=[reply_to_address(outbound.ticket.token)],
    )
    try:
        message.send(fail_silently=False)
    except Exception as exc:
        OutboundEmail.objects.filter(pk=outbound_id).update(
            status=OutboundEmail.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    with transaction.atomic():
        OutboundEmail.objects.filter(pk=outbound_id).update(
            status=OutboundEmail.Status.SENT, sent_at=timezone.now(), last_error=""
        )
        # A sent reply joins the reply memory (the task skips what it must not keep).
        enqueue("remember_reply", outbound.review_id)
        # Kept in the thread, so a customer's answer to this reply threads by In-Reply-To.
        Message.objects.get_or_create(
            message_id=outbound.message_id.strip("<>"),
            defaults={"ticket_id": outbound.ticket_id, "direction": Message.Direction.OUTBOUND,
                      "in_reply_to": outbound.in_reply_to, "references": outbound.references,
                      "from_email": parseaddr(settings.DEFAULT_FROM_EMAIL)[1], "to": [outbound.to_email],
                      "subject": outbound.subject, "text": outbound.body, "reply_text": outbound.body,
                      "sent_at": timezone.now()},
        )
    return True


# --- Notes --------------------------------------------------------------------------------------

NOTE_MAX_CHARS = 10_000


def ticket_note_add(*, ticket: Ticket, user: Any, body: str, expected_revision: int | None = None) -> TicketNote:
    """An internal note: kept on the ticket for agents, never sent to the customer or a model.

    A note written against an outdated view (the draft it discusses was replaced) is refused like any other
    stale form; being an addition, it does not itself make other agents' forms stale.
    """
    text = (body or "").strip()
    if not text:
        raise ApplicationError("write something in the note")
    if len(text) > NOTE_MAX_CHARS:
        raise ApplicationError(f"a note holds at most {NOTE_MAX_CHARS:,} characters; this one has {len(text):,}")
    with transaction.atomic():
        ticket_lock_for_change(ticket_id=ticket.pk, expected_revision=expected_revision, bump=False)
        note = TicketNote.objects.create(ticket=ticket, user=user, body=text)
        audit(actor=user, action="ticket.note", obj=ticket, before=None, after={"note_id": note.pk})
    return note
