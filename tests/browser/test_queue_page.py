"""The queue in Debian's chromium: filters, live updates, the keyboard, bulk actions and roles."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import wait_for
from tests.support import builders, data
from triage import services, sla
from triage.models import Draft, Intent, OutboundEmail, ReviewAction, RouteDecision, Ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _user(name: str, group: str | None = "agents") -> User:
    user = User.objects.create_user(name, password=f"{name}-pass-4821")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def _ticket(subject: str, *, urgency: str = "normal", age_minutes: int = 0, drafted: bool = True,
            **fields: Any) -> Ticket:
    created = timezone.now() - timedelta(minutes=age_minutes)
    ticket = builders.ticket(subject=subject, body=f"About {subject}", from_email="cust@example.com",
                                   from_name="Casey Customer", urgency=urgency, created_at=created,
                                   status="awaiting_review" if drafted else "needs_human", lane="mini",
                                   engine="local", confidence=0.91, **fields)
    if drafted:
        decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
        Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                             body=f"Hi Casey,\n\nAbout {subject}: here is what to do [1].\n\nKind regards", grounded=True)
    return ticket


def _rows(page: Any) -> list[str]:
    return page.locator("#queue-rows tr[data-ticket-id] td:nth-child(3) a").all_inner_texts()


def test_filters_narrow_the_queue_and_breaching_tickets_stand_out(live_server: Any, page: Any) -> None:
    alice = _user("alice")
    intent = {name: Intent.objects.create(name=name) for name in ("refund_request", "track_order", "change_address")}
    _ticket("Card charged twice", urgency="urgent", age_minutes=20, intent=intent["refund_request"])  # breached
    _ticket("Where is my parcel", urgency="high", age_minutes=50, intent=intent["track_order"],       # nearly
            assignee=alice)
    _ticket("Change my address", urgency="low", intent=intent["change_address"])
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    assert _rows(page) == ["Card charged twice", "Where is my parcel", "Change my address"]
    breached = page.locator("#queue-rows tr.sla-breached")
    assert breached.count() == 1 and "breached" in breached.inner_text().lower()
    assert page.locator("#queue-rows tr.sla-warn").count() == 1
    if os.environ.get("TIERDESK_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / "queue.png"), full_page=True)

    page.get_by_label("Urgency").select_option("low")
    expect(page.locator("#queue-rows tr[data-ticket-id]")).to_have_count(1)
    assert _rows(page) == ["Change my address"]
    assert "urgency=low" in page.url  # the filtered view is a link an agent can share

    page.get_by_label("Urgency").select_option("")
    expect(page.locator("#queue-rows tr[data-ticket-id]")).to_have_count(3)
    page.get_by_label("Search").fill("parcel")
    expect(page.locator("#queue-rows tr[data-ticket-id]")).to_have_count(1)
    assert _rows(page) == ["Where is my parcel"]


@pytest.mark.worker
def test_new_tickets_appear_and_drafts_change_state_without_a_reload(
    celery_worker: None, live_server: Any, page: Any
) -> None:
    data.seed_small()
    _user("alice")
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    page.evaluate("window.__sameDocument = true")
    ticket, _ = services.ticket_create(subject="I forgot my password", body="I cannot log in to my account.",
                                       from_email="sam@example.com", from_name="Sam")
    row = page.locator(f'#queue-rows tr[data-ticket-id="{ticket.pk}"]')
    row.wait_for(timeout=15_000)
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    page.locator(f'#queue-rows tr[data-ticket-id="{ticket.pk}"][data-draft-id]').wait_for(timeout=15_000)
    assert "awaiting review" in row.inner_text().lower() and "draft ready" in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_an_agent_works_the_queue_from_the_keyboard(live_server: Any, page: Any) -> None:
    alice = _user("alice")
    first = _ticket("Refund please", urgency="urgent")
    second = _ticket("Wrong size", urgency="high")
    third = _ticket("Invoice copy", urgency="low")
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    page.wait_for_load_state()  # the queue's keyboard script is loaded

    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    page.keyboard.press("Escape")

    page.keyboard.press("j")  # the first row
    assert page.locator("#queue-rows tr.current").get_attribute("data-ticket-id") == str(first.pk)
    page.keyboard.press("a")
    page.locator("#toast").get_by_text("1 ticket approved").wait_for()
    review = wait_for(lambda: ReviewAction.objects.filter(ticket=first).first())
    assert review.action == "approve" and review.user == alice
    assert OutboundEmail.objects.filter(ticket=first).count() == 1
    page.locator(f'#queue-rows tr[data-ticket-id="{first.pk}"]').wait_for(state="detached")

    page.keyboard.press("j")
    assert page.locator("#queue-rows tr.current").get_attribute("data-ticket-id") == str(second.pk)
    page.keyboard.press("r")
    page.get_by_test_id("reject-reason").fill("Needs the exchange policy, not a refund")
    page.get_by_test_id("reject-confirm").click()
    page.locator("#toast").get_by_text("1 ticket rejected").wait_for()
    rejected = ReviewAction.objects.get(ticket=second)
    assert rejected.action == "reject" and rejected.reason == "Needs the exchange policy, not a refund"

    # Rejected tickets stay open for a person; x ticks rows, t takes them.
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.get_by_test_id("selected-count").inner_text() == "2 selected"
    page.keyboard.press("t")
    page.locator("#toast").get_by_text("2 tickets taken").wait_for()
    assert set(Ticket.objects.filter(assignee=alice).values_list("pk", flat=True)) == {second.pk, third.pk}

    page.keyboard.press("o")  # the cursor is still on the last row it ticked
    page.wait_for_url(f"**/tickets/{third.pk}/")


def test_bulk_assignment_from_the_bar(live_server: Any, page: Any) -> None:
    _user("alice")
    bob = _user("bob")
    tickets = [_ticket(f"Question {i}", drafted=False) for i in range(3)]
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    page.get_by_label(f"Select ticket {tickets[0].pk}").check()
    page.get_by_label(f"Select ticket {tickets[2].pk}").check()
    page.get_by_label("Bulk action").select_option("assign")
    page.get_by_label("Assign to").select_option("bob")
    page.get_by_role("button", name="Apply to selected").click()
    page.locator("#toast").get_by_text("2 tickets assigned").wait_for()
    assert set(Ticket.objects.filter(assignee=bob).values_list("pk", flat=True)) == {tickets[0].pk, tickets[2].pk}
    assert page.locator(f'#queue-rows tr[data-ticket-id="{tickets[0].pk}"] [data-testid=assignee]').inner_text() == "bob"


def test_roles_decide_what_each_person_sees(live_server: Any, page: Any) -> None:
    _user("alice")
    _user("ada", "admins")
    _user("charlie", None)
    ticket = _ticket("Private matter")
    sign_in(page, live_server.url, "ada", "ada-pass-4821")
    assert page.get_by_role("link", name="Settings").is_visible()
    page.goto(f"{live_server.url}/settings/sla")
    assert page.get_by_role("heading", name="SLA targets").is_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    assert page.get_by_role("link", name="Settings").count() == 0
    assert page.goto(f"{live_server.url}/settings/sla").status == 404
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Sign out").click()

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("charlie")
    page.get_by_label("Password").fill("charlie-pass-4821")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    for path in ("/", f"/tickets/{ticket.pk}/", "/settings/team"):
        assert page.goto(f"{live_server.url}{path}").status == 404
    assert "Private matter" not in page.content()
    sla.policy_cache_clear()


def test_e_opens_the_ticket_with_its_draft_editor_focused(live_server: Any, page: Any) -> None:
    _user("alice")
    ticket = _ticket("Edit me first")
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    page.wait_for_load_state()  # the queue's keyboard script is loaded
    page.keyboard.press("j")
    page.locator(f'#queue-rows tr.current[data-ticket-id="{ticket.pk}"]').wait_for()
    page.keyboard.press("e")
    page.wait_for_url(f"**/tickets/{ticket.pk}/?edit=1")
    page.get_by_test_id("draft-body").wait_for()
    assert page.evaluate("document.activeElement.dataset.testid") == "draft-body"
