"""An admin tunes routing in chromium: previews a contract's effect, publishes it, flips a switch."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.support import data
from triage import controls
from triage.models import AuditEvent, Contract

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def admin() -> User:
    user = User.objects.create_user("ada", password="ada-pass-9931")
    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    return user


def test_an_admin_previews_and_publishes_a_contract(live_server: Any, page: Any, admin: User) -> None:
    data.triaged_history()
    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Routing contracts").wait_for()
    page.get_by_label("Quality bar (minimum confidence to trust nano)").fill("0.8")
    page.get_by_test_id("preview").click()
    escalation = page.get_by_test_id("whatif-escalation")
    escalation.wait_for()
    assert escalation.inner_text() == "75%"
    assert "4 tickets from the last 30 days" in page.get_by_test_id("whatif").inner_text()
    assert not Contract.objects.exists()  # a preview saves nothing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "routing.png"), full_page=True)

    page.get_by_test_id("publish").click()
    page.get_by_text("Contract v1 for the default published.").wait_for()
    row, contract = controls.contract_for(intent=None)
    assert row is not None and contract.quality_bar == 0.8 and row.created_by == admin
    page.get_by_role("link", name="Audit log").click()
    assert "contract.publish" in page.locator("table").inner_text()


def test_an_admin_flips_force_mini_and_it_is_audited(live_server: Any, page: Any, admin: User) -> None:
    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.goto(f"{live_server.url}/settings/switches")
    page.get_by_label("Force mini: bypass nano, mini classifies every ticket").check()
    page.get_by_label("mini cap").fill("2.50")
    page.get_by_role("button", name="Save switches").click()
    page.get_by_text("Switches saved; they apply to the next ticket.").wait_for()
    switches = controls.switches_row()
    assert switches.force_mini is True and str(switches.mini_daily_budget_usd) == "2.50"
    event = AuditEvent.objects.get(action="switches.update")
    assert event.actor == admin and event.after["force_mini"] is True

    page.get_by_label("mini cap").fill("lots")
    page.get_by_role("button", name="Save switches").click()
    page.get_by_text("the mini daily budget must be a number of dollars").wait_for()


def test_agents_see_no_settings(live_server: Any, page: Any) -> None:
    agent = User.objects.create_user("alice", password="alice-pass-4821")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    assert page.get_by_role("link", name="Settings").count() == 0
    response = page.goto(f"{live_server.url}/settings/routing")
    assert response is not None and response.status == 404


def test_an_admin_adds_a_gate_rule_starts_a_shadow_and_rolls_out_a_prompt(live_server: Any, page: Any,
                                                                          admin: User) -> None:
    from triage.models import GateRule, PromptVersion, ShadowConfig

    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.goto(f"{live_server.url}/settings/gates")
    page.get_by_label("Name", exact=True).fill("no-discount-promises")
    page.locator("select[name=category]").select_option("regulated_language")
    page.get_by_label("Pattern (regular expression, case-insensitive)").fill(r"\bdiscount code\b")
    page.get_by_label("Message", exact=True).fill("Discount codes are issued by marketing, not support.")
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Gate rule saved.").wait_for()
    assert GateRule.objects.get(name="no-discount-promises").category == "regulated_language"

    page.goto(f"{live_server.url}/settings/shadow")
    page.get_by_label("Name", exact=True).fill("large classifies 20%")
    page.locator("select[name=tier]").select_option("large")
    page.get_by_label("Share of tickets, %").fill("20")
    page.get_by_role("button", name="Start shadow").click()
    page.get_by_text("Shadow saved.").wait_for()
    assert ShadowConfig.objects.get().percent == 20
    assert page.get_by_test_id("shadow-stats").count() == 1

    page.goto(f"{live_server.url}/settings/prompts")
    page.locator("details").first.locator("summary").click()
    editor = page.get_by_label("classify prompt text")
    editor.fill(editor.input_value() + "\nPrefer the most specific intent.")
    page.get_by_role("button", name="Create version").first.click()
    page.get_by_text("Prompt saved.").wait_for()
    assert PromptVersion.objects.filter(prompt_id="classify", version=3, rollout_percent=0).exists()
    page.get_by_label("rollout percent for v3").fill("100")
    page.get_by_role("button", name="Set rollout").click()
    page.get_by_text("Prompt saved.").wait_for()
    assert PromptVersion.objects.get(prompt_id="classify", version=3).active is True
    page.goto(f"{live_server.url}/settings/audit")
    audit = page.locator("table").inner_text()
    assert "gate.save" in audit and "shadow.save" in audit and "prompt.rollout" in audit
