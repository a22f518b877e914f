"""The agent's ticket page in Debian's chromium, against the live server and a real Celery worker: correct the
classification in place, edit and approve, reject, regenerate, escalate, and two agents at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.conftest import wait_for
from tests.support import builders, data
from triage import services
from triage.llm import replies
from triage.models import AuditEvent, Correction, Draft, OutboundEmail, ReviewAction, Ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

PASSWORD = "pw-agent-4821"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def make_agent(username: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def alice() -> User:
    return make_agent("alice")


@pytest.fixture
def drafted(celery_worker: None, smtp_server: Any) -> Ticket:
    """A ticket the pipeline has classified, routed and drafted on the mini tier (local engine)."""
    data.seed_small()
    ticket, _ = services.ticket_create(
        subject="Forgot my password", body="I can't remember my password and cannot log in. Please help.",
        from_email="sam.page@example.com", from_name="Sam Carter",
    )
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    return Ticket.objects.get(pk=ticket.pk)


def open_ticket(page: Any, base_url: str, ticket: Ticket, username: str) -> None:
    sign_in(page, base_url, username, PASSWORD)
    page.goto(f"{base_url}/tickets/{ticket.pk}/")
    page.get_by_test_id("draft-body").wait_for()
    # Set once per document: if it is still there later, the page was never reloaded.
    page.evaluate("window.sameDocument = true")


def same_document(page: Any) -> bool:
    return bool(page.evaluate("window.sameDocument === true"))


@pytest.fixture
def second_page(page: Any) -> Iterator[Any]:
    """Another agent's browser: a separate context, so separate cookies and session."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_an_agent_corrects_the_intent_in_place_and_the_correction_is_recorded(
    live_server: Any, page: Any, drafted: Ticket, alice: User
) -> None:
    open_ticket(page, live_server.url, drafted, "alice")
    assert page.get_by_test_id("intent").inner_text() == "recover_password"
    editor = page.get_by_test_id("draft-body")
    editor.fill(editor.input_value() + "\nP.S. Unsaved words.")

    page.get_by_text("Correct the classification").click()
    page.get_by_test_id("correct-intent").select_option("registration_problems")
    page.get_by_test_id("save-corrections").click()
    page.get_by_text("Corrected intent.").wait_for()

    assert page.get_by_test_id("intent").inner_text() == "registration_problems"
    assert "intent corrected from recover_password to registration_problems by alice" in \
        page.get_by_test_id("corrections").inner_text()
    # Only the classification card changed: the unsaved draft text is still in the editor.
    assert same_document(page) and editor.input_value().endswith("P.S. Unsaved words.")
    correction = Correction.objects.get(ticket=drafted)
    assert (correction.field, correction.old_value, correction.new_value, correction.user) == (
        "intent", "recover_password", "registration_problems", alice)
    assert correction.seconds_since_triage is not None and 0 <= correction.seconds_since_triage < 300

    # The draft form learned the new revision, so the agent's own approval is not taken for a conflict.
    page.get_by_test_id("approve").click()
    page.get_by_text("Reply approved and queued for sending.").wait_for()
    assert ReviewAction.objects.get(ticket=drafted).final_text.endswith("P.S. Unsaved words.")


def test_an_agent_opens_a_citation_in_place_edits_and_approves(
    live_server: Any, page: Any, drafted: Ticket, alice: User
) -> None:
    open_ticket(page, live_server.url, drafted, "alice")
    draft = Draft.objects.get(ticket=drafted)
    citation = draft.citations.order_by("marker").first()
    assert citation is not None

    page.get_by_test_id("cite-marker").first.click()
    passage = page.locator(f"#cite-{draft.pk}-{citation.marker}")
    passage.wait_for(state="visible")
    assert citation.excerpt.split("\n")[0][:40] in passage.inner_text()
    link = passage.get_by_test_id("cited-version")
    assert link.get_attribute("href") == f"/kb/{citation.article_id}/v/{citation.article_version}"
    assert same_document(page)  # opened in place, no navigation
    passage.get_by_role("button", name="Close").click()
    passage.wait_for(state="hidden")

    target = SCREENSHOTS if os.environ.get("TIERDESK_SCREENSHOTS") == "1" else ARTIFACTS
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / "ticket.png"), full_page=True)

    editor = page.get_by_test_id("draft-body")
    editor.fill(editor.input_value().replace("Kind regards,", "I have also sent you a reset link.\n\nKind regards,"))
    page.get_by_test_id("approve").click()
    page.get_by_text("Reply approved and queued for sending.").wait_for()
    assert page.get_by_test_id("ticket-status").inner_text() == "Approved"
    assert "edited and approved the draft" in page.get_by_test_id("history").inner_text()
    review = ReviewAction.objects.get(ticket=drafted)
    assert review.action == "edit_approve" and review.user == alice and review.edit_distance > 0
    assert "+I have also sent you a reset link." in review.diff
    # The customer reads the reply as sent, without the agent's citation markers.
    assert OutboundEmail.objects.get(ticket=drafted).body == replies.strip_markers(review.final_text)


