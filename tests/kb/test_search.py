from __future__ import annotations

import pytest

from kb.models import Article, Chunk
from kb.selectors import kb_search
from kb.services import article_upsert, chunk_article
from tests.support import data

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb() -> None:
    data.load_kb()


@pytest.mark.parametrize(("query", "slug"), [
    ("I forgot my password and can't sign in", "Account Access/Recover Password"),
    ("I don't remember my username", "Account Access/Recover Username"),
    ("when will my package arrive, it's late", "Order Issue/Status Delivery Time"),
    ("I want a refund, the shirt is defective", "Product Defect/Initiate Refund"),
])
def test_hybrid_search_puts_the_right_article_first(kb: None, query: str, slug: str) -> None:
    results = kb_search(query=query, k=4)
    assert results[0].article_slug == slug
    assert results == sorted(results, key=lambda p: -p.score)


def test_results_carry_both_rankings_and_a_similarity(kb: None) -> None:
    [top, *_] = kb_search(query="reset my password", k=3)
    assert top.lexical_rank is not None and top.vector_rank is not None
    assert 0 < top.similarity <= 1


def test_retired_articles_are_not_returned(kb: None) -> None:
    Article.objects.filter(slug="Account Access/Recover Password").update(status="retired")
    assert all(p.article_slug != "Account Access/Recover Password"
               for p in kb_search(query="I forgot my password", k=10))


def test_an_empty_query_returns_nothing(kb: None) -> None:
    assert kb_search(query="   ") == []


def test_updating_an_article_bumps_its_version_and_reindexes() -> None:
    article = article_upsert(slug="faq/returns", title="Returns", body="Returns are free within 30 days.")
    assert article.version == 1
    same = article_upsert(slug="faq/returns", title="Returns", body="Returns are free within 30 days.")
    assert same.version == 1
    changed = article_upsert(slug="faq/returns", title="Returns", body="Returns are free within 60 days.")
    assert changed.version == 2
    assert set(Chunk.objects.filter(article=changed).values_list("article_version", flat=True)) == {2}
    assert kb_search(query="60 days returns", k=1)[0].article_slug == "faq/returns"


def test_chunking_follows_headings_and_length() -> None:
    body = "Intro line.\n\n## Steps\n\n" + "\n\n".join(" ".join(["word"] * 100) for _ in range(3))
    chunks = chunk_article("Title", body)
    assert chunks[0].heading == "Title" and chunks[0].text == "Intro line."
    assert [c.heading for c in chunks[1:]] == ["Steps", "Steps", "Steps"]
    assert all(len(c.text.split()) <= 180 for c in chunks)
