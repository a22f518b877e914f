"""The pipeline's steps: classify → route → draft (→ gates), and shadow runs beside them.

Each step loads what it needs, calls the pure tier and routing code, and stores the result in one
transaction that first checks the ticket is still at that step, so a redelivered task changes nothing.
Model calls are stored whether or not their result is kept: they cost money either way.
"""

from __future__ import annotations

import difflib
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from kb.selectors import kb_search, public_chunks, published_texts, query_embed
from triage import controls, policy, reply_memory, routing, sla
from triage.audit import audit
from triage.learning import intent_other
from triage.llm import breaker, replies, tiers
from triage.models import (
    Citation,
    Customer,
    Draft,
    GateResult,
    Intent,
    ModelCall,
    ReviewAction,
    RouteDecision,
    ShadowConfig,
    ShadowResult,
    Switches,
    Ticket,
    TriageRun,
)
from triage.queue import enqueue

logger = logging.getLogger(__name__)

IN_FLIGHT = (Ticket.Status.NEW, Ticket.Status.CLASSIFYING)


def _shown(text: str) -> str:
    """Model output as it may be stored and shown: any giveaway of the prompt canary withheld."""
    return policy.mask_canary(text, settings.PROMPT_CANARY)


def _store_calls(ticket_id: int, calls: list[tiers.CallRecord], *, step: str = "") -> None:
    """The one way model calls are stored: errors with any canary giveaway withheld, and every call to a model
    server counted by its tier's circuit breaker. `step` names the calls' step when it is not their own (a
    shadow lane's, kept apart so production cost and latency stay clean)."""
    ModelCall.objects.bulk_create(
        ModelCall(
            ticket_id=ticket_id, step=step or c.step, tier=c.tier, engine=c.engine, model=c.model,
            prompt_id=c.prompt_id, prompt_version=c.prompt_version, attempt=c.attempt,
            tokens_in=c.tokens_in, tokens_out=c.tokens_out, cost_usd=c.cost_usd, latency_ms=c.latency_ms,
            # A schema error quotes what the model wrote.
            schema_valid=c.schema_valid, error=_shown(c.error)[:2000],
        )
        for c in calls
    )
    for call in calls:
        if call.engine == "openai":
            breaker.record(call.tier, ok=not call.transport_failure)


def ticket_text(ticket: Ticket) -> tuple[tiers.TicketText, policy.Redaction]:
    """The ticket, and the same ticket with PII replaced by placeholders for external models."""
    from triage.intake.ingest import thread_text

    return text_redacted(subject=ticket.subject, body=thread_text(ticket), from_name=ticket.from_name,
                         from_email=ticket.from_email)


def text_redacted(*, subject: str, body: str, from_name: str,
                  from_email: str = "") -> tuple[tiers.TicketText, policy.Redaction]:
    """ticket_text for a ticket given as plain fields (draft evals read tickets from a file)."""
    subject = " ".join(subject.split())
    # One redaction over all fields so one value gets one placeholder wherever it appears.
    names = [from_name] if from_name.strip() else []
    redaction = policy.redact(f"{from_name}\n{subject}\n{body}", names=names)
    name, redacted_subject, redacted_body = ([*redaction.text.split("\n", 2), "", ""])[:3]
    text = tiers.TicketText(subject=subject, body=body, from_name=from_name,
                            redacted_subject=redacted_subject, redacted_body=redacted_body, redacted_from_name=name,
                            from_email=from_email)
    return text, redaction


def taxonomy() -> list[tiers.IntentInfo]:
    """The team's intents, and `other` for a ticket that fits none of them."""
    intents = [tiers.IntentInfo(i.name, i.description or i.name.replace("_", " "))
               for i in Intent.objects.order_by("name")]
    if all(i.name != routing.OTHER_INTENT for i in intents):
        intents.append(tiers.IntentInfo(routing.OTHER_INTENT, "fits none of the other intents"))
    return intents


def _local_model() -> Any:
    from triage.learning import local_model_active

    return local_model_active()


# --- Claims -------------------------------------------------------------------------------------

