"""The product's shared words are defined once (triage.vocabulary) and every layer reads the same ones."""

from __future__ import annotations

from triage import routing, vocabulary
from triage.llm import schemas
from triage.models import Contract, ModelCall, RouteDecision, Ticket, TriageRun


def test_the_models_routing_and_the_output_schema_share_one_vocabulary() -> None:
    assert vocabulary.URGENCY_LEVELS == ("low", "normal", "high", "urgent")
    assert vocabulary.URGENCIES_MOST_FIRST == ("urgent", "high", "normal", "low")
    assert routing.URGENCY_LEVELS is vocabulary.URGENCY_LEVELS and routing.TIERS is vocabulary.TIERS
    assert Ticket._meta.get_field("urgency").choices == vocabulary.Urgency.choices
    assert TriageRun._meta.get_field("tier").choices == vocabulary.Tier.choices
    assert ModelCall._meta.get_field("engine").choices == vocabulary.Engine.choices
    assert RouteDecision._meta.get_field("lane").choices == vocabulary.Lane.choices
    assert Contract._meta.get_field("risk").choices == vocabulary.Risk.choices
    enum = schemas.classification_schema(["track_order"])["properties"]["urgency"]["enum"]
    assert enum == list(vocabulary.URGENCY_LEVELS)
    sentiments = schemas.classification_schema(["track_order"])["properties"]["sentiment"]["enum"]
    assert sentiments == list(vocabulary.SENTIMENTS) == ["negative", "neutral", "positive"]


def test_a_vocabulary_member_is_its_plain_string() -> None:
    assert vocabulary.Tier.NANO == "nano" and str(vocabulary.Lane.HUMAN) == "human"
    assert f"{vocabulary.Urgency.URGENT}" == "urgent"
