"""Reads. Each returns querysets or objects with what their callers show, in a fixed number of queries."""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.db import connection, transaction
from django.db.models import Avg, BooleanField, Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone

from triage import access, routing, sla, vocabulary, whatif
from triage.errors import ApplicationError
from triage.llm.tiers import cost_usd
from triage.models import (
    AuditEvent,
    Citation,
    Correction,
    Draft,
    Engine,
    GateResult,
    Lane,
    Message,
    ModelCall,
    OutboundEmail,
    ReviewAction,
    RouteDecision,
    Ticket,
    TicketNote,
    TriageRun,
    Urgency,
)


def ticket_list(
    *,
    status: str | None = None,
    intent: str | None = None,
    urgency: str | None = None,
    lane: str | None = None,
    search: str | None = None,
) -> QuerySet[Ticket]:
    """Tickets newest first, for the API's listing."""
    qs = Ticket.objects.select_related("intent").order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if intent:
        qs = qs.filter(intent__name=intent)
    if urgency:
        qs = qs.filter(urgency=urgency)
    if lane:
        qs = qs.filter(lane=lane)
    return _search(qs, search)


def _search(qs: QuerySet[Ticket], search: str | None) -> QuerySet[Ticket]:
    term = (search or "").strip()
    if not term:
        return qs
    # "#123" or a ticket token (TD-XXXXXXXX) jumps straight to that ticket.
    if term.startswith("#") and term[1:].isdigit():
        return qs.filter(pk=int(term[1:]))
    if term.upper().startswith("TD-") and len(term) <= 16:
        return qs.filter(token=term.upper())
    return qs.filter(
        Q(search_vector=SearchQuery(term, config="simple", search_type="websearch")) | Q(subject__icontains=term)
    )


# --- The agents' queue ----------------------------------------------------------------------------

QUEUE_OPEN = "open"  # the status filter's default: everything still waiting for an answer


@dataclass(frozen=True)
class QueueFilters:
    status: str = QUEUE_OPEN  # "open", "" for any, or one Ticket.Status
    urgency: str = ""
    intent: str = ""
    lane: str = ""
    engine: str = ""
    assignee: str = ""  # "", "me", "none", or a username
    sla: str = ""  # "", "breached" or "at_risk" (breached or nearly)
    search: str = ""

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class QueueCursor:
    """A position in the queue's order (SLA due time, then id): the page starts after or before it."""

    due: datetime
    ticket_id: int

    def encode(self) -> str:
        return f"{int(self.due.timestamp() * 1_000_000)}.{self.ticket_id}"

    @classmethod
    def decode(cls, raw: str) -> QueueCursor:
        try:
            micros, ticket_id = raw.split(".")
            return cls(datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(ticket_id))
        except (ValueError, OverflowError, OSError) as exc:
            raise ApplicationError("that page link is not valid; start again from the first page") from exc


@dataclass(frozen=True)
class QueuePage:
    tickets: list[Ticket]
    next_cursor: str | None
    prev_cursor: str | None
    warn_percent: int
    now: datetime


def queue_filters_validate(raw: Any) -> QueueFilters:
    """Filters from the query string; an unknown value is a clear error, never an empty queue."""
    values = {k: (raw.get(k) or "").strip() for k in QueueFilters.__dataclass_fields__}
    if "status" not in raw:
        values["status"] = QUEUE_OPEN
    allowed = {
        "status": {QUEUE_OPEN, *Ticket.Status.values},
        "urgency": set(Urgency.values),
        "lane": set(Lane.values),
        "engine": set(Engine.values),
        "sla": {"breached", "at_risk"},
    }
    for name, choices in allowed.items():
        if values[name] and values[name] not in choices:
            raise ApplicationError(f"{values[name]!r} is not a {name} filter; choose one of {', '.join(sorted(choices))}")
    if len(values["search"]) > 200:
        raise ApplicationError("search for at most 200 characters")
    return QueueFilters(**values)


