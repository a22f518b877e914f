"""Triage on whole tickets in several languages: the demo's local model through `manage.py triage_eval`.

The model is the one the demo trains (Bitext's taxonomy examples plus the store's own utterances and
labelled tickets, `triage.demo.labelled_load`), trained on this benchmark's own database and retrained only
when that data changes. It is scored by the real command (`triage_eval --test … --no-save`) on three ticket
sets it never trained on:

  tickets   fixtures/triage_eval/tickets.jsonl: 180 tickets, 30 in each of en, es, fr, de, pt, it (every
            intent once per language, 3 `other`)
  varied    fixtures/triage_eval/varied.jsonl: 84 tickets written from random seeds (persona, shape,
            intent, urgency), en, es, fr, de, pt, it and nl
  store     fixtures/draft_eval/store_tickets.jsonl: the 42 tickets of the draft-quality set, written
            by another author, mostly English

Per set it prints accuracy, macro-F1, `other` for in-scope tickets and for out-of-scope ones, accuracy per
language, expected calibration error with accuracy per confidence band, and urgency macro-F1 of the engine
beside the keyword rules alone. It also prints how near each set lies to the training tickets (the mean
cosine similarity of each ticket to its nearest training ticket, and how often that neighbour has the
same intent): a set much nearer than another measures recall of familiar tickets more than reading.
Last, the classify rate on the set's tickets: one at a time through `local.classify`, as the pipeline runs it.

Usage (from the repository root; the first run embeds ~7,500 examples, a few minutes on 2 cores):
    .venv/bin/python bench/ticket_triage.py [--only tickets,varied,store] [--retrain]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, compare, results_load, results_save, setup_django

SETS = {
    "tickets": ROOT / "fixtures" / "triage_eval" / "tickets.jsonl",
    "varied": ROOT / "fixtures" / "triage_eval" / "varied.jsonl",
    "store": ROOT / "fixtures" / "draft_eval" / "store_tickets.jsonl",
}
HEADLINE = ("accuracy", "macro_f1", "ece", "urgency_macro_f1", "classify_per_s")


def _model(*, retrain: bool = False) -> dict[str, Any]:
    """The demo's taxonomy and labelled data, and a model trained on them (again only if they changed, or
    if told to: after a change to the engine's code)."""
    from triage import demo, learning
    from triage.models import Intent, LocalModel

    if not Intent.objects.exists():
        demo.taxonomy_load(intents_path=ROOT / "fixtures" / "bitext" / "intents.json",
                           utterances_path=ROOT / "fixtures" / "bitext" / "utterances.csv")
    added = demo.labelled_load(utterances_path=ROOT / "fixtures" / "store" / "utterances.csv",
                               tickets_path=ROOT / "fixtures" / "store" / "labelled_tickets.jsonl")
    if added:
        print(f"added {added} of the store's labelled examples", file=sys.stderr, flush=True)
    active = LocalModel.objects.filter(active=True).first()
    if retrain or active is None or active.metrics.get("fingerprint") != learning.data_fingerprint():
        print("training the demo's model …", file=sys.stderr, flush=True)
        active = learning.local_model_train(trigger=LocalModel.Trigger.COMMAND, force=True)
    metrics = active.metrics
    return {"version": active.version, "train_seconds": active.train_seconds, "examples": active.n_examples,
            "temperature": metrics.get("temperature"), "held_back_ece": metrics.get("calibration", {}).get("ece"),
            "urgency_learned": metrics.get("urgency", {}).get("learned")}


def _nearness(tickets: list[dict[str, Any]]) -> dict[str, float]:
    """How near a set lies to the training tickets: nearest-neighbour cosine similarity and intent agreement."""
    import numpy as np

    from triage.llm import local
    from triage.models import IntentExample

    train = list(IntentExample.objects.filter(source=IntentExample.Source.TICKET)
                 .values_list("embedding", "intent__name"))
    if not train:
        return {}
    matrix = np.asarray([e for e, _ in train], dtype=np.float32)
    texts = [local.model_input(f"{' '.join(t['subject'].split())}\n{t['body']}") for t in tickets]
    similarity = local.embed_texts(texts) @ matrix.T
    nearest = similarity.argmax(axis=1)
    agree = [train[j][1] == t["intent"] for j, t in zip(nearest, tickets, strict=True)]
    return {"nearest_similarity": round(float(similarity.max(axis=1).mean()), 3),
            "nearest_same_intent": round(sum(agree) / len(agree), 3)}


def _rules_urgency(tickets: list[dict[str, Any]]) -> float:
    from sklearn.metrics import f1_score

    from triage.llm import local
    from triage.llm.urgency import urgency_by_rules

    texts = [f"{t['subject']}\n{t['body']}".strip() for t in tickets]
    predicted = [urgency_by_rules(text, local.sentiment_of(text)[1]) for text in texts]
    return round(float(f1_score([t["urgency"] for t in tickets], predicted, average="macro", zero_division=0)), 4)


def _classify_rate(tickets: list[dict[str, Any]]) -> float:
    """Tickets per second through `local.classify` one at a time, as the pipeline's classify step runs it
    (intent, urgency, sentiment, language, summary), none of them embedded before in this process."""
    from triage.learning import local_model_active
    from triage.llm import local

    model = local_model_active()
    if model is None:
        return 0.0
    local.classify(model, subject="warm-up", body="loads the embedding, sentiment and language models")
    local.embeddings_forget()
    started = time.perf_counter()
    for ticket in tickets:
        local.classify(model, subject=ticket["subject"], body=ticket["body"])
    return round(len(tickets) / (time.perf_counter() - started), 2)


def _score(name: str, path: Path, folder: Path) -> dict[str, Any]:
    from django.core.management import call_command

    tickets = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    output = folder / f"{name}.json"
    started = time.perf_counter()
    call_command("triage_eval", "--test", str(path), "--no-save", "--output", str(output), stdout=sys.stderr)
    report = json.loads(output.read_text())
    in_scope = [t for t in tickets if t["intent"] != "other"]
    out_of_scope = len(tickets) - len(in_scope)
    per_label = report["per_label"].get("other", {})
    return {
        "n": report["n"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "other_in_scope": report["other_rate_in_scope"],
        "other_recall": per_label.get("recall") if out_of_scope else None,
        "per_language": {lang: v["accuracy"] for lang, v in sorted(report["per_language"].items())},
        "ece": report["calibration"]["ece"],
        "bands": {f"{b['low']:.1f}-{b['high']:.1f}": [b["n"], b["accuracy"]] for b in report["calibration"]["bands"]},
        "urgency_macro_f1": report["urgency"]["macro_f1"], "urgency_rules_macro_f1": _rules_urgency(tickets),
        "urgency_underrated": report["urgency"].get("underrated"),
        **_nearness(tickets), "classify_per_s": _classify_rate(tickets),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SETS))
    parser.add_argument("--retrain", action="store_true", help="train the model again although its data is unchanged")
    args = parser.parse_args()
    services = setup_django("tierdesk_bench_triage")
    try:
        results: dict[str, Any] = {"model": _model(retrain=args.retrain)}
        print(f"model: {results['model']}")
        with tempfile.TemporaryDirectory(prefix="tierdesk-triage-") as tmp:
            for name in args.only.split(","):
                if name not in SETS:
                    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")
                results[name] = figures = _score(name, SETS[name], Path(tmp))
                print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        previous = results_load("ticket_triage")
        results_save("ticket_triage", results)
        for name in args.only.split(","):
            if name in previous:
                print(f"{name}:")
                compare(previous[name], results[name], HEADLINE)
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
