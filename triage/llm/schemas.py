"""JSON schemas for structured output, and the validators every engine's output passes through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from triage.llm.errors import SchemaInvalid
from triage.routing import Classification
from triage.vocabulary import SENTIMENTS, URGENCY_LEVELS


def classification_schema(intents: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": intents},
            "urgency": {"type": "string", "enum": list(URGENCY_LEVELS)},
            "sentiment": {"type": "string", "enum": list(SENTIMENTS)},
            "language": {"type": "string", "description": "ISO 639-1 code, e.g. en"},
            "confidence": {"type": "number"},
            "summary": {"type": "string"},
        },
        "required": ["intent", "urgency", "sentiment", "language", "confidence", "summary"],
        "additionalProperties": False,
    }


DRAFT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "citations": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["reply", "citations"],
    "additionalProperties": False,
}


def _load_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaInvalid(f"output is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaInvalid("output is not a JSON object")
    return data


def parse_classification(text: str, intents: list[str]) -> Classification:
    data = _load_object(text)
    missing = [k for k in ("intent", "urgency", "sentiment", "language", "confidence", "summary") if k not in data]
    if missing:
        raise SchemaInvalid(f"missing fields: {', '.join(missing)}")
    if data["intent"] not in intents:
        raise SchemaInvalid(f"intent {data['intent']!r} is not in the taxonomy")
    if data["urgency"] not in URGENCY_LEVELS:
        raise SchemaInvalid(f"urgency {data['urgency']!r} is not one of {', '.join(URGENCY_LEVELS)}")
    if data["sentiment"] not in SENTIMENTS:
        raise SchemaInvalid(f"sentiment {data['sentiment']!r} is not one of {', '.join(SENTIMENTS)}")
    confidence = data["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise SchemaInvalid(f"confidence {confidence!r} is not a number between 0 and 1")
    language, summary = data["language"], data["summary"]
    if not isinstance(language, str) or not 2 <= len(language.strip()) <= 10:
        raise SchemaInvalid(f"language {language!r} is not a language code")
    if not isinstance(summary, str) or not summary.strip():
        raise SchemaInvalid("summary is empty")
    return Classification(
        intent=data["intent"],
        urgency=data["urgency"],
        sentiment=data["sentiment"],
        language=language.strip().lower()[:10],
        confidence=float(confidence),
        summary=" ".join(summary.split())[:500],
    )


@dataclass(frozen=True)
class DraftOutput:
    reply: str
    citations: tuple[int, ...]


def parse_draft(text: str) -> DraftOutput:
    data = _load_object(text)
    reply, citations = data.get("reply"), data.get("citations")
    if not isinstance(reply, str) or not reply.strip():
        raise SchemaInvalid("reply is missing or empty")
    if not isinstance(citations, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in citations):
        raise SchemaInvalid("citations must be a list of passage numbers")
    return DraftOutput(reply=reply.strip(), citations=tuple(dict.fromkeys(citations)))
