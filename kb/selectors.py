from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from kb.embeddings import embed_query

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


_SQL = """
WITH q AS (
    -- An OR of the query's terms: a ticket is long, and AND semantics would match nothing.
    SELECT NULLIF(replace(plainto_tsquery('english', %(text)s)::text, '&', '|'), '')::tsquery AS tsq
),
lexical AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.search, q.tsq) DESC, c.id) AS rank
    FROM kb_chunk c JOIN kb_article a ON a.id = c.article_id, q
    WHERE q.tsq IS NOT NULL AND c.search @@ q.tsq AND a.status = 'published'
    ORDER BY ts_rank_cd(c.search, q.tsq) DESC, c.id
    LIMIT %(candidates)s
),
vector AS (
    SELECT c.id, row_number() OVER (ORDER BY c.embedding <=> %(embedding)s::vector, c.id) AS rank
    FROM kb_chunk c JOIN kb_article a ON a.id = c.article_id
    WHERE a.status = 'published'
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
       1 - (c.embedding <=> %(embedding)s::vector) AS similarity, f.lexical_rank, f.vector_rank
FROM fused f JOIN kb_chunk c ON c.id = f.id JOIN kb_article a ON a.id = c.article_id
ORDER BY f.score DESC, c.id
LIMIT %(k)s
"""


def kb_search(*, query: str, k: int | None = None) -> list[Passage]:
    """Hybrid retrieval: PostgreSQL full text and pgvector cosine, fused by reciprocal rank."""
    if not query.strip():
        return []
    vector = embed_query(query)
    params = {
        "text": query,
        "embedding": "[" + ",".join(f"{x:.6f}" for x in vector) + "]",
        "candidates": CANDIDATES,
        "rrf_k": RRF_K,
        "k": k or settings.KB_TOP_K,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SQL, params)
        rows = cursor.fetchall()
    return [
        Passage(
            chunk_id=r[0], article_id=r[1], article_slug=r[2], article_title=r[3], article_version=r[4],
            heading=r[5], text=r[6], score=float(r[7]), similarity=float(r[8]),
            lexical_rank=r[9], vector_rank=r[10],
        )
        for r in rows
    ]
