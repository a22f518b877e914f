"""Which tier does what: pure functions of the classification, the intent's contract and the switches.

Nothing here touches the database or the network, so the same code routes live tickets, replays
stored classifications for the admin's what-if, and is unit-tested rule by rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from triage.vocabulary import TIERS, URGENCY_LEVELS

# A ticket that fits none of the taxonomy's intents (the models' own label for it).
OTHER_INTENT = "other"


class Reason:
    CLASSIFICATION_FAILED = "classification_failed"
    LOW_CONFIDENCE = "low_confidence"
    OUT_OF_SCOPE = "out_of_scope"
    URGENCY = "urgency_at_or_above_contract"
    SENSITIVE_INTENT = "sensitive_intent"
    HIGH_RISK_INTENT = "high_risk_intent"
    NEGATIVE_ON_HIGH_RISK = "negative_sentiment_on_high_risk_intent"
    VIP_CUSTOMER = "vip_customer"
    FLAGGED_CUSTOMER = "flagged_customer"
    WEAK_RETRIEVAL = "weak_retrieval"
    WITHIN_CONTRACT = "within_contract"
    DRAFTS_OFF = "drafts_switched_off"
    DRAFTS_NOT_ALLOWED = "contract_allows_no_drafts"
    LARGE_OFF = "large_switched_off"
    TIER_OFF = "tier_switched_off"
    TIER_UNAVAILABLE = "tier_circuit_open"
    BUDGET_DOWNGRADE = "budget_cap_downgrade"
    BUDGET_HUMAN = "budget_cap_human_only"
    BUDGET_STOP = "budget_cap_stop"
    FALLBACK_HUMAN = "contract_fallback_human"
    # An agent's request, so dashboards can count them apart from the rules' own decisions.
    MANUAL_ESCALATION = "manual_escalation"
    AGENT_REGENERATE = "agent_regenerate"


# NamedTuples rather than dataclasses: the what-if builds tens of thousands of these per preview.
class Classification(NamedTuple):
    intent: str
    urgency: str
    sentiment: str
    language: str
    confidence: float
    summary: str


@dataclass(frozen=True)
class Contract:
    intent: str | None
    version: int = 1
    quality_bar: float = 0.5
    latency_budget_s: int = 60
    risk: str = "low"
    escalate_urgency: str = "urgent"
    drafts_allowed: bool = True
    fallback: str = "escalate"
    sensitive: bool = False


@dataclass(frozen=True)
class Switches:
    version: int = 1
    force_mini: bool = False
    drafts_off: bool = False
    large_off: bool = False
    enabled: frozenset[str] = frozenset(TIERS)
    weak_retrieval_below: float = 0.80


@dataclass(frozen=True)
class Budget:
    """Which tiers have hit a daily cap today, and what the cap says to do (downgrade/human/stop)."""

    exhausted: dict[str, str] = field(default_factory=dict)


class Signals(NamedTuple):
    vip: bool = False
    flagged: bool = False
    top_similarity: float | None = None


NO_SIGNALS = Signals()
NO_BUDGET = Budget()


@dataclass(frozen=True)
class Decision:
    lane: str  # mini | large | human
    reasons: tuple[str, ...]
    human_review_required: bool = False
    drafts_allowed: bool = True
    engine_override: str | None = None  # "local" when a budget downgrade sends a tier to the local engine


def escalation_reasons(c: Classification, contract: Contract, signals: Signals, switches: Switches) -> list[str]:
    reasons: list[str] = []
    if c.confidence < contract.quality_bar:
        reasons.append(Reason.LOW_CONFIDENCE)
    if c.intent == OTHER_INTENT:
        reasons.append(Reason.OUT_OF_SCOPE)
    if URGENCY_LEVELS.index(c.urgency) >= URGENCY_LEVELS.index(contract.escalate_urgency):
        reasons.append(Reason.URGENCY)
    if contract.sensitive:
        reasons.append(Reason.SENSITIVE_INTENT)
    if contract.risk == "high":
        reasons.append(Reason.HIGH_RISK_INTENT)
        if c.sentiment == "negative":
            reasons.append(Reason.NEGATIVE_ON_HIGH_RISK)
    if signals.vip:
        reasons.append(Reason.VIP_CUSTOMER)
    if signals.flagged:
        reasons.append(Reason.FLAGGED_CUSTOMER)
    if signals.top_similarity is None or signals.top_similarity < switches.weak_retrieval_below:
        reasons.append(Reason.WEAK_RETRIEVAL)
    return reasons


def route(
    classification: Classification | None,
    contract: Contract,
    switches: Switches,
    signals: Signals = NO_SIGNALS,
    budget: Budget = NO_BUDGET,
    unavailable: frozenset[str] = frozenset(),
) -> Decision:
    if classification is None:
        return Decision("human", (Reason.CLASSIFICATION_FAILED,), human_review_required=True, drafts_allowed=False)
    reasons = escalation_reasons(classification, contract, switches=switches, signals=signals)
    lane = "large" if reasons else "mini"
    if not reasons:
        reasons = [Reason.WITHIN_CONTRACT]
    review = contract.risk == "high" or lane == "large"
    if switches.drafts_off:
        return Decision("human", (*reasons, Reason.DRAFTS_OFF), review, drafts_allowed=False)
    if not contract.drafts_allowed:
        return Decision("human", (*reasons, Reason.DRAFTS_NOT_ALLOWED), review, drafts_allowed=False)
    return _apply_availability(lane, reasons, review, contract, switches, budget, unavailable)


def redraft(
    lane: str,
    reason: str,
    contract: Contract,
    switches: Switches,
    budget: Budget = NO_BUDGET,
    unavailable: frozenset[str] = frozenset(),
) -> Decision:
    """An agent asks for a new draft: regenerated on the tier that wrote the last one, or escalated by hand to
    large. The admin's switches, budget caps and open circuit breakers still have the last word."""
    review = lane == "large" or contract.risk == "high" or reason == Reason.MANUAL_ESCALATION
    if switches.drafts_off:
        return Decision("human", (reason, Reason.DRAFTS_OFF), review, drafts_allowed=False)
    if not contract.drafts_allowed:
        return Decision("human", (reason, Reason.DRAFTS_NOT_ALLOWED), review, drafts_allowed=False)
    return _apply_availability(lane, [reason], review, contract, switches, budget, unavailable)


