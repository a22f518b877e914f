"""Knowledge gaps: the tickets retrieval could not ground, grouped so admins see which articles to write.

The grouping is a pure function over plain rows; the one query reads the route decisions triage stored.
This module and `kb/views.py` are the only parts of `kb` that read `triage`: gap finding is, by nature,
about tickets.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

UNCLASSIFIED = "unclassified"
EXAMPLES_PER_GAP = 3
TERMS_PER_GAP = 8
# Words every support ticket uses; they name no topic.
_SUPPORT_WORDS = frozenset({
    "hello", "hi", "thanks", "thank", "please", "regards", "help", "need", "want", "just", "like", "know",
    "would", "could", "get", "got", "can", "cannot", "dont", "don", "doesn", "didn", "isn", "ve", "ll", "im",
    "team", "support", "hey", "dear", "best", "sincerely",
})


@dataclass(frozen=True)
class WeakTicket:
    ticket_id: int
    subject: str
    body: str
    intent: str
    top_similarity: float | None


@dataclass(frozen=True)
class Gap:
    intent: str
    tickets: int
    of_intent: int  # tickets of this intent in the period, weak or not
    examples: tuple[tuple[int, str], ...]
    terms: tuple[tuple[str, int], ...]
    best_similarity: float | None  # the closest any of these tickets came to an article

    @property
    def share(self) -> float:
        return self.tickets / self.of_intent if self.of_intent else 0.0


def terms_of(text: str) -> set[str]:
    words = re.findall(r"[^\W\d_]{3,}", text.lower())
    return {w for w in words if w not in ENGLISH_STOP_WORDS and w not in _SUPPORT_WORDS}


def is_weak(top_similarity: float | None, threshold: float) -> bool:
    # The same test routing applies (triage/routing.py): nothing retrieved, or nothing close enough.
    return top_similarity is None or top_similarity < threshold


def group_gaps(rows: list[WeakTicket], *, threshold: float) -> list[Gap]:
    """Weak tickets grouped by intent, the gap affecting most tickets first."""
    per_intent: Counter[str] = Counter(r.intent for r in rows)
    weak: dict[str, list[WeakTicket]] = defaultdict(list)
    for row in rows:
        if is_weak(row.top_similarity, threshold):
            weak[row.intent].append(row)
    gaps = []
    for intent, tickets in weak.items():
        # Document frequency: a word counts once per ticket, so one long ticket cannot set the topic.
        counts: Counter[str] = Counter()
        for t in tickets:
            counts.update(terms_of(f"{t.subject} {t.body}"))
        similarities = [t.top_similarity for t in tickets if t.top_similarity is not None]
        newest = sorted(tickets, key=lambda t: -t.ticket_id)[:EXAMPLES_PER_GAP]
        gaps.append(Gap(
            intent=intent, tickets=len(tickets), of_intent=per_intent[intent],
            examples=tuple((t.ticket_id, t.subject) for t in newest),
            terms=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TERMS_PER_GAP]),
            best_similarity=max(similarities) if similarities else None,
        ))
    return sorted(gaps, key=lambda g: (-g.tickets, g.intent))


def route_rows(*, since: datetime) -> list[WeakTicket]:
    """Each ticket routed since then, with its latest route decision's top similarity (one query)."""
    from triage.models import RouteDecision

    decisions = (RouteDecision.objects.filter(created_at__gte=since)
                 .order_by("ticket_id", "-created_at", "-id").distinct("ticket_id")
                 .select_related("ticket__intent")
                 .only("ticket_id", "top_similarity", "ticket__subject", "ticket__body", "ticket__intent__name"))
    return [
        WeakTicket(ticket_id=d.ticket_id, subject=d.ticket.subject, body=d.ticket.body,
                   intent=d.ticket.intent.name if d.ticket.intent else UNCLASSIFIED,
                   top_similarity=d.top_similarity)
        for d in decisions
    ]


def article_prefill(gap: Gap) -> dict[str, str]:
    """A starting point for the article that would close the gap: the create form's initial values."""
    topic = gap.intent.replace("_", " ") if gap.intent != UNCLASSIFIED else "Unclassified questions"
    questions = "\n".join(f"- {subject}" for _id, subject in gap.examples)
    terms = ", ".join(term for term, _n in gap.terms)
    body = f"## What customers ask\n\n{questions}\n\n## Answer\n\n"
    if terms:
        body += f"(Words these tickets use: {terms}.)\n"
    return {"title": topic[:1].upper() + topic[1:], "body": body,
            "change_note": f"Written for the {gap.intent} gap ({gap.tickets} tickets)"}