def _step_claim(ticket_id: int, statuses: Iterable[str], token: str, **also: Any) -> bool:
    """Claim the ticket for this delivery of a step. False while another delivery holds a live claim: the
    step is already being worked on, and asking a model again would only cost money. The same token (the
    task redelivered after its worker was killed) or a claim older than STALLED_AFTER_S takes over."""
    now = timezone.now()
    expired = now - timedelta(seconds=settings.STALLED_AFTER_S)
    # updated_at moves too: the sweeper measures a stall from the moment a step started.
    return Ticket.objects.filter(pk=ticket_id, status__in=list(statuses)).filter(
        Q(step_claimed_at__isnull=True) | Q(step_claimed_at__lt=expired) | Q(step_claim=token)
    ).update(step_claim=token, step_claimed_at=now, updated_at=now, **also) == 1


def _claimed(ticket_id: int, statuses: Iterable[str], token: str, step: Callable[[int], bool | None],
             **also: Any) -> None:
    """Run `step` under a claim. A step returns True when it stored its result, which clears the claim in
    the same transaction; any other way out (nothing to do, an error) releases it here."""
    token = token or uuid.uuid4().hex
    if not _step_claim(ticket_id, statuses, token, **also):
        return
    stored = False
    try:
        stored = bool(step(ticket_id))
    finally:
        if not stored:
            Ticket.objects.filter(pk=ticket_id, step_claim=token).update(step_claim="", step_claimed_at=None)


def _unclaim(ticket: Ticket) -> None:
    ticket.step_claim, ticket.step_claimed_at = "", None


# --- Classify -----------------------------------------------------------------------------------

def ticket_classify(*, ticket_id: int, token: str = "") -> None:
    """Classify a new ticket. `token` names this delivery (the Celery task id); see _step_claim."""
    # The claim moves a new ticket to classifying in the same UPDATE.
    _claimed(ticket_id, IN_FLIGHT, token, _classify, status=Ticket.Status.CLASSIFYING)


def _classify(ticket_id: int) -> bool:

    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None or ticket.status not in IN_FLIGHT:
        return False  # deleted, or already classified: a redelivered task has nothing to do
    row = controls.switches_row()
    switches = controls.switches_current(row)
    budget = controls.budget_state(intent=None, contract_row=None, switches=row)
    chain = [tiers.Step(t, o) for t, o in routing.classify_chain(switches, budget, breaker.open_tiers())]
    text, _redaction = ticket_text(ticket)
    outcome = tiers.classify(
        text=text, taxonomy=taxonomy(), local_model=_local_model(), chain=chain,
        prompt=controls.prompt_for(prompt_id="classify", ticket_id=ticket_id),
    )
    with transaction.atomic():
        _store_calls(ticket_id, outcome.calls)
        locked = Ticket.objects.select_for_update().get(pk=ticket_id)
        if locked.status not in IN_FLIGHT:
            return False
        c = outcome.classification
        if c is not None:
            intent = intent_other() if c.intent == routing.OTHER_INTENT else Intent.objects.get(name=c.intent)
            TriageRun.objects.create(
                ticket=locked, tier=outcome.tier, engine=outcome.engine, model=outcome.model, intent=intent,
                urgency=c.urgency, sentiment=c.sentiment, language=c.language, confidence=c.confidence,
                summary=_shown(c.summary)[:500], escalated_from=outcome.escalated_from,
            )
            locked.intent, locked.urgency, locked.sentiment = intent, c.urgency, c.sentiment
            locked.language, locked.confidence = c.language, c.confidence
            locked.engine = outcome.engine
            # The SLA clock starts at arrival; only the target changes with the urgency.
            locked.sla_due_at = sla.due_at(start=locked.created_at, urgency=c.urgency)
            for config in controls.shadow_configs_for(step="classify", ticket_id=ticket_id):
                enqueue("shadow_ticket", ticket_id, config.pk)
        locked.status = Ticket.Status.ROUTING
        _unclaim(locked)
        locked.save()
        enqueue("route_ticket", ticket_id)
    return True


# --- Route --------------------------------------------------------------------------------------

# Internal passages retrieved beside the public ones: guidance for the writer and the agent, never quoted.
GUIDANCE_K = 2


