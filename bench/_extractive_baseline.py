"""The local engine's drafts as they were before the reply memory: the passage sentences that best overlap
the ticket, as bullets, each with its citation. Kept only so bench/draft_quality.py can compare the two
engines on the same tickets; the product does not use it."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PassageRef:
    marker: int
    title: str
    text: str


_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "to", "of", "in", "on", "for", "with", "at", "by", "from", "is", "are", "was", "were", "be", "been", "it", "this", "that", "i", "my", "me", "you", "your", "we", "our", "can", "could", "would", "should", "do", "does", "did", "have", "has", "had", "not", "no", "so", "as", "how", "what", "when", "where"]
)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _sentences(text: str) -> list[str]:
    text = re.sub(r"^\s*(#+|\d+\.)\s*", "", text, flags=re.MULTILINE)
    parts = re.split(r"(?<=[.!?])\s+|\n+|\s+-\s+", text)
    return [p.strip() for p in parts if len(p.split()) >= 5]


# An agent's instruction to regenerate a draft. The local engine cannot follow free text: it writes only from
# the knowledge base, so an instruction steers which passages are retrieved (steps._retrieve) and which of
# their sentences are chosen (its words count double), and these few directives change the reply's shape.
_SHORTER = re.compile(r"\b(short(er)?|brief(er|ly)?|concise|less detail|to the point|one sentence)\b",
                      re.IGNORECASE)
_LONGER = re.compile(r"\b(more (detail(s|ed)?|steps|thorough)|longer|step[- ]by[- ]step|all (the )?steps|"
                     r"in detail|elaborate|fuller|full (answer|procedure|steps))\b", re.IGNORECASE)
_APOLOGISE = re.compile(r"\b(apologi[sz](e|ing)|apology|(say|be) sorry)\b", re.IGNORECASE)
_DIRECTIVE_WORDS = frozenset(
    ["short", "shorter", "brief", "briefer", "briefly", "concise", "less", "detail", "details", "detailed",
     "point", "one", "sentence", "more", "steps", "step", "thorough", "longer", "elaborate", "fuller", "full",
     "answer", "procedure", "apologise", "apologize", "apologising", "apologizing", "apology", "say", "sorry",
     "please", "make", "keep", "reply", "draft", "customer", "mention", "explain", "tell", "them", "add",
     "instead", "also", "focus", "about", "use", "write", "include", "all"]
)
SENTENCES = 3


def instruction_topic(instruction: str) -> str:
    words = [w for w in _WORD.findall(instruction.lower()) if w not in _STOP and w not in _DIRECTIVE_WORDS
             and len(w) > 2]
    return " ".join(words)


def compose_draft(
    *, from_name: str, subject: str, body: str, intent: str, passages: list[PassageRef], escalated: bool,
    instruction: str = "",
) -> tuple[str, list[int]]:
    """An extractive reply: the passage sentences that best overlap the ticket (and the agent's instruction,
    whose words weigh double), each with its citation."""
    query = _terms(f"{subject} {body}")
    wanted = set(instruction_topic(instruction).split())
    count = SENTENCES
    if _SHORTER.search(instruction):
        count = 1
    elif _LONGER.search(instruction):
        count = 5
    scored: list[tuple[float, int, int, str]] = []
    for rank, passage in enumerate(passages):
        for position, sentence in enumerate(_sentences(passage.text)):
            terms = _terms(sentence)
            overlap = len(query & terms) + 2 * len(wanted & terms)
            # Earlier passages ranked higher by retrieval; earlier sentences carry the procedure's start.
            scored.append((overlap - 0.3 * rank - 0.02 * position, passage.marker, position, sentence))
    scored.sort(key=lambda s: -s[0])
    chosen = sorted(scored[:count], key=lambda s: (s[1], s[2]))
    greeting = f"Hi {from_name.split()[0]}," if from_name.strip() else "Hello,"
    lines = [greeting, "", "Thank you for getting in touch."]
    if _APOLOGISE.search(instruction):
        lines[-1] = "Thank you for getting in touch, and I am sorry for the trouble this has caused."
    cited: list[int] = []
    if chosen:
        lines += ["", "Here is what applies to your request:"]
        for _score, marker, _position, sentence in chosen:
            lines.append(f"- {sentence} [{marker}]")
            if marker not in cited:
                cited.append(marker)
    if escalated:
        lines += ["", "A senior member of our team is reviewing your case and will follow up with you."]
    lines += ["", "Kind regards,", "Customer Support"]
    return "\n".join(lines), cited


