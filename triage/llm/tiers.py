"""The three tiers and the escalation between them, over plain data (no ORM).

nano classifies; a schema-invalid answer is retried once, a second failure hands the step to mini,
then to large. Drafts go to the lane's tier; a failed mini draft is handed to large. Every attempt
is returned as a CallRecord so the caller can store it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from triage.llm import local, openai_engine
from triage.llm.errors import ModelError, SchemaInvalid
from triage.llm.prompts import CLASSIFY, DRAFT, Prompt
from triage.llm.schemas import DRAFT_SCHEMA, classification_schema, parse_classification, parse_draft
from triage.routing import Classification

TIER_ORDER = ("nano", "mini", "large")
SCHEMA_ATTEMPTS = 2
LOCAL_MODEL_NAME = "tierdesk-local"


@dataclass(frozen=True)
class TierConfig:
    tier: str
    engine: str
    model: str
    base_url: str | None
    api_key: str | None
    timeout: float
    max_retries: int


def tier_config(tier: str) -> TierConfig:
    conf = settings.TIERS[tier]
    if conf["api_key"]:
        return TierConfig(tier, "openai", conf["model"], conf["base_url"], conf["api_key"],
                          conf["timeout"], conf["max_retries"])
    return TierConfig(tier, "local", LOCAL_MODEL_NAME, None, None, 0.0, 0)


def cost_usd(tier: str, tokens_in: int, tokens_out: int) -> Decimal:
    price_in, price_out = settings.MODEL_PRICES[tier]
    total = Decimal(str(price_in)) * tokens_in + Decimal(str(price_out)) * tokens_out
    return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


@dataclass
class CallRecord:
    step: str
    tier: str
    engine: str
    model: str
    prompt_id: str
    prompt_version: int
    attempt: int
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    schema_valid: bool | None = None
    error: str = ""


@dataclass(frozen=True)
class IntentInfo:
    name: str
    description: str


@dataclass
class ClassifyOutcome:
    classification: Classification | None
    tier: str = ""
    engine: str = ""
    model: str = ""
    escalated_from: str = ""
    calls: list[CallRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Passage:
    marker: int
    chunk_id: int
    title: str
    text: str


@dataclass
class DraftOutcome:
    body: str | None
    tier: str = ""
    engine: str = ""
    model: str = ""
    cited: list[int] = field(default_factory=list)
    grounded: bool = False
    needs_review_reason: str = ""
    calls: list[CallRecord] = field(default_factory=list)


def _call_openai(conf: TierConfig, prompt: Prompt, system: str, user: str, schema_name: str,
                 schema: dict, record: CallRecord) -> str:
    assert conf.api_key is not None
    started = time.monotonic()
    try:
        reply = openai_engine.chat_json(
            model=conf.model, base_url=conf.base_url, api_key=conf.api_key, timeout=conf.timeout,
            max_retries=conf.max_retries, system=system, user=user, schema_name=schema_name, schema=schema,
        )
    except ModelError:
        record.latency_ms = int((time.monotonic() - started) * 1000)
        raise
    record.tokens_in, record.tokens_out = reply.tokens_in, reply.tokens_out
    record.cost_usd = cost_usd(conf.tier, reply.tokens_in, reply.tokens_out)
    record.latency_ms = reply.latency_ms
    return reply.text


def _ticket_message(subject: str, body: str) -> str:
    return json.dumps({"subject": subject, "body": body}, ensure_ascii=False)


def classify(
    *, subject: str, body: str, taxonomy: list[IntentInfo], local_model: local.LocalIntentModel | None
) -> ClassifyOutcome:
    names = [i.name for i in taxonomy]
    outcome = ClassifyOutcome(classification=None)
    system = CLASSIFY.system.format(intents="\n".join(f"- {i.name}: {i.description}" for i in taxonomy))
    for tier in TIER_ORDER:
        conf = tier_config(tier)
        attempts = SCHEMA_ATTEMPTS if tier != "large" else 1
        for attempt in range(1, attempts + 1):
            record = CallRecord("classify", tier, conf.engine, conf.model, CLASSIFY.id, CLASSIFY.version, attempt)
            outcome.calls.append(record)
            try:
                if conf.engine == "local":
                    if local_model is None:
                        raise ModelError("no local model has been trained yet", permanent=True)
                    result, record.latency_ms = local.timed(local.classify, local_model, subject=subject, body=body)
                    # The local engine passes through the same validator as any model's output.
                    text = json.dumps(result.__dict__)
                else:
                    text = _call_openai(conf, CLASSIFY, system, _ticket_message(subject, body),
                                        "ticket_classification", classification_schema(names), record)
                classification = parse_classification(text, names)
            except SchemaInvalid as exc:
                record.schema_valid, record.error = False, str(exc)
                continue
            except ModelError as exc:
                record.error = str(exc)
                break
            record.schema_valid = True
            outcome.classification = classification
            outcome.tier, outcome.engine, outcome.model = tier, conf.engine, conf.model
            outcome.escalated_from = "" if tier == "nano" else "nano"
            return outcome
    return outcome


def _passages_block(passages: list[Passage]) -> str:
    return "\n\n".join(f"[{p.marker}] {p.title}\n{p.text}" for p in passages) or "(none)"


def draft(
    *,
    lane: str,
    subject: str,
    body: str,
    from_name: str,
    classification: Classification,
    passages: list[Passage],
) -> DraftOutcome:
    outcome = DraftOutcome(body=None)
    markers = {p.marker for p in passages}
    tiers = ["mini", "large"] if lane == "mini" else ["large"]
    for tier in tiers:
        conf = tier_config(tier)
        for attempt in range(1, SCHEMA_ATTEMPTS + 1):
            record = CallRecord("draft", tier, conf.engine, conf.model, DRAFT.id, DRAFT.version, attempt)
            outcome.calls.append(record)
            try:
                if conf.engine == "local":
                    refs = [local.PassageRef(p.marker, p.title, p.text) for p in passages]
                    (reply, cited), record.latency_ms = local.timed(
                        local.compose_draft, from_name=from_name, subject=subject, body=body,
                        intent=classification.intent, passages=refs, escalated=tier == "large",
                    )
                    text = json.dumps({"reply": reply, "citations": cited})
                else:
                    user = json.dumps({
                        "customer_name": from_name, "subject": subject, "body": body,
                        "intent": classification.intent, "urgency": classification.urgency,
                    }, ensure_ascii=False)
                    text = _call_openai(conf, DRAFT, DRAFT.system.format(passages=_passages_block(passages)),
                                        user, "ticket_reply", DRAFT_SCHEMA, record)
                parsed = parse_draft(text)
            except SchemaInvalid as exc:
                record.schema_valid, record.error = False, str(exc)
                continue
            except ModelError as exc:
                record.error = str(exc)
                break
            record.schema_valid = True
            cited = [c for c in parsed.citations if c in markers]
            outcome.body, outcome.cited = parsed.reply, cited
            outcome.tier, outcome.engine, outcome.model = tier, conf.engine, conf.model
            outcome.grounded = bool(cited)
            reasons = []
            if not cited:
                reasons.append("cites nothing the knowledge base returned")
            if tier == "large" and conf.engine == "local":
                reasons.append("escalated ticket drafted offline by the local engine: no large model reviewed it")
            outcome.needs_review_reason = "; ".join(reasons)
            return outcome
    return outcome
