"""The composer in Debian's chromium: an agent answers a needs-human ticket with a macro picked from the keyboard,
fills the blank the ticket could not, and sends; another starts from the draft, edits it, and reads the change
back in the thread."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.support import builders
from triage import services
from triage.models import Draft, Macro, OutboundEmail, ReviewAction, RouteDecision

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "pw-agent-5093"


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice", password=PASSWORD, first_name="Alice", last_name="Moreau")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


def test_an_agent_answers_with_a_macro_fills_its_blank_and_sends(live_server: Any, page: Any, alice: User) -> None:
    ticket = builders.ticket(subject="Broken on arrival", body="The lamp I ordered came in pieces.",
                                   from_email="ana.lopez@example.com", from_name="Ana Lopez", status="needs_human",
                                   lane="human")
    Macro.objects.create(name="Damaged item", body="Hi {{first_name}},\n\nI'm sorry order {{order_number}} arrived "
                                                   "damaged. A replacement is on its way.\n\n{{agent_name}}")
    Macro.objects.create(name="Refund sent", body="Hi {{first_name}}, your refund is on its way.")
    Macro.objects.create(name="Billing team only", body="Internal",
                         group=Group.objects.get_or_create(name="billing")[0])
    sign_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    composer = page.get_by_test_id("composer-body")
    composer.wait_for()

    # "?" lists the shortcuts; "m", when not typing, opens the picker.
    page.locator("h1").click()
    page.keyboard.press("?")
    expect(page.get_by_test_id("help-dialog")).to_contain_text("insert a macro")
    page.keyboard.press("Escape")
    page.keyboard.press("m")
    expect(page.get_by_test_id("macro-dialog")).to_be_visible()
    expect(page.get_by_test_id("macro-option")).to_have_count(2)  # not the billing team's
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("macro-dialog")).to_be_hidden()

    # Ctrl+/ works while typing in the reply; typing filters; Enter inserts at the cursor.
    composer.click()
    page.keyboard.press("Control+/")
    search = page.get_by_test_id("macro-search")
    expect(search).to_be_focused()
    search.press_sequentially("damag")
    expect(page.locator("[data-testid=macro-option]:visible")).to_have_count(1)
    expect(page.locator("[data-testid=macro-option]:visible")).to_contain_text("Damaged item")
    search.press("Enter")
    expect(page.get_by_test_id("macro-dialog")).to_be_hidden()
    expect(composer).to_have_value(
        "Hi Ana,\n\nI'm sorry order [[order number]] arrived damaged. A replacement is on its way.\n\nAlice Moreau")

    # The blank is highlighted, and sending waits until it is filled.
    expect(page.get_by_test_id("composer-preview").locator("mark.blank")).to_have_text("[[order number]]")
    send = page.get_by_test_id("composer-send")
    expect(send).to_be_disabled()
    expect(page.get_by_test_id("composer-blocked")).to_have_text(
        "Fill in the highlighted blanks before sending: [[order number]]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_test_id("composer").screenshot(path=str(ARTIFACTS / "composer-blank.png"))
    # The blank is selected after inserting: typing replaces it.
    page.keyboard.type("LMP-20417")
    expect(composer).to_have_value(
        "Hi Ana,\n\nI'm sorry order LMP-20417 arrived damaged. A replacement is on its way.\n\nAlice Moreau")
    expect(page.get_by_test_id("composer-blanks")).to_be_hidden()
    expect(send).to_be_enabled()
    send.click()

    page.get_by_text("Reply queued for sending.").wait_for()
    reply = page.get_by_test_id("thread-outbound")
    expect(reply.get_by_test_id("thread-text")).to_contain_text("I'm sorry order LMP-20417 arrived damaged.")
    expect(reply.get_by_test_id("sent-by")).to_have_text("alice")
    expect(reply.get_by_test_id("delivery-status")).to_have_text("sending…")
    expect(page.get_by_test_id("composer-body")).to_have_value("")
    expect(page.get_by_test_id("ticket-status")).to_have_text("Approved")
    outbound = OutboundEmail.objects.get()
    assert "LMP-20417" in outbound.body and outbound.review.action == ReviewAction.Action.COMPOSE
    # The worker sends it (here the test does, unless a worker another test started claimed it first): the
    # page follows the reply until it is sent.
    services.outbound_send(outbound_id=outbound.pk)
    expect(reply.get_by_test_id("delivery-status")).to_have_text(re.compile(r"^sent \d\d:\d\d$"), timeout=10_000)
    assert page.get_by_test_id("thread-outbound").count() == 1  # the outbox row and its sent message, shown once


def test_an_agent_starts_from_the_draft_edits_it_and_sees_the_change_in_the_thread(
    live_server: Any, page: Any, alice: User
) -> None:
    ticket = builders.ticket(subject="Where is my parcel?", body="It has not arrived.",
                                   from_email="casey@example.com", from_name="Casey", status="awaiting_review",
                                   lane="mini")
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
    draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                                 body="Hi Casey,\n\nIt left our warehouse yesterday.\n\nKind regards", grounded=True)
    sign_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    page.get_by_test_id("start-from-draft").click()
    composer = page.get_by_test_id("composer-body")
    expect(composer).to_have_value(draft.body)
    expect(page.get_by_test_id("composer-mode")).to_contain_text("approved with your changes")
    composer.fill(draft.body.replace("yesterday", "this morning, by express courier"))
    page.get_by_test_id("composer-send").click()

    page.get_by_text("Reply queued for sending.").wait_for()
    reply = page.get_by_test_id("thread-outbound")
    expect(reply.get_by_test_id("thread-text")).to_contain_text("It left our warehouse this morning, by express")
    expect(reply.get_by_test_id("thread-text")).not_to_contain_text("yesterday")
    diff = reply.get_by_test_id("thread-diff")
    expect(diff).to_be_hidden()
    reply.get_by_test_id("show-diff").click()
    expect(diff.locator(".del")).to_have_text("-It left our warehouse yesterday.")
    expect(diff.locator(".add")).to_have_text("+It left our warehouse this morning, by express courier.")
    page.locator("#conversation-card").screenshot(path=str(ARTIFACTS / "composer-thread.png"))
    review = ReviewAction.objects.get()
    assert review.action == "edit_approve" and review.draft_id == draft.pk
    assert Draft.objects.get(pk=draft.pk).status == "approved"
