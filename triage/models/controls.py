"""What admins set: routing contracts, switches, gates, prompts, shadow lanes, the SLA policy, the audit trail."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q

from triage.models.common import BudgetAction, Fallback, list_workdays
from triage.vocabulary import Risk, Tier, Urgency


class Contract(models.Model):
    """One version of an intent's routing contract (intent NULL: the default). Rows are never edited."""

    intent = models.ForeignKey("triage.Intent", null=True, blank=True, on_delete=models.CASCADE, related_name="contracts")
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
