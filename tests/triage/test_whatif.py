"""The admin's what-if: replaying stored classifications through a proposed contract."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support import builders, data
from triage import controls, routing, selectors, whatif

COSTS = whatif.Costs(classify={"nano": Decimal("0.0001"), "mini": Decimal("0.0005"), "large": Decimal("0.002")},
                     draft={"mini": Decimal("0.002"), "large": Decimal("0.01")})


def _row(i: int, confidence: float, lane: str = "mini", needed: bool | None = None) -> whatif.Row:
    c = routing.Classification("track_order", "normal", "neutral", "en", confidence, "")
    return whatif.Row(i, "track_order", c, routing.Signals(top_similarity=0.9), lane, needed)


def test_raising_the_quality_bar_raises_escalation_and_cost() -> None:
    rows = [_row(i, confidence=c) for i, c in enumerate([0.95, 0.9, 0.75, 0.6, 0.55, 0.4])]
    now = whatif.simulate(rows, {None: routing.Contract(None, quality_bar=0.5)}, routing.Switches(), COSTS)
    proposed = whatif.simulate(rows, {None: routing.Contract(None, quality_bar=0.8)}, routing.Switches(), COSTS)
    assert now.lanes == {"mini": 5, "large": 1} and proposed.lanes == {"mini": 2, "large": 4}
    assert proposed.escalation_rate == pytest.approx(4 / 6)
    assert proposed.changed == 4  # the rows say production chose mini for all six
    assert proposed.cost_per_ticket > now.cost_per_ticket
    assert proposed.all_large_cost_per_ticket == Decimal("0.012")
    assert 0 < proposed.saving_vs_all_large < now.saving_vs_all_large


def test_agreement_with_agents_counts_only_decided_tickets() -> None:
    rows = [_row(1, 0.9, needed=False), _row(2, 0.4, needed=True), _row(3, 0.9, needed=True), _row(4, 0.9)]
    summary = whatif.simulate(rows, {None: routing.Contract(None, quality_bar=0.5)}, routing.Switches(), COSTS)
    assert summary.agent_decided == 3 and summary.agent_agreement == pytest.approx(2 / 3)


def test_an_intents_own_contract_wins_over_the_default() -> None:
    rows = [_row(1, 0.7)]
    contracts = {None: routing.Contract(None, quality_bar=0.5),
                 "track_order": routing.Contract("track_order", quality_bar=0.8)}
    assert whatif.simulate(rows, contracts, routing.Switches(), COSTS).lanes == {"large": 1}


@pytest.fixture
def history() -> None:
    data.triaged_history()


@pytest.mark.django_db
def test_rows_come_from_stored_classifications_and_agent_decisions(history: None) -> None:
    rows = selectors.whatif_rows(since=controls.whatif_since(30))
    assert len(rows) == 4
    assert sorted(r.agent_needed_escalation for r in rows if r.agent_needed_escalation is not None) == [False, True]


@pytest.mark.django_db
def test_the_preview_shows_the_proposed_effect_before_saving(client: Client, history: None,
                                                             admin_user: Any) -> None:
    client.force_login(admin_user)
    form = {"intent": "default", "quality_bar": "0.8", "latency_budget_s": "60", "risk": "low",
            "escalate_urgency": "urgent", "drafts_allowed": "on", "fallback": "escalate", "daily_budget_usd": "",
            "budget_action": "downgrade", "rollout_percent": "100", "days": "30"}
    html = client.post("/settings/routing/preview", form, HTTP_HX_REQUEST="true").content.decode()
    assert "4 tickets from the last 30 days" in html and "2 would change lane" in html
    assert 'data-testid="whatif-escalation">75%' in html
    assert not controls.contract_for(intent=None)[0]  # nothing was saved
    bad = client.post("/settings/routing/preview", {**form, "quality_bar": "7"}).content.decode()
    assert "quality bar must be between 0 and 1" in bad


@pytest.mark.django_db
def test_publishing_creates_a_new_version_and_an_audit_event(client: Client, admin_user: Any) -> None:
    client.force_login(admin_user)
    form = {"intent": "default", "quality_bar": "0.7", "latency_budget_s": "30", "risk": "medium",
            "escalate_urgency": "high", "fallback": "human", "daily_budget_usd": "12.50",
            "budget_action": "human", "rollout_percent": "100"}
    assert client.post("/settings/routing/publish", form).status_code == 302
    row, contract = controls.contract_for(intent=None)
    assert (row.version, contract.quality_bar, contract.drafts_allowed, row.daily_budget_usd) == (
        1, 0.7, False, Decimal("12.50"))
    assert row.created_by == admin_user


@pytest.mark.django_db
def test_agents_cannot_reach_the_settings(client: Client) -> None:
    agent = User.objects.create_user("alice", password="pw-alice-123")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    client.force_login(agent)
    for url in ("/settings/routing", "/settings/switches", "/settings/prompts", "/settings/gates",
                "/settings/shadow", "/settings/audit"):
        assert client.get(url).status_code == 404, url
    assert client.post("/settings/switches", {"drafts_off": "on"}).status_code == 404
    assert controls.switches_current().drafts_off is False


@pytest.mark.django_db
def test_rows_are_reused_until_a_ticket_is_routed_or_reviewed(history: None,
                                                             django_assert_num_queries: Any) -> None:
    from triage.models import RouteDecision

    since = controls.whatif_since(30)
    first = selectors.whatif_rows(since=since)
    with django_assert_num_queries(1):  # only the check for anything new
        assert selectors.whatif_rows(since=since) == first
    ticket = builders.ticket(subject="new", body="b", from_email="n@example.com")
    RouteDecision.objects.create(ticket=ticket, lane="human")  # no triage run: not a what-if row
    assert selectors.whatif_rows(since=since) == first
    from triage.models import Intent, TriageRun

    run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m",
                                   intent=Intent.objects.get(name="track_order"), urgency="normal",
                                   sentiment="neutral", language="en", confidence=0.8, summary="s")
    RouteDecision.objects.create(ticket=ticket, triage_run=run, lane="mini", top_similarity=0.9)
    assert len(selectors.whatif_rows(since=since)) == len(first) + 1
