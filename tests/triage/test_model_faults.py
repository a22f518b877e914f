"""Every model fault ends in a defined, visible state, per tier.

The real SDK talks to a scripted OpenAI-compatible server that fails on the wire (timeouts, resets, statuses,
bodies cut short) or answers badly (not JSON, off-schema, refused, empty, cut off at the token limit). For each
fault and each place it can strike, the tests count the requests that reached the server, read the ModelCall
rows, and follow the ticket to where it ends: the next tier, the contract's fallback, or the human queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from django.utils.html import escape
from openai import _base_client

from tests.support import builders, data
from tests.support.scripted_openai import (
    Reply,
    ScriptedOpenAI,
    completion,
    cut_stream,
    reset,
    tier_settings,
    truncated,
)
from triage import controls, steps
from triage.llm import breaker
from triage.models import AuditEvent, Draft, ModelCall, Ticket
from triage.routing import Reason

pytestmark = pytest.mark.django_db

TIMEOUT = 0.5
MAX_RETRIES = 1
SDK_TRIES = 1 + MAX_RETRIES  # requests one call makes when the SDK retries the fault
IN_FLIGHT = {"new", "classifying", "routing", "drafting"}
SETTLED = {"awaiting_review", "needs_human"}

VALID = {"intent": "recover_password", "urgency": "normal", "sentiment": "neutral", "language": "en",
         "confidence": 0.93, "summary": "Customer cannot log in and wants to reset the password."}
REPLY = {"reply": "Hi Sam, you can reset your password from the sign-in page [1].", "citations": [1]}


def classified(**overrides: Any) -> Reply:
    return completion({**VALID, **overrides})


def drafted() -> Reply:
    return completion(REPLY, tokens_in=800, tokens_out=60)


def valid(step: str) -> Reply:
    return classified() if step == "classify" else drafted()


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error"}}


@dataclass(frozen=True)
class Fault:
    """One way a model call goes wrong, and what the policy says follows from it."""

    name: str
    reply: Callable[[str], Reply]  # the reply for a step ("classify" or "draft")
    wire: int  # requests that reach the server for one attempt
    schema_retry: bool  # the tier is asked once more (an answer that was not usable, not an outage)
    error: str  # what the ModelCall's error says
    schema_valid: bool | None
    provider_failure: bool  # counts against the tier's circuit breaker
    permanent: bool = False  # a fallback of "retry" does not ask the same tier again


FAULTS = [
    Fault("timeout", lambda step: Reply(delay=TIMEOUT * 2.5, body=valid(step).body), SDK_TRIES, False,
          f"timed out: no answer within {TIMEOUT:g}s (2 tries)", None, True),
    Fault("connection reset", lambda step: reset(), SDK_TRIES, False,
          "connection failed: Connection reset by peer (2 tries)", None, True),
    Fault("429 without Retry-After", lambda step: Reply(429, error_body("slow down")), SDK_TRIES, False,
          "rate limited (HTTP 429): slow down (2 tries)", None, True),
    Fault("429 with Retry-After", lambda step: Reply(429, error_body("slow down"), {"Retry-After": "1"}),
          SDK_TRIES, False, "rate limited (HTTP 429): slow down (2 tries)", None, True),
    Fault("500", lambda step: Reply(500, error_body("internal error")), SDK_TRIES, False,
          "HTTP 500: internal error (2 tries)", None, True),
    Fault("502", lambda step: Reply(502, "<html>Bad Gateway</html>"), SDK_TRIES, False,
          "HTTP 502 (2 tries)", None, True),
    Fault("503", lambda step: Reply(503, error_body("overloaded")), SDK_TRIES, False,
          "HTTP 503: overloaded (2 tries)", None, True),
    Fault("400", lambda step: Reply(400, error_body("response_format is not supported")), 1, False,
          "HTTP 400: response_format is not supported (1 try)", None, True, permanent=True),
    Fault("401", lambda step: Reply(401, error_body("invalid api key")), 1, False,
          "HTTP 401: invalid api key (1 try) — the {tier} tier's API key was refused; "
          "check TIERDESK_{TIER}_API_KEY", None, True, permanent=True),
    Fault("404", lambda step: Reply(404, error_body("no such model")), 1, False,
          "HTTP 404: no such model (1 try) — the {tier} tier's model 'scripted-{tier}' was not found; "
          "check TIERDESK_{TIER}_MODEL and TIERDESK_{TIER}_BASE_URL", None, True, permanent=True),
    Fault("body not JSON", lambda step: Reply(200, "<html>upstream maintenance</html>"), 1, False,
          "malformed response: the body is not valid JSON (Expecting value: line 1 column 1 (char 0))", None, True),
    Fault("body shorter than Content-Length", lambda step: truncated(valid(step), at=100), SDK_TRIES, False,
          "truncated response: the connection closed before the body was complete (received 100 bytes, "
          "expected {size}; 2 tries)", None, True),
    Fault("chunked body cut mid-JSON", lambda step: cut_stream(valid(step)), SDK_TRIES, False,
          "truncated response: the connection closed before the body was complete (incomplete chunked read; "
          "2 tries)", None, True),
    Fault("output not JSON", lambda step: completion("Sure! Here is what I found:"), 1, True,
          "output is not JSON", False, False),
    Fault("output off the schema",
          lambda step: classified(intent="teleport_parcel") if step == "classify"
          else completion({"reply": "", "citations": [1]}), 1, True,
          "{schema_error}", False, False),
    Fault("refusal", lambda step: completion(None, refusal="I can't help with that request."), 1, False,
          "refused: I can't help with that request.", None, False, permanent=True),
    Fault("content filter", lambda step: completion(None, finish_reason="content_filter"), 1, False,
          "refused: the provider's content filter stopped the answer", None, False, permanent=True),
    Fault("empty output", lambda step: completion(""), 1, True,
          "empty output: the model answered with no content", False, False),
    Fault("output cut at the token limit",
          lambda step: completion('{"intent": "recover_pass', finish_reason="length", tokens_out=4096), 1, True,
          "truncated: the model stopped at its token limit after 4096 tokens", False, False),
]
SCHEMA_ERRORS = {"classify": "intent 'teleport_parcel' is not in the taxonomy",
                 "draft": "reply is missing or empty"}


def attempts(fault: Fault, step: str, tier: str) -> int:
    """Attempts on one tier: a schema retry on every tier except large's classification."""
    if not fault.schema_retry:
        return 1
    return 1 if (step, tier) == ("classify", "large") else 2