def test_an_agent_rejects_a_draft_with_a_reason(live_server: Any, page: Any, drafted: Ticket, alice: User) -> None:
    open_ticket(page, live_server.url, drafted, "alice")
    page.get_by_label("Reject reason").fill("It does not mention the locked account")
    page.get_by_test_id("reject").click()
    page.get_by_text("Draft rejected; the ticket is in the human queue.").wait_for()
    assert page.get_by_test_id("ticket-status").inner_text() == "Needs Human"
    assert "rejected the draft: “It does not mention the locked account”" in page.get_by_test_id("history").inner_text()
    assert same_document(page)
    review = ReviewAction.objects.get(ticket=drafted)
    assert (review.action, review.reason, review.user) == ("reject", "It does not mention the locked account", alice)
    assert Draft.objects.get(ticket=drafted).status == "rejected" and not OutboundEmail.objects.exists()


def test_an_agent_regenerates_with_an_instruction_and_the_new_draft_appears_without_reload(
    live_server: Any, page: Any, drafted: Ticket, alice: User
) -> None:
    open_ticket(page, live_server.url, drafted, "alice")
    first = Draft.objects.get(ticket=drafted)
    page.get_by_label("Instruction for a new draft").fill("Explain how to change the email address as well")
    page.get_by_test_id("regenerate").click()
    page.get_by_text("A new draft is being written to your instruction.").wait_for()

    instruction = page.get_by_test_id("draft-instruction")
    instruction.wait_for(timeout=90_000)  # the page polls while the worker drafts
    assert "Rewritten for alice" in instruction.inner_text()
    assert "Explain how to change the email address as well" in instruction.inner_text()
    assert page.get_by_test_id("ticket-status").inner_text() == "Awaiting Review"
    body = page.get_by_test_id("draft-body").input_value()
    assert body != first.body and "email" in body.lower()
    assert "asked for a new draft: “Explain how to change the email address as well”" in \
        page.get_by_test_id("history").inner_text()
    assert same_document(page)
    new = Draft.objects.get(ticket=drafted, status="pending")
    assert (new.tier, new.requested_by, new.body) == (first.tier, alice, body)


def test_an_agent_escalates_to_large_and_sees_the_large_tiers_draft(
    live_server: Any, page: Any, drafted: Ticket, alice: User
) -> None:
    open_ticket(page, live_server.url, drafted, "alice")
    assert Draft.objects.get(ticket=drafted).tier == "mini"
    page.get_by_label("Escalation reason").fill("Third time this week; the customer is upset")
    page.get_by_test_id("escalate").click()
    page.get_by_text("Escalated: the large tier is writing a new draft.").wait_for()

    page.get_by_text("Written by the large tier").wait_for(timeout=90_000)
    assert "Escalated by alice" in page.get_by_test_id("draft-instruction").inner_text()
    assert page.get_by_test_id("lane").inner_text() == "large"
    assert "manual_escalation" in page.get_by_test_id("route-decisions").inner_text()
    assert "senior member of our team" in page.get_by_test_id("draft-body").input_value()
    assert "escalated to the large tier: “Third time this week; the customer is upset”" in \
        page.get_by_test_id("history").inner_text()
    assert same_document(page)
    ticket = Ticket.objects.get(pk=drafted.pk)
    assert ticket.lane == "large" and ticket.high_risk
    assert Draft.objects.get(ticket=drafted, status="pending").tier == "large"


