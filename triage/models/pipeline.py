"""What the pipeline records per ticket: classifications, route decisions, model calls, drafts and their checks."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from triage.vocabulary import Engine, Lane, Sentiment, Tier, Urgency


class TriageRun(models.Model):
    """One classification of a ticket, by the tier and engine that produced it."""

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="triage_runs")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    engine = models.CharField(max_length=10, choices=Engine.choices)
    model = models.CharField(max_length=200)
    intent = models.ForeignKey("triage.Intent", null=True, on_delete=models.SET_NULL)
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
    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="route_decisions")
    triage_run = models.ForeignKey(TriageRun, null=True, on_delete=models.CASCADE)
    lane = models.CharField(max_length=10, choices=Lane.choices)
    reasons = models.JSONField(default=list)
    contract = models.ForeignKey("triage.Contract", null=True, on_delete=models.PROTECT)
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

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="model_calls")
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


class Draft(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        SUPERSEDED = "superseded"  # the customer wrote again before anyone decided

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="drafts")
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
    memory = models.ForeignKey("triage.ReplyMemory", null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts")
    # The internal articles given to the writer as guidance and shown to the agent beside the draft:
    # [{"article_id", "article_slug", "article_title", "article_version", "text"}].
    guidance = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"draft {self.pk} of ticket {self.ticket_id}"


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

    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="gate_results")
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
    config = models.ForeignKey("triage.ShadowConfig", on_delete=models.CASCADE, related_name="results")
    ticket = models.ForeignKey("triage.Ticket", on_delete=models.CASCADE, related_name="shadow_results")
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
