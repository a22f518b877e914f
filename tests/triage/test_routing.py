"""The routing policy, rule by rule, as a pure function."""

from __future__ import annotations

import pytest

from triage.routing import (
    Budget,
    Classification,
    Contract,
    Reason,
    Signals,
    Switches,
    bucket,
    classify_chain,
    redraft,
    route,
)

SW = Switches()
STRONG = Signals(top_similarity=0.9)


def _c(confidence: float = 0.9, urgency: str = "normal", sentiment: str = "neutral") -> Classification:
    return Classification(intent="track_order", urgency=urgency, sentiment=sentiment, language="en",
                          confidence=confidence, summary="where is my order")


def _k(**kw: object) -> Contract:
    return Contract(intent="track_order", **kw)  # type: ignore[arg-type]


def test_a_confident_routine_ticket_goes_to_mini() -> None:
    decision = route(_c(), _k(), SW, STRONG)
    assert (decision.lane, decision.reasons, decision.human_review_required) == ("mini", (Reason.WITHIN_CONTRACT,),
                                                                                False)


def test_confidence_under_the_quality_bar_escalates() -> None:
    decision = route(_c(confidence=0.59), _k(quality_bar=0.6), SW, STRONG)
    assert decision.lane == "large" and decision.reasons == (Reason.LOW_CONFIDENCE,)
    assert route(_c(confidence=0.6), _k(quality_bar=0.6), SW, STRONG).lane == "mini"


@pytest.mark.parametrize(("urgency", "lane"), [("low", "mini"), ("normal", "mini"), ("high", "large"),
                                               ("urgent", "large")])
def test_urgency_at_or_over_the_contracts_level_escalates(urgency: str, lane: str) -> None:
    decision = route(_c(urgency=urgency), _k(escalate_urgency="high"), SW, STRONG)
    assert decision.lane == lane
    assert (Reason.URGENCY in decision.reasons) == (lane == "large")


def test_a_sensitive_intent_goes_to_large() -> None:
    assert route(_c(), _k(sensitive=True), SW, STRONG).reasons == (Reason.SENSITIVE_INTENT,)


def test_high_risk_forces_large_and_human_review_and_notes_negative_sentiment() -> None:
    calm = route(_c(), _k(risk="high"), SW, STRONG)
    assert calm.lane == "large" and calm.human_review_required
    angry = route(_c(sentiment="negative"), _k(risk="high"), SW, STRONG)
    assert angry.reasons == (Reason.HIGH_RISK_INTENT, Reason.NEGATIVE_ON_HIGH_RISK)
    assert route(_c(sentiment="negative"), _k(risk="medium"), SW, STRONG).lane == "mini"


def test_vip_and_flagged_customers_escalate() -> None:
    assert route(_c(), _k(), SW, Signals(vip=True, top_similarity=0.9)).reasons == (Reason.VIP_CUSTOMER,)
    assert route(_c(), _k(), SW, Signals(flagged=True, top_similarity=0.9)).reasons == (Reason.FLAGGED_CUSTOMER,)


def test_weak_retrieval_escalates() -> None:
    assert route(_c(), _k(), SW, Signals(top_similarity=0.5)).reasons == (Reason.WEAK_RETRIEVAL,)
    assert route(_c(), _k(), SW, Signals(top_similarity=None)).reasons == (Reason.WEAK_RETRIEVAL,)
    assert route(_c(), _k(), Switches(weak_retrieval_below=0.4), Signals(top_similarity=0.5)).lane == "mini"


def test_no_classification_goes_to_a_human() -> None:
    decision = route(None, _k(), SW, STRONG)
    assert decision.lane == "human" and decision.reasons == (Reason.CLASSIFICATION_FAILED,)
    assert decision.drafts_allowed is False


def test_drafts_off_and_contracts_without_drafts_go_to_humans() -> None:
    off = route(_c(), _k(), Switches(drafts_off=True), STRONG)
    assert off.lane == "human" and Reason.DRAFTS_OFF in off.reasons and not off.drafts_allowed
    forbidden = route(_c(), _k(drafts_allowed=False), SW, STRONG)
    assert forbidden.lane == "human" and Reason.DRAFTS_NOT_ALLOWED in forbidden.reasons


