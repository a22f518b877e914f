from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import field_validator

# Text fields: PostgreSQL cannot store NUL characters, and a subject or body of only spaces says nothing. The
# patterns put both rules in the OpenAPI document; the validators give the message.
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"
# An address as Django's validator accepts it, stated for the document; the validator is what decides.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[A-Za-z0-9._%+-]+@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,63}}$"


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_replace_nul(k): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_nul(v) for v in value]
    return value


class TicketIn(Schema):
    subject: str = Field(..., min_length=1, max_length=500, json_schema_extra={"pattern": NOT_BLANK})
    body: str = Field(..., min_length=1, max_length=100_000, json_schema_extra={"pattern": NOT_BLANK})
    from_email: str = Field(
        ..., max_length=254, json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN}
    )
    # null is taken as "" and {} (clients that send every field, set or not).
    from_name: str | None = Field("", max_length=200, pattern=NO_NUL)
    external_id: str | None = Field("", max_length=200, pattern=NO_NUL)
    metadata: dict[str, Any] | None = Field(
        default_factory=dict,
        description="Any JSON object, kept with the ticket. NUL characters in it are stored as U+FFFD, "
        "because PostgreSQL cannot store them.",
    )

    @field_validator("subject", "body")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("subject", "body", "from_name", "external_id", "from_email")
    @classmethod
    def no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("from_email")
    @classmethod
    def valid_email(cls, value: str) -> str:
        value = value.strip()
        try:
            validate_email(value)
        except ValidationError as exc:
            raise ValueError("is not a valid email address") from exc
        return value

    @field_validator("from_name", "external_id", mode="before")
    @classmethod
    def none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("metadata", mode="before")
    @classmethod
    def none_is_empty_dict(cls, value: Any) -> Any:
        return {} if value is None else _replace_nul(value)


class ErrorOut(Schema):
    detail: str
    errors: list[dict[str, Any]] | None = None
    ticket_id: int | None = None
    allowed: list[str] | None = None


class TriageOut(Schema):
    tier: str
    engine: str
    model: str
    intent: str | None
    urgency: str
    sentiment: str
    language: str
    confidence: float
    summary: str
    escalated_from: str
    created_at: datetime


class RouteOut(Schema):
    lane: str
    reasons: list[str]
    contract_version: int | None
    switches_version: int
    human_review_required: bool
    drafts_allowed: bool
    top_similarity: float | None
    thresholds: dict[str, Any]
    created_at: datetime


class GateResultOut(Schema):
    tier: str
    gate: str
    category: str
    passed: bool
    matches: list[str]


class CitationOut(Schema):
    marker: int
    article_slug: str
    article_title: str
    article_version: int
    excerpt: str
    score: float


class GuidanceOut(Schema):
    article_slug: str
    article_title: str
    article_version: int


class DraftOut(Schema):
    id: int
    tier: str
    engine: str
    model: str
    body: str
    grounded: bool
    needs_review_reason: str
    gates_passed: bool
    attempts: list[dict[str, Any]]
    seconds_to_draft: float | None
    latency_budget_s: int | None
    status: str
    citations: list[CitationOut]
    # The remembered reply the local engine started from: {"id", "source": "reference" | "sent"}, or null.
    memory: dict[str, Any] | None = None
    # Internal articles given to the writer as guidance (agents only; never quoted to the customer).
    guidance: list[GuidanceOut] = []
    created_at: datetime


class ModelCallOut(Schema):
    step: str
    tier: str
    engine: str
    model: str
    prompt_id: str
    prompt_version: int
    attempt: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    latency_ms: int
    schema_valid: bool | None
    error: str


class TicketSummaryOut(Schema):
    id: int
    status: str
    subject: str
    from_email: str
    from_name: str
    external_id: str
    intent: str | None
    urgency: str
    sentiment: str
    language: str
    confidence: float | None
    lane: str
    high_risk: bool
    human_review_required: bool
    created_at: datetime
    updated_at: datetime


class TicketOut(TicketSummaryOut):
    body: str
    metadata: dict[str, Any]
    channel: str
    triage: TriageOut | None
    route: RouteOut | None
    draft: DraftOut | None
    gate_results: list[GateResultOut]
    model_calls: list[ModelCallOut]


class TicketPage(Schema):
    count: int
    limit: int
    offset: int
    results: list[TicketSummaryOut]


class ArticleIn(Schema):
    id: str = Field(..., min_length=1, max_length=255, pattern=NO_NUL,
                    description="Your stable id for the article (a path, a CMS id): sending it again updates it")
    title: str = Field(..., min_length=1, max_length=300, pattern=NO_NUL)
    body: str = Field(..., min_length=1, max_length=200_000, pattern=NO_NUL, description="Markdown")
    language: str = Field("", max_length=8, pattern=NO_NUL, description="ISO 639-1; empty: detected")
    audience: Literal["public", "internal"] = Field(
        "public", description="public: customers may read it and drafts may quote it; internal: procedures "
        "for agents, shown beside drafts and given to models as guidance, never quoted")
    draft: bool = Field(False, description="store as a draft (not retrieved) instead of publishing")


class ArticleOut(Schema):
    id: str
    title: str
    language: str
    audience: str
    status: str
    version: int
    updated_at: datetime


class ArticlePage(Schema):
    count: int
    results: list[ArticleOut]
