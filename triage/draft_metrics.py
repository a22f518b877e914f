"""How good a draft is, measured without a model: pure functions over strings, for draft evals and replays.

Each score is simple enough to reason about by hand, so a change in a figure can be traced to a sentence:
- citation recall and precision against a ticket's gold article;
- the share of a draft's sentences a cited passage supports (content-word overlap, SUPPORT_OVERLAP);
- token F1 to a reference reply (as SQuAD scores answers: multiset overlap of lower-cased words);
- defects a customer would notice: repeated lines, unfilled blanks, a failed policy gate, internal text.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A sentence counts as supported when at least half of its content words occur in one cited passage.
SUPPORT_OVERLAP = 0.5
SUPPORT_RULE = f"content-word overlap >= {SUPPORT_OVERLAP} with one cited passage"
# Sentences with fewer content words are greetings, sign-offs and pleasantries ("Thank you for getting in
# touch."): nothing a passage could support, so they are left out of the share rather than counted against it.
MIN_CLAIM_WORDS = 4
# Internal text: the built-in gate of that name when the deployment has it; a draft citing an internal article
# is counted as well, since a customer must never be pointed at an agent procedure.
INTERNAL_TEXT_GATE = "internal_text"

_WORD = re.compile(r"\w+", re.UNICODE)
_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_BLANK = re.compile(r"\[\[[^\[\]\n]*\]\]|\{\{[^{}\n]*\}\}")
# Short function words in the languages the demo serves; a content word is any other word of 3+ letters.
_STOP = frozenset(
    ["the", "and", "but", "for", "with", "from", "this", "that", "these", "those", "are", "was", "were", "been", "being", "have", "has", "had", "not", "you", "your", "yours", "our", "ours", "we", "they", "them", "their", "its", "his", "her", "she", "him", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "does", "did", "about", "into", "onto", "over", "under", "than", "then", "there", "here", "what", "when", "where", "which", "who", "whom", "why", "how", "all", "any", "each", "some", "also", "just", "only", "very", "more", "most", "such", "own", "same", "too", "out", "off", "again", "once", "please", "thanks", "thank", "der", "die", "das", "und", "ist", "sie", "ich", "wir", "ihr", "ein", "eine", "einen", "mit", "von", "für", "auf", "den", "dem", "des", "nicht", "sich", "auch", "los", "las", "una", "unos", "por", "para", "con", "del", "que", "como", "pero", "sus", "les", "nos", "une", "des", "est", "pas", "pour", "avec", "dans", "sur", "vous", "nous"]
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(_MARKER.sub(" ", text))]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if len(w) >= 3 and w not in _STOP and not w.isdigit()}


def token_f1(candidate: str, reference: str) -> float:
    """Harmonic mean of word precision and recall, counting repeated words as often as they occur."""
    got, want = Counter(words(candidate)), Counter(words(reference))
    common = sum((got & want).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def sentences(text: str) -> list[str]:
    """The draft's claims: its sentences (bullets and lines count as sentences) with enough content words."""
    text = re.sub(r"^\s*(?:[-*•]|\d+\.)\s+", "", text, flags=re.MULTILINE)
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip() for p in parts if len(content_words(p)) >= MIN_CLAIM_WORDS]


def overlap(sentence: str, passage: str) -> float:
    terms = content_words(sentence)
    return len(terms & content_words(passage)) / len(terms) if terms else 0.0


def support(draft: str, cited_passages: Sequence[str]) -> tuple[int, int]:
    """(supported sentences, sentences) of a draft, against the passages it cites."""
    claims = sentences(draft)
    supported = sum(any(overlap(s, p) >= SUPPORT_OVERLAP for p in cited_passages) for s in claims)
    return supported, len(claims)


def repeated_lines(text: str) -> int:
    """Lines said again: each repetition of a non-empty line (ignoring case, spacing and citation markers)."""
    seen = Counter(" ".join(words(line)) for line in text.splitlines())
    seen.pop("", None)
    return sum(n - 1 for n in seen.values() if n > 1)