def _retrieve(ticket: Ticket, *, instruction: str = "") -> list[dict[str, Any]]:
    """Public passages a draft may quote (the top KB_TOP_K), then the internal ones that guide it."""
    from triage.intake.ingest import thread_text

    language = ticket.language or None
    query = f"{ticket.subject}\n{thread_text(ticket)}"
    vector = query_embed(query=query)  # one embedding for both audiences
    found = kb_search(query=query, language=language, audience="public", query_vector=vector)
    topic = replies.instruction_topic(instruction)
    if topic:
        # An agent who asks for a new draft names what it needs ("explain how to recover the username"): the
        # best passages for their words come first, then the ticket's own, so neither crowds the other out.
        steered = kb_search(query=topic, language=language, audience="public")
        merged = {p.chunk_id: p for p in [*steered[:2], *found, *steered[2:]]}
        found = list(merged.values())[:settings.KB_TOP_K]
    found += kb_search(query=query, k=GUIDANCE_K, language=language, audience="internal", query_vector=vector)
    return [
        {"chunk_id": p.chunk_id, "article_id": p.article_id, "article_slug": p.article_slug,
         "article_title": p.article_title, "article_version": p.article_version, "text": p.text,
         "score": p.score, "similarity": p.similarity, "audience": p.audience}
        for p in found
    ]


def _customer_signals(ticket: Ticket, top_similarity: float | None) -> routing.Signals:
    customer = ticket.customer or Customer.objects.filter(email__iexact=ticket.from_email).first()
    meta = ticket.metadata if isinstance(ticket.metadata, dict) else {}
    # Metadata from a trusted integration (an authenticated API client) may mark a VIP; email text cannot.
    vip = bool(customer and customer.vip) or (ticket.channel == "api" and meta.get("vip") is True)
    return routing.Signals(vip=vip, flagged=bool(customer and customer.flagged), top_similarity=top_similarity)


def decide(ticket: Ticket, run: TriageRun | None, retrieved: list[dict[str, Any]], *,
           switches_row: Switches | None = None) -> tuple[Any, routing.Decision]:
    intent = run.intent if run is not None else None
    row = switches_row if switches_row is not None else controls.switches_row()
    contract_row, contract = controls.contract_for(intent=intent, ticket_id=ticket.pk)
    classification = None
    if run is not None and run.intent is not None:
        classification = routing.Classification(
            intent=run.intent.name, urgency=run.urgency, sentiment=run.sentiment, language=run.language,
            confidence=run.confidence, summary=run.summary,
        )
    top = max((r["similarity"] for r in retrieved), default=None)
    decision = routing.route(
        classification, contract, controls.switches_current(row), _customer_signals(ticket, top),
        controls.budget_state(intent=intent, contract_row=contract_row, switches=row), breaker.open_tiers(),
    )
    return contract_row, decision


def _route_decision(ticket: Ticket, run: TriageRun | None, decision: routing.Decision, contract_row: Any,
                    switches: routing.Switches, retrieved: list[dict[str, Any]]) -> RouteDecision:
    return RouteDecision(
        ticket=ticket, triage_run=run, lane=decision.lane, reasons=list(decision.reasons),
        contract=contract_row, switches_version=switches.version,
        human_review_required=decision.human_review_required, drafts_allowed=decision.drafts_allowed,
        retrieved=retrieved, top_similarity=max((r["similarity"] for r in retrieved), default=None),
        thresholds={
            "quality_bar": contract_row.quality_bar if contract_row else routing.Contract(None).quality_bar,
            "escalate_urgency": contract_row.escalate_urgency if contract_row else "urgent",
            "risk": contract_row.risk if contract_row else "low",
            "weak_retrieval_below": switches.weak_retrieval_below,
            "engine_override": decision.engine_override,
        },
    )


def ticket_route(*, ticket_id: int, token: str = "") -> None:
    _claimed(ticket_id, [Ticket.Status.ROUTING], token, _route)


def _route(ticket_id: int) -> bool:

    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None or ticket.status != Ticket.Status.ROUTING:
        return False
    run = ticket.triage_runs.select_related("intent").first()
    retrieved = _retrieve(ticket) if run is not None else []
    # One read of the switches for the decision and its record, so the version stored is the one applied.
    row = controls.switches_row()
    contract_row, decision = decide(ticket, run, retrieved, switches_row=row)
    switches = controls.switches_current(row)
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().get(pk=ticket_id)
        if locked.status != Ticket.Status.ROUTING:
            return False
        _route_decision(locked, run, decision, contract_row, switches, retrieved).save()
        locked.lane = decision.lane
        locked.human_review_required = decision.human_review_required
        locked.high_risk = decision.lane != "mini"
        if decision.lane == "human" or not decision.drafts_allowed:
            locked.status = Ticket.Status.NEEDS_HUMAN
        else:
            locked.status = Ticket.Status.DRAFTING
            enqueue("draft_ticket", ticket_id)
        _unclaim(locked)
        locked.save()
    return True


