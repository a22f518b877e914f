"""Reads. Each returns querysets or objects with what their callers show, in a fixed number of queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Avg, Count, Prefetch, Q, QuerySet, Sum

from triage import routing, whatif
from triage.llm.tiers import cost_usd
from triage.models import (
    Citation,
    Draft,
    GateResult,
    ModelCall,
    ReviewAction,
    RouteDecision,
    Ticket,
    TriageRun,
)


def ticket_search_vector() -> SearchVector:
    # Must match the expression of the ticket_search_gin index so PostgreSQL can use it.
    return SearchVector("subject", "body", config="simple")


def ticket_list(
    *,
    status: str | None = None,
    intent: str | None = None,
    urgency: str | None = None,
    lane: str | None = None,
    search: str | None = None,
) -> QuerySet[Ticket]:
    qs = Ticket.objects.select_related("intent").order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if intent:
        qs = qs.filter(intent__name=intent)
    if urgency:
        qs = qs.filter(urgency=urgency)
    if lane:
        qs = qs.filter(lane=lane)
    if search and search.strip():
        term = search.strip()
        qs = qs.annotate(sv=ticket_search_vector()).filter(
            Q(sv=SearchQuery(term, config="simple", search_type="websearch")) | Q(subject__icontains=term)
        )
    return qs


def ticket_detail(*, ticket_id: int) -> Ticket | None:
    return (
        Ticket.objects.select_related("intent")
        .prefetch_related(
            Prefetch("triage_runs", queryset=TriageRun.objects.select_related("intent")),
            Prefetch("route_decisions", queryset=RouteDecision.objects.select_related("contract")),
            Prefetch("gate_results", queryset=GateResult.objects.all()),
            Prefetch("drafts", queryset=Draft.objects.prefetch_related(
                Prefetch("citations", queryset=Citation.objects.all()))),
            Prefetch("model_calls", queryset=ModelCall.objects.all()),
            "reviews__user",
            "outbound_emails",
        )
        .filter(pk=ticket_id)
        .first()
    )


# --- The admin's what-if ------------------------------------------------------------------------

# Typical tokens per call when there is no history yet to average (a classification prompt carries
# the taxonomy; a draft prompt carries the knowledge-base passages).
ASSUMED_TOKENS = {"classify": (900, 80), "draft": (1800, 300)}


def whatif_rows(*, since: datetime) -> list[whatif.Row]:
    """Every ticket triaged since `since`, as the what-if replays it: two queries, no per-row work."""
    decisions = (
        RouteDecision.objects.filter(ticket__created_at__gte=since, triage_run__isnull=False)
        .order_by("ticket_id", "-created_at", "-id").distinct("ticket_id")
        .values_list("ticket_id", "lane", "top_similarity", "triage_run__intent__name", "triage_run__urgency",
                     "triage_run__sentiment", "triage_run__language", "triage_run__confidence",
                     "ticket__customer__vip", "ticket__customer__flagged", "ticket__status")
    )
    verdicts = dict(
        ReviewAction.objects.filter(ticket__created_at__gte=since).order_by("ticket_id", "-created_at")
        .distinct("ticket_id").values_list("ticket_id", "action")
    )
    rows = []
    for (ticket_id, lane, top, intent, urgency, sentiment, language, confidence, vip, flagged,
         status) in decisions.iterator(chunk_size=5000):
        action = verdicts.get(ticket_id)
        if action is not None:
            needed: bool | None = action == ReviewAction.Action.REJECT
        else:
            needed = True if status == Ticket.Status.NEEDS_HUMAN else None
        classification = None if intent is None else routing.Classification(
            intent=intent, urgency=urgency, sentiment=sentiment, language=language, confidence=confidence,
            summary="")
        rows.append(whatif.Row(
            ticket_id=ticket_id, intent=intent, classification=classification,
            signals=routing.Signals(vip=bool(vip), flagged=bool(flagged), top_similarity=top),
            lane=lane, agent_needed_escalation=needed,
        ))
    return rows


def whatif_costs(*, since: datetime) -> whatif.Costs:
    averages = {
        (step, tier): (tin, tout)
        for step, tier, tin, tout in ModelCall.objects.filter(created_at__gte=since, engine="openai",
                                                                 step__in=["classify", "draft"])
        .values_list("step", "tier").annotate(tin=Avg("tokens_in"), tout=Avg("tokens_out"))
        .values_list("step", "tier", "tin", "tout")
    }
    result: dict[str, dict[str, Decimal]] = {"classify": {}, "draft": {}}
    for step in ("classify", "draft"):
        for tier in routing.TIERS:
            tin, tout = averages.get((step, tier), ASSUMED_TOKENS[step])
            result[step][tier] = cost_usd(tier, int(tin), int(tout))
    return whatif.Costs(classify=result["classify"], draft=result["draft"])


def production_stats(*, ticket_ids: list[int], step: str) -> dict[str, Any]:
    """Production's cost and latency for one step on the given tickets, beside a shadow's."""
    return ModelCall.objects.filter(ticket_id__in=ticket_ids, step=step).aggregate(
        cost=Sum("cost_usd"), latency=Avg("latency_ms"), n=Count("id"))
