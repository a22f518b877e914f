from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F

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
    # "public": a draft may quote and cite it; "internal": guidance for agents and models, never quoted.
    audience: str
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
    -- An OR of the query's selective terms (see lexical_terms): a ticket is long, and AND semantics would
    -- match nothing. The terms were stemmed with the query language's configuration, as the chunks' were.
    SELECT NULLIF(%(tsquery)s, '')::tsquery AS tsq
),
matched AS (
    -- At most the row budget of matches is ranked (ts_rank_cd reads each one): with the rarest terms
    -- chosen this holds every match in practice, and when it does not, the vector leg still ranks all.
    SELECT c.id, c.search
    FROM {chunk} c JOIN {article} a ON a.id = c.article_id, q
    WHERE q.tsq IS NOT NULL AND c.search @@ q.tsq AND a.status = 'published'
      AND (%(audience)s::text IS NULL OR a.audience = %(audience)s::text)
    LIMIT %(row_budget)s
),
lexical AS (
    SELECT m.id, row_number() OVER (ORDER BY ts_rank_cd(m.search, q.tsq) DESC, m.id) AS rank
    FROM matched m, q
    ORDER BY ts_rank_cd(m.search, q.tsq) DESC, m.id
    LIMIT %(candidates)s
),
vector AS (
    SELECT c.id, row_number() OVER (ORDER BY c.embedding <=> %(embedding)s::vector, c.id) AS rank
    FROM {chunk} c JOIN {article} a ON a.id = c.article_id
    WHERE a.status = 'published' AND c.embedding_model = %(model)s AND c.embedding_dim = %(dim)s
      AND (%(audience)s::text IS NULL OR a.audience = %(audience)s::text)
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
SELECT c.id, a.id, a.slug, a.title, c.article_version, a.audience, c.heading, c.text, f.score,
       CASE WHEN f.vector_rank IS NOT NULL THEN 1 - (c.embedding <=> %(embedding)s::vector) ELSE 0 END
           AS similarity,
       f.lexical_rank, f.vector_rank
FROM fused f JOIN {chunk} c ON c.id = f.id JOIN {article} a ON a.id = c.article_id
ORDER BY f.score DESC, c.id
LIMIT %(k)s
"""


@dataclass(frozen=True)
class QueryVector:
    literal: str | None  # None: the embedding failed, full text alone ranks


def query_embed(*, query: str, embedder: Embedder | None = None) -> QueryVector:
    try:
        return QueryVector(vector_literal((embedder or get_embedder()).query(query)))
    except EmbeddingError:
        # Triage goes on with full text alone rather than stopping at an unreachable embedding endpoint.
        logger.warning("query embedding failed; searching by full text only", exc_info=True)
        return QueryVector(None)


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
    audience: str | None = None,
    query_vector: QueryVector | None = None,
) -> list[Passage]:
    """`audience` keeps one audience's articles (None: both). `query_vector`, from query_embed(), saves
    embedding the same query again for a second search."""
    if not query.strip():
        return []
    among = languages if languages is not None else index_languages(table=chunk_table)
    config = embedder.config
    vector = (query_vector if query_vector is not None else query_embed(query=query, embedder=embedder)).literal
    params = {
        "text": query,
        "config": search_config(query_language(text=query, language=language, among=among)),
        "embedding": vector,
        "model": config.key,
        "dim": config.dim,
        "chunk_table": chunk_table,
        "audience": audience,
        "candidates": CANDIDATES,
        "row_budget": settings.KB_LEXICAL_ROW_BUDGET or None,  # LIMIT NULL: no limit
        "rrf_k": RRF_K,
        "k": k,
    }
    with connection.cursor() as cursor:
        params["tsquery"] = or_query(lexical_terms(cursor, text=query, config=params["config"], table=chunk_table))
        cursor.execute(search_sql(chunk_table=chunk_table, article_table=article_table), params)
        rows = cursor.fetchall()
    return [
        Passage(
            chunk_id=r[0], article_id=r[1], article_slug=r[2], article_title=r[3], article_version=r[4],
            audience=r[5], heading=r[6], text=r[7], score=float(r[8]), similarity=float(r[9]),
            lexical_rank=r[10], vector_rank=r[11],
        )
        for r in rows
    ]


# --- Bounding the full-text leg ---------------------------------------------------------------------
#
# An OR of every term in a long ticket matches most of a large index through its common words, and the
# leg then ranks every match (ts_rank_cd has no index): 1.5 s at 100,000 chunks. So the leg keeps the
# query's rarest terms, rarest first, while the rows they can match (from PostgreSQL's own statistics of
# the tsvector column: ANALYZE records each frequent lexeme's share of rows) stay within a budget, and
# always at least a few terms. ts_rank_cd weighs no term by rarity, so the common words dropped were
# adding matches, not ranking signal. An index too small for the budget keeps every term.

MIN_TERMS = 3
STATS_SECONDS = 300.0
_stats_cache: dict[str, tuple[float, float, dict[str, float], float]] = {}


def _column_stats(cursor: Any, table: str) -> tuple[float, dict[str, float], float]:
    """(rows in the table, frequent lexeme → share of rows, share below which lexemes are not listed)."""
    now = time.monotonic()
    cached = _stats_cache.get(table)
    if cached is not None and now - cached[0] < STATS_SECONDS:
        return cached[1], cached[2], cached[3]
    cursor.execute(
        "SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs "
        "FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = 'search' "
        "AND s.schemaname = ANY(current_schemas(true)) WHERE c.oid = %s::regclass",
        [table],
    )
    row = cursor.fetchone()
    rows = float(row[0]) if row and row[0] and row[0] > 0 else 0.0
    elems, freqs = (row[1] or [], row[2] or []) if row else ([], [])
    shares = dict(zip(elems, freqs[: len(elems)], strict=False))
    # most_common_elem_freqs ends with the minimum, maximum and null share; listed lexemes are at least the minimum.
    floor = float(freqs[len(elems)]) if len(freqs) > len(elems) else 0.0
    _stats_cache[table] = (now, rows, shares, floor)
    return rows, shares, floor


def lexical_terms(cursor: Any, *, text: str, config: str, table: str) -> list[str]:
    """The query's stemmed terms the full-text leg searches for: rarest first, within the row budget."""
    cursor.execute("SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, unaccent(%s)))", [config, text[:20_000]])
    terms = [r[0] for r in cursor.fetchall()]
    budget = settings.KB_LEXICAL_ROW_BUDGET
    if not terms or budget <= 0:
        return terms
    rows, shares, floor = _column_stats(cursor, table)
    if rows <= budget:
        return terms
    # An unlisted lexeme is rarer than every listed one: count it at half the listing threshold.
    share = {t: shares.get(t, floor / 2) for t in terms}
    kept, expected = [], 0.0
    for term in sorted(terms, key=lambda t: (share[t], t)):
        if len(kept) >= MIN_TERMS and expected + share[term] * rows > budget:
            break
        kept.append(term)
        expected += share[term] * rows
    return kept


def or_query(terms: list[str]) -> str:
    """A tsquery literal matching any of the (already stemmed) terms, each quoted verbatim."""
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)


