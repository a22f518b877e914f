"""Retrieval evaluation over a knowledge base given as a file, in temporary tables that die with the run.

The articles are chunked, embedded and indexed exactly as production does (kb/indexing.py) into TEMP tables
of this session, and searched with production's SQL pointed at them (kb/selectors.py): the deployment's
knowledge base is neither read nor written.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from kb import indexing
from kb.embeddings import Embedder, get_embedder
from kb.selectors import passages_search
from kb.services import chunk_article

EVAL_ARTICLES = "kb_eval_article"
EVAL_CHUNKS = "kb_eval_chunk"


class EvalInputError(Exception):
    pass


@dataclass(frozen=True)
class EvalArticle:
    id: str
    title: str
    body: str
    language: str


@dataclass(frozen=True)
class EvalQuery:
    query: str
    gold_id: str


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise EvalInputError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path}: cannot read ({exc})") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise EvalInputError(f"{path}:{number}: expected a JSON object")
        records.append((number, record))
    if not records:
        raise EvalInputError(f"{path}: no records")
    return records


def _text(path: Path, number: int, record: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = record.get(field, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise EvalInputError(f"{path}:{number}: {field!r} must be a {'non-empty ' if required else ''}string")
    return value


def articles_load(path: Path) -> list[EvalArticle]:
    articles: dict[str, EvalArticle] = {}
    for number, record in _records(path):
        raw_id = record.get("id")
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or not str(raw_id).strip():
            raise EvalInputError(f"{path}:{number}: 'id' must be a non-empty string or number")
        article_id = str(raw_id)
        if article_id in articles:
            raise EvalInputError(f"{path}:{number}: duplicate id {article_id!r}")
        language = _text(path, number, record, "language", required=False).strip().lower()
        if language and not (len(language) == 2 and language.isalpha()):
            raise EvalInputError(f"{path}:{number}: 'language' must be an ISO 639-1 code such as 'de', got {language!r}")
        articles[article_id] = EvalArticle(
            id=article_id, title=_text(path, number, record, "title"), body=_text(path, number, record, "body"),
            language=language,
        )
    return list(articles.values())


def queries_load(path: Path, *, article_ids: set[str]) -> list[EvalQuery]:
    queries = []
    for number, record in _records(path):
        gold = record.get("gold_id")
        if not isinstance(gold, str | int) or isinstance(gold, bool):
            raise EvalInputError(f"{path}:{number}: 'gold_id' must be a string or number")
        if str(gold) not in article_ids:
            raise EvalInputError(f"{path}:{number}: gold_id {str(gold)!r} is not an article of the knowledge base")
        queries.append(EvalQuery(query=_text(path, number, record, "query"), gold_id=str(gold)))
    return queries


def _create_tables(dim: int) -> None:
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        # Only the article columns retrieval reads. The chunk table copies the deployment's columns; its
        # vector column takes the configured provider's dimension.
        cursor.execute(
            f"CREATE TEMP TABLE {qn(EVAL_ARTICLES)} (id bigint PRIMARY KEY, slug text NOT NULL, "
            "title text NOT NULL, status text NOT NULL, audience text NOT NULL DEFAULT 'public') ON COMMIT DROP"
        )
        cursor.execute(
            f"CREATE TEMP TABLE {qn(EVAL_CHUNKS)} (LIKE {qn(indexing.CHUNK_TABLE)} INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING CONSTRAINTS) ON COMMIT DROP"
        )
        cursor.execute(f"ALTER TABLE {qn(EVAL_CHUNKS)} ALTER COLUMN embedding TYPE vector({int(dim)})")
        cursor.execute(f"ALTER TABLE {qn(EVAL_CHUNKS)} ADD PRIMARY KEY (id)")
        cursor.execute(f"CREATE INDEX ON {qn(EVAL_CHUNKS)} USING gin (search)")
        cursor.execute(f"CREATE INDEX ON {qn(EVAL_CHUNKS)} (embedding_model, embedding_dim)")


def _index(articles: list[EvalArticle], embedder: Embedder) -> tuple[int, frozenset[str]]:
    rows = []
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {connection.ops.quote_name(EVAL_ARTICLES)} (id, slug, title, status) "
            "VALUES (%s, %s, %s, 'published')",
            [(number, article.id, article.title) for number, article in enumerate(articles, 1)],
        )
    for number, article in enumerate(articles, 1):
        language = article.language or indexing.detect_language(f"{article.title}\n{article.body}")
        rows += [
            indexing.ChunkRow(
                article_id=number, article_version=1, ordinal=i, title=article.title, heading=piece.heading,
                text=piece.text, language=language,
            )
            for i, piece in enumerate(chunk_article(article.title, article.body))
        ]
    vectors = embedder.passages([indexing.passage_text(r.title, r.heading, r.text) for r in rows])
    indexing.chunks_insert(rows=rows, vectors=vectors, config=embedder.config, table=EVAL_CHUNKS)
    with connection.cursor() as cursor:
        # Built after loading (faster than growing it); ANALYZE because autovacuum never sees TEMP tables.
        cursor.execute(indexing.hnsw_index_sql(table=EVAL_CHUNKS, name=f"{EVAL_CHUNKS}_embedding_hnsw"))
        cursor.execute(f"ANALYZE {connection.ops.quote_name(EVAL_ARTICLES)}")
        cursor.execute(f"ANALYZE {connection.ops.quote_name(EVAL_CHUNKS)}")
    return len(rows), frozenset(r.language for r in rows)


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def kb_evaluate(*, articles: list[EvalArticle], queries: list[EvalQuery], k: int = 10) -> dict[str, Any]:
    if k < 1:
        raise EvalInputError("k must be at least 1")
    embedder = get_embedder()
    config = embedder.config
    results = []
    latencies: list[float] = []
    with transaction.atomic():
        _create_tables(config.dim)
        chunk_count, languages = _index(articles, embedder)
        for query in queries:
            started = time.perf_counter()
            passages = passages_search(
                query=query.query, k=k, chunk_table=EVAL_CHUNKS, article_table=EVAL_ARTICLES, embedder=embedder,
                languages=languages,
            )
            latencies.append(1000 * (time.perf_counter() - started))
            ranked = list(dict.fromkeys(p.article_slug for p in passages))
            rank = ranked.index(query.gold_id) + 1 if query.gold_id in ranked else None
            results.append({"query": query.query, "gold_id": query.gold_id, "rank": rank,
                            "top": ranked[0] if ranked else None})
        # The temporary tables go with the transaction; nothing of the run is kept.
        transaction.set_rollback(True)
    n = len(results)
    return {
        "n": n,
        "k": k,
        "hit_at_1": sum(r["rank"] == 1 for r in results) / n,
        "hit_at_5": sum(r["rank"] is not None and r["rank"] <= 5 for r in results) / n,
        "mrr": sum(1 / r["rank"] for r in results if r["rank"]) / n,
        "latency_ms": {"p50": round(_percentile(latencies, 50), 2), "p95": round(_percentile(latencies, 95), 2)},
        "embedding": {"provider": config.provider, "model": config.model, "dim": config.dim},
        "articles": len(articles),
        "chunks": chunk_count,
        "misses": [r for r in results if r["rank"] != 1],
    }
