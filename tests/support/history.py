"""A stored history that looks like a support team's weeks, for the dashboard's browser test and benchmark.

Tickets arrive over `days` (more by day than by night) across intents and urgencies; each has its
classification, its model calls priced at the tiers' rates, a route decision with reason codes, a draft,
the agent's decision on it, a first response against its SLA, and now and then a correction. Rows are
written with bulk_create in batches, so 100,000 tickets take about a minute.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from triage.llm.tiers import cost_usd
from triage.models import (
    Correction,
    Draft,
    Intent,
    ModelCall,
    ReviewAction,
    RouteDecision,
    Ticket,
    TriageRun,
)

INTENTS = {  # name: (share of tickets, sensitive)
    "track_order": (0.24, False), "delivery_period": (0.12, False), "change_shipping_address": (0.10, False),
    "cancel_order": (0.10, False), "recover_password": (0.12, False), "get_refund": (0.14, True),
    "payment_issue": (0.10, True), "complaint": (0.08, True),
}
URGENCIES = {"low": 0.20, "normal": 0.55, "high": 0.18, "urgent": 0.07}
SLA_MINUTES = {"urgent": 15, "high": 60, "normal": 480, "low": 1440}
TIMESTAMPED = (Ticket, TriageRun, ModelCall, RouteDecision, Draft, ReviewAction, Correction)


@contextmanager
def own_timestamps() -> Iterator[None]:
    """bulk_create stamps created_at with the clock; a history needs its rows to carry their own times."""
    fields = [model._meta.get_field("created_at") for model in TIMESTAMPED]
    saved = [f.auto_now_add for f in fields]  # type: ignore[union-attr]
    for f in fields:
        f.auto_now_add = False  # type: ignore[union-attr]
    try:
        yield
    finally:
        for f, value in zip(fields, saved, strict=True):
            f.auto_now_add = value  # type: ignore[union-attr]


def _pick(rng: random.Random, weights: dict[str, Any]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[w[0] if isinstance(w, tuple) else w for w in weights.values()])[0]


def _arrival(rng: random.Random, now: datetime, days: float) -> datetime:
    # More tickets in the working day than at night: accept an hour with a probability that follows it.
    while True:
        moment = now - timedelta(seconds=rng.uniform(0, days * 86400))
        hour = moment.hour + moment.minute / 60
        if rng.random() < 0.25 + 0.75 * math.exp(-((hour - 13) / 4.5) ** 2):
            return moment


def _call(ticket: Ticket, when: datetime, rng: random.Random, *, step: str, tier: str, valid: bool = True,
          attempt: int = 1) -> ModelCall:
    if step == "classify":
        tokens_in, tokens_out = rng.randint(350, 900), rng.randint(40, 90)
        latency = {"nano": 450, "mini": 1100, "large": 3200}[tier]
    else:
        tokens_in, tokens_out = rng.randint(1800, 3600), rng.randint(150, 450)
        latency = {"nano": 1200, "mini": 2400, "large": 7000}[tier]
    return ModelCall(ticket=ticket, step=step, tier=tier, engine="openai", model=f"gpt-{tier}", prompt_id=step,
                     prompt_version=1, attempt=attempt, tokens_in=tokens_in, tokens_out=tokens_out,
                     cost_usd=cost_usd(tier, tokens_in, tokens_out),
                     latency_ms=int(latency * rng.lognormvariate(0, 0.45)), schema_valid=valid,
                     error="" if valid else "the answer did not match the schema", created_at=when)


def _route(rng: random.Random, *, intent: str, urgency: str, confidence: float) -> tuple[str, list[str]]:
    if rng.random() < 0.05:
        return "human", rng.choice([["within_contract", "drafts_switched_off"], ["classification_failed"],
                                    ["low_confidence", "large_switched_off"]])
    reasons = []
    if confidence < 0.55:
        reasons.append("low_confidence")
    if urgency == "urgent":
        reasons.append("urgency_at_or_above_contract")
    if INTENTS[intent][1] and rng.random() < 0.5:
        reasons.append("sensitive_intent")
    if rng.random() < 0.07:
        reasons.append("weak_retrieval")
    if rng.random() < 0.03:
        reasons.append("vip_customer")
    return ("large", reasons) if reasons else ("mini", ["within_contract"])


def populate(*, tickets: int, days: float, now: datetime, seed: int = 7, batch: int = 5000,
             user: User | None = None) -> None:
    rng = random.Random(seed)
    user = user or User.objects.get_or_create(username="history-agent")[0]
    intents = {name: Intent.objects.get_or_create(name=name)[0] for name in INTENTS}
    with own_timestamps():
        for first in range(0, tickets, batch):
            with transaction.atomic():
                _batch(rng, min(batch, tickets - first), days=days, now=now, intents=intents, user=user)


def _batch(rng: random.Random, size: int, *, days: float, now: datetime, intents: dict[str, Intent],
           user: User) -> None:
    plans = []
    for _ in range(size):
        created = _arrival(rng, now, days)
        intent, urgency = _pick(rng, INTENTS), _pick(rng, URGENCIES)
        confidence = min(0.99, rng.betavariate(6, 1.8))
        lane, reasons = _route(rng, intent=intent, urgency=urgency, confidence=confidence)
        plans.append({"created": created, "intent": intent, "urgency": urgency, "confidence": confidence,
                      "lane": lane, "reasons": reasons,
                      "due": created + timedelta(minutes=SLA_MINUTES[urgency])})
    for plan in plans:
        _decide(rng, plan, now)
    rows = Ticket.objects.bulk_create(
        Ticket(subject=f"{p['intent'].replace('_', ' ')} question", body="…", from_email="customer@example.com",
               status=p["status"], intent=intents[p["intent"]], urgency=p["urgency"], sentiment="neutral",
               language="en", confidence=p["confidence"], lane=p["lane"], engine="openai",
               sla_due_at=p["due"], first_response_at=p["answered"], created_at=p["created"])
        for p in plans
    )
    runs = TriageRun.objects.bulk_create(
        TriageRun(ticket=t, tier="nano", engine="openai", model="gpt-nano", intent=intents[p["intent"]],
                  urgency=p["urgency"], sentiment="neutral", language="en", confidence=p["confidence"], summary="",
                  created_at=p["created"] + timedelta(seconds=2))
        for t, p in zip(rows, plans, strict=True)
    )
    calls: list[ModelCall] = []
    for t, p in zip(rows, plans, strict=True):
        at = p["created"] + timedelta(seconds=1)
        if rng.random() < 0.04:  # an answer that fails the schema is retried, and once in a while handed to mini
            calls.append(_call(t, at, rng, step="classify", tier="nano", valid=False))
            if rng.random() < 0.3:
                calls.append(_call(t, at, rng, step="classify", tier="nano", valid=False, attempt=2))
                calls.append(_call(t, at, rng, step="classify", tier="mini"))
            else:
                calls.append(_call(t, at, rng, step="classify", tier="nano", attempt=2))
        else:
            calls.append(_call(t, at, rng, step="classify", tier="nano"))
        if p["lane"] != "human":
            calls.append(_call(t, at + timedelta(seconds=5), rng, step="draft", tier=p["lane"]))
    ModelCall.objects.bulk_create(calls, batch_size=5000)
    decisions = RouteDecision.objects.bulk_create(
        RouteDecision(ticket=t, triage_run=r, lane=p["lane"], reasons=p["reasons"], top_similarity=0.85,
                      created_at=p["created"] + timedelta(seconds=3))
        for t, r, p in zip(rows, runs, plans, strict=True)
    )
    drafted = [(t, d, p) for t, d, p in zip(rows, decisions, plans, strict=True) if p["lane"] != "human"]
    drafts = Draft.objects.bulk_create(
        Draft(ticket=t, route_decision=d, tier=p["lane"], engine="openai", model=f"gpt-{p['lane']}", body="…",
              grounded=True, status=p["draft_status"], created_at=p["created"] + timedelta(seconds=12))
        for t, d, p in drafted
    )
    ReviewAction.objects.bulk_create(
        ReviewAction(ticket=t, draft=draft, user=user, action=p["action"], drafted_text="…",
                     edit_distance=p["distance"], created_at=p["reviewed"])
        for (t, _, p), draft in zip(drafted, drafts, strict=True) if p["action"]
    )
    corrections = []
    for t, r, _p in zip(rows, runs, plans, strict=True):
        if rng.random() < 0.07:
            field = rng.choices(["intent", "urgency", "sentiment"], weights=[55, 30, 15])[0]
            seconds = rng.randint(20, 300) if rng.random() < 0.55 else rng.randint(301, 7200)
            when = r.created_at + timedelta(seconds=seconds)
            if when < now:
                corrections.append(Correction(ticket=t, triage_run=r, field=field, old_value="a", new_value="b",
                                              user=user, seconds_since_triage=seconds, created_at=when))
    Correction.objects.bulk_create(corrections)


def _decide(rng: random.Random, plan: dict[str, Any], now: datetime) -> None:
    """What happened to the ticket: the agent's decision on its draft and when it was first answered."""
    target = SLA_MINUTES[plan["urgency"]]
    # Agents answer most tickets within their target, urgent ones less reliably.
    miss = {"urgent": 0.25, "high": 0.15, "normal": 0.08, "low": 0.05}[plan["urgency"]]
    delay = timedelta(minutes=target * (rng.uniform(1.05, 2.5) if rng.random() < miss else rng.uniform(0.1, 0.95)))
    answered_at = plan["created"] + delay
    plan.update(action="", distance=None, reviewed=None, answered=None, draft_status="pending",
                status="awaiting_review")
    if plan["lane"] == "human":
        plan["status"] = "needs_human"
        if answered_at < now and rng.random() < 0.9:
            plan.update(answered=answered_at, status="approved")
        return
    if answered_at >= now:
        return
    roll = rng.random()
    if roll < 0.58:
        plan.update(action="approve", distance=0, draft_status="approved", status="approved", answered=answered_at)
    elif roll < 0.86:
        plan.update(action="edit_approve", distance=int(rng.lognormvariate(math.log(35), 0.9)) + 1,
                    draft_status="approved", status="approved", answered=answered_at)
    else:
        plan.update(action="reject", draft_status="rejected", status="needs_human")
        # A person writes the answer instead, usually later than a draft would have gone out.
        written = answered_at + timedelta(minutes=target * rng.uniform(0.2, 1.0))
        if written < now and rng.random() < 0.7:
            plan.update(answered=written, status="approved")
    plan["reviewed"] = answered_at