def expected_error(fault: Fault, step: str, tier: str) -> str:
    size = len(json.dumps(valid(step).body))
    return fault.error.format(tier=tier, TIER=tier.upper(), schema_error=SCHEMA_ERRORS[step], size=size)


by_name = pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    # The SDK's own backoff between retries (0.5 s, doubling) is shortened so the matrix stays fast; what is
    # counted (requests on the wire) does not change. The Retry-After test below waits for real.
    monkeypatch.setattr(_base_client, "INITIAL_RETRY_DELAY", 0.02)
    for tier in ("nano", "mini", "large"):
        breaker.reset(tier)
    with ScriptedOpenAI() as s, override_settings(TIERS=tier_settings(s, timeout=TIMEOUT, max_retries=MAX_RETRIES)):
        yield s
    for tier in ("nano", "mini", "large"):
        breaker.reset(tier)


@pytest.fixture
def world() -> None:
    data.load_taxonomy(per_intent=5)
    data.load_kb()
    controls.gate_rules_seed()
    controls.contract_publish(actor=None, intent=None, quality_bar=0.5, escalate_urgency="urgent", risk="low",
                              fallback="escalate")
    controls.switches_update(actor=None, weak_retrieval_below=0.0)


@pytest.fixture
def agent() -> Client:
    user = User.objects.create(username="alice")  # no password to hash: the client logs in directly
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    client = Client()
    client.force_login(user)
    return client


def step_and_tier(payload: dict[str, Any]) -> tuple[str, str]:
    step = "classify" if payload["response_format"]["json_schema"]["name"] == "ticket_classification" else "draft"
    return step, payload["model"].removeprefix("scripted-")


def answer(server: ScriptedOpenAI, **replies: Reply) -> None:
    """Answer each request by its step and tier, e.g. `classify_nano=…, draft_mini=…`."""
    server.respond = lambda payload: replies.get("_".join(step_and_tier(payload)))


def on_wire(server: ScriptedOpenAI, step: str, tier: str) -> int:
    return sum(1 for r in server.requests if step_and_tier(r["json"]) == (step, tier))


def new_ticket() -> Ticket:
    return builders.ticket(subject="Can't log in", body="I forgot my password. How do I reset my password?",
                                 from_email="sam@example.com", from_name="Sam Carter")


def run(ticket: Ticket) -> Ticket:
    """The pipeline's steps in order; after each, the ticket has left that step's in-flight status."""
    for step, status in ((steps.ticket_classify, "classifying"), (steps.ticket_route, "routing"),
                         (steps.ticket_draft, "drafting")):
        step(ticket_id=ticket.pk)
        ticket.refresh_from_db()
        assert ticket.status not in ("new", status)
        if ticket.status not in IN_FLIGHT:
            break
    assert ticket.status in SETTLED
    return ticket


