"""Every routing rule driven through the real pipeline steps, with the scripted OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from tests.support import builders, data
from tests.support.scripted_openai import Reply, ScriptedOpenAI, completion, scripted_tiers, tier_settings
from triage import controls, learning, steps
from triage.llm import breaker
from triage.models import (
    AuditEvent,
    Customer,
    Draft,
    GateResult,
    Intent,
    ModelCall,
    ShadowResult,
    Ticket,
)
from triage.routing import Reason

pytestmark = pytest.mark.django_db

VALID = {"intent": "recover_password", "urgency": "normal", "sentiment": "neutral", "language": "en",
         "confidence": 0.93, "summary": "Customer cannot log in and wants to reset the password."}
BODY = "I forgot my password and can't log in. How do I reset my password?"


def classified(**overrides: Any) -> Reply:
    return completion({**VALID, **overrides})


def reply(text: str = "Hi Sam, you can reset your password from the sign-in page [1].",
          cites: tuple[int, ...] = (1,)) -> Reply:
    return completion({"reply": text, "citations": list(cites)}, tokens_in=800, tokens_out=60)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with scripted_tiers() as s:
        yield s


@pytest.fixture
def world() -> None:
    data.load_taxonomy(per_intent=20)
    data.load_kb()
    controls.gate_rules_seed()
    controls.contract_publish(actor=None, intent=None, quality_bar=0.5, escalate_urgency="urgent",
                              risk="low", fallback="escalate")
    # Isolate each rule from retrieval strength unless the test is about retrieval.
    controls.switches_update(actor=None, weak_retrieval_below=0.0)


def new_ticket(body: str = BODY, email: str = "sam@example.com", name: str = "Sam Carter") -> Ticket:
    return builders.ticket(subject="Can't log in", body=body, from_email=email, from_name=name)


def run(ticket: Ticket) -> Ticket:
    steps.ticket_classify(ticket_id=ticket.pk)
    steps.ticket_route(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    if ticket.status == Ticket.Status.DRAFTING:
        steps.ticket_draft(ticket_id=ticket.pk)
        ticket.refresh_from_db()
    return ticket


def models_called(server: ScriptedOpenAI) -> list[str]:
    return [r["json"]["model"] for r in server.requests]


# --- Classification escalation ------------------------------------------------------------------

def test_invalid_output_climbs_every_tier_then_lands_in_the_human_queue(server: ScriptedOpenAI, world: None) -> None:
    server.script(classified(intent="nope"), completion("{"), classified(urgency="meh"), classified(confidence=7),
                  classified(sentiment="furious"))
    ticket = run(new_ticket())
    assert models_called(server) == ["scripted-nano", "scripted-nano", "scripted-mini", "scripted-mini",
                                     "scripted-large"]
    assert ticket.status == "needs_human" and ticket.lane == "human"
    assert ticket.route_decisions.get().reasons == [Reason.CLASSIFICATION_FAILED]
    assert ModelCall.objects.filter(ticket=ticket, schema_valid=False).count() == 5
    assert Ticket.objects.filter(pk=ticket.pk).exists()


# --- Escalation rules, each a reason code -------------------------------------------------------

def test_confidence_under_the_bar_is_drafted_by_large(server: ScriptedOpenAI, world: None) -> None:
    server.script(classified(confidence=0.2), reply())
    ticket = run(new_ticket())
    decision = ticket.route_decisions.get()
    assert decision.lane == "large" and decision.reasons == [Reason.LOW_CONFIDENCE]
    assert models_called(server) == ["scripted-nano", "scripted-large"]
    assert Draft.objects.get(ticket=ticket).tier == "large"


def test_urgency_at_the_contracts_level_escalates(server: ScriptedOpenAI, world: None) -> None:
    intent = Intent.objects.get(name="recover_password")
    controls.contract_publish(actor=None, intent=intent, escalate_urgency="high")
    server.script(classified(urgency="high"), reply())
    ticket = run(new_ticket())
    assert ticket.route_decisions.get().reasons == [Reason.URGENCY]
    assert ticket.route_decisions.get().contract.intent == intent


def test_negative_sentiment_on_a_high_risk_intent_escalates_and_requires_review(server: ScriptedOpenAI,
                                                                               world: None) -> None:
    controls.contract_publish(actor=None, intent=Intent.objects.get(name="recover_password"), risk="high")
    server.script(classified(sentiment="negative"), reply())
    ticket = run(new_ticket())
    assert ticket.route_decisions.get().reasons == [Reason.HIGH_RISK_INTENT, Reason.NEGATIVE_ON_HIGH_RISK]
    assert ticket.human_review_required is True


@pytest.mark.parametrize(("flag", "reason"), [("vip", Reason.VIP_CUSTOMER), ("flagged", Reason.FLAGGED_CUSTOMER)])
def test_vip_and_flagged_customers_escalate(server: ScriptedOpenAI, world: None, flag: str, reason: str) -> None:
    Customer.objects.create(email="sam@example.com", **{flag: True})
    server.script(classified(), reply())
    ticket = run(new_ticket())
    assert ticket.route_decisions.get().reasons == [reason]


def test_weak_retrieval_escalates(server: ScriptedOpenAI, world: None) -> None:
    controls.switches_update(actor=None, weak_retrieval_below=0.99)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    decision = ticket.route_decisions.get()
    assert decision.reasons == [Reason.WEAK_RETRIEVAL]
    assert decision.top_similarity is not None and decision.top_similarity < 0.99


def test_a_routine_ticket_stays_on_mini_with_its_contract_version(server: ScriptedOpenAI, world: None) -> None:
    server.script(classified(), reply())
    ticket = run(new_ticket())
    decision = ticket.route_decisions.get()
    assert (decision.lane, decision.reasons) == ("mini", [Reason.WITHIN_CONTRACT])
    assert decision.contract.version == 1 and decision.switches_version >= 1
    assert ticket.status == "awaiting_review"
    draft = Draft.objects.get(ticket=ticket)
    assert draft.latency_budget_s == 60 and 0 <= draft.seconds_to_draft < 60


def test_a_draft_over_its_latency_budget_says_so(server: ScriptedOpenAI, world: None) -> None:
    controls.contract_publish(actor=None, intent=Intent.objects.get(name="recover_password"), latency_budget_s=1)
    ticket = new_ticket()
    Ticket.objects.filter(pk=ticket.pk).update(created_at=ticket.created_at - timedelta(seconds=30))
    server.script(classified(), reply())
    run(ticket)
    assert "over the 1s latency budget" in Draft.objects.get(ticket=ticket).needs_review_reason


# --- Draft checks: gates and grounding ----------------------------------------------------------

def test_a_draft_failing_a_gate_is_regenerated_by_large(server: ScriptedOpenAI, world: None) -> None:
    server.script(classified(), reply("Honestly you should sue them over this [1]."), reply())
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    assert ticket.status == "awaiting_review"
    assert (draft.tier, draft.gates_passed) == ("large", True)
    assert [a["tier"] for a in draft.attempts] == ["mini", "large"]
    failed = GateResult.objects.filter(ticket=ticket, passed=False)
    assert [(g.tier, g.category) for g in failed] == [("mini", "forbidden_advice")]
    assert GateResult.objects.filter(ticket=ticket, tier="large", passed=False).count() == 0


def test_a_draft_failing_twice_is_held_for_a_human_and_marked_high_risk(server: ScriptedOpenAI,
                                                                       world: None) -> None:
    server.script(classified(), reply("We guarantee a full refund, 100% guaranteed [1]."),
                  reply("We admit liability for this mistake [1]."))
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    assert ticket.status == "needs_human" and ticket.high_risk and ticket.human_review_required
    assert draft.gates_passed is False and "failed policy gates" in draft.needs_review_reason
    assert draft.body.startswith("We admit liability")


def test_a_draft_citing_nothing_is_regenerated_by_the_next_tier(server: ScriptedOpenAI, world: None) -> None:
    server.script(classified(), reply("Let me check that for you.", cites=()), reply())
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    assert (draft.tier, draft.grounded) == ("large", True)
    assert draft.attempts[0] == {"tier": "mini", "engine": "openai", "grounded": False, "failed_gates": []}


def test_the_same_gates_apply_to_the_local_engine(world: None) -> None:
    learning.local_model_train()
    # Every local draft opens with this phrase, so the rule fails on mini and again on large.
    controls.gate_rule_save(actor=None, name="no-pleasantries", category="regulated_language",
                            pattern=r"getting in touch", message="test rule")
    ticket = run(new_ticket())
    results = GateResult.objects.filter(ticket=ticket, gate="no-pleasantries")
    assert [(r.tier, r.passed) for r in results] == [("mini", False), ("large", False)]
    assert ticket.status == "needs_human" and ticket.high_risk


# --- PII --------------------------------------------------------------------------------------

def test_pii_is_redacted_before_any_model_call_and_restored_in_the_reply(server: ScriptedOpenAI,
                                                                        world: None) -> None:
    body = ("I forgot my password. My card is 4111 1111 1111 1111, call me on +44 20 7946 0958 or write to "
            "sam.carter@example.com. Order 113542617735902.")
    server.script(classified(), reply("Hi [PERSON_1], we will call you on [PHONE_1] about the reset [1]."))
    ticket = run(new_ticket(body=body, email="sam.carter@example.com"))
    sent = " ".join(str(r["json"]["messages"]) for r in server.requests)
    for secret in ("4111", "7946", "sam.carter@example.com", "Sam Carter"):
        assert secret not in sent
    assert "[CARD_1]" in sent and "[PHONE_1]" in sent and "[EMAIL_1]" in sent
    assert "113542617735902" in sent  # an order number is not PII
    draft = Draft.objects.get(ticket=ticket)
    assert draft.body == "Hi Sam Carter, we will call you on +44 20 7946 0958 about the reset [1]."
    assert draft.gates_passed is True


def test_a_draft_leaking_someone_elses_contact_details_fails_the_pii_gate(server: ScriptedOpenAI,
                                                                        world: None) -> None:
    server.script(classified(), reply("Write to other.customer@example.org for help [1]."), reply())
    ticket = run(new_ticket())
    assert GateResult.objects.get(ticket=ticket, tier="mini", category="pii_leak").passed is False
    assert Draft.objects.get(ticket=ticket).tier == "large"


# --- Provider faults and the circuit breaker ----------------------------------------------------

def test_a_tier_that_keeps_failing_trips_the_breaker_and_is_skipped(server: ScriptedOpenAI, world: None) -> None:
    with override_settings(BREAKER_FAILURES=2):
        server.script(Reply(status=503, body={"error": {"message": "down"}}), classified(), reply(),
                      Reply(status=503, body={"error": {"message": "down"}}), classified(), reply())
        run(new_ticket())
        run(new_ticket())
        assert breaker.open_tiers() == {"nano"}
        server.requests.clear()
        server.script(classified(), reply())
        third = run(new_ticket())
    assert models_called(server) == ["scripted-mini", "scripted-mini"]
    assert third.triage_runs.get().tier == "mini"


def test_a_5xx_is_retried_with_backoff_by_the_client(server: ScriptedOpenAI, world: None) -> None:
    with override_settings(TIERS=tier_settings(server, max_retries=2)):
        server.script(Reply(status=502, body={"error": {"message": "bad gateway"}}), classified(), reply())
        ticket = run(new_ticket())
    assert len(server.requests) == 3
    assert ModelCall.objects.filter(ticket=ticket, step="classify").count() == 1
    assert ticket.status == "awaiting_review"


def test_a_4xx_is_not_retried(server: ScriptedOpenAI, world: None) -> None:
    with override_settings(TIERS=tier_settings(server, max_retries=2)):
        server.script(Reply(status=401, body={"error": {"message": "bad key"}}), classified(), reply())
        ticket = run(new_ticket())
    nano = ModelCall.objects.filter(ticket=ticket, tier="nano").get()
    assert "HTTP 401" in nano.error
    assert models_called(server)[:2] == ["scripted-nano", "scripted-mini"]


# --- Switches and budgets -----------------------------------------------------------------------

def test_force_mini_bypasses_nano_and_is_audited(server: ScriptedOpenAI, world: None) -> None:
    admin = User.objects.create_user("ada", password="x-pass-123")
    controls.switches_update(actor=admin, force_mini=True)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    assert models_called(server) == ["scripted-mini", "scripted-mini"]
    assert ticket.triage_runs.get().tier == "mini"
    event = AuditEvent.objects.filter(action="switches.update").first()
    assert event.actor == admin and event.before == {"force_mini": False} and event.after == {"force_mini": True}


def test_drafts_off_sends_tickets_to_humans_without_a_draft_call(server: ScriptedOpenAI, world: None) -> None:
    controls.switches_update(actor=None, drafts_off=True)
    server.script(classified())
    ticket = run(new_ticket())
    assert ticket.status == "needs_human" and Reason.DRAFTS_OFF in ticket.route_decisions.get().reasons
    assert models_called(server) == ["scripted-nano"]


def test_large_off_sends_escalations_to_humans(server: ScriptedOpenAI, world: None) -> None:
    controls.switches_update(actor=None, large_off=True)
    server.script(classified(confidence=0.1))
    ticket = run(new_ticket())
    assert ticket.lane == "human" and ticket.route_decisions.get().reasons[-1] == Reason.LARGE_OFF


def test_mini_switched_off_follows_the_escalate_fallback(server: ScriptedOpenAI, world: None) -> None:
    controls.switches_update(actor=None, mini_enabled=False)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    assert ticket.lane == "large" and Reason.TIER_OFF in ticket.route_decisions.get().reasons
    assert Draft.objects.get(ticket=ticket).tier == "large"


def test_a_hit_budget_cap_downgrades_or_stops(server: ScriptedOpenAI, world: None) -> None:
    controls.switches_update(actor=None, large_daily_budget_usd=Decimal("0.00"), budget_action="downgrade")
    server.script(classified(confidence=0.1), reply())
    downgraded = run(new_ticket())
    assert downgraded.lane == "mini" and Reason.BUDGET_DOWNGRADE in downgraded.route_decisions.get().reasons
    controls.switches_update(actor=None, mini_daily_budget_usd=Decimal("0.00"), budget_action="stop")
    server.script(classified())
    stopped = run(new_ticket())
    assert stopped.lane == "human" and stopped.route_decisions.get().reasons[-1] == Reason.BUDGET_STOP


def test_an_intents_daily_budget_applies_its_own_action(server: ScriptedOpenAI, world: None) -> None:
    intent = Intent.objects.get(name="recover_password")
    controls.contract_publish(actor=None, intent=intent, daily_budget_usd=Decimal("0.00"), budget_action="human")
    server.script(classified())
    ticket = run(new_ticket())
    assert ticket.lane == "human" and ticket.route_decisions.get().reasons[-1] == Reason.BUDGET_HUMAN


# --- Versions and rollouts ----------------------------------------------------------------------

def test_a_contract_rolling_out_to_half_the_tickets_serves_both_versions(world: None) -> None:
    controls.contract_publish(actor=None, intent=None, quality_bar=0.9, rollout_percent=50)
    versions = [controls.contract_for(intent=None, ticket_id=i)[0].version for i in range(1, 201)]
    assert set(versions) == {1, 2}
    assert 70 < versions.count(2) < 130
    assert controls.contract_for(intent=None, ticket_id=7)[0] == controls.contract_for(intent=None, ticket_id=7)[0]


def test_a_prompt_version_rolls_out_is_recorded_on_calls_and_rolls_back(server: ScriptedOpenAI,
                                                                         world: None) -> None:
    base = controls.prompt_for(prompt_id="classify")
    controls.prompt_create(actor=None, prompt_id="classify", system=base.system + "\nBe terse.", rollout_percent=0)
    controls.prompt_rollout(actor=None, prompt_id="classify", version=3, percent=100)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    call = ModelCall.objects.get(ticket=ticket, step="classify")
    assert (call.prompt_id, call.prompt_version) == ("classify", 3)
    assert "Be terse." in server.requests[0]["json"]["messages"][0]["content"]
    controls.prompt_rollback(actor=None, prompt_id="classify")
    assert controls.prompt_for(prompt_id="classify").version == 2


def test_a_prompt_without_its_placeholder_is_refused(world: None) -> None:
    from triage.errors import ApplicationError

    with pytest.raises(ApplicationError, match="must contain"):
        controls.prompt_create(actor=None, prompt_id="draft", system="Reply nicely.")


# --- Shadow lanes -------------------------------------------------------------------------------

def test_a_shadow_runs_with_the_same_inputs_and_never_reaches_an_agent(server: ScriptedOpenAI, world: None) -> None:
    config = controls.shadow_config_save(actor=None, name="large classifies", step="classify", tier="large",
                                         percent=100)
    assert controls.shadow_configs_for(step="classify", ticket_id=1) == [config]
    server.script(classified(), reply())
    ticket = run(new_ticket())
    server.script(classified(urgency="high"))
    steps.ticket_shadow(ticket_id=ticket.pk, config_id=config.pk)
    steps.ticket_shadow(ticket_id=ticket.pk, config_id=config.pk)  # a redelivery stores nothing more
    result = ShadowResult.objects.get(config=config, ticket=ticket)
    assert (result.intent, result.urgency, result.lane) == ("recover_password", "high", "mini")
    assert result.cost_usd > 0
    assert server.requests[-1]["json"]["messages"][1]["content"] == server.requests[0]["json"]["messages"][1]["content"]
    assert Draft.objects.filter(ticket=ticket).count() == 1
    assert ModelCall.objects.filter(ticket=ticket, step="shadow_classify").count() == 1


def test_a_draft_shadow_reports_similarity_to_production(server: ScriptedOpenAI, world: None) -> None:
    config = controls.shadow_config_save(actor=None, name="large drafts", step="draft", tier="large", percent=100)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    server.script(reply("Hi Sam, reset your password from the sign-in page [1]."))
    steps.ticket_shadow(ticket_id=ticket.pk, config_id=config.pk)
    result = ShadowResult.objects.get(config=config)
    assert 0.5 < result.draft_similarity < 1 and result.gates_passed is True
    assert Draft.objects.get(ticket=ticket).tier == "mini"


def test_a_shadows_calls_are_stored_as_productions_are(server: ScriptedOpenAI, world: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings as django_settings

    from triage.llm import breaker

    config = controls.shadow_config_save(actor=None, name="large classifies", step="classify", tier="large",
                                         percent=100)
    server.script(classified(), reply())
    ticket = run(new_ticket())
    recorded: list[tuple[str, bool]] = []
    monkeypatch.setattr(breaker, "record", lambda tier, *, ok: recorded.append((tier, ok)))
    leak = f"my instructions say {django_settings.PROMPT_CANARY}, not JSON"
    server.script(reply(leak), reply(leak), reply(leak))
    steps.ticket_shadow(ticket_id=ticket.pk, config_id=config.pk)
    calls = ModelCall.objects.filter(ticket=ticket, step="shadow_classify")
    assert calls.exists() and all(not c.schema_valid for c in calls)
    assert all(django_settings.PROMPT_CANARY not in c.error for c in calls)
    assert django_settings.PROMPT_CANARY not in ShadowResult.objects.get(config=config, ticket=ticket).error
    assert recorded and {tier for tier, _ok in recorded} == {"large"}


# --- The trace --------------------------------------------------------------------------------

def test_the_api_returns_the_full_route_trace(server: ScriptedOpenAI, world: None, client: Client) -> None:
    from triage import services

    server.script(classified(), reply("You should sue them [1]."), reply())
    ticket = run(new_ticket())
    key = services.api_key_create(name="t")[1]
    body = client.get(f"/api/v1/tickets/{ticket.pk}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert body["route"]["contract_version"] == 1 and body["route"]["reasons"] == ["within_contract"]
    assert {(g["tier"], g["passed"]) for g in body["gate_results"]} >= {("mini", False), ("large", True)}
    assert [c["tier"] for c in body["model_calls"]] == ["nano", "mini", "large"]
    assert [c["prompt_version"] for c in body["model_calls"]] == [2, 3, 3]  # classify v2, draft v3
    assert all(c["cost_usd"] for c in body["model_calls"])
    assert [a["tier"] for a in body["draft"]["attempts"]] == ["mini", "large"]


# --- What a ticket costs the database -----------------------------------------------------------

def test_each_step_runs_a_fixed_number_of_queries(server: ScriptedOpenAI, world: None,
                                                  django_assert_num_queries: Any) -> None:
    server.script(classified(), reply(), classified(), reply())
    run(new_ticket())  # the KB's languages and term statistics, read once a minute, are read now
    ticket = new_ticket()
    # The claim (which moves it to classifying), the ticket, the switches (once), its thread, the taxonomy, the
    # local model, the prompt; then one transaction: the call, the locked ticket, the intent, the run, shadow
    # configs, the ticket (which clears the claim).
    with django_assert_num_queries(15):
        steps.ticket_classify(ticket_id=ticket.pk)
    # The claim, the ticket, its run, its thread, the query's terms and the search for public passages, then
    # again for internal ones (their own candidates, so internal articles never crowd public ones out); the
    # switches (once), the contract (the intent's, then the default), the customer; then the locked ticket,
    # the decision, the ticket.
    with django_assert_num_queries(17):
        steps.ticket_route(ticket_id=ticket.pk)
    # The claim, 21, the prompt texts the prompt-leak gate looks for, and whether the published articles changed
    # (the internal-text gate's and the contact check's texts are read again only when they did).
    with django_assert_num_queries(24):
        steps.ticket_draft(ticket_id=ticket.pk)


def test_the_days_spend_is_summed_only_when_a_tier_has_a_cap(server: ScriptedOpenAI, world: None,
                                                            django_assert_num_queries: Any) -> None:
    controls.switches_update(actor=None, mini_daily_budget_usd=Decimal("100.00"))
    server.script(classified(), reply(), classified(), reply())
    run(new_ticket())
    ticket = new_ticket()
    with django_assert_num_queries(16):  # the 15 above and the day's spend per tier
        steps.ticket_classify(ticket_id=ticket.pk)
    with django_assert_num_queries(18):
        steps.ticket_route(ticket_id=ticket.pk)
