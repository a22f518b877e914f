"""The admin's settings pages render what they manage and refuse bad input with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.support import builders
from triage import controls
from triage.models import GateResult, GateRule, PromptVersion, ShadowConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_the_gates_page_lists_rules_and_pass_fail_counts_per_gate_and_tier(admin_client: Client) -> None:
    controls.gate_rules_seed()
    ticket = builders.ticket(subject="s", body="b", from_email="a@example.com")
    GateResult.objects.bulk_create([
        GateResult(ticket=ticket, tier="mini", gate="legal-advice", category="forbidden_advice", passed=False),
        GateResult(ticket=ticket, tier="large", gate="legal-advice", category="forbidden_advice", passed=True),
    ])
    html = admin_client.get("/settings/gates").content.decode()
    assert "pii-leak" in html or "pii_leak" in html
    assert "<td>legal-advice</td><td>mini</td><td>0</td><td>1</td>" in html
    assert "<td>legal-advice</td><td>large</td><td>1</td><td>0</td>" in html


def test_a_bad_gate_regex_is_refused_with_a_clear_message(admin_client: Client) -> None:
    response = admin_client.post("/settings/gates", {"name": "broken", "category": "forbidden_advice",
                                                     "pattern": "([unclosed", "message": "m"}, follow=True)
    assert not GateRule.objects.filter(name="broken").exists()
    assert "pattern" in response.content.decode().lower()


def test_prompts_can_be_created_rolled_out_and_rolled_back(admin_client: Client) -> None:
    shipped = controls.prompt_for(prompt_id="draft")
    system = shipped.system + "\nSign as the Support team."
    admin_client.post("/settings/prompts", {"op": "create", "prompt_id": "draft", "system": system,
                                            "rollout_percent": "25"})
    candidate = shipped.version + 1
    assert PromptVersion.objects.get(prompt_id="draft", version=candidate).rollout_percent == 25
    admin_client.post("/settings/prompts", {"op": "rollout", "prompt_id": "draft", "version": str(candidate),
                                            "percent": "100"})
    assert controls.prompt_for(prompt_id="draft").version == candidate
    admin_client.post("/settings/prompts", {"op": "rollback", "prompt_id": "draft"})
    assert controls.prompt_for(prompt_id="draft").version == shipped.version
    html = admin_client.get("/settings/prompts").content.decode()
    assert f"serving v{shipped.version}" in html
    audit = admin_client.get("/settings/audit").content.decode()
    assert "prompt.create" in audit and "prompt.rollout" in audit and "prompt.rollback" in audit


def test_shadows_are_created_and_refused_when_invalid(admin_client: Client) -> None:
    admin_client.post("/settings/shadow", {"name": "mini drafts", "step": "draft", "tier": "mini", "percent": "20",
                                           "active": "on"})
    assert ShadowConfig.objects.get().percent == 20
    response = admin_client.post("/settings/shadow", {"name": "x", "step": "draft", "tier": "huge",
                                                      "percent": "20"}, follow=True)
    assert "tier must be one of" in response.content.decode()
    assert ShadowConfig.objects.count() == 1
    assert "mini drafts" in admin_client.get("/settings/shadow").content.decode()


def test_switches_refuse_a_similarity_outside_zero_to_one(admin_client: Client) -> None:
    response = admin_client.post("/settings/switches", {"budget_action": "downgrade", "weak_retrieval_below": "3",
                                                        "nano_enabled": "on", "mini_enabled": "on",
                                                        "large_enabled": "on"}, follow=True)
    assert "must be between 0 and 1" in response.content.decode()
    assert controls.switches_row().version == 1


def test_model_output_is_escaped_on_the_ticket_page(admin_client: Client) -> None:
    ticket = builders.ticket(subject="<script>alert(1)</script>", body="<img src=x onerror=alert(1)>",
                                   from_email="a@example.com")
    html = admin_client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html