def test_large_off_sends_escalations_to_humans_but_leaves_mini_alone() -> None:
    switches = Switches(large_off=True)
    assert route(_c(confidence=0.1), _k(), switches, STRONG).reasons[-1] == Reason.LARGE_OFF
    assert route(_c(), _k(), switches, STRONG).lane == "mini"


@pytest.mark.parametrize(("fallback", "lane"), [("escalate", "large"), ("human", "human"), ("retry", "human")])
def test_a_tier_switched_off_follows_the_contracts_fallback(fallback: str, lane: str) -> None:
    switches = Switches(enabled=frozenset({"nano", "large"}))
    decision = route(_c(), _k(fallback=fallback), switches, STRONG)
    assert decision.lane == lane
    assert Reason.TIER_OFF in decision.reasons


def test_an_open_circuit_breaker_follows_the_fallback() -> None:
    decision = route(_c(), _k(fallback="escalate"), SW, STRONG, unavailable=frozenset({"mini"}))
    assert decision.lane == "large" and Reason.TIER_UNAVAILABLE in decision.reasons
    both = route(_c(), _k(fallback="escalate"), SW, STRONG, unavailable=frozenset({"mini", "large"}))
    assert both.lane == "human" and both.reasons[-1] == Reason.FALLBACK_HUMAN


def test_budget_caps_downgrade_or_stop() -> None:
    down = route(_c(confidence=0.1), _k(), SW, STRONG, Budget({"large": "downgrade"}))
    assert down.lane == "mini" and Reason.BUDGET_DOWNGRADE in down.reasons and down.human_review_required
    local = route(_c(), _k(), SW, STRONG, Budget({"mini": "downgrade"}))
    assert local.lane == "mini" and local.engine_override == "local"
    human = route(_c(), _k(), SW, STRONG, Budget({"mini": "human"}))
    assert human.lane == "human" and human.reasons[-1] == Reason.BUDGET_HUMAN
    stop = route(_c(), _k(), SW, STRONG, Budget({"mini": "stop"}))
    assert stop.lane == "human" and stop.reasons[-1] == Reason.BUDGET_STOP


def test_the_classify_chain_honours_force_mini_switches_and_budgets() -> None:
    assert classify_chain(SW, Budget(), frozenset()) == [("nano", None), ("mini", None), ("large", None)]
    assert classify_chain(Switches(force_mini=True), Budget(), frozenset())[0] == ("mini", None)
    assert classify_chain(SW, Budget({"nano": "downgrade"}), frozenset())[0] == ("nano", "local")
    assert classify_chain(Switches(large_off=True), Budget({"nano": "stop"}), frozenset({"mini"})) == []


def test_buckets_are_stable_and_spread() -> None:
    assert bucket(42, "x") == bucket(42, "x")
    shares = [bucket(i, "rollout") < 30 for i in range(2000)]
    assert 0.25 < sum(shares) / len(shares) < 0.35


def test_a_manual_escalation_goes_to_large_for_review_whatever_the_rules_said() -> None:
    decision = redraft("large", Reason.MANUAL_ESCALATION, _k(), SW)
    assert (decision.lane, decision.reasons, decision.human_review_required) == (
        "large", (Reason.MANUAL_ESCALATION,), True)
    assert decision.drafts_allowed


def test_a_manual_escalation_still_obeys_the_switches_and_caps() -> None:
    off = redraft("large", Reason.MANUAL_ESCALATION, _k(), Switches(large_off=True))
    assert off.lane == "human" and off.reasons == (Reason.MANUAL_ESCALATION, Reason.LARGE_OFF)
    capped = redraft("large", Reason.MANUAL_ESCALATION, _k(), SW, Budget({"large": "downgrade"}))
    assert capped.lane == "mini" and Reason.BUDGET_DOWNGRADE in capped.reasons
    no_drafts = redraft("large", Reason.MANUAL_ESCALATION, _k(drafts_allowed=False), SW)
    assert no_drafts.lane == "human" and not no_drafts.drafts_allowed


def test_a_regenerated_draft_stays_on_its_tier() -> None:
    decision = redraft("mini", Reason.AGENT_REGENERATE, _k(), SW)
    assert (decision.lane, decision.reasons, decision.human_review_required) == (
        "mini", (Reason.AGENT_REGENERATE,), False)
    assert redraft("mini", Reason.AGENT_REGENERATE, _k(), Switches(drafts_off=True)).lane == "human"
    assert redraft("large", Reason.AGENT_REGENERATE, _k(), SW).human_review_required