def kb_search(*, query: str, k: int | None = None, language: str | None = None, audience: str | None = None,
              query_vector: QueryVector | None = None) -> list[Passage]:
    """Hybrid retrieval: PostgreSQL full text and pgvector cosine, fused by reciprocal rank."""
    return passages_search(
        query=query, k=k or settings.KB_TOP_K, chunk_table=CHUNK_TABLE, article_table=ARTICLE_TABLE,
        embedder=get_embedder(), language=language, audience=audience, query_vector=query_vector,
    )


# --- Internal and public article text -------------------------------------------------------------
# Every draft is compared with every published internal article (the internal_text gate) and may name what the
# public ones tell every customer. Their text is kept by this process and read again only when the published
# articles changed: one small query per draft tells (how many, the latest change), so an admin's new or edited
# article applies to the very next draft, in the worker as in the web process.

_texts_cache: dict[str, tuple[tuple[Any, ...], tuple[str, ...]]] = {}


def _published_version() -> tuple[Any, ...]:
    from django.db.models import Count, Max

    from kb.models import Article

    found = Article.objects.filter(status=Article.Status.PUBLISHED).aggregate(n=Count("id"), at=Max("updated_at"))
    return found["n"], found["at"]


def _published_texts(audience: str, version: tuple[Any, ...]) -> tuple[str, ...]:
    from kb.models import Article

    cached = _texts_cache.get(audience)
    if cached is not None and cached[0] == version:
        return cached[1]
    texts = tuple(Article.objects.filter(audience=audience, status=Article.Status.PUBLISHED)
                  .values_list("body", flat=True))
    _texts_cache[audience] = (version, texts)
    return texts


def published_texts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(internal articles' bodies, public articles' bodies), as published now."""
    version = _published_version()
    return _published_texts("internal", version), _published_texts("public", version)


def public_chunks(*, slugs: list[str]) -> list[dict[str, Any]]:
    """The first passage of each published public article named, in the order named (a remembered reply's
    sources, cited even when retrieval ranked them out)."""
    from kb.models import Article, Chunk

    rows = (Chunk.objects.filter(article__slug__in=slugs, article__status=Article.Status.PUBLISHED,
                                 article__audience=Article.Audience.PUBLIC)
            .filter(article_version=F("article__version"))
            .order_by("article_id", "ordinal")
            .values("id", "article_id", "article__slug", "article__title", "article_version", "text"))
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["article__slug"], {
            "chunk_id": r["id"], "article_id": r["article_id"], "article_slug": r["article__slug"],
            "article_title": r["article__title"], "article_version": r["article_version"], "text": r["text"],
            "audience": "public", "score": 0.0, "similarity": 0.0,
        })
    return [first[s] for s in slugs if s in first]