# --- Draft --------------------------------------------------------------------------------------

NEXT_TIER = {"mini": "large"}


def _public(row: dict[str, Any]) -> bool:
    # Decisions stored before articles had an audience retrieved public passages only.
    return row.get("audience", "public") == "public"


def _usable(retrieved: list[dict[str, Any]], also: Sequence[dict[str, Any]] = ()) -> dict[int, dict[str, Any]]:
    """The public passages good enough to ground a draft, by the citation marker the writer sees; `also`
    (a remembered reply's own articles) after them unless already there."""
    usable = [r for r in retrieved if _public(r) and r["similarity"] >= settings.KB_MIN_SIMILARITY]
    seen = {r["article_slug"] for r in usable}
    usable += [r for r in also if r["article_slug"] not in seen]
    return dict(enumerate(usable, 1))


def _passages(retrieved: list[dict[str, Any]], also: Sequence[dict[str, Any]] = ()) -> list[tiers.Passage]:
    return _as_passages(_usable(retrieved, also))


def _as_passages(usable: dict[int, dict[str, Any]]) -> list[tiers.Passage]:
    return [tiers.Passage(marker=i, chunk_id=r["chunk_id"], title=r["article_title"], text=r["text"],
                          slug=r["article_slug"])
            for i, r in usable.items()]


def _guidance(retrieved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The internal passages retrieved for the ticket, good enough to guide the writer."""
    return [r for r in retrieved if not _public(r) and r["similarity"] >= settings.KB_MIN_SIMILARITY]


def _draft_plan(decision: RouteDecision, contract: routing.Contract, switches: routing.Switches,
                unavailable: frozenset[str]) -> list[tiers.Step]:
    """The tiers to try for a draft, in order, following the contract's fallback."""
    override = decision.thresholds.get("engine_override")
    plan = [tiers.Step(decision.lane, override)]
    if contract.fallback == "retry":
        plan.append(tiers.Step(decision.lane, override))
    elif contract.fallback == "escalate" and decision.lane in NEXT_TIER:
        nxt = NEXT_TIER[decision.lane]
        if nxt in switches.enabled and nxt not in unavailable and not switches.large_off:
            plan.append(tiers.Step(nxt))
    return plan


@functools.lru_cache(maxsize=4)
def _published_contacts(texts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.text for text in texts for m in policy.find_pii(text)))


def _gate(attempt: tiers.DraftAttempt, redaction: policy.Redaction,
          guidance: Sequence[dict[str, Any]] = ()) -> tuple[str, list[policy.GateResult]]:
    """The draft as it is stored (a leaked canary withheld) and the gates' verdicts on what the model wrote."""
    body = policy.restore(attempt.body or "", redaction.mapping)
    internal, public = published_texts()
    # The shop's own address, and what its public articles tell every customer (its support email and phone),
    # may appear in a reply; anyone else's contact details may not.
    own = [parseaddr(settings.DEFAULT_FROM_EMAIL)[1], *_published_contacts(public)]
    results = policy.check_draft(body, controls.gate_rules(), redaction=redaction, allowed=own,
                                 canary=settings.PROMPT_CANARY, prompts=controls.system_prompts())
    results.append(policy.internal_text(body, internal=[*(g["text"] for g in guidance), *internal]))
    return _shown(body), results


def _draft_failures(calls: list[tiers.CallRecord]) -> str:
    """Why no tier produced a draft, in words an agent can act on: each tier's last error."""
    last: dict[str, str] = {}
    for call in calls:
        if call.error:
            last[call.tier] = call.error
    return "; ".join(f"{tier}: {error}" for tier, error in last.items())[:1000]


REDRAFT_ACTIONS = (ReviewAction.Action.REGENERATE, ReviewAction.Action.ESCALATE)


