from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from triage import access, corrections, macros, selectors, services, steps
from triage.access import agent_required, is_agent, user_groups  # noqa: F401  (re-exported)
from triage.errors import ApplicationError
from triage.models import Correction, MessageAttachment, OutboundEmail, Sentiment, Ticket, Urgency

IN_PROGRESS = {Ticket.Status.NEW, Ticket.Status.CLASSIFYING, Ticket.Status.ROUTING, Ticket.Status.DRAFTING}
SENDING = {OutboundEmail.Status.QUEUED, OutboundEmail.Status.SENDING}


# --- The ticket page -----------------------------------------------------------------------------
# A plain form post is answered with a redirect and a flash message; an htmx post with the part of the page
# it changed (the server picks which), so an agent's unsaved text elsewhere on the page is never replaced.
# A refusal (a stale revision, an empty reason) goes into the alert above the ticket and touches nothing else.

TICKET = "triage/ticket.html"


def _ticket_context(request: HttpRequest, ticket_id: int) -> dict[str, Any]:
    access.ticket_for_user(request.user, ticket_id)
    ticket = selectors.ticket_page(ticket_id=ticket_id)
    if ticket is None:
        raise Http404
    drafts = list(ticket.drafts.all())
    draft = drafts[0] if drafts else None
    decisions = list(ticket.route_decisions.all())
    runs = list(ticket.triage_runs.all())
    calls = list(ticket.model_calls.all())
    outbound = list(ticket.outbound_emails.all())
    return {
        "ticket": ticket,
        "run": runs[0] if runs else None,
        "decision": decisions[0] if decisions else None,
        "decisions": decisions,
        "draft": draft,
        "can_escalate": services.escalation_allowed(ticket=ticket, runs=runs, draft=draft),
        "calls": calls,
        # Why a step produced nothing, shown where its result would be.
        "classify_failures": [c for c in calls if c.step == "classify" and c.error],
        "draft_failures": [c for c in calls if c.step == "draft" and c.error],
        "gate_results": list(ticket.gate_results.all()),
        "reviews": list(ticket.reviews.all()),
        "outbound": outbound,
        "thread": selectors.ticket_thread(ticket),
        "in_progress": ticket.status in IN_PROGRESS,
        # A reply on its way: the page follows it until the thread can say it was sent.
        "sending": any(o.status in SENDING for o in outbound),
        "corrections": list(ticket.corrections.all()),
        "notes": list(ticket.notes.all()),
        "audit_trail": selectors.ticket_audit_trail(ticket_id=ticket.pk),
        "intent_names": [i.name for i in steps.taxonomy()],
        "urgencies": Urgency.choices,
        "sentiments": Sentiment.choices,
    }


