"""Reply memory: the replies worth starting a draft from, found by the ticket they answered.

Two sources: reference replies shipped for the taxonomy (fixtures/replies, loaded by the demo seed), and every
reply an agent sends (approved as drafted, edited, or written in the composer). A sent reply is stored as a
template: greeting and sign-off dropped, the customer's own values turned back into slots, and only when no
other personal data remains in it. An edit replaces the reply the draft was written from, so the memory
learns the team's wording instead of repeating what agents keep correcting.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from pgvector.django import CosineDistance

from triage import policy
from triage.llm import local, replies
from triage.models import Intent, ReplyMemory, ReviewAction

logger = logging.getLogger(__name__)

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "replies" / "reference_replies.jsonl"
SENT_ACTIONS = (ReviewAction.Action.APPROVE, ReviewAction.Action.EDIT_APPROVE, ReviewAction.Action.COMPOSE)


def _vector(text: str) -> list[float]:
    return [float(x) for x in local.embed_texts([text])[0]]


# Which intent's replies to start from. The classification's intent when it is confident; otherwise the intent
# the nearest remembered tickets vote for (their similarities summed, in any language: the embedding is
# multilingual). On 42 realistic store tickets in five languages (fixtures/draft_eval) the vote of the 5
# nearest named the right intent for 24, the local classifier's best in-scope intent for 16.
TRUST_CONFIDENCE = 0.6
VOTERS = 5
# A reply whose slot the ticket cannot fill counts as this much less similar per blank it would leave.
CHOICES = 5
BLANK_COST = 0.05


def best(*, intent: str, language: str, text: str, confidence: float = 0.0,
         exclude_ticket: int | None = None) -> replies.Memory | None:
    """The remembered reply to start a draft from: of the classified intent when confident, else of the intent
    the nearest remembered tickets vote for; in the ticket's language when the team has replies in it for that
    intent (else English, else any); the closest such reply, or None below the similarity floor.
    `exclude_ticket`: leave out what was learnt from that ticket (a replay must not start from the answer)."""
    rows = ReplyMemory.objects.filter(active=True, embedding__isnull=False)
    if exclude_ticket is not None:
        rows = rows.exclude(review__ticket_id=exclude_ticket)
    vector = _vector(text)
    near = list(rows.annotate(distance=CosineDistance("embedding", vector)).order_by("distance", "-id")
                .values("intent__name", "distance")[:VOTERS])
    if not near:
        return None
    chosen_intent = intent if intent and intent != "other" and confidence >= TRUST_CONFIDENCE else ""
    if not chosen_intent or not rows.filter(intent__name=chosen_intent).exists():
        votes: dict[str, float] = {}
        for row in near:
            votes[row["intent__name"]] = votes.get(row["intent__name"], 0.0) + 1.0 - float(row["distance"])
        chosen_intent = max(votes, key=lambda name: votes[name])
    of_intent = rows.filter(intent__name=chosen_intent)
    available = set(of_intent.order_by().values_list("language", flat=True).distinct())
    wanted = next((lang for lang in ((language or "").lower()[:2], "en") if lang in available), None)
    if wanted is not None:
        of_intent = of_intent.filter(language=wanted)
    closest = list(of_intent.annotate(distance=CosineDistance("embedding", vector)).order_by("distance", "-id")
                   .values("id", "text", "language", "article_slugs", "distance")[:CHOICES])
    if not closest:
        return None
    # Among the closest, one whose slots this ticket fills: every blank is a step the agent must take.
    known = {*replies.ticket_values(subject=text.partition("\n")[0], body=text.partition("\n")[2], from_name=""),
             "first_name", "last_name", "email"}  # the sender's own: the pipeline knows them from the envelope
    found = min(closest, key=lambda r: float(r["distance"]) + BLANK_COST * len(
        set(replies.SLOT_RE.findall(r["text"])) - known))
    similarity = 1.0 - float(found["distance"])
    if similarity < settings.REPLY_MEMORY_MIN_SIMILARITY:
        return None
    return replies.Memory(id=found["id"], text=found["text"], language=found["language"],
                          article_slugs=tuple(found["article_slugs"] or ()), similarity=round(similarity, 4))


def reference_load(*, path: Path = REFERENCE_FILE) -> int:
    """Load (or update in place, by key) the shipped reference replies; returns how many were written."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            rows.append((str(record["key"]), str(record["intent"]), str(record["language"]), str(record["text"]),
                         str(record.get("prompt") or ""), list(record.get("article_slugs") or [])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a reference reply ({exc})") from exc
    intents = dict(Intent.objects.values_list("name", "id"))
    existing = {m.key: m for m in ReplyMemory.objects.filter(key__in=[r[0] for r in rows])}
    wanted = [r for r in rows if r[1] in intents and (
        r[0] not in existing or (existing[r[0]].text, existing[r[0]].prompt) != (r[3], r[4]))]
    vectors = local.embed_texts([r[4] or r[3] for r in wanted]) if wanted else []
    for (key, intent, language, text, prompt, slugs), vector in zip(wanted, vectors, strict=True):
        ReplyMemory.objects.update_or_create(
            key=key, defaults={"intent_id": intents[intent], "language": language, "text": text, "prompt": prompt,
                               "article_slugs": slugs, "source": ReplyMemory.Source.REFERENCE,
                               "embedding": [float(x) for x in vector], "active": True})
    return len(wanted)


def remember(*, review_id: int) -> ReplyMemory | None:
    """Add a sent reply to the memory (once per review). Skipped, with the reason logged, when the ticket has
    no intent or the reply still holds personal data that is not the customer's own slot values."""
    review = (ReviewAction.objects.select_related("ticket__intent", "draft__memory")
              .filter(pk=review_id, action__in=SENT_ACTIONS).first())
    if review is None or not review.final_text.strip() or ReplyMemory.objects.filter(review=review).exists():
        return None
    ticket = review.ticket
    if ticket.intent is None:
        return None
    values = replies.ticket_values(subject=ticket.subject, body=ticket.body, from_name=ticket.from_name,
                                   from_email=ticket.from_email)
    text = replies.templatize(review.final_text, values)
    if len(text.split()) < 5:
        return None
    if policy.find_pii(text):
        # An address, phone or card number that is not the customer's slot: not something to reuse.
        logger.info("sent reply on ticket %s not remembered: it holds personal data", ticket.pk)
        return None
    names = [ticket.from_name] if ticket.from_name.strip() else []
    prompt = policy.redact(f"{ticket.subject}\n{ticket.body}", names=names).text
    drafted_from = review.draft.memory if review.draft is not None else None
    with transaction.atomic():
        if drafted_from is not None and review.action == ReviewAction.Action.APPROVE:
            # Sent as the memory wrote it: nothing new to learn, and no duplicate to crowd the search.
            return None
        same = ReplyMemory.objects.filter(intent=ticket.intent, active=True, text=text).first()
        if same is not None:
            return None
        memory = ReplyMemory.objects.create(
            intent=ticket.intent, language=(ticket.language or "en")[:10], text=text, prompt=prompt,
            source=ReplyMemory.Source.SENT, review=review, embedding=_vector(prompt),
            article_slugs=list(review.draft.citations.values_list("article_slug", flat=True).distinct())
            if review.draft is not None else [],
        )
        if drafted_from is not None and review.action == ReviewAction.Action.EDIT_APPROVE:
            ReplyMemory.objects.filter(pk=drafted_from.pk).update(active=False, replaced_by=memory)
    return memory