def redraft_request(ticket: Ticket, decision: RouteDecision | None) -> ReviewAction | None:
    """An agent's request for a new draft (regenerate, or escalate by hand) that no route decision answers yet.

    The request is the task's work order: the ticket waits in `drafting` until it is answered, so a lost task
    is found by the stalled-work sweeper like any other drafting ticket.
    """
    request = (ReviewAction.objects.filter(ticket=ticket, action__in=REDRAFT_ACTIONS)
               .select_related("user", "draft").order_by("-created_at", "-id").first())
    if request is None or (decision is not None and decision.created_at >= request.created_at):
        return None
    return request


def _redraft_decision(ticket: Ticket, previous: RouteDecision | None, request: ReviewAction) -> RouteDecision:
    """The route for an agent's new draft: the tier that wrote the last one, or large when escalated by hand."""
    run = previous.triage_run if previous is not None else ticket.triage_runs.select_related("intent").first()
    contract_row, contract = controls.contract_for(intent=run.intent if run else None, ticket_id=ticket.pk)
    row = controls.switches_row()
    switches = controls.switches_current(row)
    if request.action == ReviewAction.Action.ESCALATE:
        lane, reason = "large", routing.Reason.MANUAL_ESCALATION
        # The large tier answers from what the route retrieved for the ticket; the agent's reason travels
        # with the draft as its instruction.
        retrieved = previous.retrieved if previous is not None else _retrieve(ticket)
    else:
        lane = request.draft.tier if request.draft is not None else (previous.lane if previous else "mini")
        reason = routing.Reason.AGENT_REGENERATE
        retrieved = _retrieve(ticket, instruction=request.reason)
    if run is None:
        decision = routing.Decision("human", (reason, routing.Reason.CLASSIFICATION_FAILED), True,
                                    drafts_allowed=False)
    else:
        decision = routing.redraft(
            lane, reason, contract, switches,
            controls.budget_state(intent=run.intent, contract_row=contract_row, switches=row),
            breaker.open_tiers(),
        )
    return _route_decision(ticket, run, decision, contract_row, switches, retrieved)


def ticket_draft(*, ticket_id: int, token: str = "") -> None:
    _claimed(ticket_id, [Ticket.Status.DRAFTING], token, _draft)


