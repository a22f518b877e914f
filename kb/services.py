from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from kb.models import Article, ArticleVersion, Chunk

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


class ArticleError(Exception):
    """A change to the knowledge base that is refused, with a message for the admin who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


MAX_TITLE = 300


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text (py3langid), or "" when there is nothing to read."""
    if not text.strip():
        return ""
    import py3langid

    return str(py3langid.classify(text)[0])


def _clean_language(language: str, *, title: str, body: str) -> str:
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if not code:
        return detect_language(f"{title}\n{body}")
    if not re.fullmatch(r"[a-z]{2}", code):
        raise ArticleError(f"the language must be a two-letter ISO 639-1 code, not {language!r}")
    return code


def _check_text(title: str, body: str) -> tuple[str, str]:
    title, body = title.strip(), body.strip()
    if not title:
        raise ArticleError("an article needs a title")
    if len(title) > MAX_TITLE:
        raise ArticleError(f"the title is longer than {MAX_TITLE} characters")
    if not body:
        raise ArticleError("an article needs a body")
    return title, body


def _unique_slug(title: str) -> str:
    from django.utils.text import slugify

    base = (slugify(title)[:200] or "article")
    slug, n = base, 1
    while Article.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


AUDIENCES = tuple(Article.Audience.values)


def clean_audience(value: str | None, *, default: str = Article.Audience.PUBLIC) -> str:
    """'public' or 'internal'; anything else is refused in words an admin can act on."""
    text = (value or "").strip().lower()
    if not text:
        return default
    if text not in AUDIENCES:
        raise ArticleError(f"the audience must be public (customers may read it) or internal (agents only), "
                           f"not {value!r}")
    return text


def _next_version(article: Article) -> int:
    latest = article.versions.order_by("-version").values_list("version", flat=True).first()
    return max(latest or 0, article.version) + 1


def _make_live(article: Article, row: ArticleVersion, *, status: str) -> None:
    """Point the article at this version and re-index it (that article only)."""
    article.title, article.body, article.language = row.title, row.body, row.language
    article.version, article.status = row.version, status
    article.save()
    if status == Article.Status.PUBLISHED:
        row.status = Article.Status.PUBLISHED
        row.published_at = timezone.now()
        row.save(update_fields=["status", "published_at"])
        article_index(article=article)


@transaction.atomic
def article_create(*, actor: Any, title: str, body: str, language: str = "", change_note: str = "",
                   publish: bool = False, slug: str = "", source: str = "", audience: str = "") -> Article:
    title, body = _check_text(title, body)
    language = _clean_language(language, title=title, body=body)
    audience = clean_audience(audience)
    if slug and Article.objects.filter(slug=slug).exists():
        raise ArticleError(f"an article with the id {slug!r} already exists")
    article = Article.objects.create(slug=slug or _unique_slug(title), title=title, body=body, source=source,
                                     language=language, status=Article.Status.DRAFT, version=1, audience=audience)
    row = ArticleVersion.objects.create(article=article, version=1, title=title, body=body, language=language,
                                        created_by=actor, change_note=change_note.strip()[:500] or "Created")
    if publish:
        _make_live(article, row, status=Article.Status.PUBLISHED)
    return article


@transaction.atomic
def article_edit(*, actor: Any, article_id: int, title: str, body: str, language: str = "",
                 change_note: str = "", publish: bool = False, audience: str = "") -> ArticleVersion:
    """Save the edit as a new version: a draft, or published at once (re-indexing this article only).

    A draft of a published article waits beside the live version; readers keep the live one. The audience
    is the article's, not a version's: it applies at once (retrieval reads it; nothing is re-indexed)."""
    article = Article.objects.select_for_update().get(pk=article_id)
    title, body = _check_text(title, body)
    language = _clean_language(language, title=title, body=body)
    audience = clean_audience(audience, default=article.audience)
    if audience != article.audience:
        article.audience = audience
        article.save(update_fields=["audience", "updated_at"])
    row = ArticleVersion.objects.create(article=article, version=_next_version(article), title=title, body=body,
                                        language=language, created_by=actor, change_note=change_note.strip()[:500])
    if publish:
        _make_live(article, row, status=Article.Status.PUBLISHED)
    elif article.status == Article.Status.DRAFT:
        # Nothing is live: the article shows its newest draft.
        _make_live(article, row, status=Article.Status.DRAFT)
    return row


