"""Writing chunks into an index table: language, full-text vector and embedding, by one parameterised SQL.

The deployment's `kb_chunk` and the temporary tables of `kb_eval` are written and searched by the same
statements, so an evaluation measures exactly what production runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection

from kb.embeddings import EmbeddingConfig

CHUNK_TABLE = "kb_chunk"
ARTICLE_TABLE = "kb_article"
HNSW_INDEX = "kb_chunk_embedding_hnsw"

# ISO 639-1 code -> PostgreSQL text-search configuration. Only those present in pg_ts_config are used; the
# rest (and unknown languages) fall back to `simple`, which lower-cases without stemming.
TS_CONFIGS = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish", "nl": "dutch",
    "en": "english", "et": "estonian", "fi": "finnish", "fr": "french", "de": "german", "el": "greek",
    "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil",
    "tr": "turkish", "yi": "yiddish",
}  # fmt: skip

_languages_cache: dict[str, tuple[float, frozenset[str]]] = {}
LANGUAGES_TTL_S = 30.0
_installed: frozenset[str] | None = None
_installed_lock = threading.Lock()


def installed_configs() -> frozenset[str]:
    global _installed
    with _installed_lock:
        if _installed is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT cfgname FROM pg_catalog.pg_ts_config")
                _installed = frozenset(row[0] for row in cursor.fetchall())
        return _installed


def search_config(language: str) -> str:
    config = TS_CONFIGS.get((language or "").lower()[:2], "simple")
    return config if config in installed_configs() else "simple"


def detect_language(text: str, *, among: Iterable[str] | None = None) -> str:
    """ISO 639-1 code of `text`, chosen among `among` when given (a short query is easily mistaken)."""
    import py3langid

    if not text.strip():
        return ""
    allowed = {code for code in among or () if code}
    if len(allowed) == 1:
        return next(iter(allowed))
    for code, _score in py3langid.rank(text):
        if not allowed or code in allowed:
            return str(code)
    return ""


@dataclass(frozen=True)
class ChunkRow:
    article_id: int
    article_version: int
    ordinal: int
    title: str
    heading: str
    text: str
    language: str


def passage_text(title: str, heading: str, text: str) -> str:
    """What is embedded for a chunk: the title and heading keep a split passage on its topic."""
    return f"{title}. {heading}\n{text}"


def vector_literal(vector: np.ndarray | Sequence[float] | None) -> str | None:
    if vector is None:
        return None
    return "[" + ",".join(f"{float(x):.6f}" for x in vector) + "]"


# The title ranks with the section heading (weight A): a passage deep in "Recover Username" is still about
# usernames even when its own text never says so. unaccent on both sides lets "resume" find "résumé".
_INSERT = """
INSERT INTO {chunk} (article_id, article_version, ordinal, heading, text, language, search,
                     embedding, embedding_model, embedding_dim)
VALUES (%(article_id)s, %(article_version)s, %(ordinal)s, %(heading)s, %(text)s, %(language)s,
        setweight(to_tsvector(%(config)s::regconfig, unaccent(%(title)s || ' ' || %(heading)s)), 'A')
        || setweight(to_tsvector(%(config)s::regconfig, unaccent(%(text)s)), 'B'),
        %(embedding)s::vector, %(model)s, %(dim)s)
"""


def chunks_insert(
    *, rows: Sequence[ChunkRow], vectors: np.ndarray | None, config: EmbeddingConfig, table: str = CHUNK_TABLE
) -> None:
    """Insert chunks; without vectors (the column holds another dimension) they match by full text only."""
    quoted = connection.ops.quote_name(table)
    params = [
        {
            "article_id": row.article_id, "article_version": row.article_version, "ordinal": row.ordinal,
            "heading": row.heading, "text": row.text, "language": row.language, "title": row.title,
            "config": search_config(row.language),
            "embedding": vector_literal(vectors[i]) if vectors is not None else None,
            "model": config.key if vectors is not None else "",
            "dim": config.dim if vectors is not None else None,
        }
        for i, row in enumerate(rows)
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT.format(chunk=quoted), params)
        # This process sees a new language at once; others within LANGUAGES_TTL_S.
        _languages_cache.pop(table, None)


def column_dimension(table: str = CHUNK_TABLE) -> int | None:
    """The dimension of `table.embedding` (pgvector keeps it as the type modifier); None when unconstrained."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'", [table]
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] > 0 else None


def hnsw_index_sql(*, table: str, name: str) -> str:
    qn = connection.ops.quote_name
    # The same parameters as the model's HnswIndex (kb/models.py).
    return (
        f"CREATE INDEX {qn(name)} ON {qn(table)} USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)"
    )




def index_languages(*, table: str = CHUNK_TABLE, fresh: bool = False) -> frozenset[str]:
    """The languages of the chunks in `table`, cached briefly: every query's language is chosen among them."""
    now = time.monotonic()
    cached = _languages_cache.get(table)
    if cached and not fresh and now - cached[0] < LANGUAGES_TTL_S:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT language FROM {connection.ops.quote_name(table)}")
        languages = frozenset(row[0] for row in cursor.fetchall())
    _languages_cache[table] = (now, languages)
    return languages
