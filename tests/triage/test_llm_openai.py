"""The OpenAI path: the real SDK against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import override_settings

from tests.support import builders, data
from tests.support.scripted_openai import Reply, ScriptedOpenAI, completion
from tests.support.scripted_openai import tier_settings as tiers
from triage import learning, steps
from triage.models import Draft, ModelCall, Ticket

pytestmark = pytest.mark.django_db

VALID = {"intent": "track_order", "urgency": "normal", "sentiment": "neutral", "language": "en",
         "confidence": 0.93, "summary": "Customer asks where their order is."}


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        yield s


@pytest.fixture
def ticket() -> Ticket:
    data.load_taxonomy(per_intent=20)
    return builders.ticket(subject="Where is my order?", body="Ordered last week, nothing yet.",
                                 from_email="ana@example.com", from_name="Ana Silva", status="new")


def test_a_valid_reply_is_stored_with_tokens_cost_and_engine(server: ScriptedOpenAI, ticket: Ticket) -> None:
    server.script(completion(VALID, tokens_in=120, tokens_out=40))
    with override_settings(TIERS=tiers(server)):
        steps.ticket_classify(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    run = ticket.triage_runs.get()
    assert (run.tier, run.engine, run.model, run.intent.name) == ("nano", "openai", "scripted-nano", "track_order")
    assert ticket.status == "routing" and ticket.confidence == pytest.approx(0.93)
    call = ModelCall.objects.get(ticket=ticket)
    assert (call.tokens_in, call.tokens_out, call.schema_valid) == (120, 40, True)
    assert call.cost_usd == Decimal("0.00007400")  # 120 × $0.20/M + 40 × $1.25/M
    assert (call.prompt_id, call.prompt_version) == ("classify", 2)
    request = server.requests[0]
    assert request["authorization"] == "Bearer sk-test"
    schema = request["json"]["response_format"]["json_schema"]["schema"]
    assert "track_order" in schema["properties"]["intent"]["enum"]
    assert len(schema["properties"]["intent"]["enum"]) == 28 and "other" in schema["properties"]["intent"]["enum"]


def test_it_escalates_to_mini_after_two_schema_failures(server: ScriptedOpenAI, ticket: Ticket) -> None:
    server.script(
        completion({**VALID, "intent": "teleport_parcel"}),   # outside the taxonomy
        completion("this is not JSON at all"),
        completion({**VALID, "intent": "delivery_period"}),
    )
    with override_settings(TIERS=tiers(server)):
        steps.ticket_classify(ticket_id=ticket.pk)
    calls = list(ModelCall.objects.filter(ticket=ticket).values_list("tier", "attempt", "schema_valid"))
    assert calls == [("nano", 1, False), ("nano", 2, False), ("mini", 1, True)]
    assert "not in the taxonomy" in ModelCall.objects.filter(ticket=ticket).first().error
    run = ticket.triage_runs.get()
    assert (run.tier, run.escalated_from, run.intent.name) == ("mini", "nano", "delivery_period")


def test_a_retry_after_schema_failure_that_succeeds_stays_on_nano(server: ScriptedOpenAI, ticket: Ticket) -> None:
    server.script(completion({k: v for k, v in VALID.items() if k != "summary"}), completion(VALID))
    with override_settings(TIERS=tiers(server)):
        steps.ticket_classify(ticket_id=ticket.pk)
    assert ticket.triage_runs.get().tier == "nano"
    assert ModelCall.objects.filter(ticket=ticket).count() == 2


def test_a_timeout_is_recorded_and_the_step_falls_to_the_next_tier(server: ScriptedOpenAI, ticket: Ticket) -> None:
    learning.local_model_train()
    server.script(Reply(delay=2.0, body={}))
    with override_settings(TIERS=tiers(server, openai_tiers=("nano",), timeout=0.5)):
        steps.ticket_classify(ticket_id=ticket.pk)
    nano, mini = ModelCall.objects.filter(ticket=ticket)
    assert nano.tier == "nano" and "timed out" in nano.error and nano.schema_valid is None
    assert nano.latency_ms >= 400
    # mini has no key here, so it runs on the local engine, and says so.
    assert (mini.tier, mini.engine, mini.model, mini.schema_valid) == ("mini", "local", "tierdesk-local", True)
    run = ticket.triage_runs.get()
    assert (run.tier, run.engine) == ("mini", "local")


def test_a_429_with_retry_after_is_retried_by_the_client(server: ScriptedOpenAI, ticket: Ticket) -> None:
    server.script(Reply(status=429, headers={"Retry-After": "0"}, body={"error": {"message": "slow down"}}),
                  completion(VALID))
    with override_settings(TIERS=tiers(server, max_retries=2)):
        steps.ticket_classify(ticket_id=ticket.pk)
    assert len(server.requests) == 2
    assert ModelCall.objects.get(ticket=ticket).schema_valid is True


def test_when_every_tier_fails_the_ticket_goes_to_a_human(server: ScriptedOpenAI, ticket: Ticket) -> None:
    server.default = Reply(status=500, body={"error": {"message": "boom"}})
    with override_settings(TIERS=tiers(server)):
        steps.ticket_classify(ticket_id=ticket.pk)
        steps.ticket_route(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == "needs_human" and ticket.lane == "human"
    assert ticket.route_decisions.get().reasons == ["classification_failed"]
    assert [c.tier for c in ModelCall.objects.filter(ticket=ticket)] == ["nano", "mini", "large"]
    assert all("HTTP 500" in c.error for c in ModelCall.objects.filter(ticket=ticket))


def _drafting_ticket(server: ScriptedOpenAI, ticket: Ticket) -> Ticket:
    data.load_kb()
    server.script(completion(VALID))
    with override_settings(TIERS=tiers(server)):
        steps.ticket_classify(ticket_id=ticket.pk)
        steps.ticket_route(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == "drafting" and ticket.lane == "mini"
    return ticket


def test_a_mini_draft_stores_the_passages_it_cites(server: ScriptedOpenAI, ticket: Ticket) -> None:
    ticket = _drafting_ticket(server, ticket)
    server.script(completion({"reply": "Hi Ana, your order is on its way [1].", "citations": [1]},
                             tokens_in=900, tokens_out=60))
    with override_settings(TIERS=tiers(server)):
        steps.ticket_draft(ticket_id=ticket.pk)
    draft = Draft.objects.get(ticket=ticket)
    assert (draft.tier, draft.engine, draft.grounded) == ("mini", "openai", True)
    [citation] = draft.citations.all()
    system = server.requests[-1]["json"]["messages"][0]["content"]
    assert citation.article_title in system and "[1]" in system
    ticket.refresh_from_db()
    assert ticket.status == "awaiting_review"


def test_a_draft_citing_nothing_retrieved_is_not_presented_as_grounded(server: ScriptedOpenAI,
                                                                        ticket: Ticket) -> None:
    ticket = _drafting_ticket(server, ticket)
    server.script(completion({"reply": "We will look into it.", "citations": [42]}))
    with override_settings(TIERS=tiers(server)):
        steps.ticket_draft(ticket_id=ticket.pk)
    draft = Draft.objects.get(ticket=ticket)
    assert draft.grounded is False and draft.citations.count() == 0
    assert "cites nothing" in draft.needs_review_reason
    ticket.refresh_from_db()
    assert ticket.high_risk is True
