from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.security import HttpBearer

from triage import selectors, services, throttle
from triage.errors import ApplicationError
from triage.models import ApiKey, Ticket
from triage.schemas import ErrorOut, TicketIn, TicketOut, TicketPage

MAX_IDEMPOTENCY_KEY = 255


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = services.api_key_authenticate(raw=token)
        if key is not None:
            wait = throttle.api_key_wait(request, key.pk)
            if wait is not None:
                raise Throttled(wait)
        return key


api = NinjaAPI(
    title="Tierdesk API",
    version="1",
    description="Support tickets in; classification, route and grounded draft out.",
    urls_namespace="api",
    auth=ApiKeyAuth(),
)


@api.exception_handler(ApplicationError)
def on_application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message, **exc.extra}, status=exc.status)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "payload")),
         "message": e.get("msg", "invalid")}
        for e in exc.errors
    ]
    return api.create_response(request, {"detail": "invalid request", "errors": errors}, status=400)


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(
        request, {"detail": "a valid API key is required: Authorization: Bearer <key>"}, status=401
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(Throttled)
def on_throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    wait = exc.wait or 1
    response = api.create_response(
        request, {"detail": f"too many requests for this API key; retry in {wait} seconds"}, status=429)
    response["Retry-After"] = str(wait)
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


def _ticket_out(ticket: Ticket) -> dict[str, Any]:
    run = next(iter(ticket.triage_runs.all()), None)
    decision = next(iter(ticket.route_decisions.all()), None)
    draft = next(iter(ticket.drafts.all()), None)
    return {
        **_summary(ticket),
        "body": ticket.body,
        "metadata": ticket.metadata,
        "channel": ticket.channel,
        "triage": None if run is None else {
            "tier": run.tier, "engine": run.engine, "model": run.model,
            "intent": run.intent.name if run.intent else None, "urgency": run.urgency,
            "sentiment": run.sentiment, "language": run.language, "confidence": run.confidence,
            "summary": run.summary, "escalated_from": run.escalated_from, "created_at": run.created_at,
        },
        "route": None if decision is None else {
            "lane": decision.lane, "reasons": decision.reasons,
            "contract_version": decision.contract.version if decision.contract else None,
            "switches_version": decision.switches_version, "human_review_required": decision.human_review_required,
            "drafts_allowed": decision.drafts_allowed, "top_similarity": decision.top_similarity,
            "thresholds": decision.thresholds, "created_at": decision.created_at,
        },
        "draft": None if draft is None else {
            "id": draft.pk, "tier": draft.tier, "engine": draft.engine, "model": draft.model,
            "body": draft.body, "grounded": draft.grounded, "needs_review_reason": draft.needs_review_reason,
            "gates_passed": draft.gates_passed, "attempts": draft.attempts,
            "seconds_to_draft": draft.seconds_to_draft, "latency_budget_s": draft.latency_budget_s,
            "status": draft.status, "citations": list(draft.citations.all()), "created_at": draft.created_at,
        },
        "gate_results": list(ticket.gate_results.all()),
        "model_calls": list(ticket.model_calls.all()),
    }


def _summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.pk, "status": ticket.status, "subject": ticket.subject, "from_email": ticket.from_email,
        "from_name": ticket.from_name, "external_id": ticket.external_id,
        "intent": ticket.intent.name if ticket.intent else None, "urgency": ticket.urgency,
        "sentiment": ticket.sentiment, "language": ticket.language, "confidence": ticket.confidence,
        "lane": ticket.lane, "high_risk": ticket.high_risk, "human_review_required": ticket.human_review_required,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
    }


@api.post(
    "/tickets",
    response={200: TicketOut, 201: TicketOut, 400: ErrorOut, 401: ErrorOut, 422: ErrorOut},
    summary="Create a ticket and queue its triage",
    description="Send an `Idempotency-Key` header to make retries safe: the same key and body return the "
    "original ticket (200); the same key with a different body is refused (422).",
)
def create_ticket(request: HttpRequest, payload: TicketIn) -> Status:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key.strip()) <= MAX_IDEMPOTENCY_KEY:
        raise ApplicationError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    ticket, created = services.ticket_create(
        **payload.dict(), api_key=request.auth, idempotency_key=key.strip() if key else None,
    )
    if created:
        # A ticket this request just stored has no triage yet: answer without reading it back.
        return Status(201, {**_summary(ticket), "body": ticket.body, "metadata": ticket.metadata,
                            "channel": ticket.channel, "triage": None, "route": None, "draft": None,
                            "gate_results": [], "model_calls": []})
    detail = selectors.ticket_detail(ticket_id=ticket.pk)
    assert detail is not None
    return Status(200, _ticket_out(detail))


@api.get("/tickets/{ticket_id}", response={200: TicketOut, 404: ErrorOut}, summary="A ticket with its triage")
def get_ticket(request: HttpRequest, ticket_id: int) -> dict[str, Any]:
    ticket = selectors.ticket_detail(ticket_id=ticket_id)
    if ticket is None:
        raise ApplicationError("ticket not found", status=404)
    return _ticket_out(ticket)


class TicketFilters(Schema):
    status: Ticket.Status | None = None
    intent: str | None = None
    urgency: str | None = None
    lane: str | None = None
    search: str | None = None
    limit: int = 50
    offset: int = 0


@api.get("/tickets", response={200: TicketPage, 400: ErrorOut}, summary="List tickets, newest first")
def list_tickets(request: HttpRequest, filters: Query[TicketFilters]) -> dict[str, Any]:
    if not 1 <= filters.limit <= 200:
        raise ApplicationError("limit must be between 1 and 200")
    if filters.offset < 0:
        raise ApplicationError("offset must not be negative")
    qs = selectors.ticket_list(
        status=filters.status, intent=filters.intent, urgency=filters.urgency, lane=filters.lane,
        search=filters.search,
    )
    page = list(qs[filters.offset: filters.offset + filters.limit])
    return {"count": qs.count(), "limit": filters.limit, "offset": filters.offset,
            "results": [_summary(t) for t in page]}