def _apply_availability(
    lane: str, reasons: list[str], review: bool, contract: Contract, switches: Switches, budget: Budget,
    unavailable: frozenset[str],
) -> Decision:
    """Follow switches, budget caps and open circuit breakers from the lane the rules chose."""
    engine_override = None
    while True:
        if lane == "large" and switches.large_off:
            return Decision("human", (*reasons, Reason.LARGE_OFF), True, drafts_allowed=False)
        action = budget.exhausted.get(lane)
        if action == "stop":
            return Decision("human", (*reasons, Reason.BUDGET_STOP), True, drafts_allowed=False)
        if action == "human":
            return Decision("human", (*reasons, Reason.BUDGET_HUMAN), True, drafts_allowed=False)
        if action == "downgrade":
            reasons = [*reasons, Reason.BUDGET_DOWNGRADE]
            if lane == "large":
                lane, review = "mini", True
                continue
            # mini has nowhere cheaper to go among the model tiers: the local engine drafts for free.
            engine_override = "local"
        off = lane not in switches.enabled
        if off or lane in unavailable:
            reasons = [*reasons, Reason.TIER_OFF if off else Reason.TIER_UNAVAILABLE]
            if contract.fallback == "escalate" and lane == "mini":
                lane, review = "large", True
                continue
            # "retry" cannot retry a tier that is off or tripped; like "human" it fails closed.
            return Decision("human", (*reasons, Reason.FALLBACK_HUMAN), True, drafts_allowed=False)
        return Decision(lane, tuple(reasons), review, drafts_allowed=True, engine_override=engine_override)


def classify_chain(switches: Switches, budget: Budget, unavailable: frozenset[str]) -> list[tuple[str, str | None]]:
    """The tiers that may classify, in order, each with an engine override (a budget downgrade → local)."""
    chain: list[tuple[str, str | None]] = []
    for tier in TIERS:
        if tier == "nano" and switches.force_mini:
            continue
        if tier not in switches.enabled or tier in unavailable:
            continue
        if tier == "large" and switches.large_off:
            continue
        action = budget.exhausted.get(tier)
        if action in ("stop", "human"):
            continue
        chain.append((tier, "local" if action == "downgrade" else None))
    return chain


def bucket(ticket_id: int, salt: str) -> int:
    """A stable 0–99 bucket per ticket, for rollouts and shadow sampling."""
    digest = hashlib.sha256(f"{salt}:{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100
