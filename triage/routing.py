"""Which lane a classified ticket takes: a pure function of the classification, contract and thresholds."""

from __future__ import annotations

from dataclasses import dataclass

URGENCY_LEVELS = ("low", "normal", "high", "urgent")


class Reason:
    LOW_CONFIDENCE = "low_confidence"
    URGENCY = "urgency_at_or_above_threshold"
    SENSITIVE_INTENT = "sensitive_intent"
    NO_CLASSIFICATION = "classification_failed"
    WITHIN_CONTRACT = "within_contract"


@dataclass(frozen=True)
class Classification:
    intent: str
    urgency: str
    sentiment: str
    language: str
    confidence: float
    summary: str


@dataclass(frozen=True)
class Contract:
    intent: str
    confidence_threshold: float
    sensitive: bool


@dataclass(frozen=True)
class Thresholds:
    version: int
    escalate_urgency: str
    default_confidence_threshold: float


@dataclass(frozen=True)
class Decision:
    lane: str
    reasons: tuple[str, ...]


def route(classification: Classification | None, contract: Contract | None, thresholds: Thresholds) -> Decision:
    if classification is None:
        return Decision(lane="human", reasons=(Reason.NO_CLASSIFICATION,))
    reasons: list[str] = []
    bar = contract.confidence_threshold if contract else thresholds.default_confidence_threshold
    if classification.confidence < bar:
        reasons.append(Reason.LOW_CONFIDENCE)
    if URGENCY_LEVELS.index(classification.urgency) >= URGENCY_LEVELS.index(thresholds.escalate_urgency):
        reasons.append(Reason.URGENCY)
    if contract is not None and contract.sensitive:
        reasons.append(Reason.SENSITIVE_INTENT)
    if reasons:
        return Decision(lane="large", reasons=tuple(reasons))
    return Decision(lane="mini", reasons=(Reason.WITHIN_CONTRACT,))
