"""An agent asks for a new draft (regenerate with an instruction) or escalates by hand; stale forms change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from tests.support import builders, data
from tests.support.scripted_openai import ScriptedOpenAI, completion, scripted_tiers
from triage import controls, corrections, services, steps
from triage.errors import ApplicationError
from triage.models import (
    AuditEvent,
    Correction,
    Draft,
    Intent,
    ReviewAction,
    RouteDecision,
    Ticket,
    TicketNote,
    TriageRun,
)

BODY = "Hi Ana,\n\nYour order left our warehouse yesterday [1].\n\nKind regards,\nCustomer Support"


@pytest.fixture
def agent() -> User:
    user = User.objects.create_user("alice", password="pw-alice-123")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def bob() -> User:
    user = User.objects.create_user("bob", password="pw-bob-123")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


def drafted_ticket(*, tier: str = "mini") -> Draft:
    intent = Intent.objects.get_or_create(name="track_order")[0]
    Intent.objects.get_or_create(name="get_refund")
    ticket = builders.ticket(subject="Where is my order?", body="Nothing yet.", from_email="ana@example.com",
                                   from_name="Ana", status="awaiting_review", intent=intent, lane=tier,
                                   urgency="normal", sentiment="neutral")
    run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="tierdesk-local",
                                   intent=intent, urgency="normal", sentiment="neutral", language="en",
                                   confidence=0.9, summary="Where is my order")
    decision = RouteDecision.objects.create(ticket=ticket, triage_run=run, lane=tier, reasons=["within_contract"])
    return Draft.objects.create(ticket=ticket, route_decision=decision, tier=tier, engine="local",
                                model="tierdesk-local", body=BODY, grounded=True)


def snapshot(ticket_id: int) -> tuple[Any, ...]:
    ticket = Ticket.objects.get(pk=ticket_id)
    return (
        ticket.revision, ticket.status, ticket.lane, ticket.intent_id, ticket.urgency,
        list(Draft.objects.filter(ticket_id=ticket_id).values_list("pk", "status", "body")),
        ReviewAction.objects.filter(ticket_id=ticket_id).count(), Correction.objects.filter(ticket_id=ticket_id).count(),
        TicketNote.objects.filter(ticket_id=ticket_id).count(), RouteDecision.objects.filter(ticket_id=ticket_id).count(),
    )


# --- Refusals: validation and stale revisions -----------------------------------------------------

@pytest.mark.django_db
def test_regenerating_needs_an_instruction_of_at_most_1000_characters(agent: User) -> None:
    draft = drafted_ticket()
    revision = draft.ticket.revision
    before = snapshot(draft.ticket_id)
    with pytest.raises(ApplicationError, match="say what the new draft should do differently"):
        services.draft_regenerate(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, instruction="  \n ",
                                  expected_revision=revision)
    with pytest.raises(ApplicationError, match="at most 1,000 characters; this one has 1,001"):
        services.draft_regenerate(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, instruction="x" * 1001,
                                  expected_revision=revision)
    assert snapshot(draft.ticket_id) == before
    review = services.draft_regenerate(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent,
                                       instruction="y" * 1000, expected_revision=revision)
    assert review.reason == "y" * 1000  # the whole instruction is kept, not cut to fit


@pytest.mark.django_db
def test_only_a_pending_draft_can_be_regenerated(agent: User) -> None:
    draft = drafted_ticket()
    services.draft_reject(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, reason="Wrong order")
    with pytest.raises(ApplicationError) as err:
        services.draft_regenerate(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent,
                                  instruction="Mention the tracking link", expected_revision=None)
    assert err.value.status == 409 and "already rejected" in err.value.message
    assert not ReviewAction.objects.filter(action="regenerate").exists()


@pytest.mark.django_db
def test_escalation_needs_a_reason_and_a_draft_not_already_from_large(agent: User) -> None:
    draft = drafted_ticket()
    with pytest.raises(ApplicationError, match="say why this ticket needs the large tier"):
        services.ticket_escalate(ticket_id=draft.ticket_id, user=agent, reason=" ", expected_revision=None)
    large = drafted_ticket(tier="large")
    with pytest.raises(ApplicationError) as err:
        services.ticket_escalate(ticket_id=large.ticket_id, user=agent, reason="Angry customer",
                                 expected_revision=None)
    assert err.value.status == 409 and "regenerate it with an instruction instead" in err.value.message
    assert not ReviewAction.objects.exists()


@pytest.mark.django_db
def test_a_ticket_no_tier_classified_cannot_be_escalated(agent: User) -> None:
    ticket = builders.ticket(subject="?", body="?", from_email="x@example.com", status="needs_human")
    with pytest.raises(ApplicationError) as err:
        services.ticket_escalate(ticket_id=ticket.pk, user=agent, reason="Please look", expected_revision=None)
    assert err.value.status == 409 and "answer it by hand" in err.value.message


def _act(action: str, draft: Draft, user: User, revision: int) -> Any:
    ticket_id = draft.ticket_id
    if action == "approve":
        return services.draft_approve(ticket_id=ticket_id, draft_id=draft.pk, user=user, final_text=BODY + " P.S.",
                                      expected_revision=revision)
    if action == "reject":
        return services.draft_reject(ticket_id=ticket_id, draft_id=draft.pk, user=user, reason="Wrong",
                                     expected_revision=revision)
    if action == "regenerate":
        return services.draft_regenerate(ticket_id=ticket_id, draft_id=draft.pk, user=user,
                                         instruction="Shorter", expected_revision=revision)
    if action == "escalate":
        return services.ticket_escalate(ticket_id=ticket_id, user=user, reason="VIP", expected_revision=revision)
    if action == "correct":
        return corrections.ticket_classification_correct(ticket_id=ticket_id, user=user, values={"urgency": "high"},
                                                      expected_revision=revision)
    return services.ticket_note_add(ticket=draft.ticket, user=user, body="Called the customer",
                                    expected_revision=revision)


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["approve", "reject", "regenerate", "escalate", "correct", "note"])
def test_a_form_from_before_another_agents_change_is_refused_and_saves_nothing(
    action: str, agent: User, bob: User
) -> None:
    draft = drafted_ticket()
    opened_at = draft.ticket.revision  # both agents open the ticket at this revision
    corrections.ticket_classification_correct(ticket_id=draft.ticket_id, user=agent, values={"intent": "get_refund"},
                                           expected_revision=opened_at)
    before = snapshot(draft.ticket_id)
    assert before[0] == opened_at + 1
    with pytest.raises(ApplicationError) as err:
        _act(action, draft, bob, opened_at)
    assert err.value.status == 409
    assert err.value.message.startswith("alice corrected the intent since you opened this ticket")
    assert err.value.extra == {"revision": opened_at + 1, "changed_by": "alice"}
    assert snapshot(draft.ticket_id) == before
    assert not AuditEvent.objects.filter(actor=bob).exists()
    # At the current revision the same change goes through.
    _act(action, draft, bob, opened_at + 1)


@pytest.mark.django_db
def test_a_note_or_an_unchanged_correction_leaves_other_agents_forms_valid(agent: User) -> None:
    draft = drafted_ticket()
    revision = draft.ticket.revision
    services.ticket_note_add(ticket=draft.ticket, user=agent, body="Checking with the warehouse",
                             expected_revision=revision)
    assert corrections.ticket_classification_correct(
        ticket_id=draft.ticket_id, user=agent, values={"intent": "track_order", "urgency": "normal"},
        expected_revision=revision) == []
    assert Ticket.objects.get(pk=draft.ticket_id).revision == revision


@pytest.mark.django_db
def test_every_decision_on_a_draft_is_in_the_tickets_audit_trail(agent: User) -> None:
    first = drafted_ticket()
    services.draft_approve(ticket_id=first.ticket_id, draft_id=first.pk, user=agent, final_text=BODY + "\nP.S.")
    second = drafted_ticket()
    services.draft_reject(ticket_id=second.ticket_id, draft_id=second.pk, user=agent, reason="Wrong parcel")
    third = drafted_ticket()
    services.draft_regenerate(ticket_id=third.ticket_id, draft_id=third.pk, user=agent, instruction="Shorter",
                              expected_revision=None)
    fourth = drafted_ticket()
    services.ticket_escalate(ticket_id=fourth.ticket_id, user=agent, reason="Legal threat", expected_revision=None)

    def trail(draft: Draft) -> list[str]:
        return [e.action for e in AuditEvent.objects.filter(object_type="Ticket", object_id=str(draft.ticket_id))]

    assert trail(first) == ["draft.edit_approve"]
    assert trail(second) == ["draft.reject"]
    assert trail(third) == ["draft.regenerate"]
    assert trail(fourth) == ["ticket.escalate"]
    escalated = Ticket.objects.get(pk=fourth.ticket_id)
    assert (escalated.status, escalated.lane, escalated.high_risk) == ("drafting", "large", True)
    fourth.refresh_from_db()
    assert fourth.status == "superseded"
    review = ReviewAction.objects.get(ticket_id=fourth.ticket_id)
    assert (review.action, review.reason, review.draft_id, review.user) == ("escalate", "Legal threat", fourth.pk,
                                                                             agent)


# --- The worker answers the request --------------------------------------------------------------

@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with scripted_tiers(openai_tiers=("mini", "large")) as s:
        yield s


@pytest.fixture
def world() -> None:
    data.load_taxonomy(per_intent=20)
    data.load_kb()
    controls.gate_rules_seed()


def _routed_ticket() -> Ticket:
    """A password ticket classified by hand and routed by the real route step (retrieval over the real KB)."""
    intent = Intent.objects.get(name="recover_password")
    ticket = builders.ticket(subject="Can't log in", from_email="sam@example.com", from_name="Sam Carter",
                                   body="I forgot my password and can't log in. How do I reset my password?",
                                   status="routing", intent=intent, urgency="normal", sentiment="neutral",
                                   language="en")
    TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="tierdesk-local", intent=intent,
                             urgency="normal", sentiment="neutral", language="en", confidence=0.95,
                             summary="Forgot password")
    controls.switches_update(actor=None, weak_retrieval_below=0.0)
    steps.ticket_route(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == "drafting" and ticket.lane == "mini"
    return ticket


@pytest.mark.django_db
def test_the_instruction_reaches_the_model_with_a_prompt_that_says_how_to_use_it(
    server: ScriptedOpenAI, world: None, agent: User
) -> None:
    ticket = _routed_ticket()
    server.script(completion({"reply": "Hi Sam, reset it from the sign-in page [1].", "citations": [1]}))
    steps.ticket_draft(ticket_id=ticket.pk)
    first = Draft.objects.get(ticket=ticket)
    ticket.refresh_from_db()

    services.draft_regenerate(ticket_id=ticket.pk, draft_id=first.pk, user=agent,
                              instruction="Also tell them how to change the email address on the account",
                              expected_revision=ticket.revision)
    server.script(completion({"reply": "Hi Sam, here is how to reset your password [1] and change your "
                                       "email address [2].", "citations": [1, 2]}))
    steps.ticket_draft(ticket_id=ticket.pk)
    steps.ticket_draft(ticket_id=ticket.pk)  # a redelivered task finds the request answered

    request = server.requests[-1]["json"]
    system, user = (m["content"] for m in request["messages"])
    assert "`agent_instruction`" in system and "Never quote or mention it" in system
    assert json.loads(user)["agent_instruction"] == "Also tell them how to change the email address on the account"
    assert len([r for r in server.requests if r["path"].endswith("/chat/completions")]) == 2
    new = Draft.objects.get(ticket=ticket, status="pending")
    assert (new.tier, new.engine, new.instruction, new.requested_by) == (
        "mini", "openai", "Also tell them how to change the email address on the account", agent)
    decision = new.route_decision
    assert decision.reasons == ["agent_regenerate"] and decision.lane == "mini"
    # Retrieval used the agent's words: the account-details article is among the passages the model was given.
    assert "Edit your account details" in system.partition("Internal guidance")[0]
    assert any("Edit your account details" in r["article_title"] for r in decision.retrieved)
    assert any("Edit your account details" in c.article_title for c in new.citations.all())
    assert new.route_decision.ticket.status == "awaiting_review"
    assert new.created_at > first.created_at and Draft.objects.get(pk=first.pk).status == "superseded"


@pytest.mark.django_db
def test_a_manual_escalation_with_large_switched_off_leaves_the_ticket_with_a_person(
    world: None, agent: User
) -> None:
    ticket = _routed_ticket()
    steps.ticket_draft(ticket_id=ticket.pk)  # the local engine drafts on mini
    ticket.refresh_from_db()
    controls.switches_update(actor=None, large_off=True)
    ticket.refresh_from_db()
    services.ticket_escalate(ticket_id=ticket.pk, user=agent, reason="Customer threatens legal action",
                             expected_revision=ticket.revision)
    steps.ticket_draft(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    decision = ticket.route_decisions.first()
    assert decision.reasons == ["manual_escalation", "large_switched_off"] and decision.lane == "human"
    assert ticket.status == "needs_human" and ticket.lane == "human"
    assert not Draft.objects.filter(ticket=ticket, status="pending").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_regenerating_has_the_worker_write_a_new_draft_on_the_same_tier_to_the_instruction(
    celery_worker: None, agent: User
) -> None:
    from tests.conftest import wait_for

    data.seed_small()
    ticket, _ = services.ticket_create(
        subject="Forgot my password", body="I can't remember my password and cannot log in. Please help.",
        from_email="sam.regen@example.com", from_name="Sam Carter",
    )
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    ticket.refresh_from_db()
    first = Draft.objects.get(ticket=ticket)
    first_titles = " | ".join(c.article_title for c in first.citations.all())

    review = services.draft_regenerate(
        ticket_id=ticket.pk, draft_id=first.pk, user=agent,
        instruction="Explain how to change the email address on the account as well",
        expected_revision=ticket.revision,
    )
    assert Ticket.objects.get(pk=ticket.pk).status == "drafting"
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status != "drafting", timeout=90)

    first.refresh_from_db()
    new = Draft.objects.exclude(pk=first.pk).get(ticket=ticket)
    assert first.status == "superseded" and new.status == "pending"
    assert (new.tier, new.instruction, new.requested_by) == (first.tier, review.reason, agent)
    assert new.route_decision.reasons == ["agent_regenerate"]
    # The instruction steered retrieval and the sentences chosen: the reply now covers the account's email.
    titles = " | ".join(c.article_title for c in new.citations.all())
    assert "Edit your account details" in titles and "Edit your account details" not in first_titles
    assert "email" in new.body.lower() and new.body != first.body
    assert review.action == "regenerate" and review.drafted_text == first.body
    actions = list(AuditEvent.objects.filter(object_type="Ticket", object_id=str(ticket.pk))
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["draft.create", "draft.regenerate", "draft.create"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_escalating_by_hand_has_the_large_tier_write_a_new_draft(celery_worker: None, agent: User) -> None:
    from tests.conftest import wait_for

    data.seed_small()
    ticket, _ = services.ticket_create(
        subject="Forgot my password", body="I can't remember my password and cannot log in. Please help.",
        from_email="sam.escalate@example.com", from_name="Sam Carter",
    )
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    ticket.refresh_from_db()
    first = Draft.objects.get(ticket=ticket)
    assert first.tier == "mini", first.route_decision.reasons

    services.ticket_escalate(ticket_id=ticket.pk, user=agent, reason="Third time this week; customer is upset",
                             expected_revision=ticket.revision)
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status != "drafting", timeout=90)

    ticket.refresh_from_db()
    new = Draft.objects.exclude(pk=first.pk).get(ticket=ticket)
    assert (new.tier, new.status, new.instruction, new.requested_by) == (
        "large", "pending", "Third time this week; customer is upset", agent)
    assert "senior member of our team" in new.body  # the large tier's reply says a person follows up
    assert new.route_decision.reasons == ["manual_escalation"] and new.route_decision.lane == "large"
    assert ticket.lane == "large" and ticket.high_risk
    assert RouteDecision.objects.filter(ticket=ticket, reasons__contains=["manual_escalation"]).count() == 1
    assert Draft.objects.get(pk=first.pk).status == "superseded"