def _draft(ticket_id: int) -> bool:

    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None or ticket.status != Ticket.Status.DRAFTING:
        return False
    decision = ticket.route_decisions.select_related("triage_run__intent", "contract").first()
    request = redraft_request(ticket, decision)
    if request is not None:
        decision = _redraft_decision(ticket, decision, request)  # saved with the draft, below
    elif decision is None or decision.triage_run is None or Draft.objects.filter(route_decision=decision).exists():
        return False
    instruction = request.reason if request is not None else ""
    run = decision.triage_run
    text, redaction = ticket_text(ticket)
    _row, contract = controls.contract_for(intent=run.intent if run else None, ticket_id=ticket_id)
    prompt = controls.prompt_for(prompt_id="draft", ticket_id=ticket_id)
    plan: list[tiers.Step] = []
    classification = routing.Classification("", "", "", "", 0.0, "")
    if run is not None and decision.lane != "human" and decision.drafts_allowed:
        classification = routing.Classification(
            intent=run.intent.name if run.intent else "", urgency=run.urgency, sentiment=run.sentiment,
            language=run.language, confidence=run.confidence, summary=run.summary,
        )
        plan = _draft_plan(decision, contract, controls.switches_current(), breaker.open_tiers())
    memory = None
    if any(tiers.tier_config(s.tier, engine_override=s.engine_override).engine == "local" for s in plan):
        memory = reply_memory.best(intent=classification.intent, language=classification.language,
                                   text=f"{text.subject}\n{text.body}", confidence=classification.confidence)
    # A remembered reply's own articles are cited even when retrieval ranked them below the others.
    sources = public_chunks(slugs=list(memory.article_slugs)) if memory is not None else []
    usable = _usable(decision.retrieved, sources)
    passages = _as_passages(usable)
    guidance_rows = _guidance(decision.retrieved)
    guidance = [tiers.Guidance(title=g["article_title"], text=g["text"]) for g in guidance_rows]

    calls: list[tiers.CallRecord] = []
    gate_log: list[tuple[str, list[policy.GateResult]]] = []
    history: list[dict[str, Any]] = []
    chosen: tuple[tiers.DraftAttempt, str, list[policy.GateResult]] | None = None
    last_produced: tuple[tiers.DraftAttempt, str, list[policy.GateResult]] | None = None
    # A failed draft (no answer, a failed gate, nothing cited) is regenerated once by the next tier
    # in the plan; then it is held for a human.
    # Tiers (and their engine) that failed in a way asking again cannot fix: a 4xx, a refusal.
    spent: dict[str, str] = {}
    for step in plan:
        if step.tier in spent:
            history.append({"tier": step.tier, "engine": spent[step.tier], "outcome": "not_retried"})
            continue
        attempt = tiers.draft(step=step, text=text, classification=classification, passages=passages,
                              prompt=prompt, escalated=step.tier == "large", instruction=instruction,
                              guidance=guidance, memory=memory)
        calls.extend(attempt.calls)
        if attempt.body is None:
            if attempt.failed_permanently:
                spent[step.tier] = attempt.engine
            history.append({"tier": step.tier, "engine": attempt.engine, "outcome": "no_answer",
                            "error": attempt.calls[-1].error[:300] if attempt.calls else ""})
            continue
        body, results = _gate(attempt, redaction, guidance_rows)
        gate_log.append((step.tier, results))
        failed = [r.rule for r in results if not r.passed]
        last_produced = (attempt, body, results)
        history.append({"tier": step.tier, "engine": attempt.engine, "grounded": attempt.grounded,
                        "failed_gates": failed})
        if not failed and attempt.grounded:
            chosen = last_produced
            break

    with transaction.atomic():
        _store_calls(ticket_id, calls)
        locked = Ticket.objects.select_for_update().get(pk=ticket_id)
        if locked.status != Ticket.Status.DRAFTING:
            return False
        if request is not None:
            # Another delivery of this task may have answered the request while this one was drafting.
            latest = RouteDecision.objects.filter(ticket=locked).order_by("-created_at", "-id").first()
            if redraft_request(locked, latest) != request:
                return False
            decision.save()
            locked.lane = decision.lane
        elif Draft.objects.filter(route_decision=decision).exists():
            return False
        shown = chosen or last_produced
        draft = None
        if shown is not None:
            attempt, body, results = shown
            reasons = []
            if not attempt.grounded:
                reasons.append("cites nothing the knowledge base returned")
            failed = [r for r in results if not r.passed]
            if failed:
                reasons.append("failed policy gates: " + ", ".join(r.rule for r in failed))
            if attempt.tier == "large" and attempt.engine == "local":
                reasons.append("escalated ticket drafted offline by the local engine: no large model reviewed it")
            open_blanks = replies.blanks(body)
            if open_blanks:
                reasons.append(f"fill in {len(open_blanks)} blank{'s' if len(open_blanks) > 1 else ''} before "
                               f"sending: {', '.join(open_blanks)}")
            # A first draft is timed from intake; a requested one from the agent's request.
            since = request.created_at if request is not None else locked.created_at
            elapsed = (timezone.now() - since).total_seconds()
            if elapsed > contract.latency_budget_s:
                reasons.append(f"drafted in {elapsed:.0f}s, over the {contract.latency_budget_s}s latency budget")
            draft = Draft.objects.create(
                ticket=locked, route_decision=decision, tier=attempt.tier, engine=attempt.engine,
                model=attempt.model, body=body, grounded=attempt.grounded, gates_passed=not failed,
                needs_review_reason="; ".join(reasons)[:300], attempts=history,
                seconds_to_draft=round(elapsed, 3), latency_budget_s=contract.latency_budget_s,
                instruction=instruction[:1000], requested_by=request.user if request is not None else None,
                memory_id=attempt.memory_id,
                guidance=[{k: g[k] for k in ("article_id", "article_slug", "article_title", "article_version", "text")}
                          for g in guidance_rows],
            )
            by_marker = usable
            Citation.objects.bulk_create(
                Citation(
                    draft=draft, chunk_id=by_marker[m]["chunk_id"], article_id=by_marker[m]["article_id"],
                    article_slug=by_marker[m]["article_slug"], article_title=by_marker[m]["article_title"],
                    article_version=by_marker[m]["article_version"], marker=m, excerpt=by_marker[m]["text"],
                    score=by_marker[m]["score"],
                )
                for m in attempt.cited
            )
        GateResult.objects.bulk_create(
            GateResult(ticket=locked, draft=draft if (draft and tier == draft.tier) else None, tier=tier,
                       gate=r.rule, category=r.category, passed=r.passed, matches=list(r.matches))
            for tier, results in gate_log for r in results
        )
        if draft is not None:
            for config in controls.shadow_configs_for(step="draft", ticket_id=ticket_id):
                enqueue("shadow_ticket", ticket_id, config.pk)
            locked.engine = draft.engine
            audit(actor=None, action="draft.create", obj=locked, before=None,
                           after={"draft": draft.pk, "tier": draft.tier, "engine": draft.engine})
        else:
            after: dict[str, Any] = {"lane": decision.lane, "reasons": list(decision.reasons)}
            failures = _draft_failures(calls)
            if failures:
                after["no_draft"] = failures
            audit(actor=None, action="ticket.to_human", obj=locked, before=None, after=after)
        locked.revision += 1  # a draft an agent may have open has changed
        if chosen is not None:
            locked.status = Ticket.Status.AWAITING_REVIEW
        else:
            # Held for a human: whatever was drafted stays visible, and the trace is marked high-risk.
            locked.status = Ticket.Status.NEEDS_HUMAN
            locked.high_risk = True
            locked.human_review_required = True
        if request is not None and decision.lane == "large":
            locked.high_risk = True
        _unclaim(locked)
        locked.save()
    return True


