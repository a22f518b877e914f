from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Path, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.security import HttpBearer

from triage import selectors, services, throttle
from triage.audit import audit
from triage.errors import ApplicationError
from triage.models import ApiKey, Ticket
from triage.schemas import NO_NUL, ArticleIn, ArticleOut, ArticlePage, ErrorOut, TicketIn, TicketOut, TicketPage

MAX_IDEMPOTENCY_KEY = 255
MAX_ID = 2**63 - 1  # PostgreSQL's bigint: a larger id is refused as input, not sent to the database
MAX_OFFSET = 1_000_000
TicketId = Path[int, {"ge": 1, "le": MAX_ID}]
# What any operation may answer before it does its work: bad input, no valid key, the key's rate limit.
REFUSALS: dict[int, type[ErrorOut]] = {400: ErrorOut, 401: ErrorOut, 429: ErrorOut}


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


def _field_name(loc: Any) -> str:
    # ninja's loc is (where, argument, *path): ("body", "payload", "subject"), ("query", "filters", "limit"),
    # or (where, parameter) for a plain one: ("path", "ticket_id"). The client knows only the path.
    parts = [str(p) for p in loc][1:]
    return ".".join(parts[1:] if len(parts) > 1 else parts)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{"field": _field_name(e.get("loc", ())), "message": e.get("msg", "invalid")}
              for e in exc.errors]
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


def _refuse_unknown_query(request: HttpRequest, allowed: set[str]) -> None:
    # A misspelt filter (?stauts=new) would otherwise be ignored and answer with every ticket.
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise ApplicationError(f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}",
                               extra={"allowed": sorted(allowed)})


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
            "memory": None if draft.memory is None else {"id": draft.memory_id, "source": draft.memory.source},
            "guidance": draft.guidance,
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
    response={200: TicketOut, 201: TicketOut, 422: ErrorOut, **REFUSALS},
    summary="Create a ticket and queue its triage",
    description="Send an `Idempotency-Key` header to make retries safe: the same key and body return the "
    "original ticket (200); the same key with a different body is refused (422).",
)
def create_ticket(request: HttpRequest, payload: TicketIn) -> Status:
    _refuse_unknown_query(request, set())
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


@api.get("/tickets/{ticket_id}", response={200: TicketOut, 404: ErrorOut, **REFUSALS},
         summary="A ticket with its triage")
def get_ticket(request: HttpRequest, ticket_id: TicketId) -> dict[str, Any]:
    _refuse_unknown_query(request, set())
    ticket = selectors.ticket_detail(ticket_id=ticket_id)
    if ticket is None:
        raise ApplicationError("ticket not found", status=404)
    return _ticket_out(ticket)


class TicketFilters(Schema):
    status: Ticket.Status | None = None
    intent: str | None = Field(None, max_length=100, pattern=NO_NUL)
    urgency: str | None = Field(None, max_length=20, pattern=NO_NUL)
    lane: str | None = Field(None, max_length=20, pattern=NO_NUL)
    search: str | None = Field(None, max_length=500, pattern=NO_NUL)
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


@api.get("/tickets", response={200: TicketPage, **REFUSALS}, summary="List tickets, newest first")
def list_tickets(request: HttpRequest, filters: Query[TicketFilters]) -> dict[str, Any]:
    _refuse_unknown_query(request, set(TicketFilters.model_fields))
    qs = selectors.ticket_list(
        status=filters.status, intent=filters.intent, urgency=filters.urgency, lane=filters.lane,
        search=filters.search,
    )
    page = list(qs[filters.offset: filters.offset + filters.limit])
    return {"count": qs.count(), "limit": filters.limit, "offset": filters.offset,
            "results": [_summary(t) for t in page]}


# --- Knowledge base -----------------------------------------------------------------------------

def _article_out(article: Any) -> dict[str, Any]:
    return {"id": article.slug, "title": article.title, "language": article.language, "audience": article.audience,
            "status": article.status, "version": article.version, "updated_at": article.updated_at}


class ArticleFilters(Schema):
    audience: str | None = Field(None, pattern="^(public|internal)$")
    status: str | None = Field(None, pattern="^(draft|published|retired)$")


@api.get("/kb/articles", response={200: ArticlePage, **REFUSALS}, summary="List knowledge-base articles")
def list_articles(request: HttpRequest, filters: Query[ArticleFilters]) -> dict[str, Any]:
    from kb.models import Article

    _refuse_unknown_query(request, set(ArticleFilters.model_fields))
    rows = Article.objects.order_by("slug")
    if filters.audience:
        rows = rows.filter(audience=filters.audience)
    if filters.status:
        rows = rows.filter(status=filters.status)
    return {"count": rows.count(), "results": [_article_out(a) for a in rows]}


@api.post("/kb/articles", response={200: ArticleOut, 201: ArticleOut, 422: ErrorOut, **REFUSALS},
          summary="Create or update a knowledge-base article by your id",
          description="Unchanged text writes nothing; changed text becomes a new version (published unless "
          "`draft`). A retired article stays retired. The audience applies at once.")
def upsert_article(request: HttpRequest, payload: ArticleIn) -> Status:
    from kb.services import ArticleError, Outcome, article_sync

    _refuse_unknown_query(request, set())
    try:
        article, outcome = article_sync(slug=payload.id.strip(), title=payload.title, body=payload.body,
                                        language=payload.language, draft=payload.draft, audience=payload.audience,
                                        source=f"api:{request.auth.name}"[:100])
    except ArticleError as exc:
        raise ApplicationError(exc.message, status=422) from exc
    assert article is not None
    if outcome != Outcome.UNCHANGED:
        audit(actor=None, action="kb.article.api", obj=article, before=None,
                       after={"slug": article.slug, "outcome": outcome, "audience": article.audience,
                              "version": article.version, "api_key": request.auth.name})
    return Status(201 if outcome == Outcome.CREATED else 200, _article_out(article))
