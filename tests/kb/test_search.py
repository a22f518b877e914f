from __future__ import annotations

import pytest

from kb.models import Article, Chunk
from kb.selectors import kb_search
from kb.services import article_upsert, chunk_article
from tests.support import data

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb() -> None:
    data.load_kb(public=False)


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


def test_the_full_text_leg_keeps_a_long_querys_rarest_terms_within_its_row_budget(kb: None, settings) -> None:
    from django.db import connection

    from kb import selectors
    from kb.indexing import CHUNK_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {CHUNK_TABLE}")
        selectors._stats_cache.clear()
        query = "please help me with my order, I forgot my password for the account"
        everything = selectors.lexical_terms(cursor, text=query, config="english", table=CHUNK_TABLE)
        settings.KB_LEXICAL_ROW_BUDGET = 1  # smaller than any term's matches: only the floor of rarest terms
        kept = selectors.lexical_terms(cursor, text=query, config="english", table=CHUNK_TABLE)
    assert set(everything) >= {"password", "forgot", "order", "account"}
    assert len(kept) == selectors.MIN_TERMS and set(kept) < set(everything)
    # What was kept is rarer, by the index's own counts, than anything dropped.
    counts = {t: Chunk.objects.extra(where=["search @@ to_tsquery('simple', %s)"],
                                     params=[selectors.or_query([t])]).count() for t in everything}
    assert max(counts[t] for t in kept) <= min(counts[t] for t in set(everything) - set(kept))
    # And search still answers through both legs under the default budget.
    settings.KB_LEXICAL_ROW_BUDGET = 3000
    [top, *_] = kb_search(query="I forgot my password and can't sign in", k=3)
    assert top.article_slug == "Account Access/Recover Password"


def test_query_terms_with_quotes_and_backslashes_make_a_valid_tsquery() -> None:
    from django.db import connection

    from kb.selectors import or_query

    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::tsquery::text", [or_query(["o'neil", "back\\slash", "plain"])])
        assert cursor.fetchone()[0] == "'o''neil' | 'back\\\\slash' | 'plain'"
