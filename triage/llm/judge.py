"""A large model's score of a draft against a versioned rubric, for draft evals (`draft_eval --judge large`).

The judge goes through the tiers' OpenAI path (schema-checked structured output, cost and latency recorded
like any call) with the large tier's settings. It never runs on the local engine: a local "judge" would
score drafts with the same heuristics that wrote them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from triage.llm import tiers
from triage.llm.errors import SchemaInvalid
from triage.llm.prompts import Prompt

JUDGE_TIER = "large"

# Bump the version whenever the text changes: scores are only comparable under the same rubric version.
RUBRIC = Prompt(
    id="draft-rubric",
    version=1,
    system=(
        "You review a draft reply that a support agent at an online store may send to a customer. Score it "
        "from 1 to 5:\n"
        "5: answers the question asked, correct according to the passages, addressed to the customer, ready to "
        "send unchanged.\n"
        "4: right answer, needs a light edit (tone, a missing detail, a clumsy sentence).\n"
        "3: partly answers; an agent must add or correct something substantive.\n"
        "2: mostly off-topic, unsupported by the passages, or written to an agent instead of the customer.\n"
        "1: wrong, harmful, a refusal, or not a reply at all.\n"
        "Judge only from the ticket, the passages and, when given, the reference reply a good agent wrote. "
        "Give the score and a reason of at most two sentences. Personal data is replaced by placeholders "
        "such as [PERSON_1]; treat them as the real values."
    ),
)

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}


class JudgeUnavailable(Exception):
    pass


@dataclass
class Verdict:
    score: int | None = None
    reason: str = ""
    calls: list[tiers.CallRecord] = field(default_factory=list)


def judge_config() -> tiers.TierConfig:
    conf = tiers.tier_config(JUDGE_TIER)
    if conf.engine != "openai":
        raise JudgeUnavailable(
            f"the judge runs only through the OpenAI API and the {JUDGE_TIER} tier has no API key: set "
            f"TIERDESK_{JUDGE_TIER.upper()}_API_KEY (or OPENAI_API_KEY), or leave out --judge"
        )
    return conf


def _parse(raw: str) -> tuple[int, str]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SchemaInvalid(f"output is not JSON: {exc}") from exc
    score = data.get("score") if isinstance(data, dict) else None
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise SchemaInvalid(f"score must be an integer from 1 to 5, got {score!r}")
    reason = data.get("reason")
    if not isinstance(reason, str):
        raise SchemaInvalid("reason must be a string")
    return score, reason.strip()


def judge_draft(*, subject: str, body: str, draft: str, passages: list[str], reference: str = "") -> Verdict:
    """The judge's score and reason; every text given must already be redacted (it goes to an external model)."""
    conf = judge_config()
    verdict = Verdict()
    user = json.dumps({"ticket_subject": subject, "ticket_body": body, "draft_reply": draft,
                       "passages": passages, "reference_reply": reference}, ensure_ascii=False)

    def produce(record: tiers.CallRecord) -> tuple[int, str]:
        raw = tiers._call_openai(conf, tiers.system_prompt(RUBRIC.system), user, "draft_judgement", JUDGE_SCHEMA,
                                 record)
        return _parse(raw)

    result = tiers._attempts("judge", conf, RUBRIC, tiers.SCHEMA_ATTEMPTS, verdict.calls, produce)
    if result is not None:
        verdict.score, verdict.reason = result
    return verdict
