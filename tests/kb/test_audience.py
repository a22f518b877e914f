"""Knowledge has an audience: public articles may be quoted to customers, internal ones only guide."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from kb.importers import kb_import
from kb.models import Article
from kb.selectors import kb_search
from kb.services import ArticleError, article_create, article_upsert
from triage import services
from triage.models import AuditEvent

pytestmark = pytest.mark.django_db

RETURNS = "You have 30 days to return an item. Start a return from Account > Orders and print the label."
PROCEDURE = "Pull up the account, verify the customer's identity, then offer the return label in [Returns Tool]."


def test_a_new_article_is_public_and_internal_must_be_said() -> None:
    assert article_create(actor=None, title="Returns", body=RETURNS, publish=True).audience == "public"
    internal = article_create(actor=None, title="Returns procedure", body=PROCEDURE, audience="internal")
    assert internal.audience == "internal"


def test_an_unknown_audience_is_refused_in_words() -> None:
    with pytest.raises(ArticleError, match=r"public .*or internal"):
        article_create(actor=None, title="Returns", body=RETURNS, audience="everyone")
    assert not Article.objects.exists()


def test_retrieval_keeps_one_audience_when_asked() -> None:
    article_upsert(slug="returns", title="Returns", body=RETURNS)
    article_upsert(slug="returns-procedure", title="Returns procedure", body=PROCEDURE, audience="internal")
    both = {p.article_slug for p in kb_search(query="return an item", k=5)}
    public = kb_search(query="return an item", k=5, audience="public")
    internal = kb_search(query="return an item", k=5, audience="internal")
    assert both == {"returns", "returns-procedure"}
    assert [(p.article_slug, p.audience) for p in public] == [("returns", "public")]
    assert [(p.article_slug, p.audience) for p in internal] == [("returns-procedure", "internal")]


def test_front_matter_names_the_audience_and_the_import_default_covers_the_rest(tmp_path: Path) -> None:
    (tmp_path / "returns.md").write_text(f"---\ntitle: Returns\naudience: public\n---\n{RETURNS}\n")
    (tmp_path / "procedure.md").write_text(f"# Returns procedure\n\n{PROCEDURE}\n")
    (tmp_path / "bad.md").write_text(f"---\ntitle: Bad\naudience: staff\n---\n{RETURNS}\n")
    report = kb_import(source=tmp_path, audience="internal")
    assert dict(Article.objects.values_list("slug", "audience")) == {"returns.md": "public",
                                                                      "procedure.md": "internal"}
    assert [(f.name, "audience" in f.reason) for f in report.failed] == [("bad.md", True)]


def test_reimporting_with_another_audience_updates_it_without_a_new_version(tmp_path: Path) -> None:
    (tmp_path / "returns.md").write_text(f"# Returns\n\n{RETURNS}\n")
    kb_import(source=tmp_path)
    report = kb_import(source=tmp_path, audience="internal")
    article = Article.objects.get()
    assert (article.audience, article.version, report.updated) == ("internal", 1, ["returns.md"])


@pytest.fixture
def admin_client(client: Client) -> Client:
    user = User.objects.create_user("ada", password="pw")
    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    client.force_login(user)
    return client


def test_the_editor_sets_and_changes_the_audience(admin_client: Client) -> None:
    response = admin_client.post("/kb/new", {"title": "Returns procedure", "body": PROCEDURE, "language": "en",
                                             "audience": "internal", "action": "publish"})
    assert response.status_code == 302
    article = Article.objects.get()
    assert article.audience == "internal"
    page = admin_client.get(f"/kb/{article.pk}/edit")
    assert b'value="internal" checked' in page.content
    admin_client.post(f"/kb/{article.pk}/edit", {"title": "Returns procedure", "body": PROCEDURE, "language": "en",
                                                 "audience": "public", "action": "draft"})
    article.refresh_from_db()
    assert article.audience == "public"
    assert AuditEvent.objects.filter(action="kb.article.edit", before__audience="internal",
                                     after__audience="public").exists()
    assert b">internal<" not in admin_client.get("/kb/").content


def test_the_editor_refuses_an_unknown_audience_and_keeps_the_text(admin_client: Client) -> None:
    response = admin_client.post("/kb/new", {"title": "Returns", "body": RETURNS, "audience": "staff",
                                             "action": "publish"})
    assert response.status_code == 400 and b"You have 30 days to return an item." in response.content
    assert not Article.objects.exists()


@pytest.fixture
def auth() -> dict[str, str]:
    _key, raw = services.api_key_create(name="cms")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_the_api_creates_updates_and_lists_articles_with_their_audience(client: Client, auth: dict[str, str]) -> None:
    new = {"id": "help/returns", "title": "Returns", "body": RETURNS, "audience": "public"}
    created = client.post("/api/v1/kb/articles", new, content_type="application/json", **auth)
    assert created.status_code == 201 and created.json()["audience"] == "public"
    same = client.post("/api/v1/kb/articles", new, content_type="application/json", **auth)
    assert same.status_code == 200 and same.json()["version"] == 1
    moved = client.post("/api/v1/kb/articles", new | {"audience": "internal"}, content_type="application/json",
                        **auth)
    assert moved.status_code == 200 and moved.json()["audience"] == "internal"
    listed = client.get("/api/v1/kb/articles?audience=internal", **auth).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == "help/returns"
    assert AuditEvent.objects.filter(action="kb.article.api").count() == 2


def test_the_api_refuses_a_bad_audience_with_the_field_named(client: Client, auth: dict[str, str]) -> None:
    response = client.post("/api/v1/kb/articles", {"id": "x", "title": "T", "body": RETURNS, "audience": "staff"},
                           content_type="application/json", **auth)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "audience"
    assert not Article.objects.exists()


def test_the_api_needs_a_key(client: Client) -> None:
    assert client.get("/api/v1/kb/articles").status_code == 401


def test_the_demo_help_centre_imports_as_thirty_public_articles() -> None:
    report = kb_import(source=Path(__file__).resolve().parents[2] / "fixtures" / "kb" / "helpcentre",
                       fmt="folder", audience="public")
    assert (len(report.created), report.failed, report.skipped) == (30, [], [])
    assert set(Article.objects.values_list("audience", flat=True)) == {"public"}
