from __future__ import annotations

import pytest

from triage.routing import Classification, Contract, Reason, Thresholds, route

THRESHOLDS = Thresholds(version=3, escalate_urgency="urgent", default_confidence_threshold=0.5)


def _c(confidence: float = 0.9, urgency: str = "normal", intent: str = "track_order") -> Classification:
    return Classification(intent=intent, urgency=urgency, sentiment="neutral", language="en",
                          confidence=confidence, summary="where is my order")


def _contract(threshold: float = 0.6, sensitive: bool = False) -> Contract:
    return Contract(intent="track_order", confidence_threshold=threshold, sensitive=sensitive)


def test_a_confident_routine_ticket_goes_to_mini() -> None:
    decision = route(_c(), _contract(), THRESHOLDS)
    assert decision.lane == "mini"
    assert decision.reasons == (Reason.WITHIN_CONTRACT,)


def test_confidence_below_the_intents_threshold_escalates_to_large() -> None:
    decision = route(_c(confidence=0.59), _contract(threshold=0.6), THRESHOLDS)
    assert decision.lane == "large"
    assert decision.reasons == (Reason.LOW_CONFIDENCE,)


def test_the_intents_threshold_wins_over_the_default() -> None:
    assert route(_c(confidence=0.55), _contract(threshold=0.5), THRESHOLDS).lane == "mini"
    assert route(_c(confidence=0.55), None, Thresholds(1, "urgent", 0.6)).lane == "large"


@pytest.mark.parametrize(("urgency", "lane"), [("low", "mini"), ("normal", "mini"), ("high", "large"),
                                               ("urgent", "large")])
def test_urgency_at_or_above_the_threshold_escalates(urgency: str, lane: str) -> None:
    decision = route(_c(urgency=urgency), _contract(), Thresholds(1, "high", 0.5))
    assert decision.lane == lane
    assert (Reason.URGENCY in decision.reasons) == (lane == "large")


def test_a_sensitive_intent_always_goes_to_large_with_every_reason_recorded() -> None:
    decision = route(_c(confidence=0.1, urgency="urgent"), _contract(sensitive=True), THRESHOLDS)
    assert decision.lane == "large"
    assert decision.reasons == (Reason.LOW_CONFIDENCE, Reason.URGENCY, Reason.SENSITIVE_INTENT)


def test_no_classification_goes_to_a_human() -> None:
    decision = route(None, None, THRESHOLDS)
    assert decision.lane == "human"
    assert decision.reasons == (Reason.NO_CLASSIFICATION,)
