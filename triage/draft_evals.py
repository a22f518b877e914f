"""Draft evals on a ticket file over a temporary knowledge base, and draft replays of tickets agents answered.

Both draft through production's code: the same redacted ticket text (steps.text_redacted), the same passages
offered to the model (steps._passages), the same tier call (tiers.draft) and the same policy gates
(steps._gate). Only the knowledge base differs: a draft eval searches a temporary index built from the
given file (kb.eval_kb), a replay the live one (steps._retrieve). The scores are pure functions
(triage.draft_metrics).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from django.db.models import OuterRef, Subquery

from kb.eval_kb import AudienceArticle, TemporaryKB, kb_articles_load, temporary_kb
from kb.evaluation import EvalInputError, _records
from kb.selectors import public_chunks, query_embed
from triage import controls, draft_metrics, policy, reply_memory, routing, steps
from triage.errors import ApplicationError
from triage.llm import judge, local, replies, tiers
from triage.llm.prompts import Prompt
from triage.models import ReviewAction, RouteDecision, Ticket

Progress = Callable[[int, int], None]
TIER_CHOICES = ("nano", "mini", "large", "local")
OPENAI_CONCURRENCY = 8
SIMILARITY = "cosine of multilingual-e5-small vectors (triage.llm.local.embed_texts)"
ANSWERED = (ReviewAction.Action.APPROVE, ReviewAction.Action.EDIT_APPROVE, ReviewAction.Action.COMPOSE)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class EvalTicket:
    id: str
    subject: str
    body: str
    from_name: str = ""
    from_email: str = ""
    language: str = ""
    intent: str = ""
    reference_reply: str = ""
    gold_article: str = ""


def _field(path: Path, number: int, record: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApplicationError(f"{path}:{number}: {name!r} must be a {'non-empty ' if required else ''}string")
    return value.strip()


def tickets_load(path: Path) -> list[EvalTicket]:
    """Tickets as JSON Lines: {"id", "subject", "body", "from_name", "from_email"?, "language"?, "intent"?,
    "reference_reply"?, "gold_article"?}."""
    if path.is_dir():
        raise ApplicationError(f"{path}: is a folder, not a JSON Lines file of tickets")
    try:
        records = _records(path)
    except EvalInputError as exc:
        raise ApplicationError(str(exc)) from exc
    tickets: dict[str, EvalTicket] = {}
    for number, record in records:
        raw_id = record.get("id")
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or not str(raw_id).strip():
            raise ApplicationError(f"{path}:{number}: 'id' must be a non-empty string or number")
        if str(raw_id) in tickets:
            raise ApplicationError(f"{path}:{number}: duplicate id {str(raw_id)!r}")
        gold = record.get("gold_article")
        if gold is not None and (not isinstance(gold, str | int) or isinstance(gold, bool)):
            raise ApplicationError(f"{path}:{number}: 'gold_article' must be an article id")
        tickets[str(raw_id)] = EvalTicket(
            id=str(raw_id), subject=_field(path, number, record, "subject", required=True),
            body=_field(path, number, record, "body", required=True),
            from_name=_field(path, number, record, "from_name"), from_email=_field(path, number, record, "from_email"),
            language=_field(path, number, record, "language").lower(), intent=_field(path, number, record, "intent"),
            reference_reply=_field(path, number, record, "reference_reply"),
            gold_article=str(gold).strip() if gold is not None else "",
        )
    return list(tickets.values())


def kb_load(path: Path) -> list[AudienceArticle]:
    try:
        return kb_articles_load(path)
    except EvalInputError as exc:
        raise ApplicationError(str(exc)) from exc


def gold_resolve(tickets: list[EvalTicket], articles: list[AudienceArticle]) -> list[EvalTicket]:
    """Tickets with each gold_article named by its article's id; a markdown article may be named with or
    without its suffix (`returns/return-an-item` or `returns/return-an-item.md`)."""
    ids = {a.id: a.id for a in articles}
    ids.update({Path(a.id).with_suffix("").as_posix(): a.id for a in articles if a.id.endswith((".md", ".markdown"))
                and Path(a.id).with_suffix("").as_posix() not in ids})
    unknown = sorted({t.gold_article for t in tickets if t.gold_article and t.gold_article not in ids})
    if unknown:
        raise ApplicationError(f"gold_article not in the knowledge base: {', '.join(unknown)}")
    return [dataclasses.replace(t, gold_article=ids[t.gold_article]) if t.gold_article else t for t in tickets]


def check_tier(tier: str) -> None:
    if tier not in TIER_CHOICES:
        raise ApplicationError(f"unknown tier {tier!r}; choose {', '.join(TIER_CHOICES)}")


def tier_step(tier: str) -> tiers.Step:
    """The tier a draft is asked of: `local` is the mini lane forced onto the local engine."""
    check_tier(tier)
    return tiers.Step("mini", "local") if tier == "local" else tiers.Step(tier)


def draft_prompt(version: int | None) -> Prompt:
    return controls.prompt_for(prompt_id="draft", version=version) if version else \
        controls.prompt_for(prompt_id="draft")


def _map(fn: Callable[[T], R], items: Sequence[T], *, parallel: bool) -> list[R]:
    """External calls 8 at a time; the local engine in this thread (it may read the database)."""
    if not parallel:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(OPENAI_CONCURRENCY) as pool:
        return list(pool.map(fn, items))


def _rows(passages: Sequence[Any], audience: dict[str, str]) -> list[dict[str, Any]]:
    """Retrieved passages in the shape a route decision stores them (steps._retrieve), with their audience."""
    return [
        {"chunk_id": p.chunk_id, "article_id": p.article_id, "article_slug": p.article_slug,
         "article_title": p.article_title, "article_version": p.article_version, "text": p.text,
         "score": p.score, "similarity": p.similarity,
         "audience": getattr(p, "audience", None) or audience.get(p.article_slug, "public")}
        for p in passages
    ]


@dataclass
class DraftJob:
    """One ticket to draft: what production would hand the tier."""

    score: draft_metrics.TicketScore
    text: tiers.TicketText
    redaction: policy.Redaction
    classification: routing.Classification
    retrieved: list[dict[str, Any]]
    reference: str = ""
    # As steps._draft has them: the remembered reply the local engine starts from, that reply's own articles
    # (cited even when retrieval ranked them out), and the internal texts the internal_text gate looks for.
    memory: replies.Memory | None = None
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    internal: tuple[str, ...] = ()

    def guidance_rows(self) -> list[dict[str, Any]]:
        return steps._guidance(self.retrieved)


def _is_local(step: tiers.Step) -> bool:
    return tiers.tier_config(step.tier, engine_override=step.engine_override).engine == "local"


def _remember(job: DraftJob, step: tiers.Step, public_chunks: Callable[..., list[dict[str, Any]]],
              exclude_ticket: int | None = None) -> None:
    """The reply memory the local engine starts from, as steps._draft looks it up (this thread: the ORM)."""
    if not _is_local(step):
        return
    job.memory = reply_memory.best(intent=job.classification.intent, language=job.classification.language,
                                   text=f"{job.text.subject}\n{job.text.body}",
                                   confidence=job.classification.confidence, exclude_ticket=exclude_ticket)
    if job.memory is not None:
        job.sources = public_chunks(slugs=list(job.memory.article_slugs))
        job.score.extra["memory_id"] = job.memory.id


def _draft(job: DraftJob, step: tiers.Step, prompt: Prompt) -> tiers.DraftAttempt:
    started = time.perf_counter()
    guidance = [tiers.Guidance(title=g["article_title"], text=g["text"]) for g in job.guidance_rows()]
    attempt = tiers.draft(step=step, text=job.text, classification=job.classification,
                          passages=steps._passages(job.retrieved, job.sources), prompt=prompt,
                          escalated=step.tier == "large", guidance=guidance, memory=job.memory)
    # Measured here rather than summed from the calls' whole milliseconds: the local engine takes less than one.
    job.score.latency_ms = round(1000 * (time.perf_counter() - started), 2)
    return attempt


def _score(job: DraftJob, attempt: tiers.DraftAttempt) -> set[str]:
    """Gates and pure scores of one attempt, into job.score; the names of the gates that ran."""
    row = job.score
    row.cost_usd = float(sum((c.cost_usd for c in attempt.calls), Decimal(0)))
    if attempt.body is None:
        row.error = attempt.calls[-1].error[:300] if attempt.calls else "no attempt"
        row.extra["refused"] = row.error.startswith("refused")
        return set()
    # The gate reads the live knowledge base's internal articles itself; a draft eval adds its own.
    body, results = steps._gate(attempt, job.redaction, [*job.guidance_rows(), *({"text": t} for t in job.internal)])
    by_marker = steps._usable(job.retrieved, job.sources)
    # One citation per marker, however often the model repeats it.
    cited = [by_marker[m] for m in dict.fromkeys(attempt.cited) if m in by_marker]
    row.drafted, row.body = True, body
    row.cited = [c["article_slug"] for c in cited]
    row.failed_gates = [r.rule for r in results if not r.passed]
    row.defects = draft_metrics.defects(body, failed_gates=row.failed_gates,
                                        cited_audiences=[c.get("audience", "public") for c in cited])
    row.supported, row.sentences = draft_metrics.support(body, [c["text"] for c in cited])
    if row.gold_article:
        citation = draft_metrics.citation_score(row.cited, row.gold_article)
        row.cited_gold, row.gold_citations, row.citations = (citation.cited_gold, citation.gold_citations,
                                                             citation.citations)
    if job.reference:
        row.token_f1 = round(draft_metrics.token_f1(body, job.reference), 4)
    return {r.rule for r in results}


def _similarities(pairs: list[tuple[str, str]]) -> list[float]:
    if not pairs:
        return []
    vectors = local.embed_texts([t for pair in pairs for t in pair])
    return [round(float(np.dot(vectors[2 * i], vectors[2 * i + 1])), 4) for i in range(len(pairs))]


def _add_similarity(jobs: list[DraftJob]) -> None:
    scored = [j for j in jobs if j.score.drafted and j.reference]
    for job, similarity in zip(scored, _similarities([(j.score.body, j.reference) for j in scored]), strict=True):
        job.score.similarity = similarity


def _judge(jobs: list[DraftJob]) -> dict[str, Any]:
    drafted = [j for j in jobs if j.score.drafted]

    def one(job: DraftJob) -> judge.Verdict:
        names = [job.text.from_name] if job.text.from_name.strip() else []
        by_marker = steps._usable(job.retrieved, job.sources)
        return judge.judge_draft(
            subject=job.text.redacted_subject, body=job.text.redacted_body,
            draft=policy.redact(job.score.body, names=names).text,
            passages=[by_marker[m]["text"] for m in sorted(by_marker)],
            reference=policy.redact(job.reference, names=names).text if job.reference else "",
        )

    cost = Decimal(0)
    failed = 0
    for job, verdict in zip(drafted, _map(one, drafted, parallel=True), strict=True):
        cost += sum((c.cost_usd for c in verdict.calls), Decimal(0))
        if verdict.score is None:
            failed += 1
            job.score.extra["judge_error"] = verdict.calls[-1].error[:300] if verdict.calls else ""
        job.score.judge_score, job.score.judge_reason = verdict.score, verdict.reason[:500]
    conf = judge.judge_config()
    return {"rubric": {"id": judge.RUBRIC.id, "version": judge.RUBRIC.version}, "tier": judge.JUDGE_TIER,
            "model": conf.model, "failed": failed, "cost_usd": float(cost)}


def _classify_missing(tickets: list[EvalTicket], texts: list[tiers.TicketText]) -> tuple[dict[str, Any], dict[int, Any]]:
    """The nano tier's classification of each ticket that gives no intent, as the pipeline would classify it."""
    from triage.learning import local_model_active

    missing = [i for i, t in enumerate(tickets) if not t.intent]
    if not missing:
        return {"classified": 0, "failed": 0, "cost_usd": 0.0}, {}
    model = local_model_active()
    taxonomy = steps.taxonomy()
    prompt = controls.prompt_for(prompt_id="classify")
    conf = tiers.tier_config("nano")

    def one(i: int) -> tiers.ClassifyOutcome:
        return tiers.classify(text=texts[i], taxonomy=taxonomy, local_model=model, chain=[tiers.Step("nano")],
                              prompt=prompt)

    outcomes = dict(zip(missing, _map(one, missing, parallel=conf.engine == "openai"), strict=True))
    cost = sum((c.cost_usd for o in outcomes.values() for c in o.calls), Decimal(0))
    failed = sum(o.classification is None for o in outcomes.values())
    return ({"classified": len(missing), "failed": failed, "engine": conf.engine, "model": conf.model,
             "cost_usd": float(cost)},
            {i: o.classification for i, o in outcomes.items() if o.classification is not None})


