from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from kb.embeddings import Embedder, EmbeddingError, get_embedder
from kb.indexing import (
    ARTICLE_TABLE,
    CHUNK_TABLE,
    detect_language,
    index_languages,
    search_config,
    vector_literal,
)

logger = logging.getLogger(__name__)

# Reciprocal-rank fusion constant from Cormack et al. (2009); 60 is the value the paper found robust.
RRF_K = 60
CANDIDATES = 40


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    article_id: int
    article_slug: str
    article_title: str
    article_version: int
    heading: str
    text: str
    score: float
    similarity: float
    lexical_rank: int | None
    vector_rank: int | None


# One statement for the deployment's index and for kb_eval's temporary one: {chunk} and {article} name the
# tables. Only chunks embedded by the configured model and dimension take part in the vector leg; the rest
# (awaiting re-embedding) still match by full text.
_SQL = """
WITH q AS (
    -- An OR of the query's terms: a ticket is long, and AND semantics would match nothing. Parsed with the
    -- text-search configuration of the query's language, so its words stem as the chunks' words did.
    SELECT NULLIF(replace(plainto_tsquery(%(config)s::regconfig, unaccent(%(text)s))::text, '&', '|'), '')::tsquery
           AS tsq
),
lexical AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.search, q.tsq) DESC, c.id) AS rank
    FROM {chunk} c JOIN {article} a ON a.id = c.article_id, q
    WHERE q.tsq IS NOT NULL AND c.search @@ q.tsq AND a.status = 'published'
    ORDER BY ts_rank_cd(c.search, q.tsq) DESC, c.id
    LIMIT %(candidates)s
),
vector AS (
    SELECT c.id, row_number() OVER (ORDER BY c.embedding <=> %(embedding)s::vector, c.id) AS rank
    FROM {chunk} c JOIN {article} a ON a.id = c.article_id
    WHERE a.status = 'published' AND c.embedding_model = %(model)s AND c.embedding_dim = %(dim)s
      -- Evaluated once: the HNSW scan would fail on a column of another dimension (before re-embedding
      -- alters it), and there is nothing to compare without a query vector.
      AND %(embedding)s::vector IS NOT NULL
      AND (SELECT atttypmod FROM pg_attribute WHERE attrelid = %(chunk_table)s::regclass AND attname = 'embedding')
          = %(dim)s
    ORDER BY c.embedding <=> %(embedding)s::vector, c.id
    LIMIT %(candidates)s
),
fused AS (
    SELECT id, SUM(1.0 / (%(rrf_k)s + rank)) AS score,
           MIN(rank) FILTER (WHERE src = 'l') AS lexical_rank,
           MIN(rank) FILTER (WHERE src = 'v') AS vector_rank
    FROM (SELECT id, rank, 'l' AS src FROM lexical UNION ALL SELECT id, rank, 'v' FROM vector) both_lists
    GROUP BY id
)
SELECT c.id, a.id, a.slug, a.title, c.article_version, c.heading, c.text, f.score,
       CASE WHEN f.vector_rank IS NOT NULL THEN 1 - (c.embedding <=> %(embedding)s::vector) ELSE 0 END
           AS similarity,
       f.lexical_rank, f.vector_rank
FROM fused f JOIN {chunk} c ON c.id = f.id JOIN {article} a ON a.id = c.article_id
ORDER BY f.score DESC, c.id
LIMIT %(k)s
"""


def search_sql(*, chunk_table: str, article_table: str) -> str:
    qn = connection.ops.quote_name
    return _SQL.format(chunk=qn(chunk_table), article=qn(article_table))


def query_language(*, text: str, language: str | None, among: frozenset[str]) -> str:
    """The caller's language (a ticket's classified language) when the KB has articles in it, else the
    query's as detected among the KB's languages: a short query is easily mistaken for another language."""
    if language and language.lower() in among:
        return language.lower()
    return detect_language(text, among=among)


def passages_search(
    *,
    query: str,
    k: int,
    chunk_table: str,
    article_table: str,
    embedder: Embedder,
    language: str | None = None,
    languages: frozenset[str] | None = None,
) -> list[Passage]:
    if not query.strip():
        return []
    among = languages if languages is not None else index_languages(table=chunk_table)
    config = embedder.config
    try:
        vector = vector_literal(embedder.query(query))
    except EmbeddingError:
        # Triage goes on with full text alone rather than stopping at an unreachable embedding endpoint.
        logger.warning("query embedding failed; searching by full text only", exc_info=True)
        vector = None
    params = {
        "text": query,
        "config": search_config(query_language(text=query, language=language, among=among)),
        "embedding": vector,
        "model": config.key,
        "dim": config.dim,
        "chunk_table": chunk_table,
        "candidates": CANDIDATES,
        "rrf_k": RRF_K,
        "k": k,
    }
    with connection.cursor() as cursor:
        cursor.execute(search_sql(chunk_table=chunk_table, article_table=article_table), params)
        rows = cursor.fetchall()
    return [
        Passage(
            chunk_id=r[0], article_id=r[1], article_slug=r[2], article_title=r[3], article_version=r[4],
            heading=r[5], text=r[6], score=float(r[7]), similarity=float(r[8]),
            lexical_rank=r[9], vector_rank=r[10],
        )
        for r in rows
    ]


def kb_search(*, query: str, k: int | None = None, language: str | None = None) -> list[Passage]:
    """Hybrid retrieval: PostgreSQL full text and pgvector cosine, fused by reciprocal rank."""
    return passages_search(
        query=query, k=k or settings.KB_TOP_K, chunk_table=CHUNK_TABLE, article_table=ARTICLE_TABLE,
        embedder=get_embedder(), language=language,
    )
