"""What agents do with a draft: reviews, the replies sent, corrections, macros and the reply memory."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from triage.models.common import LOCAL_EMBEDDING_DIM


class ReplyMemory(models.Model):
    """A reply worth starting from: a reference reply shipped for the taxonomy, or one an agent sent.

    The text holds slots (`{{first_name}}`, `{{order_number}}`, ...) where the ticket's own values went, so it
    can be filled from the next ticket; the vector is the embedding of the ticket it answered, so a new ticket
    finds the replies to tickets like it."""

    class Source(models.TextChoices):
        REFERENCE = "reference"  # shipped for the demo taxonomy (fixtures/replies)
        SENT = "sent"  # an agent approved or wrote it

    intent = models.ForeignKey("triage.Intent", on_delete=models.CASCADE, related_name="replies")
    language = models.CharField(max_length=10)
    text = models.TextField()
    # The ticket text the reply answered, PII redacted (what `embedding` embeds).
    prompt = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    # Slugs of the public articles the reply's facts come from: cited when retrieval returns them.
    article_slugs = models.JSONField(default=list, blank=True)
    review = models.OneToOneField("ReviewAction", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="remembered")
    embedding = VectorField(dimensions=LOCAL_EMBEDDING_DIM, null=True, blank=True)
    # False once an agent's edit of a draft written from it replaced it.
    active = models.BooleanField(default=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Stable id of a shipped reference reply, so seeding again updates it in place.
    key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="replymemory_key_once"),
        ]
        indexes = [models.Index(fields=["intent", "language", "active"], name="replymemory_lookup")]

    def __str__(self) -> str:
        return f"remembered {self.language} reply for intent {self.intent_id}"


class Macro(models.Model):
    """A saved reply with placeholders, managed by admins, inserted by agents in the composer."""

    name = models.CharField(max_length=120, unique=True)
    body = models.TextField()
    # Shown to everyone when empty; else only to members of this group (a team or a role).
    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReviewAction(models.Model):
    """An agent's decision on a draft, with the difference between what was drafted and what was sent."""

    class Action(models.TextChoices):
        APPROVE = "approve"
        EDIT_APPROVE = "edit_approve"
        REJECT = "reject"
        REGENERATE = "regenerate"
        ESCALATE = "escalate"
        # A reply the agent wrote in the composer (from scratch, from a macro or from the draft) and sent.
        COMPOSE = "compose"

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="reviews")
    draft = models.ForeignKey("triage.Draft", null=True, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    action = models.CharField(max_length=16, choices=Action.choices)
    drafted_text = models.TextField()
    final_text = models.TextField(blank=True)
    diff = models.TextField(blank=True)
    # Characters changed between the draft and what was sent (Levenshtein), for "how much did agents edit".
    edit_distance = models.PositiveIntegerField(null=True, blank=True)
    # Why a draft was rejected or escalated, or the instruction a regenerated draft was written to (≤ 1,000).
    reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["created_at"], name="review_created")]

    def __str__(self) -> str:
        return f"{self.action} on ticket {self.ticket_id}"


class OutboundEmail(models.Model):
    """One reply to send; the row is the outbox, claimed by a task so a retry cannot send twice."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        BOUNCED = "bounced"

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="outbound_emails")
    review = models.OneToOneField(ReviewAction, on_delete=models.CASCADE, related_name="outbound_email")
    to_email = models.EmailField(max_length=320)
    subject = models.CharField(max_length=600)
    body = models.TextField()
    message_id = models.CharField(max_length=300, unique=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_detail = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"email to {self.to_email} for ticket {self.ticket_id}"


class Correction(models.Model):
    """An agent's correction of the classification: who, when, old and new value, and how long after triage."""

    class Field(models.TextChoices):
        INTENT = "intent"
        URGENCY = "urgency"
        SENTIMENT = "sentiment"

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="corrections")
    triage_run = models.ForeignKey("triage.TriageRun", null=True, blank=True, on_delete=models.SET_NULL)
    field = models.CharField(max_length=10, choices=Field.choices)
    old_value = models.CharField(max_length=100, blank=True)
    new_value = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    # Seconds between the classification and this correction, so "corrected within 5 minutes" can be counted.
    seconds_since_triage = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["field", "created_at"])]

    def __str__(self) -> str:
        return f"{self.field} corrected on ticket {self.ticket_id}: {self.old_value} -> {self.new_value}"
