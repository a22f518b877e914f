"""Articles have a version history: drafts wait, publishing re-indexes that article only, retiring hides it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from kb.markdown import render_markdown
from kb.models import Article, ArticleVersion, Chunk
from kb.selectors import kb_search
from kb.services import (
    ArticleError,
    article_create,
    article_edit,
    article_publish,
    article_restore,
    article_retire,
    article_upsert,
    detect_language,
)

pytestmark = pytest.mark.django_db

RETURNS = "Returns are free within 30 days of delivery.\n\n## Labels\n\nPrint the prepaid label from Orders."


@pytest.fixture
def ada() -> User:
    return User.objects.create_user("ada")


def slugs_for(query: str) -> list[str]:
    return [p.article_slug for p in kb_search(query=query, k=10)]


def test_a_draft_is_versioned_but_not_retrievable(ada: User) -> None:
    article = article_create(actor=ada, title="Returning an item", body=RETURNS, change_note="first")
    assert article.status == Article.Status.DRAFT and article.version == 1
    assert not Chunk.objects.filter(article=article).exists()
    assert "returning-an-item" not in slugs_for("free returns within 30 days")
    [row] = article.versions.all()
    assert (row.version, row.status, row.created_by, row.change_note) == (1, "draft", ada, "first")


def test_publishing_makes_it_retrievable_and_records_when(ada: User) -> None:
    article = article_create(actor=ada, title="Returning an item", body=RETURNS)
    row = article_publish(actor=ada, article_id=article.pk)
    article.refresh_from_db()
    assert article.status == "published" and row.status == "published" and row.published_at is not None
    assert set(Chunk.objects.filter(article=article).values_list("article_version", flat=True)) == {1}
    assert slugs_for("free returns within 30 days")[0] == article.slug


def test_a_draft_edit_waits_beside_the_live_version(ada: User) -> None:
    article = article_create(actor=ada, title="Returning an item", body=RETURNS, publish=True)
    row = article_edit(actor=ada, article_id=article.pk, title="Returning an item",
                       body=RETURNS.replace("30 days", "60 days"), change_note="longer window")
    article.refresh_from_db()
    assert row.version == 2 and row.status == "draft"
    assert article.version == 1 and "30 days" in article.body
    assert set(Chunk.objects.filter(article=article).values_list("article_version", flat=True)) == {1}

    article_publish(actor=ada, article_id=article.pk)
    article.refresh_from_db()
    assert article.version == 2 and "60 days" in article.body
    assert set(Chunk.objects.filter(article=article).values_list("article_version", flat=True)) == {2}
    # v1 keeps its words for the drafts that cited it.
    assert "30 days" in ArticleVersion.objects.get(article=article, version=1).body


def test_publishing_a_new_version_reindexes_only_that_article(ada: User) -> None:
    returns = article_create(actor=ada, title="Returning an item", body=RETURNS, publish=True)
    shipping = article_create(actor=ada, title="Delivery times", body="Standard delivery takes 2 to 4 days.",
                              publish=True)
    untouched = list(Chunk.objects.filter(article=shipping).values_list("id", "embedding"))
    before = set(Chunk.objects.filter(article=returns).values_list("id", flat=True))
    article_edit(actor=ada, article_id=returns.pk, title="Returning an item", body=RETURNS + "\n\nNo receipt needed.",
                 publish=True)
    assert list(Chunk.objects.filter(article=shipping).values_list("id", "embedding")) == untouched
    assert before.isdisjoint(Chunk.objects.filter(article=returns).values_list("id", flat=True))


def test_retiring_hides_it_and_keeps_every_version(ada: User) -> None:
    article = article_create(actor=ada, title="Returning an item", body=RETURNS, publish=True)
    article_retire(actor=ada, article_id=article.pk)
    article.refresh_from_db()
    assert article.status == "retired"
    assert article.slug not in slugs_for("free returns within 30 days")
    assert ArticleVersion.objects.get(article=article, version=1).status == "retired"
    with pytest.raises(ArticleError, match="already retired"):
        article_retire(actor=ada, article_id=article.pk)
    # Publishing brings it back.
    article_publish(actor=ada, article_id=article.pk)
    assert slugs_for("free returns within 30 days")[0] == article.slug


def test_restore_copies_an_old_version_into_a_new_draft(ada: User) -> None:
    article = article_create(actor=ada, title="Returning an item", body=RETURNS, publish=True)
    article_edit(actor=ada, article_id=article.pk, title="Returns", body="Returns are closed.", publish=True)
    row = article_restore(actor=ada, article_id=article.pk, version=1)
    assert (row.version, row.status, row.body, row.change_note) == (3, "draft", RETURNS, "Restored from v1")
    article.refresh_from_db()
    assert article.version == 2  # still live until published
    with pytest.raises(ArticleError, match="older than v2"):
        article_publish(actor=ada, article_id=article.pk, version=1)
    with pytest.raises(ArticleError, match="not kept"):
        article_restore(actor=ada, article_id=article.pk, version=9)


def test_bad_articles_are_refused_with_a_reason(ada: User) -> None:
    with pytest.raises(ArticleError, match="needs a title"):
        article_create(actor=ada, title="  ", body="text")
    with pytest.raises(ArticleError, match="needs a body"):
        article_create(actor=ada, title="Title", body="\n")
    with pytest.raises(ArticleError, match="ISO 639-1"):
        article_create(actor=ada, title="Title", body="text", language="english")
    assert not Article.objects.exists()


def test_language_is_detected_when_not_given(ada: User) -> None:
    german = article_create(actor=ada, title="Passwort zurücksetzen",
                            body="Wählen Sie auf der Anmeldeseite Passwort vergessen und geben Sie Ihre E-Mail ein.")
    assert german.language == "de"
    given = article_create(actor=ada, title="Returns", body=RETURNS, language="en-GB")
    assert given.language == "en"
    assert detect_language("") == ""


def test_upsert_keeps_its_contract_and_writes_versions() -> None:
    article = article_upsert(slug="faq/returns", title="Returns", body=RETURNS, source="abcd-guidelines")
    same = article_upsert(slug="faq/returns", title="Returns", body=RETURNS)
    assert same.version == 1 and ArticleVersion.objects.filter(article=article).count() == 1
    changed = article_upsert(slug="faq/returns", title="Returns", body=RETURNS.replace("30", "60"))
    assert changed.version == 2 and changed.status == "published"
    assert list(changed.versions.values_list("version", flat=True)) == [2, 1]


def test_markdown_is_rendered_without_scripts_or_javascript_links() -> None:
    html = render_markdown("# Hi\n\n<script>alert(1)</script> [x](javascript:alert(1)) **ok**")
    assert "<h1>Hi</h1>" in html and "<strong>ok</strong>" in html
    assert "<script" not in html and 'href="javascript' not in html
