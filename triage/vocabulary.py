"""The words the whole product shares, defined once: tiers, lanes, urgencies, sentiments, engines, risks.

String enums (Django's TextChoices, which are `str` and `Enum` at once), so each member is its plain string
("nano", "urgent") in the database, JSON, templates and model output alike, and the same class is the models'
choices (`triage.models`), routing's vocabulary, the output schema's enum and the dashboard's order. Only
`django.db.models.enums` is imported: no settings, no ORM, so the pure routing core can use it.
"""

from __future__ import annotations

from django.db.models.enums import TextChoices


class Tier(TextChoices):
    """The model tiers, cheapest first."""

    NANO = "nano"
    MINI = "mini"
    LARGE = "large"


class Lane(TextChoices):
    """Where routing sends a ticket's reply: a tier drafts it, or a person writes it."""

    MINI = "mini"
    LARGE = "large"
    HUMAN = "human"


class Urgency(TextChoices):
    """Least urgent first: the order routing compares against a contract's escalation level."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Sentiment(TextChoices):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Engine(TextChoices):
    """What produced a result: a model server through the openai SDK, or the local engine."""

    OPENAI = "openai"
    LOCAL = "local"


class Risk(TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


TIERS: tuple[str, ...] = tuple(Tier)
LANES: tuple[str, ...] = tuple(Lane)
URGENCY_LEVELS: tuple[str, ...] = tuple(Urgency)
# Most urgent first, as the desk lists them.
URGENCIES_MOST_FIRST: tuple[str, ...] = tuple(reversed(URGENCY_LEVELS))
SENTIMENTS: tuple[str, ...] = tuple(Sentiment)
