"""Offline evals from the command line and the admin UI, and replay of stored tickets through a candidate."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from tests.conftest import wait_for
from tests.support import builders, data
from tests.support.scripted_openai import Reply, ScriptedOpenAI, completion, tier_settings
from triage import corrections
from triage.models import Correction, EvalRun, Intent, Job, LocalModel, Ticket, TriageRun

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INTENTS = ("cancel_order", "get_refund", "recover_password", "track_order", "change_shipping_address")


def _bitext_rows() -> list[dict[str, str]]:
    with (FIXTURES / "bitext" / "utterances.csv").open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["intent"] in INTENTS]


def _write(path: Path, rows: list[dict[str, str]], text: str = "text", label: str = "label") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[text, label])
        writer.writeheader()
        writer.writerows({text: r["utterance"], label: r["intent"]} for r in rows)
    return path


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, Path]:
    by_intent: dict[str, list[dict[str, str]]] = {}
    for row in _bitext_rows():
        by_intent.setdefault(row["intent"], []).append(row)
    train = [r for rows in by_intent.values() for r in rows[30:]]
    test = [r for rows in by_intent.values() for r in rows[:30]]
    return _write(tmp_path / "train.csv", train), _write(tmp_path / "test.csv", test)


@pytest.mark.django_db
@pytest.mark.slow  # trains a model on the held-out split
def test_triage_eval_trains_a_model_for_the_run_only_and_writes_its_report(split: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    train, test = split
    out = StringIO()
    call_command("triage_eval", "--test", str(test), "--text-column", "text", "--label-column", "label",
                 "--train", str(train), "--output", str(tmp_path / "report.json"), stdout=out, stderr=StringIO())
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 150 and report["accuracy"] > 0.9 and report["macro_f1"] > 0.9
    assert set(report["per_label"]) == set(INTENTS)
    assert sum(v["support"] for v in report["per_label"].values()) == 150
    matrix = report["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == 150
    correct = sum(matrix[i][i] for i in range(len(INTENTS)))
    assert correct / 150 == pytest.approx(report["accuracy"], abs=1e-3)
    assert report["engine"] == "local" and report["cost_usd"] == 0 and report["latency_ms"]["p95"] > 0
    assert report["train"]["labels"] == len(INTENTS) and report["classify_per_second"] > 0
    assert 0 <= report["other_rate"] < 0.1
    assert json.loads(out.getvalue())["macro_f1"] == report["macro_f1"]
    # The deployment's model is untouched, and the run is kept for the evals page.
    assert not LocalModel.objects.exists()
    assert EvalRun.objects.get().report["macro_f1"] == report["macro_f1"]


@pytest.mark.django_db
def test_triage_eval_refuses_bad_input_with_a_clear_message(split: tuple[Path, Path], tmp_path: Path) -> None:
    _train, test = split
    with pytest.raises(CommandError, match="no column 'utterance'; the columns are: text, label"):
        call_command("triage_eval", "--test", str(test), "--text-column", "utterance", "--label-column", "label")
    with pytest.raises(CommandError, match="no such file"):
        call_command("triage_eval", "--test", str(tmp_path / "missing.csv"), "--text-column", "t",
                     "--label-column", "l")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("triage_eval", "--test", str(tmp_path / "latin1.csv"), "--text-column", "text",
                     "--label-column", "label")
    with pytest.raises(CommandError, match="no local model is active"):
        call_command("triage_eval", "--test", str(test), "--text-column", "text", "--label-column", "label")
    assert not EvalRun.objects.exists()


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as scripted:
        yield scripted


def _classified(intent: str) -> Reply:
    return completion({"intent": intent, "urgency": "normal", "sentiment": "neutral", "language": "en",
                       "confidence": 0.9, "summary": "s"}, tokens_in=200, tokens_out=20)


@pytest.mark.django_db
def test_triage_eval_on_an_openai_tier_reports_cost_and_failures(server: ScriptedOpenAI, split: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    train, _ = split
    test = _write(tmp_path / "small.csv", [{"utterance": "cancel my order please", "intent": "cancel_order"},
                                           {"utterance": "I want a refund", "intent": "get_refund"},
                                           {"utterance": "where is my parcel", "intent": "track_order"}])
    # Three tickets in flight at once take the first three replies; the one given a schema-invalid answer
    # is retried once on the tier, gets another, and fails.
    server.script(_classified("cancel_order"), _classified("cancel_order"), completion({"intent": 1}),
                  completion({"still": "wrong"}))
    with override_settings(TIERS=tier_settings(server, openai_tiers=("nano",))):
        call_command("triage_eval", "--test", str(test), "--text-column", "text", "--label-column", "label",
                     "--train", str(train), "--tier", "nano", "--output", str(tmp_path / "r.json"),
                     stdout=StringIO(), stderr=StringIO())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["engine"] == "openai" and report["model"] and report["tier"] == "nano"
    assert report["n"] == 3 and report["failed"] == 1
    assert report["cost_usd"] > 0
    # The model saw the train file's label set as its allowed intents.
    schema = server.requests[0]["json"]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]["intent"]["enum"]) == {*INTENTS, "other"}


@pytest.mark.django_db
def test_replay_compares_a_candidate_with_production_and_agents_per_lane(admin_user: Any) -> None:
    data.seed_small()
    track, refund = Intent.objects.get(name="track_order"), Intent.objects.get(name="get_refund")
    texts = [("Track my order", "I want to track my order, where is it?", refund, "mini"),
             ("Refund please", "The lamp came broken and I want my money back.", refund, "mini"),
             ("Parcel missing", "Tracking says delivered but nothing is here.", track, "large")]
    for subject, body, production, lane in texts:
        ticket = builders.ticket(subject=subject, body=body, from_email="c@example.com", intent=production,
                                       lane=lane, status="awaiting_review")
        TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=production,
                                 urgency="normal", sentiment="neutral", language="en", confidence=0.9, summary="s")
    first = Ticket.objects.get(subject="Track my order")
    corrections.ticket_correct(ticket=first, user=admin_user, field="intent", value="track_order")

    out = StringIO()
    call_command("triage_replay", "--tier", "local", "--limit", "10", stdout=out)
    report = EvalRun.objects.get(kind="replay").report

    mini, large = report["per_lane"]["mini"], report["per_lane"]["large"]
    assert (mini["n"], large["n"], mini["corrected"]) == (2, 1, 1)
    # The local engine reads "track my order" as an order-tracking question, as the agent did.
    assert mini["agreement_with_agents"] == 1.0 and mini["production_agreement_with_agents"] == 0.0
    disagreement = next(d for d in report["disagreements"] if d["ticket_id"] == first.pk)
    assert (disagreement["production"], disagreement["agent"]) == ("get_refund", "track_order")
    assert report["engine"] == "local" and json.loads(out.getvalue())["n"] == 3
    assert Correction.objects.count() == 1


@pytest.mark.django_db
def test_the_evals_page_shows_runs_and_refuses_a_bad_upload(client: Client, admin_user: Any,
                                                            split: tuple[Path, Path]) -> None:
    train, test = split
    call_command("triage_eval", "--test", str(test), "--text-column", "text", "--label-column", "label",
                 "--train", str(train), "--name", "baseline", stdout=StringIO(), stderr=StringIO())
    run = EvalRun.objects.get()
    client.force_login(admin_user)
    page = client.get("/settings/evals").content.decode()
    assert "baseline" in page and 'id="eval-charts"' in page and "chart-4.6.1.umd.min.js" in page
    detail = client.get(f"/settings/evals/{run.pk}").content.decode()
    assert "recover_password" in detail and 'data-testid="confusion"' in detail

    with test.open("rb") as handle:
        response = client.post("/settings/evals/start", {"test_file": handle, "text_column": "body",
                                                         "label_column": "label", "tier": "local"}, follow=True)
    assert "no column &#x27;body&#x27;" in response.content.decode()
    assert not Job.objects.exists()
    with test.open("rb") as handle:
        client.post("/settings/evals/start", {"test_file": handle, "text_column": "text", "label_column": "label",
                                              "tier": "local", "name": "from the UI"})
    job = Job.objects.get()
    assert (job.kind, job.status, job.params["name"]) == ("triage_eval", "queued", "from the UI")
    bad = client.post("/settings/evals/replay", {"tier": "mini", "limit": "0"}, follow=True)
    assert "between 1 and 5,000" in bad.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_an_eval_started_in_the_ui_runs_on_the_worker(celery_worker: None, client: Client, admin_user: Any,
                                                     split: tuple[Path, Path]) -> None:
    train, test = split
    client.force_login(admin_user)
    with test.open("rb") as t, train.open("rb") as tr:
        client.post("/settings/evals/start", {"test_file": t, "train_file": tr, "text_column": "text",
                                              "label_column": "label", "tier": "local"})
    job = Job.objects.get()
    wait_for(lambda: Job.objects.get(pk=job.pk).status in {"done", "failed"}, timeout=120)
    job.refresh_from_db()
    assert (job.status, job.error) == ("done", "")
    assert job.eval_run.report["macro_f1"] > 0.9 and job.done == job.total == 150
