"""The admin's what-if: what a proposed contract would have done to recent tickets.

Recomputed from stored classifications with the same pure `route()` that routes live tickets, so
the preview and production cannot disagree about the rules.
"""

from __future__ import annotations

import gc
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from triage import routing


class Row(NamedTuple):
    ticket_id: int
    intent: str | None
    classification: routing.Classification | None
    signals: routing.Signals
    lane: str  # the lane production chose
    # What agents did: True when they rejected the draft or a person had to answer; False when they
    # approved it; None when nobody has decided yet.
    agent_needed_escalation: bool | None


@dataclass(frozen=True)
class Costs:
    """Average USD per ticket for each step and tier, from stored model calls (or the price table)."""

    classify: dict[str, Decimal]
    draft: dict[str, Decimal]

    def per_ticket(self, lane: str) -> Decimal:
        cost = self.classify["nano"]
        if lane in self.draft:
            cost += self.draft[lane]
        return cost

    def all_large(self) -> Decimal:
        return self.classify["large"] + self.draft["large"]


@dataclass(frozen=True)
class Summary:
    n: int
    lanes: dict[str, int]
    escalation_rate: float
    changed: int
    cost_per_ticket: Decimal
    all_large_cost_per_ticket: Decimal
    agent_decided: int
    agent_agreement: float | None

    @property
    def lane_shares(self) -> dict[str, float]:
        return {lane: (self.lanes.get(lane, 0) / self.n if self.n else 0.0) for lane in ("mini", "large", "human")}

    @property
    def saving_vs_all_large(self) -> float | None:
        if not self.all_large_cost_per_ticket:
            return None
        return float(1 - self.cost_per_ticket / self.all_large_cost_per_ticket)


def observed(rows: list[Row], costs: Costs) -> Summary:
    """What production actually did with these tickets: the baseline the proposal is compared with."""
    lanes: Counter[str] = Counter(row.lane for row in rows)
    total = sum((costs.per_ticket(lane) * count for lane, count in lanes.items()), Decimal(0))
    decided = [row for row in rows if row.agent_needed_escalation is not None]
    agreed = sum((row.lane != "mini") == row.agent_needed_escalation for row in decided)
    n = len(rows)
    return Summary(
        n=n, lanes=dict(lanes), escalation_rate=(lanes["large"] + lanes["human"]) / n if n else 0.0, changed=0,
        cost_per_ticket=(total / n).quantize(Decimal("0.000001")) if n else Decimal(0),
        all_large_cost_per_ticket=costs.all_large().quantize(Decimal("0.000001")),
        agent_decided=len(decided), agent_agreement=agreed / len(decided) if decided else None,
    )


def simulate(
    rows: list[Row],
    contracts: dict[str | None, routing.Contract],
    switches: routing.Switches,
    costs: Costs,
) -> Summary:
    lanes: Counter[str] = Counter()
    changed = agreed = decided = 0
    total = Decimal(0)
    default = contracts.get(None) or routing.Contract(intent=None)
    per_lane = {lane: costs.per_ticket(lane) for lane in ("mini", "large", "human")}
    # route() allocates a little per ticket and nothing that can form a cycle: pause the cyclic collector.
    gc.disable()
    try:
        for row in rows:
            lane = routing.route(row.classification, contracts.get(row.intent, default), switches, row.signals).lane
            lanes[lane] += 1
            total += per_lane[lane]
            changed += lane != row.lane
            if row.agent_needed_escalation is not None:
                decided += 1
                agreed += (lane != "mini") == row.agent_needed_escalation
    finally:
        gc.enable()
    n = len(rows)
    return Summary(
        n=n, lanes=dict(lanes), escalation_rate=(lanes["large"] + lanes["human"]) / n if n else 0.0,
        changed=changed, cost_per_ticket=(total / n).quantize(Decimal("0.000001")) if n else Decimal(0),
        all_large_cost_per_ticket=costs.all_large().quantize(Decimal("0.000001")),
        agent_decided=decided, agent_agreement=agreed / decided if decided else None,
    )