def test_a_second_agent_approving_after_the_first_is_told_and_keeps_their_text(
    live_server: Any, page: Any, second_page: Any, drafted: Ticket, alice: User
) -> None:
    bob = make_agent("bob")
    open_ticket(page, live_server.url, drafted, "alice")
    open_ticket(second_page, live_server.url, drafted, "bob")

    page.get_by_test_id("approve").click()
    page.get_by_text("Reply approved and queued for sending.").wait_for()

    editor = second_page.get_by_test_id("draft-body")
    bobs_text = editor.input_value().replace("Kind regards,", "Bob adds a line here.\n\nKind regards,")
    editor.fill(bobs_text)
    second_page.get_by_test_id("approve").click()
    alert = second_page.get_by_test_id("ticket-alert")
    alert.wait_for()
    assert "alice approved the draft since you opened this ticket" in alert.inner_text()
    assert editor.input_value() == bobs_text  # never lost
    assert second_page.get_by_test_id("unsaved-copy").input_value() == bobs_text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    second_page.screenshot(path=str(ARTIFACTS / "ticket-conflict.png"))
    # Nothing of bob's was saved.
    assert list(ReviewAction.objects.filter(ticket=drafted).values_list("user__username", flat=True)) == ["alice"]
    assert OutboundEmail.objects.filter(ticket=drafted).count() == 1
    assert not AuditEvent.objects.filter(actor=bob).exists()

    second_page.get_by_test_id("reload").click()
    second_page.get_by_test_id("ticket-status").filter(has_text="Approved").wait_for()
    assert second_page.get_by_test_id("unsaved-copy").input_value() == bobs_text  # the copy outlives the reload
    assert same_document(second_page)


def test_a_second_agent_editing_after_a_correction_reloads_keeping_their_text_then_approves(
    live_server: Any, page: Any, second_page: Any, drafted: Ticket, alice: User
) -> None:
    bob = make_agent("bob")
    open_ticket(page, live_server.url, drafted, "alice")
    open_ticket(second_page, live_server.url, drafted, "bob")

    page.get_by_text("Correct the classification").click()
    page.get_by_test_id("correct-urgency").select_option("urgent")
    page.get_by_test_id("save-corrections").click()
    page.get_by_text("Corrected urgency.").wait_for()

    editor = second_page.get_by_test_id("draft-body")
    bobs_text = editor.input_value() + "\nBob's P.S."
    editor.fill(bobs_text)
    second_page.get_by_test_id("approve").click()
    second_page.get_by_test_id("ticket-alert").wait_for()
    assert "alice corrected the urgency since you opened this ticket" in \
        second_page.get_by_test_id("ticket-alert").inner_text()
    assert editor.input_value() == bobs_text
    assert not ReviewAction.objects.filter(ticket=drafted).exists()
    assert Ticket.objects.get(pk=drafted.pk).status == "awaiting_review"

    # Reloading shows alice's change and keeps bob's edit of the same draft in the editor.
    second_page.get_by_test_id("reload").click()
    second_page.get_by_test_id("urgency").filter(has_text="urgent").wait_for()
    assert second_page.get_by_test_id("draft-body").input_value() == bobs_text
    second_page.get_by_test_id("approve").click()
    second_page.get_by_text("Reply approved and queued for sending.").wait_for()
    review = ReviewAction.objects.get(ticket=drafted)
    assert review.user == bob and review.final_text == bobs_text.strip()


def test_an_outsider_gets_404_on_the_ticket_and_on_every_action(live_server: Any, page: Any, alice: User) -> None:
    ticket = builders.ticket(subject="Parcel", body="Where is it?", from_email="ana@example.com",
                                   status="needs_human")
    User.objects.create_user("charlie", password=PASSWORD)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("charlie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

    assert page.goto(f"{live_server.url}/tickets/{ticket.pk}/").status == 404
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    base = f"{live_server.url}/tickets/{ticket.pk}"
    for url, form in [
        (f"{base}/drafts/1/approve", {"body": "Hello"}), (f"{base}/drafts/1/reject", {"reason": "No"}),
        (f"{base}/drafts/1/regenerate", {"instruction": "Shorter"}), (f"{base}/escalate", {"reason": "VIP"}),
        (f"{base}/correct", {"urgency": "urgent"}), (f"{base}/notes", {"body": "Hi"}),
    ]:
        response = page.request.post(url, form={**form, "expected_revision": str(ticket.revision)},
                                     headers={"X-CSRFToken": token, "Referer": live_server.url, "HX-Request": "true"})
        assert response.status == 404, url
    assert Ticket.objects.get(pk=ticket.pk).revision == ticket.revision
    assert not ReviewAction.objects.exists() and not AuditEvent.objects.exists()