@transaction.atomic
def article_publish(*, actor: Any, article_id: int, version: int | None = None) -> ArticleVersion:
    """Publish a version (the newest when none is named); a retired article is brought back."""
    article = Article.objects.select_for_update().get(pk=article_id)
    rows = article.versions.all()
    row = rows.filter(version=version).first() if version is not None else rows.order_by("-version").first()
    if row is None:
        raise ArticleError("there is no such version to publish")
    if row.version < article.version:
        raise ArticleError(f"v{row.version} is older than v{article.version}; restore it as a new version first")
    if row.version == article.version and article.status == Article.Status.PUBLISHED:
        raise ArticleError(f"v{row.version} is already published")
    _make_live(article, row, status=Article.Status.PUBLISHED)
    return row


@transaction.atomic
def article_retire(*, actor: Any, article_id: int) -> Article:
    article = Article.objects.select_for_update().get(pk=article_id)
    if article.status == Article.Status.RETIRED:
        raise ArticleError("this article is already retired")
    article.status = Article.Status.RETIRED
    article.save(update_fields=["status", "updated_at"])
    # Chunks stay for the record; retrieval reads only published articles.
    article.versions.filter(version=article.version).update(status=Article.Status.RETIRED)
    return article


@transaction.atomic
def article_restore(*, actor: Any, article_id: int, version: int) -> ArticleVersion:
    """Copy an old version into a new draft; history is never rewritten."""
    article = Article.objects.select_for_update().get(pk=article_id)
    old = article.versions.filter(version=version).first()
    if old is None:
        raise ArticleError(f"v{version} is not kept for this article")
    row = ArticleVersion.objects.create(article=article, version=_next_version(article), title=old.title,
                                        body=old.body, language=old.language, created_by=actor,
                                        change_note=f"Restored from v{version}")
    if article.status == Article.Status.DRAFT:
        _make_live(article, row, status=Article.Status.DRAFT)
    return row


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@transaction.atomic
def article_sync(*, slug: str, title: str, body: str, source: str = "", language: str = "", actor: Any = None,
                 change_note: str = "", draft: bool = False, dry_run: bool = False,
                 audience: str = "") -> tuple[Article | None, str]:
    """Create or update an article from an outside source, keyed by its stable external id (slug).

    Unchanged text writes nothing (no re-embedding). Changed text becomes a new published version, or a
    draft when the source marks it one. A retired article stays retired: an import does not undo an
    admin's decision. An audience the source names is applied; none keeps the article's (new: public)."""
    title, body = _check_text(title, body)
    language = _clean_language(language, title=title, body=body)
    named_audience = clean_audience(audience, default="") if audience else ""
    article = Article.objects.select_for_update().filter(slug=slug).first()
    if article is None:
        if not dry_run:
            article = article_create(actor=actor, title=title, body=body, language=language, slug=slug,
                                     source=source, publish=not draft, change_note=change_note or "Imported",
                                     audience=named_audience)
        return article, Outcome.CREATED
    audience_changed = bool(named_audience) and named_audience != article.audience
    if audience_changed and not dry_run:
        article.audience = named_audience
        article.save(update_fields=["audience", "updated_at"])
    same_text = (article.title, article.body, article.language) == (title, body, language)
    # Only a source that publishes a draft changes an article's status; an import never unpublishes
    # (a draft flag on a live article only stores the new text as a waiting draft).
    publishes_draft = not draft and article.status == Article.Status.DRAFT
    if same_text and not publishes_draft:
        return article, Outcome.UPDATED if audience_changed else Outcome.UNCHANGED
    if dry_run:
        return article, Outcome.UPDATED
    if same_text:
        live = article.versions.filter(version=article.version).first()
        if live is not None:
            _make_live(article, live, status=Article.Status.PUBLISHED)
            return article, Outcome.UPDATED
    row = ArticleVersion.objects.create(article=article, version=_next_version(article), title=title, body=body,
                                        language=language, created_by=actor,
                                        change_note=change_note or "Updated by import")
    if article.status == Article.Status.RETIRED:
        _make_live(article, row, status=Article.Status.RETIRED)
        row.status = Article.Status.RETIRED
        row.save(update_fields=["status"])
    elif not draft or article.status == Article.Status.DRAFT:
        _make_live(article, row, status=Article.Status.DRAFT if draft else Article.Status.PUBLISHED)
    if source and article.source != source:
        article.source = source
        article.save(update_fields=["source"])
    return article, Outcome.UPDATED


def article_upsert(*, slug: str, title: str, body: str, source: str = "", language: str = "",
                   actor: Any = None, audience: str = "") -> Article:
    """Create or update a published article; re-chunks and re-embeds only when its text changed."""
    article, _outcome = article_sync(slug=slug, title=title, body=body, source=source, language=language,
                                     actor=actor, audience=audience)
    assert article is not None
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
            # Agent procedures ("tell them ...", tool names in brackets): guidance for the writer, never quoted.
            article_upsert(slug=slug, title=title, body=body, source="abcd-guidelines",
                           audience=Article.Audience.INTERNAL)
            count += 1
    return count
