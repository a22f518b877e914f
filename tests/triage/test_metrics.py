"""/metrics carries the stored counters and histograms in Prometheus format, to a token holder or an admin only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from triage.models import Correction, GateResult, ModelCall, RouteDecision, Ticket

pytestmark = pytest.mark.django_db


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_was_stored(client: Client, admin_user: Any) -> None:
    ticket = Ticket.objects.create(subject="s", body="b", from_email="a@example.com", status="awaiting_review",
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
    assert value("tierdesk_corrections_total", field="intent", within_5_minutes="true") == 1


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
