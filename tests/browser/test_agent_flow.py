"""An agent in Debian's chromium: signs in, opens a drafted ticket, edits and approves, and the email is sent."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from tests.browser.conftest import ARTIFACTS
from tests.conftest import wait_for
from tests.support import data
from triage import services
from triage.models import OutboundEmail, Ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

def test_an_agent_edits_and_approves_a_draft_and_the_customer_gets_it(
    celery_worker: None, live_server: Any, smtp_server: Any, page: Any
) -> None:
    data.seed_small()
    agent = User.objects.create_user("alice", password="alice-pass-4821")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    ticket, _ = services.ticket_create(
        subject="Forgot my password", body="I can't remember my password and cannot log in. Please help.",
        from_email="sam.browser@example.com", from_name="Sam Carter",
    )
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-pass-4821")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Queue").wait_for()
    page.get_by_role("link", name="Forgot my password").click()

    page.get_by_test_id("intent").wait_for()
    assert page.get_by_test_id("intent").inner_text() == "recover_password"
    assert "local engine" in page.locator(".engine").first.inner_text()
    editor = page.get_by_test_id("draft-body")
    original = editor.input_value()
    assert "Hi Sam," in original and "[1]" in original
    editor.fill(original.replace("Kind regards,", "I have also sent you a reset link.\n\nKind regards,"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ticket.png"), full_page=True)
    page.get_by_test_id("approve").click()
    page.get_by_text("Reply approved and queued for sending.").wait_for()

    messages = wait_for(lambda: smtp_server.to("sam.browser@example.com"), timeout=60)
    [message] = messages
    assert message["Subject"] == f"Re: Forgot my password [{ticket.token}]"
    assert "I have also sent you a reset link." in message.get_content()
    # The SMTP server holds the message a moment before the worker records it as sent (after the server's
    # answer to QUIT), and the page polling the reply's delivery can stretch that moment.
    outbound = wait_for(lambda: OutboundEmail.objects.filter(ticket=ticket, status="sent").first(), timeout=10)
    assert outbound.status == "sent" and message["Message-ID"].strip() == outbound.message_id  # folded past 78 characters
    review = outbound.review
    assert review.user == agent and review.action == "edit_approve"
    assert "+I have also sent you a reset link." in review.diff

    page.reload()
    assert page.get_by_test_id("outbound-status").inner_text() == "sent"
    assert page.get_by_test_id("ticket-status").inner_text() == "Approved"