# --- Shadow lanes -------------------------------------------------------------------------------

def ticket_shadow(*, ticket_id: int, config_id: int) -> None:
    config = ShadowConfig.objects.filter(pk=config_id, active=True).first()
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if config is None or ticket is None or ShadowResult.objects.filter(config=config, ticket=ticket).exists():
        return
    text, redaction = ticket_text(ticket)
    step = tiers.Step(config.tier, model_override=config.model)
    prompt = controls.prompt_for(prompt_id=config.step, version=config.prompt_version) \
        if config.prompt_version else controls.prompt_for(prompt_id=config.step, ticket_id=ticket_id)
    result = ShadowResult(config=config, ticket=ticket, tier=config.tier)
    calls: list[tiers.CallRecord]
    if config.step == "classify":
        outcome = tiers.classify(text=text, taxonomy=taxonomy(), local_model=_local_model(), chain=[step],
                                 prompt=prompt)
        calls = outcome.calls
        c = outcome.classification
        result.engine, result.model = (calls[0].engine, calls[0].model) if calls else ("", "")
        if c is None:
            result.error = _shown(calls[-1].error) if calls else "no attempt"
        else:
            result.intent, result.urgency = c.intent, c.urgency
            intent = Intent.objects.filter(name=c.intent).first()
            retrieved = ticket.route_decisions.values_list("retrieved", flat=True).first()
            if retrieved is None:
                retrieved = _retrieve(ticket)
            fake_run = TriageRun(ticket=ticket, intent=intent, urgency=c.urgency, sentiment=c.sentiment,
                                 language=c.language, confidence=c.confidence, summary=c.summary)
            _row, decision = decide(ticket, fake_run, retrieved)
            result.lane = decision.lane
    else:
        production = ticket.drafts.select_related("route_decision__triage_run__intent").first()
        if production is None or production.route_decision.triage_run is None:
            return
        run = production.route_decision.triage_run
        classification = routing.Classification(
            intent=run.intent.name if run.intent else "", urgency=run.urgency, sentiment=run.sentiment,
            language=run.language, confidence=run.confidence, summary=run.summary)
        attempt = tiers.draft(step=step, text=text, classification=classification,
                              passages=_passages(production.route_decision.retrieved), prompt=prompt,
                              escalated=config.tier == "large")
        calls = attempt.calls
        result.engine, result.model = attempt.engine, attempt.model
        if attempt.body is None:
            result.error = _shown(calls[-1].error) if calls else "no attempt"
        else:
            body, gates = _gate(attempt, redaction)
            result.draft_body = body
            result.gates_passed = all(g.passed for g in gates)
            result.draft_similarity = difflib.SequenceMatcher(None, production.body, body).ratio()
    result.cost_usd = sum((c.cost_usd for c in calls), Decimal(0))
    result.latency_ms = sum(c.latency_ms for c in calls)
    try:
        with transaction.atomic():
            result.save()
    except IntegrityError:
        return  # another delivery of this shadow task stored it first
    _store_calls(ticket_id, calls, step=f"shadow_{config.step}")
