"""Offline evaluation of classification on a labelled set, and replay of past tickets through a candidate.

Both run the same tier code as the pipeline (`triage.llm.tiers`), so a score describes what production
would do; the local engine is also evaluated in batches for its classify rate.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import OuterRef, Subquery

from triage import controls, steps
from triage.errors import ApplicationError
from triage.llm import local, tiers
from triage.models import OTHER_INTENT, URGENCY_ORDER, Correction, Ticket, TriageRun
from triage.scoring import calibration_report, report_scores

Progress = Callable[[int, int], None]
LATENCY_SAMPLE = 100  # local tickets classified one at a time (embedding included) for the latency percentiles
OPENAI_CONCURRENCY = 8


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str
    language: str = ""  # set for a ticket set: scores are reported per language too
    urgency: str = ""  # set for a ticket set that labels urgency


TICKET_FIELDS = ("subject", "body", "intent")


def read_labelled_tickets(path: Path) -> list[Labelled]:
    """A JSONL ticket set: one object per line with subject, body and intent, optionally language and urgency
    (fixtures/triage_eval/tickets.jsonl). The text is read as the pipeline reads a ticket: subject, then body."""
    if not path.is_file():
        raise ApplicationError(f"{path}: no such file")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ApplicationError(f"{path}:{number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(item, dict) or any(not isinstance(item.get(f), str) for f in TICKET_FIELDS):
            raise ApplicationError(f"{path}:{number}: each line needs string fields {', '.join(TICKET_FIELDS)}")
        urgency = item.get("urgency") or ""
        if urgency and urgency not in URGENCY_ORDER:
            raise ApplicationError(f"{path}:{number}: urgency {urgency!r} is not one of {', '.join(URGENCY_ORDER)}")
        text = f"{' '.join(item['subject'].split())}\n{item['body']}".strip()
        if text and item["intent"].strip():
            rows.append(Labelled(text, item["intent"].strip(), str(item.get("language") or ""), urgency))
    if not rows:
        raise ApplicationError(f"{path}: no tickets with a text and an intent")
    return rows


def read_labelled(path: Path, *, text_column: str = "", label_column: str = "") -> list[Labelled]:
    """A ticket set (.jsonl) or a labelled CSV (its text and label columns named)."""
    if path.suffix.lower() == ".jsonl":
        return read_labelled_tickets(path)
    if not text_column or not label_column:
        raise ApplicationError(f"{path}: a CSV needs --text-column and --label-column")
    return read_labelled_csv(path, text_column=text_column, label_column=label_column)


def read_labelled_csv(path: Path, *, text_column: str, label_column: str) -> list[Labelled]:
    """Rows with a text and a label; a literal backslash-n (common in exports) is read as a line break."""
    if not path.is_file():
        raise ApplicationError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in (text_column, label_column):
                if column not in columns:
                    raise ApplicationError(
                        f"{path}: no column {column!r}; the columns are: {', '.join(columns) or '(none)'}"
                    )
            rows = []
            for row in reader:
                text = (row.get(text_column) or "").replace("\\n", "\n").strip()
                label = (row.get(label_column) or "").strip()
                if text and label:
                    rows.append(Labelled(text, label))
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise ApplicationError(f"{path}: not a readable CSV file ({exc})") from exc
    if not rows:
        raise ApplicationError(f"{path}: no rows with both a {text_column!r} and a {label_column!r}")
    return rows


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else 0.0


@dataclass(frozen=True)
class Predicted:
    intent: str  # "" when the tier failed
    confidence: float
    urgency: str


def _local_predictions(model: local.LocalIntentModel, texts: list[str],
                       progress: Progress) -> tuple[list[Predicted], dict[str, Any]]:
    """A sample one ticket at a time (latency, embedding included), then the rest in batches (rate)."""
    started = time.perf_counter()
    latencies = []
    predicted: list[Predicted] = []
    for text in texts[:LATENCY_SAMPLE]:
        one = time.perf_counter()
        predicted += _local_batch(model, [text])
        latencies.append((time.perf_counter() - one) * 1000)
    rest = texts[LATENCY_SAMPLE:]
    for offset in range(0, len(rest), 256):
        predicted += _local_batch(model, rest[offset:offset + 256])
        progress(LATENCY_SAMPLE + min(offset + 256, len(rest)), len(texts))
    seconds = time.perf_counter() - started
    progress(len(texts), len(texts))
    return predicted, {
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "classify_per_second": round(len(texts) / seconds, 1) if seconds else None,
        "cost_usd": 0.0,
        "engine": "local",
        "model": f"{tiers.LOCAL_MODEL_NAME} ({local.CLASSIFIER_KIND})",
        "failed": 0,
    }


def _local_batch(model: local.LocalIntentModel, texts: list[str]) -> list[Predicted]:
    """What local.classify says of each text (intent, confidence, urgency), embedding the batch at once."""
    inputs = [local.model_input(t) for t in texts]
    vectors = local.embed_texts(inputs) if model.parts.meaning is not None else None
    probabilities = model.probabilities(texts, vectors)
    out = []
    for i, (text, (intent, confidence)) in enumerate(zip(texts, model.decide(probabilities), strict=True)):
        row = vectors[i:i + 1] if vectors is not None else None
        urgency = local.urgency_for(model, text, inputs[i], row, probabilities[i:i + 1], local.sentiment_of(text)[1])
        out.append(Predicted(intent, confidence, urgency))
    return out


def _tier_predictions(tier: str, labels: list[str], model: local.LocalIntentModel | None, texts: list[str],
                      progress: Progress) -> tuple[list[Predicted], dict[str, Any]]:
    """Each ticket through the tier exactly as the pipeline calls it (schema retries included)."""
    taxonomy = [tiers.IntentInfo(name, name.replace("_", " ")) for name in labels]
    if OTHER_INTENT not in labels:  # as in production, a model may say a text fits none of them
        taxonomy.append(tiers.IntentInfo(OTHER_INTENT, "fits none of the other intents"))
    prompt = controls.prompt_for(prompt_id="classify")
    done = 0

    def one(text: str) -> tiers.ClassifyOutcome:
        return tiers.classify(text=tiers.TicketText.plain("", text), taxonomy=taxonomy, local_model=model,
                              chain=[tiers.Step(tier)], prompt=prompt)

    started = time.perf_counter()
    outcomes: list[tiers.ClassifyOutcome] = []
    with ThreadPoolExecutor(OPENAI_CONCURRENCY) as pool:
        for outcome in pool.map(one, texts):
            outcomes.append(outcome)
            done += 1
            if done % 25 == 0 or done == len(texts):
                progress(done, len(texts))
    seconds = time.perf_counter() - started
    conf = tiers.tier_config(tier)
    latencies = [float(sum(c.latency_ms for c in o.calls)) for o in outcomes]
    return [Predicted(o.classification.intent, o.classification.confidence, o.classification.urgency)
            if o.classification else Predicted("", 0.0, "") for o in outcomes], {
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "classify_per_second": round(len(texts) / seconds, 1) if seconds else None,
        "cost_usd": float(sum((c.cost_usd for o in outcomes for c in o.calls), Decimal(0))),
        "engine": conf.engine,
        "model": conf.model,
        "failed": sum(o.classification is None for o in outcomes),
    }


def classification_eval(*, test: list[Labelled], train: list[Labelled] | None = None, tier: str = "local",
                        progress: Progress | None = None) -> dict[str, Any]:
    """Score a tier (or the local engine) on a labelled set.

    With `train`, a separate local model is trained on it for this run only, and the label set is taken
    from it; otherwise the deployment's taxonomy and active local model are used.
    """
    from triage.learning import local_model_active

    progress = progress or (lambda done, total: None)
    if tier not in ("local", "nano", "mini", "large"):
        raise ApplicationError(f"unknown tier {tier!r}; choose local, nano, mini or large")
    train_info: dict[str, Any] | None = None
    if train is not None:
        started = time.perf_counter()
        model: local.LocalIntentModel | None = local.LocalIntentModel.train(
            [r.text for r in train], [r.label for r in train]
        )
        labels = sorted({r.label for r in train})
        train_info = {"n": len(train), "labels": len(labels), "seconds": round(time.perf_counter() - started, 1)}
    else:
        model = local_model_active()
        labels = [i.name for i in steps.taxonomy()]
        if tier == "local" and model is None:
            raise ApplicationError("no local model is active: train one, or pass --train")
    texts = [r.text for r in test]
    truth = [r.label for r in test]
    if tier == "local" or tiers.tier_config(tier).engine == "local":
        assert model is not None
        predicted, facts = _local_predictions(model, texts, progress)
    else:
        predicted, facts = _tier_predictions(tier, labels, model, texts, progress)
    unknown = sorted(set(truth) - set(labels) - {OTHER_INTENT})
    intents = [p.intent for p in predicted]
    report = {
        **report_scores(truth, intents), **facts, "tier": tier, "train": train_info,
        "labels_not_in_label_set": unknown,
        "other_rate_in_scope": _other_rate_in_scope(truth, intents),
        "calibration": calibration_report(truth, intents, [p.confidence for p in predicted]),
    }
    if any(r.language for r in test):
        report["per_language"] = _per_language(test, intents)
    if any(r.urgency for r in test):
        report["urgency"] = _urgency_scores(test, predicted)
    return report


def _other_rate_in_scope(truth: list[str], predicted: list[str]) -> float | None:
    """The share of in-scope tickets (labelled with a real intent) that were called `other`."""
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if t != OTHER_INTENT]
    return round(sum(p == OTHER_INTENT for _, p in pairs) / len(pairs), 4) if pairs else None


def _per_language(test: list[Labelled], predicted: list[str]) -> dict[str, dict[str, Any]]:
    from sklearn.metrics import f1_score

    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(test):
        groups[row.language or "(unknown)"].append(i)
    out = {}
    for language, rows in sorted(groups.items()):
        truth = [test[i].label for i in rows]
        said = [predicted[i] for i in rows]
        out[language] = {
            "n": len(rows),
            "accuracy": round(sum(t == p for t, p in zip(truth, said, strict=True)) / len(rows), 4),
            "macro_f1": round(float(f1_score(truth, said, labels=sorted(set(truth)), average="macro",
                                             zero_division=0)), 4),
            "other_rate_in_scope": _other_rate_in_scope(truth, said),
        }
    return out


def _urgency_scores(test: list[Labelled], predicted: list[Predicted]) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    pairs = [(r.urgency, p.urgency) for r, p in zip(test, predicted, strict=True) if r.urgency]
    truth, said = [t for t, _ in pairs], [p for _, p in pairs]
    levels = list(URGENCY_ORDER)
    per_level = f1_score(truth, said, labels=levels, average=None, zero_division=0)
    return {
        "n": len(pairs),
        "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4),
        "macro_f1": round(float(f1_score(truth, said, labels=sorted(set(truth)), average="macro", zero_division=0)), 4),
        "f1_per_level": {level: round(float(f), 4) for level, f in zip(levels, per_level, strict=True)},
        # Underrated: a ticket called less urgent than it is (the costly error: it waits in the queue).
        "underrated": round(sum(URGENCY_ORDER.get(p, 0) < URGENCY_ORDER[t] for t, p in pairs) / len(pairs), 4),
    }


# --- Replay -------------------------------------------------------------------------------------

def replay_tickets(*, limit: int, days: int | None = None) -> list[Ticket]:
    """The newest classified tickets, with their production classification."""
    qs = Ticket.objects.filter(triage_runs__isnull=False).distinct().order_by("-created_at", "-id")
    if days:
        qs = qs.filter(created_at__gte=controls.whatif_since(days))
    return list(qs.select_related("intent")[:limit])


def replay(*, tier: str, prompt_version: int | None, limit: int, days: int | None = None,
           progress: Progress | None = None) -> dict[str, Any]:
    """Classify stored tickets with a candidate (a tier, a classify prompt version) and compare, per lane,
    with what production said and with what agents corrected it to."""
    from triage.learning import local_model_active

    progress = progress or (lambda done, total: None)
    if tier not in ("nano", "mini", "large", "local"):
        raise ApplicationError(f"unknown tier {tier!r}; choose nano, mini, large or local")
    prompt = controls.prompt_for(prompt_id="classify", version=prompt_version) if prompt_version else \
        controls.prompt_for(prompt_id="classify")
    tickets = replay_tickets(limit=limit, days=days)
    if not tickets:
        raise ApplicationError("there are no classified tickets to replay")
    first_run = TriageRun.objects.filter(ticket=OuterRef("pk")).order_by("created_at", "id")
    production = dict(
        Ticket.objects.filter(pk__in=[t.pk for t in tickets])
        .annotate(p=Subquery(first_run.values("intent__name")[:1])).values_list("pk", "p")
    )
    corrected: dict[int, str] = {}
    for ticket_id, value in Correction.objects.filter(ticket__in=tickets, field=Correction.Field.INTENT) \
            .order_by("created_at", "id").values_list("ticket_id", "new_value"):
        corrected[ticket_id] = value  # the latest correction wins
    model = local_model_active()
    taxonomy = steps.taxonomy()
    step = tiers.Step("nano", "local") if tier == "local" else tiers.Step(tier)

    def one(ticket: Ticket) -> tiers.ClassifyOutcome:
        text, _ = steps.ticket_text(ticket)
        return tiers.classify(text=text, taxonomy=taxonomy, local_model=model, chain=[step], prompt=prompt)

    lanes: dict[str, Counter[str]] = defaultdict(Counter)
    rows: list[dict[str, Any]] = []
    cost = Decimal(0)
    latencies: list[float] = []
    with ThreadPoolExecutor(OPENAI_CONCURRENCY) as pool:
        for i, (ticket, outcome) in enumerate(zip(tickets, pool.map(one, tickets), strict=True), 1):
            candidate = outcome.classification.intent if outcome.classification else ""
            cost += sum((c.cost_usd for c in outcome.calls), Decimal(0))
            latencies.append(float(sum(c.latency_ms for c in outcome.calls)))
            lane = ticket.lane or "unrouted"
            counts = lanes[lane]
            counts["n"] += 1
            counts["failed"] += not candidate
            prod = production.get(ticket.pk) or ""
            counts["agree_production"] += candidate == prod
            agent = corrected.get(ticket.pk)
            if agent is not None:
                counts["corrected"] += 1
                counts["agree_agents"] += candidate == agent
                counts["production_agreed_agents"] += prod == agent
            if candidate != prod or (agent is not None and candidate != agent):
                rows.append({"ticket_id": ticket.pk, "token": ticket.token, "subject": ticket.subject[:120],
                             "lane": lane, "production": prod, "candidate": candidate, "agent": agent})
            if i % 10 == 0 or i == len(tickets):
                progress(i, len(tickets))
    per_lane = {}
    for lane, c in sorted(lanes.items()):
        per_lane[lane] = {
            "n": c["n"], "failed": c["failed"],
            "agreement_with_production": round(c["agree_production"] / c["n"], 4),
            "corrected": c["corrected"],
            "agreement_with_agents": round(c["agree_agents"] / c["corrected"], 4) if c["corrected"] else None,
            "production_agreement_with_agents":
                round(c["production_agreed_agents"] / c["corrected"], 4) if c["corrected"] else None,
        }
    conf = tiers.tier_config(step.tier, engine_override=step.engine_override)
    return {
        "n": len(tickets), "tier": tier, "engine": conf.engine, "model": conf.model,
        "prompt": {"id": prompt.id, "version": prompt.version},
        "per_lane": per_lane, "disagreements": rows[:500], "cost_usd": float(cost),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
    }
