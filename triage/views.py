from __future__ import annotations

from django.contrib import messages
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from triage import access, learning, selectors, services, steps
from triage.access import agent_required, is_agent, user_groups  # noqa: F401  (re-exported)
from triage.errors import ApplicationError
from triage.models import AuditEvent, Correction, MessageAttachment, Sentiment, Ticket, Urgency

IN_PROGRESS = {Ticket.Status.NEW, Ticket.Status.CLASSIFYING, Ticket.Status.ROUTING, Ticket.Status.DRAFTING}


def _ticket_for_user(request: HttpRequest, ticket_id: int) -> Ticket:
    access.ticket_for_user(request.user, ticket_id)
    ticket = selectors.ticket_detail(ticket_id=ticket_id)
    if ticket is None:
        raise Http404
    return ticket


@require_GET
@agent_required
def ticket_detail(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket_for_user(request, ticket_id)
    context = {
        "ticket": ticket,
        "run": next(iter(ticket.triage_runs.all()), None),
        "decision": next(iter(ticket.route_decisions.all()), None),
        "draft": next(iter(ticket.drafts.all()), None),
        "calls": list(ticket.model_calls.all()),
        "gate_results": list(ticket.gate_results.all()),
        "reviews": list(ticket.reviews.all()),
        "outbound": list(ticket.outbound_emails.all()),
        "thread": list(ticket.messages.all()),
        "in_progress": ticket.status in IN_PROGRESS,
        "corrections": list(ticket.corrections.select_related("user")),
        "notes": list(ticket.notes.select_related("user")),
        "audit_trail": list(AuditEvent.objects.filter(object_type="Ticket", object_id=str(ticket.pk))
                            .select_related("actor").order_by("created_at", "id")),
        "intent_names": [i.name for i in steps.taxonomy()],
        "urgencies": Urgency.choices,
        "sentiments": Sentiment.choices,
    }
    template = "triage/ticket.html#ticket-body" if request.htmx else "triage/ticket.html"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


@require_POST
@agent_required
def draft_approve(request: HttpRequest, ticket_id: int, draft_id: int) -> HttpResponse:
    _ticket_for_user(request, ticket_id)
    try:
        services.draft_approve(
            ticket_id=ticket_id, draft_id=draft_id, user=request.user, final_text=request.POST.get("body"),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Reply approved and queued for sending.")
    return redirect("ticket_detail", ticket_id=ticket_id)


@require_POST
@agent_required
def draft_reject(request: HttpRequest, ticket_id: int, draft_id: int) -> HttpResponse:
    _ticket_for_user(request, ticket_id)
    try:
        services.draft_reject(
            ticket_id=ticket_id, draft_id=draft_id, user=request.user, reason=request.POST.get("reason", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Draft rejected; the ticket is in the human queue.")
    return redirect("ticket_detail", ticket_id=ticket_id)


@require_POST
@agent_required
def ticket_correct(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """Apply the agent's corrections (any of intent, urgency, sentiment); each change is one Correction."""
    ticket = _ticket_for_user(request, ticket_id)
    changed = []
    try:
        for field in Correction.Field.values:
            value = request.POST.get(field)
            if value and learning.ticket_correct(ticket=ticket, user=request.user, field=field, value=value):
                changed.append(field)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Corrected {', '.join(changed)}." if changed else "Nothing changed.")
    return redirect("ticket_detail", ticket_id=ticket_id)


@require_POST
@agent_required
def ticket_note(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket_for_user(request, ticket_id)
    try:
        services.ticket_note_add(ticket=ticket, user=request.user, body=request.POST.get("body", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Note added.")
    return redirect("ticket_detail", ticket_id=ticket_id)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
@agent_required
def attachment_download(request: HttpRequest, ticket_id: int, attachment_id: int) -> FileResponse:
    access.ticket_for_user(request.user, ticket_id)
    attachment = MessageAttachment.objects.filter(pk=attachment_id, message__ticket_id=ticket_id).first()
    if attachment is None:
        raise Http404
    # Always a download, never rendered inline: an attachment is the customer's file, not our page.
    response = FileResponse(attachment.file.open("rb"), as_attachment=True, filename=attachment.filename,
                            content_type="application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    return response
