"""/metrics carries the stored counters and histograms in Prometheus format, to a token holder or an admin only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.support import builders
from triage.models import (
    Correction,
    Draft,
    GateResult,
    Intent,
    ModelCall,
    ReviewAction,
    RouteDecision,
    Ticket,
    TriageRun,
)

pytestmark = pytest.mark.django_db


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_was_stored(client: Client, admin_user: Any) -> None:
    ticket = builders.ticket(subject="s", body="b", from_email="a@example.com", status="awaiting_review",
                                   lane="large")
    common = {"ticket": ticket, "prompt_id": "classify", "prompt_version": 2}
    ModelCall.objects.create(step="classify", tier="nano", engine="openai", model="m", tokens_in=100, tokens_out=20,
                             cost_usd=Decimal("0.001"), latency_ms=80, schema_valid=False, error="bad", **common)
    ModelCall.objects.create(step="classify", tier="nano", engine="openai", model="m", tokens_in=100, tokens_out=20,
                             cost_usd=Decimal("0.002"), latency_ms=3000, schema_valid=True, **common)
    ModelCall.objects.create(step="draft", tier="large", engine="openai", model="m", latency_ms=40000,
                             error="timed out", **common)
    RouteDecision.objects.create(ticket=ticket, lane="large", reasons=["low_confidence", "out_of_scope"])
    GateResult.objects.create(ticket=ticket, tier="large", gate="pii-leak", category="pii", passed=True)
    Correction.objects.create(ticket=ticket, field="intent", old_value="a", new_value="b", user=admin_user,
                              seconds_since_triage=120)
    client.force_login(admin_user)
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    s = _samples(response.content.decode())

    def value(name: str, **labels: str) -> float:
        return s[(name, tuple(sorted(labels.items())))]

    assert value("tierdesk_tickets", status="awaiting_review", lane="large") == 1
    assert value("tierdesk_model_calls_total", step="classify", tier="nano", engine="openai",
                 outcome="schema_invalid") == 1
    assert value("tierdesk_model_calls_total", step="classify", tier="nano", engine="openai", outcome="ok") == 1
    assert value("tierdesk_model_calls_total", step="draft", tier="large", engine="openai", outcome="error") == 1
    assert value("tierdesk_model_tokens_total", tier="nano", engine="openai", direction="in") == 200
    assert value("tierdesk_model_cost_usd_total", tier="nano", engine="openai") == pytest.approx(0.003)
    assert value("tierdesk_model_call_latency_seconds_bucket", tier="nano", engine="openai", le="0.1") == 1
    assert value("tierdesk_model_call_latency_seconds_bucket", tier="nano", engine="openai", le="5.0") == 2
    assert value("tierdesk_model_call_latency_seconds_bucket", tier="large", engine="openai", le="30.0") == 0
    assert value("tierdesk_model_call_latency_seconds_count", tier="large", engine="openai") == 1
    assert value("tierdesk_model_call_latency_seconds_sum", tier="nano", engine="openai") == pytest.approx(3.08)
    assert value("tierdesk_route_reasons_total", reason="out_of_scope") == 1
    assert value("tierdesk_gate_results_total", tier="large", gate="pii-leak", passed="true") == 1
    assert value("tierdesk_corrections_total", field="intent", intent="none", within_5_minutes="true") == 1


def test_metrics_need_the_token_or_an_admin(client: Client) -> None:
    assert client.get("/metrics").status_code == 404
    agent = User.objects.create_user("agent-m", password="pw")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    client.force_login(agent)
    assert client.get("/metrics").status_code == 404
    client.logout()
    with override_settings(METRICS_TOKEN="scrape-secret"):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    with override_settings(METRICS_TOKEN=""):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@override_settings(MODEL_PRICES={"nano": (0.20, 1.25), "mini": (0.75, 4.50), "large": (2.50, 15.00)})
def test_metrics_carry_the_dashboards_series(client: Client, admin_user: Any) -> None:
    now = timezone.now()
    hour = timedelta(hours=1)
    track = Intent.objects.create(name="track_order")

    def ticket(**fields: Any) -> Ticket:
        return builders.ticket(subject="s", body="b", from_email="c@example.com", **fields)

    met = ticket(intent=track, lane="mini", urgency="urgent", sla_due_at=now - hour, first_response_at=now - 2 * hour)
    late = ticket(lane="large", urgency="urgent", sla_due_at=now - hour)  # unanswered past due: missed
    waiting = ticket(lane="human", urgency="high", sla_due_at=now + hour)  # not due yet: open
    ticket(status="ignored", urgency="high", sla_due_at=now - hour)  # automatic mail: never counted
    to_mini = RouteDecision.objects.create(ticket=met, lane="mini", reasons=["within_contract"])
    to_large = RouteDecision.objects.create(ticket=late, lane="large", reasons=["low_confidence", "vip_customer"])
    RouteDecision.objects.create(ticket=waiting, lane="human", reasons=["within_contract", "drafts_switched_off"])
    drafts = [Draft.objects.create(ticket=d.ticket, route_decision=d, tier=d.lane, engine="local", model="m", body="x")
              for d in (to_mini, to_large)]
    for draft, action, distance in [(drafts[0], "approve", 0), (drafts[0], "edit_approve", 40),
                                    (drafts[1], "edit_approve", 8), (drafts[1], "reject", None),
                                    (drafts[1], "regenerate", None)]:
        ReviewAction.objects.create(ticket=draft.ticket, draft=draft, user=admin_user, action=action,
                                    drafted_text="x", edit_distance=distance)
    ModelCall.objects.create(ticket=met, step="classify", tier="nano", engine="openai", model="m", prompt_id="c",
                             prompt_version=1, tokens_in=1000, tokens_out=100, cost_usd=Decimal("0.000325"))
    run = TriageRun.objects.create(ticket=late, tier="nano", engine="openai", model="m", intent=track,
                                   urgency="urgent", sentiment="neutral", language="en", confidence=0.4, summary="s")
    Correction.objects.create(ticket=late, triage_run=run, field="intent", old_value="track_order",
                              new_value="get_refund", user=admin_user, seconds_since_triage=100)
    client.force_login(admin_user)
    s = _samples(client.get("/metrics").content.decode())

    def value(name: str, **labels: str) -> float | None:
        return s.get((name, tuple(sorted(labels.items()))))

    assert value("tierdesk_escalations_total", lane="large", reason="low_confidence") == 1
    assert value("tierdesk_escalations_total", lane="large", reason="vip_customer") == 1
    assert value("tierdesk_escalations_total", lane="human", reason="drafts_switched_off") == 1
    assert not [k for k in s if k[0] == "tierdesk_escalations_total" and ("reason", "within_contract") in k[1]]

    assert value("tierdesk_draft_outcomes_total", outcome="approved_unchanged", intent="track_order", lane="mini") == 1
    assert value("tierdesk_draft_outcomes_total", outcome="edited", intent="track_order", lane="mini") == 1
    assert value("tierdesk_draft_outcomes_total", outcome="edited", intent="none", lane="large") == 1
    assert value("tierdesk_draft_outcomes_total", outcome="rejected", intent="none", lane="large") == 1
    assert sum(v for k, v in s.items() if k[0] == "tierdesk_draft_outcomes_total") == 4  # regenerate decides nothing
    assert value("tierdesk_draft_edit_distance_chars_bucket", lane="mini", le="25.0") == 0
    assert value("tierdesk_draft_edit_distance_chars_bucket", lane="mini", le="50.0") == 1
    assert value("tierdesk_draft_edit_distance_chars_bucket", lane="large", le="5.0") == 0
    assert value("tierdesk_draft_edit_distance_chars_bucket", lane="large", le="10.0") == 1
    assert value("tierdesk_draft_edit_distance_chars_sum", lane="mini") == 40
    assert value("tierdesk_draft_edit_distance_chars_count", lane="large") == 1

    # Attributed to the intent the model gave, not the one the agent chose.
    assert value("tierdesk_corrections_total", field="intent", intent="track_order", within_5_minutes="true") == 1

    assert value("tierdesk_sla_first_responses_total", urgency="urgent", result="met") == 1
    assert value("tierdesk_sla_first_responses_total", urgency="urgent", result="missed") == 1
    assert value("tierdesk_sla_first_responses_total", urgency="high", result="missed") is None
    assert value("tierdesk_sla_open_tickets", urgency="high") == 1

    # 1,000 tokens in and 100 out at large rates: 1000 × 2.50 + 100 × 15.00 per million.
    assert value("tierdesk_model_cost_all_large_usd_total", tier="nano", engine="openai") == pytest.approx(0.004)
    assert value("tierdesk_model_cost_usd_total", tier="nano", engine="openai") == pytest.approx(0.000325)
