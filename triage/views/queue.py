"""The agents' queue: SLA-ordered, filtered, searchable, paged by keyset, live, with assignment and bulk actions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from triage import selectors, services, sla, steps
from triage.access import agent_required
from triage.errors import ApplicationError
from triage.models import Engine, Lane, Ticket, Urgency

PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    sla: sla.SlaState
    due: str  # "in 12 min", "3 h 05 over"


def _rows(page: selectors.QueuePage) -> list[QueueRow]:
    return [
        QueueRow(t, sla.state(due=t.sla_due_at, created=t.created_at, answered=t.first_response_at,
                              warn_percent=page.warn_percent, now=page.now),
                 due_label(t.sla_due_at, page.now))
        for t in page.tickets
    ]


def _queue_context(request: HttpRequest, params: Any) -> tuple[dict[str, Any], int]:
    status = 200
    try:
        filters = selectors.queue_filters_validate(params)
        page = selectors.queue_page(filters=filters, user=request.user, after=params.get("after") or None,
                                    before=params.get("before") or None, size=PAGE_SIZE)
        error = ""
    except ApplicationError as exc:
        filters, error, status = selectors.QueueFilters(), exc.message, exc.status
        page = selectors.queue_page(filters=filters, user=request.user, size=PAGE_SIZE)
    base = filters.as_query()
    if "status" not in base:
        base["status"] = ""  # "any status" must survive the round trip; absent means the default, open
    here = {**base, **({"after": params["after"]} if params.get("after") else {}),
            **({"before": params["before"]} if params.get("before") else {})}
    queue_url = reverse("queue")
    return {
        "rows": _rows(page), "page": page, "filters": filters, "error": error,
        "after": params.get("after") or "", "before": params.get("before") or "",
        "poll_url": f"{queue_url}?{urlencode(here)}",
        "next_url": f"{queue_url}?{urlencode({**base, 'after': page.next_cursor})}" if page.next_cursor else "",
        "prev_url": f"{queue_url}?{urlencode({**base, 'before': page.prev_cursor})}" if page.prev_cursor else "",
        "first_url": f"{queue_url}?{urlencode(base)}" if (params.get("after") or params.get("before")) else "",
    }, status


@require_GET
@agent_required
def queue(request: HttpRequest) -> HttpResponse:
    context, status = _queue_context(request, request.GET)
    if request.htmx:
        template = "triage/queue.html#queue-rows"
    else:
        template = "triage/queue.html"
        context.update({
            "statuses": Ticket.Status.choices, "urgencies": Urgency.choices, "lanes": Lane.choices,
            "engines": Engine.choices, "intent_names": [i.name for i in steps.taxonomy()],
            "agents": selectors.queue_agents(), "bulk_actions": services.BULK_ACTIONS,
        })
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response


@require_POST
@agent_required
def queue_action(request: HttpRequest) -> HttpResponse:
    """One action on the selected tickets (a keyboard shortcut sends one, the bulk bar many).

    htmx gets the refreshed rows with a toast; without JavaScript the browser is sent back to the queue.
    """
    level, text = "success", ""
    try:
        ids = [int(v) for v in request.POST.getlist("ticket")]
        assignee = None
        if username := request.POST.get("assignee"):
            assignee = get_user_model().objects.filter(username=username).first()
            if assignee is None:
                raise ApplicationError(f"there is no user {username!r}")
        action = request.POST.get("action", "")
        done, failed = services.tickets_bulk(action=action, ticket_ids=ids, actor=request.user, assignee=assignee,
                                             reason=request.POST.get("reason", ""))
        text = _summary(action, done, failed)
        level = "error" if failed and not done else "warning" if failed else "success"
    except ValueError:
        level, text = "error", "the selection holds something that is not a ticket number"
    except ApplicationError as exc:
        level, text = "error", exc.message
    if not request.htmx:
        (messages.error if level == "error" else messages.success)(request, text)
        return redirect(f"{reverse('queue')}?{request.POST.get('query', '')}")
    params = {k: v for k, v in request.POST.items() if k in selectors.QueueFilters.__dataclass_fields__
              or k in ("after", "before")}
    context, status = _queue_context(request, params)
    response = render(request, "triage/queue.html#queue-rows", context, status=status)
    response["HX-Trigger"] = json.dumps({"tierdesk:toast": {"level": level, "message": text}})
    return response


_VERBS = {"take": "taken", "assign": "assigned", "unassign": "unassigned", "approve": "approved and queued for sending",
          "reject": "rejected"}


def _summary(action: str, done: int, failed: list[tuple[int, str]]) -> str:
    noun = "ticket" if done == 1 else "tickets"
    text = f"{done} {noun} {_VERBS.get(action, action)}."
    if failed:
        detail = "; ".join(f"#{ticket_id}: {why}" for ticket_id, why in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        text += f" {len(failed)} not: {detail}{more}."
    return text


def due_label(due: datetime, now: datetime) -> str:
    seconds = int((due - now).total_seconds())
    minutes = abs(seconds) // 60
    span = f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d}" if minutes < 48 * 60 \
        else f"{minutes // 1440} d"
    return f"in {span}" if seconds > 0 else f"{span} over"
