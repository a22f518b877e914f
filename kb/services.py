from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.db import connection, transaction

from kb.models import Article, Chunk

MAX_CHUNK_WORDS = 180


@dataclass(frozen=True)
class ChunkText:
    heading: str
    text: str


def chunk_article(title: str, body: str) -> list[ChunkText]:
    """Split by markdown headings, then pack paragraphs into passages of at most MAX_CHUNK_WORDS."""
    sections: list[tuple[str, list[str]]] = [(title, [])]
    for block in re.split(r"\n\s*\n", body.strip()):
        block = block.strip()
        if not block:
            continue
        heading = re.match(r"^#{1,6}\s+(.*)$", block.splitlines()[0])
        if heading:
            rest = "\n".join(block.splitlines()[1:]).strip()
            sections.append((heading.group(1).strip(), [rest] if rest else []))
        else:
            sections[-1][1].append(block)
    chunks: list[ChunkText] = []
    for heading_text, paragraphs in sections:
        current: list[str] = []
        words = 0
        for paragraph in paragraphs:
            n = len(paragraph.split())
            if current and words + n > MAX_CHUNK_WORDS:
                chunks.append(ChunkText(heading_text, "\n\n".join(current)))
                current, words = [], 0
            current.append(paragraph)
            words += n
        if current:
            chunks.append(ChunkText(heading_text, "\n\n".join(current)))
    return chunks


@transaction.atomic
def article_upsert(*, slug: str, title: str, body: str, source: str = "") -> Article:
    """Create or update an article; re-chunks and re-embeds only when its text changed."""
    article = Article.objects.select_for_update().filter(slug=slug).first()
    if article is not None and article.title == title and article.body == body:
        return article
    if article is None:
        article = Article.objects.create(slug=slug, title=title, body=body, source=source)
    else:
        article.title, article.body, article.source = title, body, source
        article.version += 1
        article.status = Article.Status.PUBLISHED
        article.save()
    article_index(article=article)
    return article


def article_index(*, article: Article) -> None:
    from kb import indexing
    from kb.embeddings import embedding_config, get_embedder

    pieces = chunk_article(article.title, article.body)
    # The article's own language when it has one, else what its text reads as.
    language = getattr(article, "language", "") or indexing.detect_language(f"{article.title}\n{article.body}")
    config = embedding_config()
    rows = [
        indexing.ChunkRow(
            article_id=article.pk, article_version=article.version, ordinal=i, title=article.title,
            heading=piece.heading, text=piece.text, language=language,
        )
        for i, piece in enumerate(pieces)
    ]
    # Taken before reading the column's dimension, so a re-embedding job cannot alter it in between.
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {indexing.CHUNK_TABLE} IN ROW EXCLUSIVE MODE")
    vectors = None
    if indexing.column_dimension() == config.dim:
        vectors = get_embedder(config).passages([indexing.passage_text(r.title, r.heading, r.text) for r in rows])
    # Otherwise the column still holds another dimension: the chunks match by full text until re-embedded.
    Chunk.objects.filter(article=article).delete()
    indexing.chunks_insert(rows=rows, vectors=vectors, config=config)


def abcd_article_markdown(row: dict[str, object]) -> tuple[str, str, str]:
    """Turn one ABCD guideline record into (slug, title, markdown body)."""
    slug = str(row["id"])
    title = f"{row['flow']}: {row['subflow']}"
    parts = [f"{row['flow']} ({row.get('flow_description', '')}).".strip()]
    instructions = [str(s) for s in row.get("instructions", []) or []]  # type: ignore[union-attr]
    steps = [str(s) for s in row.get("steps", []) or []]  # type: ignore[union-attr]
    if instructions:
        parts.append("## Overview\n\n" + "\n\n".join(instructions))
    if steps:
        parts.append("## Steps\n\n" + "\n\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
    return slug, title, "\n\n".join(parts)


def kb_import_abcd_jsonl(*, path: Path) -> int:
    count = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            slug, title, body = abcd_article_markdown(json.loads(line))
            article_upsert(slug=slug, title=title, body=body, source="abcd-guidelines")
            count += 1
    return count