def _facts(step: tiers.Step, prompt: Prompt) -> dict[str, Any]:
    conf = tiers.tier_config(step.tier, engine_override=step.engine_override)
    return {"engine": conf.engine, "model": conf.model, "prompt": {"id": prompt.id, "version": prompt.version},
            "support_rule": draft_metrics.SUPPORT_RULE, "similarity": SIMILARITY}


def draft_eval(*, tickets: list[EvalTicket], articles: list[AudienceArticle], tier: str = "local",
               prompt_version: int | None = None, judge_tier: str | None = None,
               progress: Progress | None = None) -> dict[str, Any]:
    """Draft every ticket with one tier over a temporary index of `articles`, and score the drafts."""
    progress = progress or (lambda done, total: None)
    step = tier_step(tier)
    if not tickets:
        raise ApplicationError("there are no tickets to draft")
    if judge_tier is not None:
        if judge_tier != judge.JUDGE_TIER:
            raise ApplicationError(f"the judge runs on the {judge.JUDGE_TIER} tier only")
        try:
            judge.judge_config()
        except judge.JudgeUnavailable as exc:
            raise ApplicationError(str(exc)) from exc
    prompt = draft_prompt(prompt_version)
    tickets = gold_resolve(tickets, articles)
    pairs = [steps.text_redacted(subject=t.subject, body=t.body, from_name=t.from_name, from_email=t.from_email)
             for t in tickets]
    classify_facts, classified = _classify_missing(tickets, [text for text, _ in pairs])
    audience = {a.id: a.audience for a in articles}
    jobs: list[DraftJob] = []
    started = time.perf_counter()
    with temporary_kb(articles) as kb:
        for i, (ticket, (text, redaction)) in enumerate(zip(tickets, pairs, strict=True)):
            found = classified.get(i)
            language = ticket.language or (found.language if found else "") or local.language_of(ticket.body)
            classification = routing.Classification(
                intent=ticket.intent or (found.intent if found else ""),
                urgency=found.urgency if found else "normal", sentiment=found.sentiment if found else "neutral",
                language=language, confidence=found.confidence if found else 1.0,
                summary=found.summary if found else "",
            )
            passages = _search(kb, query=f"{ticket.subject}\n{ticket.body}", language=language or None)
            score = draft_metrics.TicketScore(id=ticket.id, subject=ticket.subject[:200],
                                              gold_article=ticket.gold_article)
            score.extra["intent"] = classification.intent
            score.extra["intent_source"] = "given" if ticket.intent else ("nano" if found else "unclassified")
            score.extra["retrieved"] = [p.article_slug for p in passages]
            job = DraftJob(score, text, redaction, classification, _rows(passages, audience), ticket.reference_reply,
                           internal=kb.internal_texts())
            _remember(job, step, kb.public_chunks)
            jobs.append(job)
        kb_facts = _kb_facts(kb)
    gates = _draft_all(jobs, step, prompt, progress)
    _add_similarity(jobs)
    judged = _judge(jobs) if judge_tier else None
    return {
        **draft_metrics.summarise([j.score for j in jobs]), "tier": tier, **_facts(step, prompt),
        "kb": kb_facts, "classify": classify_facts, "internal_text_gate": draft_metrics.INTERNAL_TEXT_GATE in gates,
        "judge": judged, "seconds": round(time.perf_counter() - started, 2),
        "tickets": [dataclasses.asdict(j.score) for j in jobs],
    }


