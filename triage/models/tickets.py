"""Tickets and their conversation: messages, attachments and agents' notes."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone

from triage.vocabulary import Engine, Lane, Sentiment, Urgency


def new_ticket_token() -> str:
    # Crockford-style alphabet: no I, L, O, U, so a token read aloud or retyped stays unambiguous.
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "TD-" + "".join(secrets.choice(alphabet) for _ in range(8))


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        CLASSIFYING = "classifying"
        ROUTING = "routing"
        DRAFTING = "drafting"
        AWAITING_REVIEW = "awaiting_review"
        NEEDS_HUMAN = "needs_human"
        APPROVED = "approved"
        REJECTED = "rejected"
        FAILED = "failed"
        IGNORED = "ignored", "Ignored (automatic mail)"

    # Put in reply subjects and reply-to addresses so a customer's answer finds its ticket even when
    # their mail client drops In-Reply-To and References.
    token = models.CharField(max_length=16, unique=True, default=new_ticket_token)
    subject = models.CharField(max_length=500)
    body = models.TextField()
    from_email = models.EmailField(max_length=320)
    from_name = models.CharField(max_length=200, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    channel = models.CharField(max_length=20, default="api")
    api_key = models.ForeignKey("triage.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    customer = models.ForeignKey("triage.Customer", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    # Current outcome, denormalised from the latest triage run and route for filtering the queue.
    intent = models.ForeignKey("triage.Intent", null=True, blank=True, on_delete=models.SET_NULL)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, blank=True)
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, blank=True)
    language = models.CharField(max_length=10, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    lane = models.CharField(max_length=10, choices=Lane.choices, blank=True)
    # The engine of the latest result on the ticket (classification or draft), for the queue's filter.
    engine = models.CharField(max_length=10, choices=Engine.choices, blank=True)
    high_risk = models.BooleanField(default=False)
    human_review_required = models.BooleanField(default=False)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_tickets")
    # When the first answer is due under the SLA policy (by urgency); set at intake, moved when urgency changes.
    sla_due_at = models.DateTimeField()
    first_response_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every agent-facing change, so a form opened before another agent's change is refused, not applied.
    revision = models.PositiveIntegerField(default=1)
    # The pipeline step at work on this ticket: the task that claimed it and when. Another delivery of the step
    # (the sweeper's re-queue, the broker's redelivery) leaves a live claim alone, so a model is not asked
    # twice; the same task redelivered after its worker died, or any after STALLED_AFTER_S, takes over.
    step_claim = models.CharField(max_length=64, blank=True)
    step_claimed_at = models.DateTimeField(null=True, blank=True)
    # A default rather than auto_now_add: the SLA due time is computed from it before the row is saved.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Stored rather than an expression index: a search's index recheck then reads the vector instead of
    # re-parsing every candidate's subject and body (65 ms → a few ms at 100,000 tickets).
    search_vector = models.GeneratedField(
        expression=SearchVector("subject", "body", config="simple"), output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["urgency"]),
            models.Index(fields=["lane"]),
            GinIndex(fields=["search_vector"], name="ticket_search_vector_gin"),
            # The queue's keyset: SLA due time, then id; per status and per assignee for their filters.
            models.Index(fields=["sla_due_at", "id"], name="ticket_due_keyset"),
            models.Index(fields=["status", "sla_due_at", "id"], name="ticket_status_due"),
            models.Index(fields=["assignee", "sla_due_at", "id"], name="ticket_assignee_due"),
            # Substring search on subjects (sender names, order numbers) without scanning the table.
            GinIndex(OpClass(Upper("subject"), name="gin_trgm_ops"), name="ticket_subject_trgm"),
            # The dashboard's period: tickets that arrived in it.
            models.Index(fields=["created_at"], name="ticket_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class Message(models.Model):
    """One email in a ticket's thread, inbound or outbound. The Message-ID is what threading matches on."""

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"

    ticket = models.ForeignKey("Ticket", on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    message_id = models.CharField(max_length=998, unique=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.JSONField(default=list)
    from_email = models.CharField(max_length=320, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list)
    subject = models.CharField(max_length=998, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)  # sanitised
    reply_text = models.TextField(blank=True)
    headers = models.JSONField(default=dict)
    auto_submitted = models.BooleanField(default=False)
    is_bounce = models.BooleanField(default=False)
    provider = models.CharField(max_length=20, blank=True)
    provider_event_id = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_event_id"], condition=~Q(provider_event_id=""),
                                    name="message_provider_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} message {self.pk} of ticket {self.ticket_id}"


class MessageAttachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    content_id = models.CharField(max_length=255, blank=True)
    inline = models.BooleanField(default=False)
    # Stored with Django's storage, outside the database.
    file = models.FileField(upload_to="attachments/%Y/%m/%d/", max_length=500)

    def __str__(self) -> str:
        return f"attachment {self.filename} of message {self.message_id}"


class TicketNote(models.Model):
    """An agent's internal note on a ticket: never sent to the customer, never shown to a model."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.pk} on ticket {self.ticket_id}"