def unfilled_blanks(text: str) -> list[str]:
    """Slots left for the agent: `[[order number]]` or `{{name}}`."""
    return _BLANK.findall(text)


def defects(body: str, *, failed_gates: Iterable[str], cited_audiences: Iterable[str] = ()) -> dict[str, int]:
    """Defects by kind; only kinds that occur are listed. A failed gate counts under its own name, and the
    internal_text gate (when present) or a citation of an internal article under `internal_text`."""
    found: Counter[str] = Counter()
    found["repeated_line"] += repeated_lines(body)
    found["unfilled_blank"] += len(unfilled_blanks(body))
    gates = list(dict.fromkeys(failed_gates))
    internal = INTERNAL_TEXT_GATE in gates or any(a == "internal" for a in cited_audiences)
    found[INTERNAL_TEXT_GATE] += int(internal)
    for gate in gates:
        if gate != INTERNAL_TEXT_GATE:
            found[f"gate:{gate}"] += 1
    return {kind: n for kind, n in sorted(found.items()) if n}


@dataclass(frozen=True)
class CitationScore:
    cited_gold: bool
    gold_citations: int
    citations: int


def citation_score(cited_slugs: Sequence[str], gold: str) -> CitationScore:
    """One draft's citations (one slug per citation marker) against its ticket's gold article."""
    hits = sum(slug == gold for slug in cited_slugs)
    return CitationScore(cited_gold=hits > 0, gold_citations=hits, citations=len(cited_slugs))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(float(values[0]), 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 2)


@dataclass
class TicketScore:
    """One ticket's draft and its scores, as kept in a report."""

    id: str
    subject: str
    drafted: bool = False  # False: no draft (the model refused, or every attempt failed)
    body: str = ""
    error: str = ""
    cited: list[str] = field(default_factory=list)  # one article slug per citation marker
    gold_article: str = ""
    cited_gold: bool = False
    gold_citations: int = 0
    citations: int = 0
    supported: int = 0
    sentences: int = 0
    token_f1: float | None = None  # against the reference reply (or what the agent sent), when there is one
    similarity: float | None = None
    failed_gates: list[str] = field(default_factory=list)
    defects: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    lane: str = ""
    judge_score: int | None = None
    judge_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarise(rows: Sequence[TicketScore]) -> dict[str, Any]:
    """A run's figures from its per-ticket scores. Citation figures count only tickets with a gold article;
    a ticket with no draft counts as a miss for recall and adds no citations."""
    gold = [r for r in rows if r.gold_article]
    claims = sum(r.sentences for r in rows)
    with_reference = [r for r in rows if r.token_f1 is not None]
    by_kind: Counter[str] = Counter()
    for r in rows:
        by_kind.update(r.defects)
    refusals = sum(not r.drafted for r in rows)
    latencies = [r.latency_ms for r in rows]
    judged = [float(r.judge_score) for r in rows if r.judge_score is not None]
    return {
        "n": len(rows),
        "citation_recall": _share(sum(r.cited_gold for r in gold), len(gold)),
        "citation_precision": _share(sum(r.gold_citations for r in gold), sum(r.citations for r in gold)),
        "tickets_with_gold": len(gold),
        "supported_share": _share(sum(r.supported for r in rows), claims),
        "sentences": claims,
        "support_rule": SUPPORT_RULE,
        "reference_n": len(with_reference),
        "reference_f1": _mean([r.token_f1 for r in with_reference if r.token_f1 is not None]),
        "reference_similarity": _mean([r.similarity for r in with_reference if r.similarity is not None]),
        "defects": sum(by_kind.values()),
        "defects_by_kind": dict(sorted(by_kind.items())),
        "tickets_with_defects": sum(bool(r.defects) for r in rows),
        "refusals": refusals,
        "refusal_rate": _share(refusals, len(rows)),
        "cost_usd": round(sum(r.cost_usd for r in rows), 8),
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        "judge_mean": _mean(judged),
        "judged": len(judged),
    }