def assert_calls_record(fault: Fault, ticket: Ticket, step: str, tier: str, *, count: int) -> None:
    calls = list(ModelCall.objects.filter(ticket=ticket, step=step, tier=tier))
    assert [c.attempt for c in calls] == list(range(1, count + 1))[:len(calls)] and len(calls) == count
    for call in calls:
        assert expected_error(fault, step, tier) in call.error
        assert call.schema_valid is fault.schema_valid


# --- A failed tier hands the step on: classification to the next tier, a mini draft to large -------

@by_name
def test_each_step_moves_on_from_a_failed_tier(fault: Fault, server: ScriptedOpenAI, world: None) -> None:
    # nano fails to classify, so mini does; mini fails to draft, so large does (the contract's "escalate").
    answer(server, classify_nano=fault.reply("classify"), classify_mini=classified(),
           draft_mini=fault.reply("draft"), draft_large=drafted())
    with override_settings(BREAKER_FAILURES=1):
        ticket = run(new_ticket())
        # A provider failure counts against the tier's circuit breaker; an answer, however bad, does not.
        assert breaker.open_tiers() == ({"nano", "mini"} if fault.provider_failure else set())

    classify_tries = attempts(fault, "classify", "nano")
    assert on_wire(server, "classify", "nano") == classify_tries * fault.wire
    assert on_wire(server, "classify", "mini") == 1
    assert_calls_record(fault, ticket, "classify", "nano", count=classify_tries)
    mini = ModelCall.objects.get(ticket=ticket, step="classify", tier="mini")
    assert mini.schema_valid is True and mini.error == ""
    triage_run = ticket.triage_runs.get()
    assert (triage_run.tier, triage_run.escalated_from) == ("mini", "nano")

    draft_tries = attempts(fault, "draft", "mini")
    assert on_wire(server, "draft", "mini") == draft_tries * fault.wire
    assert on_wire(server, "draft", "large") == 1
    assert_calls_record(fault, ticket, "draft", "mini", count=draft_tries)
    draft = Draft.objects.get(ticket=ticket)
    assert (draft.tier, ticket.status) == ("large", "awaiting_review")
    assert draft.attempts[0]["outcome"] == "no_answer"
    assert expected_error(fault, "draft", "mini") in draft.attempts[0]["error"]
    assert len(server.requests) == (classify_tries + draft_tries) * fault.wire + 2


@by_name
def test_when_every_tier_fails_to_classify_a_person_triages(fault: Fault, server: ScriptedOpenAI, world: None,
                                                            agent: Client) -> None:
    answer(server, **{f"classify_{tier}": fault.reply("classify") for tier in ("nano", "mini", "large")})
    ticket = run(new_ticket())
    for tier in ("nano", "mini", "large"):
        tries = attempts(fault, "classify", tier)
        assert on_wire(server, "classify", tier) == tries * fault.wire, tier
        assert_calls_record(fault, ticket, "classify", tier, count=tries)
    assert len(server.requests) == sum(on_wire(server, "classify", t) for t in ("nano", "mini", "large"))
    assert (ticket.status, ticket.lane) == ("needs_human", "human")
    assert ticket.route_decisions.get().reasons == [Reason.CLASSIFICATION_FAILED]
    # The page says why: each tier's error where the classification would be.
    page = agent.get(f"/tickets/{ticket.pk}/").content.decode()
    assert 'data-testid="classify-failures"' in page
    for tier in ("nano", "mini", "large"):
        assert escape(expected_error(fault, "classify", tier)) in page


# --- Drafts on large (an escalated ticket): nothing behind it but a person ---------------------

@by_name
def test_a_failed_large_draft_goes_to_a_person(fault: Fault, server: ScriptedOpenAI, world: None,
                                               agent: Client) -> None:
    answer(server, classify_nano=classified(confidence=0.2), draft_large=fault.reply("draft"))
    ticket = run(new_ticket())
    assert ticket.route_decisions.get().lane == "large"
    tries = attempts(fault, "draft", "large")
    assert on_wire(server, "draft", "large") == tries * fault.wire
    assert len(server.requests) == 1 + tries * fault.wire
    assert_calls_record(fault, ticket, "draft", "large", count=tries)
    assert (ticket.status, ticket.high_risk, ticket.human_review_required) == ("needs_human", True, True)
    assert not Draft.objects.filter(ticket=ticket).exists()
    event = AuditEvent.objects.get(object_type="Ticket", object_id=str(ticket.pk), action="ticket.to_human")
    assert expected_error(fault, "draft", "large") in event.after["no_draft"]
    page = agent.get(f"/tickets/{ticket.pk}/").content.decode()
    assert 'data-testid="draft-failures"' in page and escape(expected_error(fault, "draft", "large")) in page


