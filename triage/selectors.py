"""Reads. Each returns querysets or objects with what their callers show, in a fixed number of queries."""

from __future__ import annotations

import gc
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection, transaction
from django.db.models import Avg, Count, Prefetch, Q, QuerySet, Sum

from triage import routing, whatif
from triage.llm.tiers import cost_usd
from triage.models import (
    AuditEvent,
    Citation,
    Correction,
    Draft,
    GateResult,
    Message,
    ModelCall,
    ReviewAction,
    RouteDecision,
    Ticket,
    TicketNote,
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


def _ticket_detail_qs() -> QuerySet[Ticket]:
    return Ticket.objects.select_related("intent").prefetch_related(
        Prefetch("triage_runs", queryset=TriageRun.objects.select_related("intent")),
        Prefetch("route_decisions", queryset=RouteDecision.objects.select_related("contract")),
        Prefetch("gate_results", queryset=GateResult.objects.all()),
        Prefetch("drafts", queryset=Draft.objects.select_related("requested_by").prefetch_related(
            Prefetch("citations", queryset=Citation.objects.all()))),
        Prefetch("model_calls", queryset=ModelCall.objects.all()),
        Prefetch("reviews", queryset=ReviewAction.objects.select_related("user")),
        "outbound_emails",
        Prefetch("messages", queryset=Message.objects.prefetch_related("attachments")),
    )


def ticket_detail(*, ticket_id: int) -> Ticket | None:
    """A ticket with its classification, route, drafts, calls, reviews and thread, in a fixed number of queries."""
    return _ticket_detail_qs().filter(pk=ticket_id).first()


def ticket_page(*, ticket_id: int) -> Ticket | None:
    """`ticket_detail` and what only agents see (corrections, notes), in a fixed number of queries however
    long the ticket's history."""
    return (
        _ticket_detail_qs()
        .prefetch_related(
            Prefetch("corrections", queryset=Correction.objects.select_related("user")),
            Prefetch("notes", queryset=TicketNote.objects.select_related("user")),
        )
        .filter(pk=ticket_id)
        .first()
    )


def ticket_audit_trail(*, ticket_id: int) -> list[AuditEvent]:
    """Everything done to the ticket, oldest first: agents' changes and the pipeline's drafts."""
    return list(AuditEvent.objects.filter(object_type="Ticket", object_id=str(ticket_id))
                .select_related("actor").order_by("created_at", "id"))


# --- The admin's what-if ------------------------------------------------------------------------

# Typical tokens per call when there is no history yet to average (a classification prompt carries
# the taxonomy; a draft prompt carries the knowledge-base passages).
ASSUMED_TOKENS = {"classify": (900, 80), "draft": (1800, 300)}


_WHATIF_SQL = """
SELECT DISTINCT ON (d.ticket_id)
       d.ticket_id, d.lane, d.top_similarity, i.name, r.urgency, r.sentiment, r.language, r.confidence,
       COALESCE(c.vip, false), COALESCE(c.flagged, false), t.status, v.action
FROM triage_routedecision d
JOIN triage_ticket t ON t.id = d.ticket_id
JOIN triage_triagerun r ON r.id = d.triage_run_id
LEFT JOIN triage_intent i ON i.id = r.intent_id
LEFT JOIN triage_customer c ON c.id = t.customer_id
LEFT JOIN (
    SELECT DISTINCT ON (a.ticket_id) a.ticket_id, a.action FROM triage_reviewaction a
    ORDER BY a.ticket_id, a.created_at DESC, a.id DESC
) v ON v.ticket_id = d.ticket_id
WHERE t.created_at >= %s
ORDER BY d.ticket_id, d.created_at DESC, d.id DESC
"""


# An admin's preview fires on every change to the form: the rows are kept per process until a ticket is
# routed or reviewed (or the window moves by a minute), so only the first preview pays for the load.
_whatif_cache: dict[str, Any] = {"key": None, "rows": None}


def whatif_rows(*, since: datetime) -> list[whatif.Row]:
    """Every ticket triaged since `since`, as the what-if replays it, in one query (cached, see above)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT max(id) FROM triage_routedecision), (SELECT max(id) FROM triage_reviewaction)")
        latest = cursor.fetchone()
    key = (since.replace(second=0, microsecond=0), latest, connection.settings_dict["NAME"])
    if _whatif_cache["key"] == key:
        return list(_whatif_cache["rows"])
    rows = _whatif_rows_load(since=since)
    _whatif_cache.update(key=key, rows=rows)
    return list(rows)


def _whatif_rows_load(*, since: datetime) -> list[whatif.Row]:
    with transaction.atomic(), connection.cursor() as cursor:
        # The DISTINCT ON sort over tens of thousands of rows spills to disk at the default work_mem.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(_WHATIF_SQL, [since])
        fetched = cursor.fetchall()
    Classification, Signals, Row = routing.Classification, routing.Signals, whatif.Row
    reject, needs_human = ReviewAction.Action.REJECT.value, Ticket.Status.NEEDS_HUMAN.value
    rows: list[whatif.Row] = []
    # Tens of thousands of small tuples would trigger the cyclic collector over and over; none of them
    # can form a cycle, so it is paused while they are built.
    gc.disable()
    try:
        for (ticket_id, lane, top, intent, urgency, sentiment, language, confidence, vip, flagged, status,
             action) in fetched:
            if action is not None:
                needed: bool | None = action == reject
            else:
                needed = True if status == needs_human else None
            classification = None if intent is None else Classification(
                intent, urgency, sentiment, language, confidence, "")
            rows.append(Row(ticket_id, intent, classification, Signals(vip, flagged, top), lane, needed))
    finally:
        gc.enable()
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
