"""The team's taxonomy: intents, their examples (seeded, labelled, corrected) and trained local models."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from triage.models.common import LOCAL_EMBEDDING_DIM
from triage.vocabulary import Urgency


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
    ticket = models.OneToOneField("triage.Ticket", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="training_example")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The vector of what the classifier reads of the text (`local.model_input`), computed once and reused
    # by every retraining.
    embedding = VectorField(dimensions=LOCAL_EMBEDDING_DIM, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.source} example of intent {self.intent_id}: {self.text[:40]}"


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