def _search(kb: TemporaryKB, *, query: str, language: str | None) -> list[Any]:
    """steps._retrieve over the temporary index: the public passages a draft may quote, then the internal ones
    that guide it, with one embedding of the query for both."""
    vector = query_embed(query=query)
    found = kb.search(query=query, language=language, audience="public", query_vector=vector)
    return found + kb.search(query=query, k=steps.GUIDANCE_K, language=language, audience="internal",
                             query_vector=vector)


def _kb_facts(kb: TemporaryKB) -> dict[str, Any]:
    return {"articles": len(kb.articles), "internal": sum(a.audience == "internal" for a in kb.articles.values()),
            "chunks": kb.chunks}


def _draft_all(jobs: list[DraftJob], step: tiers.Step, prompt: Prompt, progress: Progress) -> set[str]:
    attempts = _map(lambda job: _draft(job, step, prompt), jobs, parallel=not _is_local(step))
    gates: set[str] = set()
    for i, (job, attempt) in enumerate(zip(jobs, attempts, strict=True), 1):
        gates |= _score(job, attempt)
        if i % 10 == 0 or i == len(jobs):
            progress(i, len(jobs))
    return gates


# --- Draft replay ---------------------------------------------------------------------------------

def answered_tickets(*, limit: int) -> list[tuple[Ticket, ReviewAction]]:
    """The newest tickets agents answered (approved, edited and approved, or composed a reply), each with its
    latest answer and its latest route decision's lane as `replay_lane`."""
    answers = ReviewAction.objects.filter(ticket=OuterRef("pk"), action__in=ANSWERED).exclude(final_text="") \
        .order_by("-created_at", "-id")
    lane = RouteDecision.objects.filter(ticket=OuterRef("pk")).order_by("-created_at", "-id").values("lane")[:1]
    tickets = list(
        Ticket.objects.annotate(answer_id=Subquery(answers.values("pk")[:1]),
                                answered_at=Subquery(answers.values("created_at")[:1]), replay_lane=Subquery(lane))
        .filter(answer_id__isnull=False).order_by("-answered_at", "-id")[:limit]
    )
    reviews = ReviewAction.objects.select_related("draft").in_bulk([t.answer_id for t in tickets])  # type: ignore[attr-defined]
    return [(t, reviews[t.answer_id]) for t in tickets]  # type: ignore[attr-defined]


