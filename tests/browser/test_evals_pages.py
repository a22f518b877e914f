"""In chromium: an agent corrects a classification; an admin sees it on the learning page and compares eval runs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.support import builders
from triage.models import Correction, EvalRun, Intent, IntentExample, TriageRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def _user(name: str, group: str) -> User:
    user = User.objects.create_user(name, password=f"{name}-pass-5521")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def _report(f1: dict[str, float], cost: float) -> dict[str, Any]:
    return {
        "n": 100, "accuracy": sum(f1.values()) / len(f1), "macro_f1": round(sum(f1.values()) / len(f1), 4),
        "per_label": {k: {"precision": v, "recall": v, "f1": v, "support": 50} for k, v in f1.items()},
        "confusion": {"labels": list(f1), "matrix": [[45, 5], [10, 40]]}, "other_rate": 0.02,
        "cost_usd": cost, "latency_ms": {"p50": 3.0, "p95": 9.0}, "engine": "local", "model": "m", "failed": 0,
    }


def test_an_agent_corrects_the_intent_and_an_admin_sees_it(live_server: Any, page: Any) -> None:
    _user("ines", "agents")
    _user("ada", "admins")
    track, refund = Intent.objects.create(name="track_order"), Intent.objects.create(name="get_refund")
    ticket = builders.ticket(subject="Money back", body="The lamp broke, I want a refund.",
                                   from_email="c@example.com", intent=track, urgency="normal",
                                   sentiment="neutral", status="awaiting_review")
    TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=track, urgency="normal",
                             sentiment="neutral", language="en", confidence=0.6, summary="s")

    sign_in(page, live_server.url, "ines", "ines-pass-5521")
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    page.get_by_text("Correct the classification").click()
    page.get_by_label("Intent").select_option("get_refund")
    page.get_by_label("Sentiment").select_option("negative")
    page.get_by_role("button", name="Save corrections").click()
    page.get_by_text("Corrected intent, sentiment.").wait_for()
    assert "intent corrected from track_order to get_refund by ines" in page.get_by_test_id("corrections").inner_text()
    assert IntentExample.objects.get(ticket=ticket).intent == refund
    assert Correction.objects.count() == 2

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_server.url, "ada", "ada-pass-5521")
    page.goto(f"{live_server.url}/settings/learning")
    page.get_by_text("No local model is active").wait_for()
    text = page.locator("main").inner_text()
    assert "Examples or corrections changed since the newest model." in text
    assert "intent: track_order → get_refund by ines" in text


def test_an_admin_compares_eval_runs_in_charts(live_server: Any, page: Any) -> None:
    _user("ada", "admins")
    first = EvalRun.objects.create(kind="triage", name="local baseline", tier="local", engine="local", model="m",
                                   dataset="holdout.csv", report=_report({"a": 0.9, "b": 0.8}, 0.0))
    EvalRun.objects.create(kind="triage", name="nano candidate", tier="nano", engine="openai", model="gpt-x",
                           dataset="holdout.csv", report=_report({"a": 0.95, "b": 0.93}, 0.12))
    sign_in(page, live_server.url, "ada", "ada-pass-5521")
    page.goto(f"{live_server.url}/settings/evals")
    for chart in ("chart-f1", "chart-cost"):
        page.locator(f"canvas[data-testid={chart}][data-rendered=true]").wait_for()
    # Chart.js drew one bar series per run, over the labels of both.
    datasets = page.evaluate("document.getElementById('chart-f1').chart.data.datasets.map(d => d.label)")
    assert sorted(datasets) == sorted([f"#{first.pk} local baseline", f"#{first.pk + 1} nano candidate"])
    points = page.evaluate("document.getElementById('chart-cost').chart.data.datasets.map(d => d.data[0])")
    assert {"x": 1.2, "y": 0.94} in points
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "evals.png"), full_page=True)

    page.get_by_label(f"compare run {first.pk}").check()
    page.get_by_role("button", name="Compare selected").click()
    page.locator("canvas[data-testid=chart-f1][data-rendered=true]").wait_for()
    datasets = page.evaluate("document.getElementById('chart-f1').chart.data.datasets.map(d => d.label)")
    assert datasets == [f"#{first.pk} local baseline"]
    page.get_by_role("link", name=f"#{first.pk} local baseline").click()
    assert page.get_by_test_id("confusion").locator("td.diag").count() == 2


def _draft_report(tier: str, cost: float, f1: float) -> dict[str, Any]:
    ticket = {"id": "t1", "subject": "Where is my parcel?", "drafted": True, "body": "Hi Anna,\n\nOpen the link [1].",
              "error": "", "cited": ["track-order"], "gold_article": "track-order", "cited_gold": True,
              "gold_citations": 1, "citations": 1, "supported": 1, "sentences": 1, "token_f1": f1, "similarity": 0.9,
              "failed_gates": [], "defects": {"repeated_line": 1}, "cost_usd": cost, "latency_ms": 12.0, "lane": "",
              "judge_score": None, "judge_reason": "", "extra": {"intent": "track_order", "intent_source": "given"}}
    return {"n": 1, "citation_recall": 1.0, "citation_precision": 1.0, "tickets_with_gold": 1, "supported_share": 1.0,
            "sentences": 1, "support_rule": "content-word overlap >= 0.5 with one cited passage", "reference_n": 1,
            "reference_f1": f1, "reference_similarity": 0.9, "defects": 1, "defects_by_kind": {"repeated_line": 1},
            "tickets_with_defects": 1, "refusals": 0, "refusal_rate": 0.0, "cost_usd": cost,
            "latency_ms": {"p50": 12.0, "p95": 12.0}, "judge_mean": None, "judged": 0, "tier": tier,
            "engine": "local", "model": "m", "prompt": {"id": "draft", "version": 2}, "similarity": "cosine",
            "internal_text_gate": False, "judge": None, "tickets": [ticket]}


def test_an_admin_reads_draft_runs_beside_classification_runs(live_server: Any, page: Any) -> None:
    _user("ada", "admins")
    EvalRun.objects.create(kind="triage", name="local baseline", tier="local", engine="local", model="m",
                           dataset="holdout.csv", report=_report({"a": 0.9, "b": 0.8}, 0.0))
    local = EvalRun.objects.create(kind="draft", name="local drafts", tier="local", engine="local", model="m",
                                   dataset="tickets.jsonl", report=_draft_report("local", 0.0, 0.54))
    EvalRun.objects.create(kind="draft", name="mini drafts", tier="mini", engine="openai", model="gpt-x",
                           dataset="tickets.jsonl", report=_draft_report("mini", 0.002, 0.71))
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, live_server.url, "ada", "ada-pass-5521")
    page.goto(f"{live_server.url}/settings/evals")
    page.locator("canvas[data-testid=chart-draft-cost][data-rendered=true]").wait_for()
    rows = page.get_by_test_id("draft-runs").locator("tbody tr")
    assert rows.count() == 2 and "mini drafts" in rows.first.inner_text()
    assert "local baseline" in page.get_by_test_id("eval-runs").inner_text()
    points = page.evaluate("document.getElementById('chart-draft-cost').chart.data.datasets.map(d => d.data[0])")
    assert {"x": 2.0, "y": 0.71} in points
    page.get_by_role("link", name=f"#{local.pk} local drafts").click()
    assert "repeated_line 1" in page.get_by_test_id("draft-tickets").inner_text()
    assert violations == []