def queue_page(*, filters: QueueFilters, user: Any, after: str | None = None, before: str | None = None,
               size: int = 50, now: datetime | None = None) -> QueuePage:
    """One page of the queue in SLA due order, by keyset: one query however deep the page.

    The row comparison `(sla_due_at, id) > (cursor)` walks the ticket_due_keyset index (or the status or
    assignee variant), so page 2,000 costs what page 1 does; an OFFSET would read every row before it.
    """
    now = now or timezone.now()
    policy = sla.policy_current()
    qs = Ticket.objects.select_related("intent", "assignee").annotate(
        pending_draft_id=Subquery(
            Draft.objects.filter(ticket=OuterRef("pk"), status=Draft.Status.PENDING)
            .order_by("-created_at", "-id").values("pk")[:1]
        ),
    )
    if filters.status == QUEUE_OPEN:
        qs = qs.filter(status__in=sla.OPEN_STATUSES)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    for name in ("urgency", "lane", "engine"):
        if value := getattr(filters, name):
            qs = qs.filter(**{name: value})
    if filters.intent:
        qs = qs.filter(intent__name=filters.intent)
    if filters.assignee == "me":
        qs = qs.filter(assignee=user)
    elif filters.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif filters.assignee:
        qs = qs.filter(assignee__username=filters.assignee)
    if filters.sla == "breached":
        qs = qs.filter(sla_due_at__lte=now, first_response_at__isnull=True)
    elif filters.sla == "at_risk":
        # Due within the warning share of its whole target, or already past due.
        qs = qs.filter(first_response_at__isnull=True).filter(RawSQL(
            "triage_ticket.sla_due_at - (triage_ticket.sla_due_at - triage_ticket.created_at) * %s <= %s",
            (policy.warn_percent / 100, now), output_field=BooleanField()))
    qs = _search(qs, filters.search)
    if after and before:
        raise ApplicationError("a page starts after one ticket or before another, not both")
    if before:
        cursor = QueueCursor.decode(before)
        rows = list(qs.filter(RawSQL("(triage_ticket.sla_due_at, triage_ticket.id) < (%s, %s)",
                                     (cursor.due, cursor.ticket_id), output_field=BooleanField()))
                    .order_by("-sla_due_at", "-id")[: size + 1])
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        return QueuePage(
            tickets=rows, next_cursor=_cursor(rows[-1]) if rows else before,
            prev_cursor=_cursor(rows[0]) if rows and more_before else None, warn_percent=policy.warn_percent,
            now=now,
        )
    if after:
        cursor = QueueCursor.decode(after)
        qs = qs.filter(RawSQL("(triage_ticket.sla_due_at, triage_ticket.id) > (%s, %s)",
                              (cursor.due, cursor.ticket_id), output_field=BooleanField()))
    rows = list(qs.order_by("sla_due_at", "id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return QueuePage(
        tickets=rows, next_cursor=_cursor(rows[-1]) if more else None,
        prev_cursor=_cursor(rows[0]) if after and rows else None, warn_percent=policy.warn_percent, now=now,
    )


def _cursor(ticket: Ticket) -> str:
    return QueueCursor(ticket.sla_due_at, ticket.pk).encode()


def queue_agents() -> list[Any]:
    """Who tickets can be assigned to: active members of the agents or admins groups."""
    from django.contrib.auth import get_user_model

    return list(get_user_model().objects.filter(is_active=True)
                .filter(Q(groups__name__in=access.ROLE_GROUPS) | Q(is_superuser=True))
                .distinct().order_by("username").only("pk", "username", "first_name", "last_name"))


def _ticket_detail_qs() -> QuerySet[Ticket]:
    return Ticket.objects.select_related("intent").prefetch_related(
        Prefetch("triage_runs", queryset=TriageRun.objects.select_related("intent")),
        Prefetch("route_decisions", queryset=RouteDecision.objects.select_related("contract")),
        Prefetch("gate_results", queryset=GateResult.objects.all()),
        Prefetch("drafts", queryset=Draft.objects.select_related(
            "requested_by", "memory__intent", "memory__review").prefetch_related(
            Prefetch("citations", queryset=Citation.objects.all()))),
        Prefetch("model_calls", queryset=ModelCall.objects.all()),
        Prefetch("reviews", queryset=ReviewAction.objects.select_related("user")),
        Prefetch("outbound_emails", queryset=OutboundEmail.objects.select_related("review__user")),
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


@dataclass(frozen=True)
class ThreadEntry:
    """One message of the conversation as the customer saw it: theirs, or a reply that was sent (or is on its
    way). A reply is the outbox row, so the thread shows what left, not the draft it started from."""

    direction: str  # "inbound" or "outbound"
    at: datetime
    text: str
    message: Message | None = None  # an inbound message (its attachments, formatted view), or a sent one
    outbound: OutboundEmail | None = None
    sent_by: str = ""  # the agent who approved or wrote the reply
    diff: str = ""  # an edited approval's changes from the draft


def ticket_thread(ticket: Ticket) -> list[ThreadEntry]:
    """The conversation, oldest first, from what `ticket_page` prefetched (no queries of its own).

    A sent reply is recorded twice, as its outbox row and as an outbound Message (kept for threading); the
    thread shows it once, with the outbox row's status and who sent it."""
    outbound = list(ticket.outbound_emails.all())
    sent_ids = {o.message_id.strip("<>") for o in outbound}
    entries: list[ThreadEntry] = []
    messages = list(ticket.messages.all())
    for m in messages:
        if m.direction == Message.Direction.OUTBOUND and m.message_id in sent_ids:
            continue
        entries.append(ThreadEntry(direction=m.direction, at=m.sent_at or m.created_at,
                                   text=m.reply_text or m.text, message=m))
    if not any(m.direction == Message.Direction.INBOUND for m in messages):
        # Tickets from the API or a form have no message of their own: the ticket's body is what they wrote.
        entries.append(ThreadEntry(direction=Message.Direction.INBOUND, at=ticket.created_at, text=ticket.body))
    for o in outbound:
        review = o.review
        entries.append(ThreadEntry(
            direction=Message.Direction.OUTBOUND, at=o.created_at, text=o.body, outbound=o,
            sent_by=review.user.get_username(),
            diff=review.diff if review.action == ReviewAction.Action.EDIT_APPROVE else "",
        ))
    entries.sort(key=lambda e: e.at)
    return entries


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
    # A reply the agent wrote themselves (the composer) says a person was needed, as a rejected draft does.
    human_answered = {ReviewAction.Action.REJECT.value, ReviewAction.Action.COMPOSE.value}
    needs_human = Ticket.Status.NEEDS_HUMAN.value
    rows: list[whatif.Row] = []
    # Tens of thousands of small tuples would trigger the cyclic collector over and over; none of them
    # can form a cycle, so it is paused while they are built.
    gc.disable()
    try:
        for (ticket_id, lane, top, intent, urgency, sentiment, language, confidence, vip, flagged, status,
             action) in fetched:
            if action is not None:
                needed: bool | None = action in human_answered
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
        for tier in vocabulary.TIERS:
            tin, tout = averages.get((step, tier), ASSUMED_TOKENS[step])
            result[step][tier] = cost_usd(tier, int(tin), int(tout))
    return whatif.Costs(classify=result["classify"], draft=result["draft"])


def production_stats(*, ticket_ids: list[int], step: str) -> dict[str, Any]:
    """Production's cost and latency for one step on the given tickets, beside a shadow's."""
    return ModelCall.objects.filter(ticket_id__in=ticket_ids, step=step).aggregate(
        cost=Sum("cost_usd"), latency=Avg("latency_ms"), n=Count("id"))
