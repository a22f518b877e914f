"""Retrieval quality and latency of the production hybrid search, at the KB's size and at 100,000 chunks.

    .venv/bin/python bench/retrieval.py [--chunks 100000] [--skip-large]

Uses the embedded PostgreSQL (started if needed) with its own database, `tierdesk_bench`, and only
TEMP tables (kb/evaluation.py): nothing is kept. Prints, for the ABCD guidelines (fixtures/kb) and the
questions in fixtures/kb/abcd_queries.jsonl:

  * hit@1, hit@5, MRR and latency p50/p95 of `kb_eval` (query embedding + SQL), with the configured provider;
  * hybrid top-10 SQL latency p50/p95 (query vectors embedded beforehand; the lexical leg ranks every
    chunk that shares a term with the question, which dominates at 100,000 chunks) and recall@10 of the HNSW index
    against exact search, at the KB's size and after padding the index with synthetic chunks to --chunks
    (real chunk vectors with gaussian noise, texts drawn from the KB's vocabulary: fine for latency, and a
    clustered, realistic case for HNSW recall).

Results are written to bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

import numpy as np
from _common import ROOT, percentile, setup_django
from _common import report as report_figures

KB = ROOT / "fixtures" / "kb" / "abcd_articles.jsonl"
QUERIES = ROOT / "fixtures" / "kb" / "abcd_queries.jsonl"


def pct(values: list[float], q: int) -> float:
    return round(percentile(values, q / 100), 2)


class PrecomputedQueries:
    """The configured embedder, with query vectors computed once, so only the SQL is timed."""

    def __init__(self, embedder: Any, texts: list[str]) -> None:
        self.config = embedder.config
        self._inner = embedder
        self._vectors = {t: embedder.query(t) for t in texts}

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._inner.passages(texts)

    def query(self, text: str) -> np.ndarray:
        return self._vectors[text]


def measure(embedder: PrecomputedQueries, queries: list[str], languages: frozenset[str], *, repeat: int = 3) -> dict[str, Any]:
    from django.db import connection

    from kb.evaluation import EVAL_ARTICLES, EVAL_CHUNKS
    from kb.indexing import vector_literal
    from kb.selectors import passages_search

    latencies = []
    for _ in range(repeat):
        for query in queries:
            started = time.perf_counter()
            passages_search(query=query, k=10, chunk_table=EVAL_CHUNKS, article_table=EVAL_ARTICLES,
                            embedder=embedder, languages=languages)
            latencies.append(1000 * (time.perf_counter() - started))
    recall: dict[str, float] = {}
    nn = f"SELECT id FROM {EVAL_CHUNKS} ORDER BY embedding <=> %s::vector LIMIT 10"
    with connection.cursor() as cursor:
        exact = []
        cursor.execute("SET enable_indexscan = off")
        for query in queries:
            cursor.execute(nn, [vector_literal(embedder.query(query))])
            exact.append({row[0] for row in cursor.fetchall()})
        cursor.execute("RESET enable_indexscan")
        for ef in (40, 100):
            cursor.execute(f"SET hnsw.ef_search = {ef}")
            found = 0
            for query, truth in zip(queries, exact, strict=True):
                cursor.execute(nn, [vector_literal(embedder.query(query))])
                found += len(truth & {row[0] for row in cursor.fetchall()})
            recall[f"ef_search={ef}"] = round(found / (10 * len(queries)), 4)
        cursor.execute("RESET hnsw.ef_search")
        cursor.execute(f"SELECT count(*) FROM {EVAL_CHUNKS}")
        chunks = cursor.fetchone()[0]
    return {"chunks": chunks, "hybrid_top10_sql_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95)},
            "hnsw_recall_at_10": recall}


def pad(target: int, seed: int = 7) -> None:
    from django.db import connection

    from kb.embeddings import get_embedder
    from kb.evaluation import EVAL_ARTICLES, EVAL_CHUNKS
    from kb.indexing import ChunkRow, chunks_insert

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT text, embedding::text FROM {EVAL_CHUNKS}")
        base = [(text, np.array(json.loads(vec), dtype=np.float32)) for text, vec in cursor.fetchall()]
        cursor.execute(f"SELECT count(*) FROM {EVAL_CHUNKS}")
        have = cursor.fetchone()[0]
        cursor.executemany(f"INSERT INTO {EVAL_ARTICLES} (id, slug, title, status) VALUES (%s, %s, %s, 'published')",
                           [(10_000 + i, f"synthetic/{i}", f"Synthetic article {i}") for i in range(1000)])
        cursor.execute(f"DROP INDEX IF EXISTS {EVAL_CHUNKS}_embedding_hnsw")
    vocabulary = sorted({w for text, _ in base for w in text.split() if w.isalpha()})
    config = get_embedder().config
    batch = 5000
    for start in range(have, target, batch):
        size = min(batch, target - start)
        rows, vectors = [], []
        for i in range(size):
            _, vector = base[pick.randrange(len(base))]
            noisy = vector + rng.normal(0, 0.6 / np.sqrt(vector.size), vector.size).astype(np.float32)
            vectors.append(noisy / np.linalg.norm(noisy))
            words = pick.choices(vocabulary, k=60)
            rows.append(ChunkRow(article_id=10_000 + (start + i) % 1000, article_version=1, ordinal=start + i,
                                 title=" ".join(words[:4]), heading="", text=" ".join(words), language="en"))
        chunks_insert(rows=rows, vectors=np.stack(vectors), config=config, table=EVAL_CHUNKS)
        print(f"  {start + size} chunks", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        from kb.indexing import hnsw_index_sql

        cursor.execute(hnsw_index_sql(table=EVAL_CHUNKS, name=f"{EVAL_CHUNKS}_embedding_hnsw"))
        cursor.execute(f"ANALYZE {EVAL_CHUNKS}")
        cursor.execute(f"ANALYZE {EVAL_ARTICLES}")
    print(f"  HNSW index built in {time.perf_counter() - started:.1f} s", flush=True)
    from kb import selectors

    selectors._stats_cache.clear()  # the index grew: read its new lexeme statistics


def explain(embedder: PrecomputedQueries, query: str) -> str:
    from django.conf import settings
    from django.db import connection

    from kb.evaluation import EVAL_ARTICLES, EVAL_CHUNKS
    from kb.indexing import search_config, vector_literal
    from kb.selectors import CANDIDATES, RRF_K, lexical_terms, or_query, search_sql

    with connection.cursor() as cursor:
        terms = lexical_terms(cursor, text=query, config=search_config("en"), table=EVAL_CHUNKS)
    params = {"text": query, "config": search_config("en"), "tsquery": or_query(terms), "embedding": vector_literal(embedder.query(query)),
              "model": embedder.config.key, "dim": embedder.config.dim, "chunk_table": EVAL_CHUNKS,
              "candidates": CANDIDATES, "rrf_k": RRF_K, "k": 10,
              "row_budget": settings.KB_LEXICAL_ROW_BUDGET or None}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + search_sql(chunk_table=EVAL_CHUNKS, article_table=EVAL_ARTICLES), params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    setup_django("tierdesk_bench")

    from django.db import transaction

    from kb.embeddings import get_embedder
    from kb.evaluation import _create_tables, _index, articles_load, kb_evaluate, queries_load

    articles = articles_load(KB)
    queries = queries_load(QUERIES, article_ids={a.id for a in articles})
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    report = kb_evaluate(articles=articles, queries=queries, k=10)
    figures: dict[str, Any] = {"kb_eval": {key: value for key, value in report.items() if key != "misses"}}
    print(json.dumps(figures["kb_eval"], indent=2), flush=True)
    for miss in report["misses"]:
        print(f"  miss: {miss['query']!r} gold {miss['gold_id']} at {miss['rank']}, top {miss['top']}")

    embedder = PrecomputedQueries(get_embedder(), [q.query for q in queries])
    texts = [q.query for q in queries]
    with transaction.atomic():
        _create_tables(embedder.config.dim)
        _, languages = _index(articles, embedder)  # type: ignore[arg-type]
        figures["kb_size"] = measure(embedder, texts, languages)
        print(json.dumps(figures["kb_size"], indent=2), flush=True)
        if not args.skip_large:
            print(f"padding to {args.chunks} chunks…", flush=True)
            pad(args.chunks)
            figures["large"] = measure(embedder, texts, languages)
            print(json.dumps(figures["large"], indent=2), flush=True)
            plan = explain(embedder, texts[0])
            figures["large"]["plan_uses"] = {
                "gin": "kb_eval_chunk_search_idx" in plan or "search_idx" in plan,
                "hnsw": "embedding_hnsw" in plan,
            }
            print("\n".join(line.split(" on ")[0] + " on " + line.split(" on ")[1].split()[0]
                            for line in plan.splitlines() if " Scan using " in line or "Bitmap Index Scan" in line))
        transaction.set_rollback(True)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    report_figures("retrieval", figures, [
        "kb_eval.hit_at_1", "kb_eval.mrr", "kb_size.hybrid_top10_sql_ms.p50",
        "large.hybrid_top10_sql_ms.p50", "large.hybrid_top10_sql_ms.p95"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
