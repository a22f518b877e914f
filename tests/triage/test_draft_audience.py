"""Drafts quote public articles only, on every tier; internal ones guide; sent replies join the reply memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from kb.models import Article
from tests.support import builders, data
from tests.support.scripted_openai import Reply, ScriptedOpenAI, completion, scripted_tiers
from triage import controls, learning, reply_memory, services, steps
from triage.models import Draft, GateResult, Intent, ReplyMemory, ReviewAction, Ticket

pytestmark = pytest.mark.django_db

BODY = "Hello, I forgot my password and the reset email never arrived. How can I get back into my account?"
VALID = {"intent": "recover_password", "urgency": "normal", "sentiment": "neutral", "language": "en",
         "confidence": 0.95, "summary": "Cannot reset the password."}


@pytest.fixture
def world() -> None:
    data.load_taxonomy(per_intent=20)
    data.load_kb()
    learning.local_model_train()
    controls.gate_rules_seed()
    controls.contract_publish(actor=None, intent=None, quality_bar=0.3, escalate_urgency="urgent", risk="low",
                              fallback="escalate")
    controls.switches_update(actor=None, weak_retrieval_below=0.0)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with scripted_tiers() as s:
        yield s


def run(ticket: Ticket) -> Ticket:
    steps.ticket_classify(ticket_id=ticket.pk)
    steps.ticket_route(ticket_id=ticket.pk)
    steps.ticket_draft(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    return ticket


def new_ticket(body: str = BODY, name: str = "Sam Carter") -> Ticket:
    return builders.ticket(subject="Password reset email missing", body=body, from_email="sam@example.com",
                                 from_name=name)


def internal_bodies() -> list[str]:
    return list(Article.objects.filter(audience="internal").values_list("body", flat=True))


def test_a_local_draft_cites_public_articles_and_keeps_internal_ones_as_guidance(world: None) -> None:
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    assert draft.engine == "local" and draft.grounded
    slugs = set(draft.citations.values_list("article_slug", flat=True))
    public = set(Article.objects.filter(audience="public").values_list("slug", flat=True))
    assert slugs and slugs <= public
    assert draft.guidance and all(g["article_slug"].startswith("Account Access/") for g in draft.guidance)
    gate = GateResult.objects.get(draft=draft, gate="internal_text")
    assert gate.passed, gate.matches
    assert draft.body.startswith("Hi Sam,") and "the customer" not in draft.body.lower()


def test_the_model_sees_public_passages_to_cite_and_internal_guidance_marked_as_such(
        world: None, server: ScriptedOpenAI) -> None:
    server.script(completion(VALID), completion({"reply": "Hi Sam, use the Forgot password link [1].",
                                                 "citations": [1]}))
    ticket = run(new_ticket())
    system = server.requests[-1]["json"]["messages"][0]["content"]
    passages, _, guidance = system.partition("Internal guidance")
    assert "Reset your password" in passages
    assert "Recover Password" not in passages and "Recover Password" in guidance
    assert "never quote it" in guidance
    assert ticket.status == Ticket.Status.AWAITING_REVIEW


def _quoting_internal() -> Reply:
    procedure = next(b for b in internal_bodies() if "password" in b.lower())
    sentence = " ".join(procedure.replace("\n", " ").split()[10:30])
    return completion({"reply": f"Hi Sam, {sentence}. Tell them the link arrives shortly [1].", "citations": [1]})


def test_a_draft_carrying_internal_text_is_regenerated_then_held_on_every_tier(
        world: None, server: ScriptedOpenAI) -> None:
    server.script(completion(VALID), _quoting_internal(), _quoting_internal())
    ticket = run(new_ticket())
    failed = GateResult.objects.filter(ticket=ticket, gate="internal_text", passed=False)
    assert sorted(failed.values_list("tier", flat=True)) == ["large", "mini"]
    assert any("internal article" in m for m in failed.first().matches)
    assert ticket.status == Ticket.Status.NEEDS_HUMAN and ticket.high_risk
    assert "internal_text" in Draft.objects.get(ticket=ticket).needs_review_reason


def test_a_draft_with_internal_text_from_mini_is_replaced_by_a_clean_large_draft(
        world: None, server: ScriptedOpenAI) -> None:
    server.script(completion(VALID), _quoting_internal(),
                  completion({"reply": "Hi Sam, use the Forgot password link on the sign-in page [1].",
                              "citations": [1]}))
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    assert (draft.tier, ticket.status) == ("large", Ticket.Status.AWAITING_REVIEW)


REFERENCE = {"key": "recover_password.en.t1", "intent": "recover_password", "language": "en",
             "prompt": "Can't reset my password\nThe reset email never comes, I checked spam. How do I get in?",
             "text": "Sorry the reset email has not reached you. Request a new link from the sign-in page: it "
                     "is valid for 60 minutes. If it still does not arrive, reply here and we will check the "
                     "address on your account, {{first_name}}.",
             "article_slugs": ["account/reset-your-password.md"]}


@pytest.fixture
def references(world: None, tmp_path: Path) -> Path:
    path = tmp_path / "replies.jsonl"
    path.write_text(json.dumps(REFERENCE) + "\n")
    assert reply_memory.reference_load(path=path) == 1
    assert reply_memory.reference_load(path=path) == 0  # unchanged: not embedded again
    return path


def test_a_local_draft_starts_from_the_closest_remembered_reply(references: Path) -> None:
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    memory = ReplyMemory.objects.get(key=REFERENCE["key"])
    assert draft.memory == memory
    assert "valid for 60 minutes" in draft.body and draft.body.rstrip(".").count("Sam") == 2
    assert list(draft.citations.values_list("article_slug", flat=True)) == ["account/reset-your-password.md"]


def test_a_remembered_reply_in_the_tickets_language_is_preferred(references: Path) -> None:
    spanish = REFERENCE | {"key": "recover_password.es.t1", "language": "es",
                           "prompt": "No puedo restablecer mi contraseña\nEl correo nunca llega.",
                           "text": "Solicite un nuevo enlace desde la página de acceso, {{first_name}}."}
    path = references.parent / "es.jsonl"
    path.write_text(json.dumps(spanish) + "\n")
    reply_memory.reference_load(path=path)
    found = reply_memory.best(intent="recover_password", language="es",
                              text="Olvidé mi contraseña\nEl correo de restablecimiento no llega, ¿qué hago?")
    assert found is not None and found.language == "es"
    found = reply_memory.best(intent="recover_password", language="fr", text="J'ai oublié mon mot de passe")
    assert found is not None and found.language == "en"  # no French replies: English


def _approve(draft: Draft, text: str | None = None) -> ReviewAction:
    agent = User.objects.create_user(f"agent{draft.pk}")
    review = services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=text)
    services.outbound_send(outbound_id=review.outbound_email.pk)
    return review


def test_a_sent_reply_joins_the_memory_as_a_template_and_an_edit_replaces_its_source(references: Path,
                                                                                     mailoutbox: Any) -> None:
    ticket = run(new_ticket())
    draft = Draft.objects.get(ticket=ticket)
    edited = draft.body.replace("reply here", "reply to this email")
    review = _approve(draft, edited)
    assert "[1]" not in mailoutbox[0].body  # citation markers are for the agent only
    remembered = reply_memory.remember(review_id=review.pk)
    assert remembered is not None and remembered.source == "sent" and remembered.review == review
    assert "{{first_name}}" in remembered.text and "Sam" not in remembered.text
    assert not remembered.text.startswith("Hi") and "Kind regards" not in remembered.text
    assert remembered.intent == Intent.objects.get(name="recover_password")
    source = ReplyMemory.objects.get(key=REFERENCE["key"])
    assert (source.active, source.replaced_by) == (False, remembered)
    assert reply_memory.remember(review_id=review.pk) is None  # once per review
    # The next ticket like it starts from what the agent sent.
    nxt = run(new_ticket(name="Ana Silva"))
    assert Draft.objects.get(ticket=nxt).memory == remembered
    assert "reply to this email" in Draft.objects.get(ticket=nxt).body


def test_a_reply_sent_unchanged_from_memory_adds_nothing(references: Path) -> None:
    draft = Draft.objects.get(ticket=run(new_ticket()))
    review = _approve(draft)
    assert reply_memory.remember(review_id=review.pk) is None
    assert ReplyMemory.objects.count() == 1


def test_a_reply_with_someone_elses_contact_details_is_not_remembered(references: Path) -> None:
    draft = Draft.objects.get(ticket=run(new_ticket()))
    review = _approve(draft, draft.body + "\nCall Jo on +44 20 7946 0958 or jo@elsewhere.example.")
    assert reply_memory.remember(review_id=review.pk) is None


def test_an_internal_article_published_now_guards_the_very_next_draft(world: None) -> None:
    from kb.services import article_upsert
    from triage import policy
    from triage.llm import tiers

    policy_text = "Goodwill credit may be offered once a year to customers whose parcel arrived more than a week late."
    attempt = tiers.DraftAttempt(tier="mini", engine="openai", model="m",
                                 body=f"Hi Sam, {policy_text} Sorry for the wait [1].", cited=[1])
    redaction = policy.redact("Sam", names=["Sam"])
    _body, before = steps._gate(attempt, redaction)
    assert next(r for r in before if r.rule == "internal_text").passed
    article_upsert(slug="goodwill", title="Goodwill credit", body=policy_text, audience="internal")
    _body, after = steps._gate(attempt, redaction)
    assert not next(r for r in after if r.rule == "internal_text").passed
