"""Each chunk is stemmed in its own language, and a query is parsed in its language, using the GIN index."""

from __future__ import annotations

import pytest
from django.db import connection

from kb.models import Chunk
from kb.selectors import kb_search
from kb.services import article_upsert

pytestmark = pytest.mark.django_db

GERMAN = (
    "Rückerstattung beantragen",
    (
        "Kunden, die eine Rückerstattung wünschen, erhalten ihr Geld innerhalb von fünf Werktagen zurück. "
        "Die Erstattungen werden auf die ursprüngliche Zahlungsmethode gebucht. Bitte bewahren Sie die Quittung auf."
    ),
)
ENGLISH = (
    "Changing your delivery address",
    (
        "Customers can change the delivery address of an order until it ships. Open the order, choose a new "
        "address and confirm. Deliveries already on their way cannot be redirected."
    ),
)


@pytest.fixture
def articles() -> None:
    article_upsert(slug="de/refund", title=GERMAN[0], body=GERMAN[1])
    article_upsert(slug="en/address", title=ENGLISH[0], body=ENGLISH[1])


def test_each_article_is_indexed_with_its_language_configuration(articles: None) -> None:
    assert set(Chunk.objects.filter(article__slug="de/refund").values_list("language", flat=True)) == {"de"}
    assert set(Chunk.objects.filter(article__slug="en/address").values_list("language", flat=True)) == {"en"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT search::text FROM kb_chunk c JOIN kb_article a ON a.id = c.article_id "
                       "WHERE a.slug = 'de/refund'")
        lexemes = cursor.fetchone()[0]
    # German stemming and stop words, accents folded: "Rückerstattung" -> 'ruckerstatt', "die" dropped.
    assert "'ruckerstatt'" in lexemes and "'die'" not in lexemes


def test_a_german_inflected_query_finds_the_german_article_by_full_text(articles: None) -> None:
    # "Erstattungen"/"Rückerstattungen" (plural) stem to the same lexemes as the article's singular forms;
    # English stemming would leave 'erstattungen' and 'ruckerstattungen', which the article does not contain.
    [top, *_] = kb_search(query="Wann bekomme ich meine Rückerstattungen und Erstattungen?", k=3)
    assert top.article_slug == "de/refund"
    assert top.lexical_rank == 1


def test_german_parsing_is_what_matches(articles: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM kb_chunk WHERE search @@ plainto_tsquery('english', "
                       "unaccent('Rückerstattungen'))")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM kb_chunk WHERE search @@ plainto_tsquery('german', "
                       "unaccent('Rückerstattungen'))")
        assert cursor.fetchone()[0] >= 1


def test_an_english_query_still_matches_english_stems(articles: None) -> None:
    [top, *_] = kb_search(query="How do I change the addresses for my deliveries?", k=3)
    assert top.article_slug == "en/address"
    assert top.lexical_rank == 1


def test_a_caller_may_name_the_query_language(articles: None) -> None:
    results = kb_search(query="Rückerstattungen", k=3, language="de")
    assert results[0].article_slug == "de/refund" and results[0].lexical_rank == 1


def test_the_lexical_leg_uses_the_gin_index(articles: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT id FROM kb_chunk WHERE search @@ "
                       "replace(plainto_tsquery('german', unaccent('Rückerstattungen'))::text, '&', '|')::tsquery")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "kb_chunk_search_gin" in plan
