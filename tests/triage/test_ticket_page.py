"""The agent's ticket page over HTTP: a fixed number of queries, htmx answers with the part that changed,
stale forms answered 409 in place, outsiders answered 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support import builders
from triage import corrections
from triage.models import (
    AuditEvent,
    Citation,
    Correction,
    Draft,
    GateResult,
    Intent,
    Message,
    MessageAttachment,
    ModelCall,
    OutboundEmail,
    ReviewAction,
    RouteDecision,
    Ticket,
    TicketNote,
    TriageRun,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BODY = "Hi Ana,\n\nYour order left our warehouse yesterday [1].\n\nKind regards,\nCustomer Support"


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice", password="pw-alice-123")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def bob() -> User:
    user = User.objects.create_user("bob", password="pw-bob-123")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


def ticket_with_history(n: int, user: User) -> Ticket:
    """A ticket with `n` of everything its page lists: messages, calls, gates, notes, corrections, reviews…"""
    intent = Intent.objects.get_or_create(name="track_order")[0]
    ticket = builders.ticket(subject=f"Parcel ({n})", body="Where is it?", from_email="ana@example.com",
                                   from_name="Ana", intent=intent, urgency="normal", sentiment="neutral",
                                   status="awaiting_review", lane="mini")
    for i in range(n):
        message = Message.objects.create(ticket=ticket, direction="inbound", message_id=f"m{n}-{i}@example.com",
                                         from_email="ana@example.com", text=f"Message {i}")
        MessageAttachment.objects.create(message=message, filename=f"photo{i}.jpg", content_type="image/jpeg",
                                         size=100, file=f"attachments/photo{n}-{i}.jpg")
        run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent,
                                       urgency="normal", sentiment="neutral", language="en", confidence=0.8,
                                       summary="s")
        decision = RouteDecision.objects.create(ticket=ticket, triage_run=run, lane="mini",
                                                reasons=["within_contract"])
        ModelCall.objects.create(ticket=ticket, step="draft", tier="mini", engine="local", model="m",
                                 prompt_id="draft", prompt_version=2)
        draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                                     body=BODY, grounded=True, instruction=f"Instruction {i}", requested_by=user,
                                     status="superseded" if i < n - 1 else "pending")
        Citation.objects.create(draft=draft, article_slug="a", article_title=f"Article {i}", article_version=1,
                                marker=1, excerpt="The parcel ships in two days.", score=0.5)
        GateResult.objects.create(ticket=ticket, draft=draft, tier="mini", gate="pii", category="pii", passed=True)
        TicketNote.objects.create(ticket=ticket, user=user, body=f"Note {i}")
        Correction.objects.create(ticket=ticket, triage_run=run, field="urgency", old_value="normal",
                                  new_value="high", user=user, seconds_since_triage=30)
        review = ReviewAction.objects.create(ticket=ticket, draft=draft, user=user, action="regenerate",
                                             drafted_text=BODY, reason=f"Reason {i}")
        OutboundEmail.objects.create(ticket=ticket, review=review, to_email="ana@example.com", subject="Re",
                                     body="b", message_id=f"<o{n}-{i}@tierdesk>")
        AuditEvent.objects.create(actor=user, action="draft.regenerate", object_type="Ticket",
                                  object_id=str(ticket.pk), after={"instruction": f"Instruction {i}"})
    return ticket


def test_the_ticket_page_and_its_partial_run_the_same_queries_however_long_the_history(
    client: Client, alice: User, django_assert_num_queries: Any
) -> None:
    small, large = ticket_with_history(1, alice), ticket_with_history(6, alice)
    client.force_login(alice)
    # session, user, groups, access check, ticket, 12 prefetches (runs, routes, gates, drafts, citations, calls,
    # reviews, outbound, messages, attachments, corrections, notes), audit trail, taxonomy
    for ticket in (small, large):
        with django_assert_num_queries(19):
            page = client.get(f"/tickets/{ticket.pk}/")
        assert page.status_code == 200
        with django_assert_num_queries(19):
            partial = client.get(f"/tickets/{ticket.pk}/", **HTMX)
        assert partial.status_code == 200 and "HX-Request" in partial["Vary"]
        assert "<html" not in partial.content.decode() and 'id="ticket-body"' in partial.content.decode()
    html = client.get(f"/tickets/{large.pk}/").content.decode()
    assert html.count("Note ") >= 6 and "Reason 5" in html and "photo5.jpg" in html


def test_an_inline_correction_answers_with_the_classification_card_and_the_new_revision(
    client: Client, alice: User
) -> None:
    ticket = ticket_with_history(1, alice)
    Intent.objects.create(name="get_refund")
    client.force_login(alice)
    response = client.post(f"/tickets/{ticket.pk}/correct",
                           {"intent": "get_refund", "urgency": "normal", "sentiment": "neutral",
                            "expected_revision": ticket.revision}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith("\n  <section class=\"card\" id=\"classification-card\"") or \
        html.lstrip().startswith('<section class="card" id="classification-card"')
    assert 'id="draft-card"' not in html  # the draft editor is not replaced: the agent's text stays
    assert "Corrected intent." in html and "intent corrected from <code>track_order</code> to <code>get_refund</code>" in html
    # Every other form on the page learns the new revision out of band.
    assert (f'<input type="hidden" name="expected_revision" value="{ticket.revision + 1}" '
            'hx-swap-oob="outerHTML:#ticket-body input[name=expected_revision]">') in html
    assert 'id="audit-card" hx-swap-oob="true"' in html and "ticket.correct.intent" in html
    correction = Correction.objects.get(ticket=ticket, field="intent")
    assert (correction.user, correction.old_value, correction.new_value) == (alice, "track_order", "get_refund")
    assert correction.seconds_since_triage is not None and correction.seconds_since_triage < 60


def test_a_stale_form_is_answered_409_in_the_alert_naming_who_changed_the_ticket(
    client: Client, alice: User, bob: User
) -> None:
    ticket = ticket_with_history(1, alice)
    Intent.objects.create(name="get_refund")
    draft = Draft.objects.get(ticket=ticket, status="pending")
    opened_at = ticket.revision
    corrections.ticket_classification_correct(ticket_id=ticket.pk, user=alice, values={"intent": "get_refund"},
                                           expected_revision=opened_at)
    client.force_login(bob)
    edited = BODY.replace("yesterday", "this morning")
    response = client.post(f"/tickets/{ticket.pk}/drafts/{draft.pk}/approve",
                           {"body": edited, "expected_revision": opened_at}, **HTMX)
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#ticket-alert" and response["HX-Reswap"] == "innerHTML"
    html = response.content.decode()
    assert "alice corrected the intent since you opened this ticket" in html
    assert "this morning" in html  # a copy of bob's unsaved text
    assert 'data-testid="reload"' in html
    draft.refresh_from_db()
    assert draft.status == "pending" and not OutboundEmail.objects.filter(body=edited).exists()

    # Without htmx the same refusal comes back as a message on the reloaded page.
    plain = client.post(f"/tickets/{ticket.pk}/drafts/{draft.pk}/approve",
                        {"body": edited, "expected_revision": opened_at}, follow=True)
    assert "alice corrected the intent since you opened this ticket" in plain.content.decode()


def test_a_refused_request_over_htmx_is_answered_400_in_the_alert(client: Client, alice: User) -> None:
    ticket = ticket_with_history(1, alice)
    draft = Draft.objects.get(ticket=ticket, status="pending")
    client.force_login(alice)
    response = client.post(f"/tickets/{ticket.pk}/drafts/{draft.pk}/regenerate",
                           {"instruction": "   ", "expected_revision": ticket.revision}, **HTMX)
    assert response.status_code == 400 and response["HX-Retarget"] == "#ticket-alert"
    assert "say what the new draft should do differently" in response.content.decode()
    assert Draft.objects.get(pk=draft.pk).status == "pending"


def test_a_draft_action_over_htmx_answers_with_the_ticket_body(client: Client, alice: User) -> None:
    ticket = ticket_with_history(1, alice)
    draft = Draft.objects.get(ticket=ticket, status="pending")
    client.force_login(alice)
    response = client.post(f"/tickets/{ticket.pk}/drafts/{draft.pk}/reject",
                           {"reason": "Wrong parcel", "expected_revision": ticket.revision}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="ticket-body"' in html and "<html" not in html
    assert "Draft rejected; the ticket is in the human queue." in html
    assert '<div id="ticket-alert" aria-live="polite" hx-swap-oob="true"></div>' in html  # clears an old alert
    assert "rejected the draft: “Wrong parcel”" in html


def test_cited_markers_open_the_cited_passage_in_place(client: Client, alice: User) -> None:
    ticket = ticket_with_history(1, alice)
    draft = Draft.objects.get(ticket=ticket, status="pending")
    client.force_login(alice)
    html = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert f'popovertarget="cite-{draft.pk}-1" data-testid="cite-marker"' in html
    assert f'<div popover id="cite-{draft.pk}-1"' in html and "The parcel ships in two days." in html
    assert "Rewritten for alice:</strong> “Instruction 0”" in html
    Draft.objects.filter(pk=draft.pk).update(status="approved", body="Shipped <b>today</b> [1], see [7].")
    html = client.get(f"/tickets/{ticket.pk}/").content.decode()
    # A decided draft is shown as text whose known markers are buttons; everything else is escaped.
    assert ("Shipped &lt;b&gt;today&lt;/b&gt; <button type=\"button\" class=\"cite\" "
            f"popovertarget=\"cite-{draft.pk}-1\"") in html
    assert ", see [7]." in html


def test_an_outsider_gets_404_on_the_ticket_and_on_every_action(client: Client, alice: User) -> None:
    ticket = ticket_with_history(1, alice)
    draft = Draft.objects.get(ticket=ticket, status="pending")
    User.objects.create_user("charlie", password="pw-charlie-123")
    client.login(username="charlie", password="pw-charlie-123")
    revision = {"expected_revision": ticket.revision}
    assert client.get(f"/tickets/{ticket.pk}/").status_code == 404
    assert client.get(f"/tickets/{ticket.pk}/", **HTMX).status_code == 404
    posts = {
        f"/tickets/{ticket.pk}/drafts/{draft.pk}/approve": {"body": "Hello"},
        f"/tickets/{ticket.pk}/drafts/{draft.pk}/reject": {"reason": "No"},
        f"/tickets/{ticket.pk}/drafts/{draft.pk}/regenerate": {"instruction": "Shorter"},
        f"/tickets/{ticket.pk}/escalate": {"reason": "Because"},
        f"/tickets/{ticket.pk}/correct": {"urgency": "urgent"},
        f"/tickets/{ticket.pk}/notes": {"body": "Hi"},
    }
    for url, form in posts.items():
        assert client.post(url, {**form, **revision}).status_code == 404, url
        assert client.post(url, {**form, **revision}, **HTMX).status_code == 404, url
    ticket.refresh_from_db()
    assert ticket.revision == revision["expected_revision"] and ticket.urgency == "normal"
    assert Draft.objects.get(pk=draft.pk).status == "pending"
    assert TicketNote.objects.count() == 1 and ReviewAction.objects.count() == 1
