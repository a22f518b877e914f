"""Reads. Each returns querysets or objects with what their callers show, in a fixed number of queries."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Prefetch, Q, QuerySet

from triage.models import Citation, Draft, ModelCall, RouteDecision, Ticket, TriageRun


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
            Prefetch("route_decisions", queryset=RouteDecision.objects.all()),
            Prefetch("drafts", queryset=Draft.objects.prefetch_related(
                Prefetch("citations", queryset=Citation.objects.all()))),
            Prefetch("model_calls", queryset=ModelCall.objects.all()),
            "reviews__user",
            "outbound_emails",
        )
        .filter(pk=ticket_id)
        .first()
    )