# --- The contract's other fallbacks --------------------------------------------------------------

FALLBACK_FAULTS = [f for f in FAULTS if f.name in ("503", "connection reset", "401", "body not JSON", "refusal",
                                                     "output off the schema", "empty output")]


@pytest.mark.parametrize("fault", FALLBACK_FAULTS, ids=[f.name for f in FALLBACK_FAULTS])
def test_the_retry_fallback_asks_mini_again_unless_asking_again_cannot_help(fault: Fault, server: ScriptedOpenAI,
                                                                            world: None) -> None:
    controls.contract_publish(actor=None, intent=None, fallback="retry")
    answer(server, classify_nano=classified(), draft_mini=fault.reply("draft"))
    ticket = run(new_ticket())
    rounds = 1 if fault.permanent else 2
    tries = attempts(fault, "draft", "mini")
    assert on_wire(server, "draft", "mini") == rounds * tries * fault.wire
    assert on_wire(server, "draft", "large") == 0
    assert ModelCall.objects.filter(ticket=ticket, step="draft", tier="mini").count() == rounds * tries
    assert ticket.status == "needs_human" and not Draft.objects.filter(ticket=ticket).exists()
    event = AuditEvent.objects.get(object_type="Ticket", object_id=str(ticket.pk), action="ticket.to_human")
    assert expected_error(fault, "draft", "mini") in event.after["no_draft"]


@pytest.mark.parametrize("fault", FALLBACK_FAULTS, ids=[f.name for f in FALLBACK_FAULTS])
def test_the_human_fallback_hands_over_after_one_tier(fault: Fault, server: ScriptedOpenAI, world: None) -> None:
    controls.contract_publish(actor=None, intent=None, fallback="human")
    answer(server, classify_nano=classified(), draft_mini=fault.reply("draft"))
    ticket = run(new_ticket())
    tries = attempts(fault, "draft", "mini")
    assert on_wire(server, "draft", "mini") == tries * fault.wire
    assert len(server.requests) == 1 + tries * fault.wire
    assert ticket.status == "needs_human" and not Draft.objects.filter(ticket=ticket).exists()


# --- Rate limits ---------------------------------------------------------------------------------

def test_a_429_with_retry_after_is_waited_for_then_bounded(server: ScriptedOpenAI, world: None) -> None:
    limited = Reply(429, error_body("slow down"), headers={"Retry-After": "1"})
    answer(server, classify_nano=limited, classify_mini=classified(), draft_mini=drafted())
    ticket = run(new_ticket())
    nano = [r["at"] for r in server.requests if r["json"]["model"] == "scripted-nano"]
    assert len(nano) == SDK_TRIES
    assert nano[1] - nano[0] >= 1.0  # the SDK waited as long as the header asked
    call = ModelCall.objects.get(ticket=ticket, step="classify", tier="nano")
    assert call.error == "rate limited (HTTP 429): slow down (2 tries)" and call.latency_ms >= 1000
    assert ticket.triage_runs.get().tier == "mini"


def test_a_429_without_retry_after_is_retried_only_as_often_as_configured(server: ScriptedOpenAI,
                                                                           world: None) -> None:
    answer(server, classify_nano=Reply(429, error_body("slow down")), classify_mini=classified(),
           draft_mini=drafted())
    with override_settings(TIERS=tier_settings(server, timeout=TIMEOUT, max_retries=3)):
        ticket = run(new_ticket())
    assert on_wire(server, "classify", "nano") == 4
    assert "(4 tries)" in ModelCall.objects.get(ticket=ticket, step="classify", tier="nano").error


# --- What the agent sees -------------------------------------------------------------------------

def test_a_providers_error_text_is_shown_escaped(server: ScriptedOpenAI, world: None, agent: Client) -> None:
    answer(server, **{f"classify_{tier}": Reply(503, error_body("<script>alert('x')</script> down"))
                      for tier in ("nano", "mini", "large")})
    ticket = run(new_ticket())
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        page = agent.get(f"/tickets/{ticket.pk}/", **headers).content.decode()
        assert "<script>alert" not in page
        assert "HTTP 503: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; down (2 tries)" in page