def _classification_of(ticket: Ticket) -> routing.Classification:
    run = ticket.triage_runs.select_related("intent").first()
    if run is not None:
        return routing.Classification(intent=run.intent.name if run.intent else "", urgency=run.urgency,
                                      sentiment=run.sentiment, language=run.language, confidence=run.confidence,
                                      summary=run.summary)
    return routing.Classification(ticket.intent.name if ticket.intent else "", ticket.urgency or "normal",
                                  ticket.sentiment or "neutral", ticket.language, ticket.confidence or 0.0, "")


def draft_replay(*, tier: str, prompt_version: int | None, limit: int,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Draft the newest answered tickets again with a candidate over the live knowledge base, and compare each
    draft with what the agent sent; per lane, beside how close production's own draft was."""
    progress = progress or (lambda done, total: None)
    step = tier_step(tier)
    if limit < 1:
        raise ApplicationError("replay at least one ticket")
    prompt = draft_prompt(prompt_version)
    answered = answered_tickets(limit=limit)
    if not answered:
        raise ApplicationError("no ticket has an answer an agent sent (approved, edited or composed) to replay")
    jobs: list[DraftJob] = []
    for ticket, review in answered:
        text, redaction = steps.ticket_text(ticket)
        retrieved = steps._retrieve(ticket)
        lane = getattr(ticket, "replay_lane", None) or ticket.lane or "unrouted"
        score = draft_metrics.TicketScore(id=str(ticket.pk), subject=ticket.subject[:200], lane=lane)
        score.extra.update({"token": ticket.token, "action": review.action, "sent": review.final_text[:4000]})
        production = review.draft.body if review.draft is not None else ""
        if production:
            score.extra["production_f1"] = round(draft_metrics.token_f1(production, review.final_text), 4)
            score.extra["production_body"] = production
        job = DraftJob(score, text, redaction, _classification_of(ticket), retrieved, review.final_text)
        # The agent's answer joined the reply memory when it was sent: starting from it would score the answer
        # against itself.
        _remember(job, step, public_chunks, exclude_ticket=ticket.pk)
        jobs.append(job)
    _draft_all(jobs, step, prompt, progress)
    _add_similarity(jobs)
    with_production = [j for j in jobs if "production_body" in j.score.extra]
    for job, similarity in zip(with_production, _similarities(
            [(j.score.extra.pop("production_body"), j.reference) for j in with_production]), strict=True):
        job.score.extra["production_similarity"] = similarity
    per_lane: dict[str, Any] = {}
    for lane in sorted({j.score.lane for j in jobs}):
        rows = [j.score for j in jobs if j.score.lane == lane]
        per_lane[lane] = {**{k: v for k, v in draft_metrics.summarise(rows).items()
                             if k in ("n", "reference_f1", "reference_similarity", "defects", "refusals", "cost_usd",
                                      "latency_ms", "supported_share")},
                          "production_f1": _mean([r.extra.get("production_f1") for r in rows]),
                          "production_similarity": _mean([r.extra.get("production_similarity") for r in rows])}
    return {
        **draft_metrics.summarise([j.score for j in jobs]), "tier": tier, **_facts(step, prompt),
        "per_lane": per_lane, "production_f1": _mean([j.score.extra.get("production_f1") for j in jobs]),
        "production_similarity": _mean([j.score.extra.get("production_similarity") for j in jobs]),
        "tickets": [dataclasses.asdict(j.score) for j in jobs],
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None
