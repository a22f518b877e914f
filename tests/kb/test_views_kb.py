"""The knowledge-base pages: admins only (agents get 404), clear errors, audited changes, cited versions."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from kb.models import Article, ArticleVersion
from kb.services import article_create, article_edit
from tests.support import builders
from triage.models import AuditEvent, Draft, Intent, RouteDecision

pytestmark = pytest.mark.django_db

BODY = "Returns are free within 30 days.\n\n## Labels\n\nPrint the prepaid label from Orders."


@pytest.fixture
def ada() -> User:
    user = User.objects.create_user("ada", password="pw")
    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    return user


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice", password="pw")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def admin_client(client: Client, ada: User) -> Client:
    client.force_login(ada)
    return client


@pytest.fixture
def agent_client(client: Client, alice: User) -> Client:
    client.force_login(alice)
    return client


@pytest.fixture
def article(ada: User) -> Article:
    return article_create(actor=ada, title="Returning an item", body=BODY, publish=True)


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/kb/"), ("get", "/kb/new"), ("get", "/kb/gaps"), ("get", "/kb/{id}/"), ("get", "/kb/{id}/edit"),
    ("post", "/kb/{id}/publish"), ("post", "/kb/{id}/retire"), ("post", "/kb/{id}/restore"),
    ("post", "/kb/preview"), ("post", "/kb/import"), ("post", "/kb/new"),
])
def test_agents_get_404_on_admin_pages(agent_client: Client, article: Article, method: str, path: str) -> None:
    response = getattr(agent_client, method)(path.format(id=article.pk))
    assert response.status_code == 404
    article.refresh_from_db()
    assert article.status == "published" and article.versions.count() == 1


def test_outsiders_are_sent_to_sign_in(client: Client, article: Article) -> None:
    for path in ("/kb/", f"/kb/{article.pk}/v/1"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_every_post_needs_a_csrf_token(ada: User, article: Article) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    assert client.post(f"/kb/{article.pk}/retire").status_code == 403
    article.refresh_from_db()
    assert article.status == "published"


def test_an_admin_creates_and_publishes_an_article_and_it_is_audited(admin_client: Client, ada: User) -> None:
    response = admin_client.post("/kb/new", {"title": "Gift cards", "body": "Gift cards are valid for three years.",
                                            "language": "", "change_note": "new", "action": "publish"})
    article = Article.objects.get(title="Gift cards")
    assert response.status_code == 302 and response["Location"] == f"/kb/{article.pk}/"
    assert article.status == "published" and article.language == "en" and article.chunks.exists()
    event = AuditEvent.objects.get(action="kb.article.create")
    assert event.actor == ada and event.object_type == "Article" and event.after["status"] == "published"


def test_a_bad_article_is_refused_and_the_text_is_kept(admin_client: Client) -> None:
    response = admin_client.post("/kb/new", {"title": "", "body": "Typed with care", "action": "draft"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "an article needs a title" in html and "Typed with care" in html
    assert not Article.objects.exists()


def test_editing_saves_a_draft_then_publishing_makes_it_live(admin_client: Client, article: Article) -> None:
    admin_client.post(f"/kb/{article.pk}/edit", {"title": "Returning an item", "body": BODY.replace("30", "60"),
                                                 "change_note": "longer", "action": "draft"})
    article.refresh_from_db()
    assert article.version == 1
    history = admin_client.get(f"/kb/{article.pk}/").content.decode()
    assert "Draft v2 is waiting" in history
    assert '<span class="del">-Returns are free within 30 days.</span>' in history
    assert '<span class="add">+Returns are free within 60 days.</span>' in history
    admin_client.post(f"/kb/{article.pk}/publish")
    article.refresh_from_db()
    assert article.version == 2 and "60 days" in article.body
    assert list(AuditEvent.objects.values_list("action", flat=True).order_by("id")) == [
        "kb.article.edit", "kb.article.publish"]


def test_retire_and_restore_from_the_history_page(admin_client: Client, ada: User, article: Article) -> None:
    article_edit(actor=ada, article_id=article.pk, title="Returns", body="Closed for now.", publish=True)
    admin_client.post(f"/kb/{article.pk}/restore", {"version": "1"})
    assert ArticleVersion.objects.get(article=article, version=3).body == BODY
    admin_client.post(f"/kb/{article.pk}/retire")
    article.refresh_from_db()
    assert article.status == "retired"
    response = admin_client.post(f"/kb/{article.pk}/restore", {"version": "x"}, follow=True)
    assert "choose a version to restore" in response.content.decode()
    response = admin_client.get(f"/kb/{article.pk}/?a=1&b=99", follow=True)
    assert "choose two versions this article has" in response.content.decode()


def test_an_agent_opens_the_version_a_draft_cited(agent_client: Client, ada: User, article: Article) -> None:
    article_edit(actor=ada, article_id=article.pk, title="Returning an item", body="Returns now take 60 days.",
                 publish=True)
    ticket = builders.ticket(subject="Return", body="b", from_email="c@example.com", status="awaiting_review")
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", top_similarity=0.9)
    draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                                 body="hello [1]")
    draft.citations.create(article=article, article_slug=article.slug, article_title=article.title,
                           article_version=1, marker=1, excerpt="Returns are free within 30 days.", score=0.9)
    ticket_html = agent_client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert f'href="/kb/{article.pk}/v/1"' in ticket_html
    html = agent_client.get(f"/kb/{article.pk}/v/1").content.decode()
    assert "Returns are free within 30 days." in html and "60 days" not in html
    assert "the live version is v2" in html
    missing = agent_client.get(f"/kb/{article.pk}/v/7")
    assert missing.status_code == 404 and "written before Tierdesk kept article history" in missing.content.decode()


def test_the_preview_renders_markdown_safely(admin_client: Client) -> None:
    response = admin_client.post("/kb/preview", {"body": "## Steps\n\n<script>x()</script> **bold**"},
                                 HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<h2>Steps</h2>" in html and "<strong>bold</strong>" in html and "<script>" not in html
    assert "<html" not in html  # only the partial


def test_the_article_list_uses_a_fixed_number_of_queries(admin_client: Client, ada: User,
                                                         django_assert_num_queries: Any) -> None:
    for n in range(3):
        article_create(actor=ada, title=f"Article {n}", body="Some text here.")
    admin_client.get("/kb/")  # warm the session and group lookups
    with django_assert_num_queries(5):  # session, user, groups, articles, counts
        response = admin_client.get("/kb/?status=draft")
    assert response.content.decode().count("Article ") >= 3


def zip_upload(entries: dict[str, bytes], name: str = "kb.zip") -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
    buffer.seek(0)
    buffer.name = name
    return buffer


def test_the_import_form_reports_per_file(admin_client: Client) -> None:
    upload = zip_upload({"returns.md": b"# Returns\n\nFree within 30 days.", "bad.md": b"\xff\xfe\x00"})
    response = admin_client.post("/kb/import", {"file": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert "1 created, 0 updated, 0 unchanged, 1 failed" in html
    assert "<code>bad.md</code>: this is a binary file, not text" in html
    assert Article.objects.get(slug="returns.md").status == "published"
    audit = AuditEvent.objects.get(action="kb.import").after
    assert audit["created"] == 1 and audit["created_ids"] == ["returns.md"] and audit["failed_ids"] == ["bad.md"]


def test_the_import_form_refuses_what_it_cannot_read(admin_client: Client) -> None:
    response = admin_client.post("/kb/import", {"file": io.BytesIO(b"hello")})
    assert response.status_code == 400 and "Import refused, nothing was written" in response.content.decode()
    response = admin_client.post("/kb/import", {})
    assert response.status_code == 400 and "choose a .zip" in response.content.decode()
    assert not Article.objects.exists()


def test_the_gaps_page_lists_weak_intents_with_examples_and_a_write_link(admin_client: Client,
                                                                        django_assert_num_queries: Any) -> None:
    gift = Intent.objects.create(name="gift_card")
    for n, similarity in enumerate([0.2, None, 0.95]):
        ticket = builders.ticket(subject=f"Gift card question {n}", body="expired gift card",
                                       from_email=f"c{n}@example.com", intent=gift)
        RouteDecision.objects.create(ticket=ticket, lane="large", top_similarity=similarity)
    old = builders.ticket(subject="Ancient", body="b", from_email="o@example.com", intent=gift)
    RouteDecision.objects.filter(pk=RouteDecision.objects.create(ticket=old, lane="large", top_similarity=0.1).pk
                                 ).update(created_at=timezone.now() - timedelta(days=20))
    admin_client.get("/kb/gaps")
    with django_assert_num_queries(5):  # session, user, groups, switches, the decisions
        html = admin_client.get("/kb/gaps?days=7").content.decode()
    assert "2 of 3 tickets routed in the last 7 days" in html
    assert "2 tickets · 2 of 3 for this intent" in html and "Ancient" not in html
    assert "/kb/new?title=Gift+card&amp;body=" in html
    form = admin_client.get("/kb/new?title=Gift+card&body=%23%23+What+customers+ask").content.decode()
    assert 'value="Gift card"' in form and "## What customers ask" in form


def test_the_history_page_reads_versions_in_one_query_however_many(admin_client: Client, ada: User,
                                                                   article: Article,
                                                                   django_assert_num_queries: Any) -> None:
    for n in range(4):
        article_edit(actor=ada, article_id=article.pk, title="Returning an item", body=f"{BODY}\n\nEdit {n}.")
    admin_client.get(f"/kb/{article.pk}/")
    with django_assert_num_queries(5):  # session, user, groups, article, versions with their authors
        html = admin_client.get(f"/kb/{article.pk}/").content.decode()
    assert html.count("Restore as new version") == 4 and "Draft v5 is waiting" in html
