"""A knowledge base given as a file or folder, indexed for one evaluation run in kb_eval's temporary tables.

Draft evals need what kb_eval has (production's chunking, embedding and retrieval SQL over TEMP tables that
die with the run) plus each article's audience: public help-centre text may be quoted and cited, internal
agent procedures may not. The deployment's knowledge base is neither read nor written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from kb import evaluation
from kb.embeddings import get_embedder
from kb.evaluation import EVAL_ARTICLES, EVAL_CHUNKS, EvalArticle, EvalInputError
from kb.selectors import Passage, QueryVector, passages_search

AUDIENCES = ("public", "internal")


@dataclass(frozen=True)
class AudienceArticle(EvalArticle):
    audience: str = "public"


def _audience(where: str, value: object) -> str:
    audience = str(value or "public").strip().lower()
    if audience not in AUDIENCES:
        raise EvalInputError(f"{where}: 'audience' must be public or internal, got {value!r}")
    return audience


def _language(where: str, value: object) -> str:
    language = str(value or "").strip().lower()
    if language and not (len(language) == 2 and language.isalpha()):
        raise EvalInputError(f"{where}: 'language' must be an ISO 639-1 code such as 'de', got {language!r}")
    return language


def _from_jsonl(path: Path) -> list[AudienceArticle]:
    articles = []
    for number, record in evaluation._records(path):
        raw_id = record.get("id", record.get("slug"))
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or not str(raw_id).strip():
            raise EvalInputError(f"{path}:{number}: 'id' (or 'slug') must be a non-empty string or number")
        where = f"{path}:{number}"
        articles.append(AudienceArticle(
            id=str(raw_id).strip(), title=evaluation._text(path, number, record, "title"),
            body=evaluation._text(path, number, record, "body"), language=_language(where, record.get("language")),
            audience=_audience(where, record.get("audience")),
        ))
    return articles


def _from_folder(root: Path) -> list[AudienceArticle]:
    """Markdown files under `root`, each an article whose id is its path, as kb_import names it
    (`delivery/track-your-order.md`). A README describes the folder and is not an article."""
    import frontmatter
    import yaml

    articles = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".md", ".markdown") and p.is_file()
                       and p.stem.lower() != "readme" and not any(x.startswith(".") for x in p.relative_to(root).parts)):
        name = path.relative_to(root).as_posix()
        try:
            post = frontmatter.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise EvalInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except yaml.YAMLError as exc:
            raise EvalInputError(f"{path}: the front matter is not valid YAML ({str(exc).splitlines()[0]})") from exc
        meta = dict(post.metadata)
        body = post.content.strip()
        title = str(meta.get("title") or "").strip()
        lines = body.splitlines()
        if lines and lines[0].startswith("# "):
            title = title or lines[0][2:].strip()
            if lines[0][2:].strip() == title:
                body = "\n".join(lines[1:]).strip()
        if not body:
            raise EvalInputError(f"{path}: the file has no article text")
        articles.append(AudienceArticle(
            id=str(meta.get("id") or meta.get("slug") or name), title=title or name, body=body,
            language=_language(str(path), meta.get("language") or meta.get("lang")),
            audience=_audience(str(path), meta.get("audience")),
        ))
    if not articles:
        raise EvalInputError(f"{root}: no markdown articles (.md) in the folder")
    return articles


def kb_articles_load(path: Path) -> list[AudienceArticle]:
    """Articles from JSON Lines ({"id" or "slug", "title", "body", "language"?, "audience"?}) or a folder of
    markdown files with front matter (title, language, audience)."""
    if path.is_dir():
        articles = _from_folder(path)
    elif path.exists():
        articles = _from_jsonl(path)
    else:
        raise EvalInputError(f"{path}: no such file or folder")
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            raise EvalInputError(f"{path}: duplicate article id {article.id!r}")
        seen.add(article.id)
    return articles


@dataclass(frozen=True)
class TemporaryKB:
    articles: dict[str, AudienceArticle]
    chunks: int
    languages: frozenset[str]

    def search(self, *, query: str, language: str | None = None, k: int | None = None, audience: str | None = None,
               query_vector: QueryVector | None = None) -> list[Passage]:
        """Production's retrieval (kb_search) over the temporary tables."""
        return passages_search(query=query, k=k or settings.KB_TOP_K, chunk_table=EVAL_CHUNKS,
                               article_table=EVAL_ARTICLES, embedder=get_embedder(), language=language,
                               languages=self.languages, audience=audience, query_vector=query_vector)

    def public_chunks(self, *, slugs: list[str]) -> list[dict[str, Any]]:
        """kb.selectors.public_chunks over the temporary tables: the first passage of each public article named."""
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT ON (a.slug) c.id, a.id, a.slug, a.title, c.article_version, c.text "
                f"FROM {qn(EVAL_CHUNKS)} c JOIN {qn(EVAL_ARTICLES)} a ON a.id = c.article_id "
                "WHERE a.slug = ANY(%s) AND a.audience = 'public' ORDER BY a.slug, c.ordinal", [slugs])
            first = {r[2]: {"chunk_id": r[0], "article_id": r[1], "article_slug": r[2], "article_title": r[3],
                            "article_version": r[4], "text": r[5], "audience": "public", "score": 0.0,
                            "similarity": 0.0}
                     for r in cursor.fetchall()}
        return [first[s] for s in slugs if s in first]

    def internal_texts(self) -> tuple[str, ...]:
        """kb.selectors.internal_texts for this knowledge base: what the internal_text gate must not see quoted."""
        return tuple(a.body for a in self.articles.values() if a.audience == "internal")


@contextmanager
def temporary_kb(articles: list[AudienceArticle]) -> Iterator[TemporaryKB]:
    """The articles indexed as production indexes them, in TEMP tables of one transaction that is rolled back
    when the block ends: nothing of the run is kept."""
    embedder = get_embedder()
    with transaction.atomic():
        evaluation._create_tables(embedder.config.dim)
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            # IF NOT EXISTS: kb_eval's table has the column; this keeps working if it moves.
            cursor.execute(f"ALTER TABLE {qn(EVAL_ARTICLES)} ADD COLUMN IF NOT EXISTS audience text NOT NULL "
                           "DEFAULT 'public'")
        chunks, languages = evaluation._index(list[EvalArticle](articles), embedder)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {qn(EVAL_ARTICLES)} SET audience = 'internal' WHERE slug = ANY(%s)",
                           [[a.id for a in articles if a.audience == "internal"]])
        yield TemporaryKB(articles={a.id: a for a in articles}, chunks=chunks, languages=languages)
        transaction.set_rollback(True)
