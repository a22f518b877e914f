"""Background jobs and the eval runs they produce."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


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