def _expected_revision(request: HttpRequest) -> int | None:
    raw = request.POST.get("expected_revision", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApplicationError("the form is damaged (its revision is not a number); reload the ticket") from None


def _done(request: HttpRequest, ticket_id: int, notice: str, *, partial: str = "ticket-body",
          also: tuple[str, ...] = (), sent: bool = False) -> HttpResponse:
    """Success: for htmx the changed part of the page (and `also`, out of band); else back to the page.

    `sent`: a reply went out, so the composer comes back empty instead of keeping what was typed."""
    if not request.htmx:
        messages.success(request, notice)
        return redirect("ticket_detail", ticket_id=ticket_id)
    context = {**_ticket_context(request, ticket_id), "notice": notice, "notice_in": partial, "oob": False,
               "sent": sent}
    html = render_to_string(f"{TICKET}#{partial}", context, request)
    oob = {**context, "oob": True, "notice": ""}
    html += "".join(render_to_string(f"{TICKET}#{name}", oob, request) for name in (*also, "alert-clear"))
    return HttpResponse(html)


def _refused(request: HttpRequest, ticket_id: int, exc: ApplicationError) -> HttpResponse:
    """A refusal: for htmx the alert above the ticket (with a copy of the agent's text), else a flash message."""
    if not request.htmx:
        messages.error(request, exc.message)
        return redirect("ticket_detail", ticket_id=ticket_id)
    unsaved = next((request.POST[f] for f in ("body", "instruction", "reason") if request.POST.get(f)), "")
    context = {"ticket_id": ticket_id, "message": exc.message, "conflict": exc.status == 409, "unsaved": unsaved}
    response = render(request, f"{TICKET}#ticket-alert", context, status=exc.status)
    response["HX-Retarget"] = "#ticket-alert"
    response["HX-Reswap"] = "innerHTML"
    return response


@require_GET
@agent_required
def ticket_detail(request: HttpRequest, ticket_id: int) -> HttpResponse:
    context = _ticket_context(request, ticket_id)
    template = f"{TICKET}#ticket-body" if request.htmx else TICKET
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


@require_POST
@agent_required
def draft_approve(request: HttpRequest, ticket_id: int, draft_id: int) -> HttpResponse:
    access.ticket_for_user(request.user, ticket_id)
    try:
        services.draft_approve(ticket_id=ticket_id, draft_id=draft_id, user=request.user,
                               final_text=request.POST.get("body"), expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "Reply approved and queued for sending.")


@require_POST
@agent_required
def reply_send(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """The composer's send: a reply started from the pending draft approves that draft (with its diff);
    anything else is the agent's own reply."""
    access.ticket_for_user(request.user, ticket_id)
    text, from_draft = request.POST.get("body", ""), request.POST.get("from_draft", "").strip()
    try:
        if from_draft:
            if not from_draft.isdigit():
                raise ApplicationError("the form is damaged (its draft is not a number); reload the ticket")
            services.draft_approve(ticket_id=ticket_id, draft_id=int(from_draft), user=request.user,
                                   final_text=text, expected_revision=_expected_revision(request))
        else:
            services.reply_send(ticket_id=ticket_id, user=request.user, text=text,
                                expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "Reply queued for sending.", sent=True)


@require_GET
@agent_required
def macro_picker(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """The macros this agent is offered, as the picker's options."""
    access.ticket_for_user(request.user, ticket_id)
    return render(request, f"{TICKET}#macro-options",
                  {"macros": list(macros.macros_for_user(request.user)), "ticket_id": ticket_id})


@require_GET
@agent_required
def macro_fill(request: HttpRequest, ticket_id: int, macro_id: int) -> JsonResponse:
    access.ticket_for_user(request.user, ticket_id)
    try:
        filled = macros.macro_fill(macro_id=macro_id, ticket_id=ticket_id, user=request.user)
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404 from exc
        raise
    return JsonResponse({"text": filled.text, "blanks": filled.blanks})


@require_POST
@agent_required
def draft_reject(request: HttpRequest, ticket_id: int, draft_id: int) -> HttpResponse:
    access.ticket_for_user(request.user, ticket_id)
    try:
        services.draft_reject(ticket_id=ticket_id, draft_id=draft_id, user=request.user,
                              reason=request.POST.get("reason", ""), expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "Draft rejected; the ticket is in the human queue.")


@require_POST
@agent_required
def draft_regenerate(request: HttpRequest, ticket_id: int, draft_id: int) -> HttpResponse:
    access.ticket_for_user(request.user, ticket_id)
    try:
        services.draft_regenerate(ticket_id=ticket_id, draft_id=draft_id, user=request.user,
                                  instruction=request.POST.get("instruction", ""),
                                  expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "A new draft is being written to your instruction.")


@require_POST
@agent_required
def ticket_escalate(request: HttpRequest, ticket_id: int) -> HttpResponse:
    access.ticket_for_user(request.user, ticket_id)
    try:
        services.ticket_escalate(ticket_id=ticket_id, user=request.user, reason=request.POST.get("reason", ""),
                                 expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "Escalated: the large tier is writing a new draft.")


@require_POST
@agent_required
def ticket_correct(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """Apply the agent's corrections (any of intent, urgency, sentiment); each change is one Correction."""
    access.ticket_for_user(request.user, ticket_id)
    try:
        changed = corrections.ticket_classification_correct(
            ticket_id=ticket_id, user=request.user, expected_revision=_expected_revision(request),
            values={f: request.POST.get(f, "") for f in Correction.Field.values},
        )
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    notice = f"Corrected {', '.join(c.field for c in changed)}." if changed else "Nothing changed."
    # The rest of the page stays as the agent left it; its forms learn the new revision out of band.
    return _done(request, ticket_id, notice, partial="classification-card", also=("audit-card", "revision-oob"))


@require_POST
@agent_required
def ticket_note(request: HttpRequest, ticket_id: int) -> HttpResponse:
    access.ticket_for_user(request.user, ticket_id)
    ticket = get_object_or_404(Ticket, pk=ticket_id)
    try:
        services.ticket_note_add(ticket=ticket, user=request.user, body=request.POST.get("body", ""),
                                 expected_revision=_expected_revision(request))
    except ApplicationError as exc:
        return _refused(request, ticket_id, exc)
    return _done(request, ticket_id, "Note added.", partial="notes-card", also=("audit-card",))


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
