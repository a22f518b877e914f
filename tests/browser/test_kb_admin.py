"""An admin manages an article in chromium: create → publish → edit → history → retire."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from kb.models import Article, Chunk
from kb.selectors import kb_search
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.support import builders
from triage.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def admin() -> User:
    user = User.objects.create_user("ada", password="ada-pass-9931")
    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    return user


def test_an_admin_writes_publishes_edits_compares_and_retires_an_article(live_server: Any, page: Any,
                                                                         admin: User) -> None:
    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.get_by_role("link", name="Knowledge base").click()
    page.get_by_role("heading", name="Knowledge base").wait_for()
    page.get_by_role("link", name="New article").click()

    page.get_by_label("Title").fill("Gift cards")
    page.get_by_label("Body (markdown").fill("Gift cards are valid for **three years**.\n\n## Using one\n\n"
                                             "Enter the code at checkout.")
    preview = page.get_by_test_id("preview")
    preview.locator("strong", has_text="three years").wait_for()  # htmx preview while typing
    assert preview.locator("h2", has_text="Using one").count() == 1
    page.get_by_label("Change note").fill("first version")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_text("saved as v1 (draft)").wait_for()
    article = Article.objects.get(title="Gift cards")
    assert article.status == "draft" and not Chunk.objects.filter(article=article).exists()

    page.get_by_test_id("publish").click()
    page.get_by_text("v1 published; retrieval now uses it.").wait_for()
    assert page.get_by_test_id("article-status").inner_text() == "published"
    assert kb_search(query="how long is a gift card valid", k=1)[0].article_slug == article.slug

    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Body (markdown").fill("Gift cards are valid for **five years**.\n\n## Using one\n\n"
                                             "Enter the code at checkout.")
    page.get_by_label("Change note").fill("longer validity")
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("v2 published.").wait_for()

    diff = page.get_by_test_id("diff")
    assert "-Gift cards are valid for **three years**." in diff.inner_text()
    assert "+Gift cards are valid for **five years**." in diff.inner_text()
    versions = page.get_by_test_id("versions").inner_text()
    assert "longer validity" in versions and "first version" in versions
    page.get_by_role("link", name="v1", exact=True).click()
    assert "three years" in page.get_by_test_id("article-body").inner_text()
    assert "the live version is v2" in page.get_by_test_id("not-live").inner_text()
    page.go_back()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "kb_history.png"), full_page=True)

    page.get_by_test_id("retire").click()
    page.get_by_text("Article retired").wait_for()
    assert page.get_by_test_id("article-status").inner_text() == "retired"
    assert all(p.article_slug != article.slug for p in kb_search(query="how long is a gift card valid", k=10))
    actions = list(AuditEvent.objects.filter(object_type="Article").values_list("action", flat=True).order_by("id"))
    assert actions == ["kb.article.create", "kb.article.publish", "kb.article.publish", "kb.article.retire"]


def test_an_admin_imports_a_zip_and_sees_the_report(live_server: Any, page: Any, admin: User, tmp_path: Any) -> None:
    import zipfile

    archive = tmp_path / "help.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("returns.md", "# Returns\n\nReturns are free within 30 days.")
        zf.writestr("../escape.md", "# Escape\n\nnope")
    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.goto(f"{live_server.url}/kb/")
    page.get_by_label("File").set_input_files(str(archive))
    page.get_by_role("button", name="Import").click()
    report = page.get_by_test_id("import-report")
    report.wait_for()
    assert "1 created, 0 updated, 0 unchanged, 1 failed" in report.inner_text()
    assert "path traversal" in report.inner_text()
    assert page.get_by_test_id("articles").get_by_role("link", name="Returns").count() == 1


def test_an_admin_writes_the_article_a_gap_asks_for(live_server: Any, page: Any, admin: User) -> None:
    from triage.models import Intent, RouteDecision

    gift = Intent.objects.create(name="gift_card")
    for n, subject in enumerate(["Gift card expired", "Gift card balance", "Use a gift card in store"]):
        ticket = builders.ticket(subject=subject, body="my gift card", from_email=f"c{n}@example.com",
                                       intent=gift)
        RouteDecision.objects.create(ticket=ticket, lane="large", top_similarity=0.3)
    sign_in(page, live_server.url, "ada", "ada-pass-9931")
    page.goto(f"{live_server.url}/kb/")
    page.get_by_role("link", name="Knowledge gaps").click()
    gap = page.get_by_test_id("gap")
    assert "gift_card" in gap.inner_text() and "3 tickets" in gap.inner_text()
    page.screenshot(path=str(ARTIFACTS / "kb_gaps.png"), full_page=True)
    gap.get_by_role("link", name="Write article").click()
    assert page.get_by_label("Title").input_value() == "Gift card"
    assert "- Gift card expired" in page.get_by_label("Body (markdown").input_value()
    page.get_by_test_id("preview").locator("h2", has_text="What customers ask").wait_for()
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("saved as v1 (published)").wait_for()
    assert Article.objects.get(title="Gift card").versions.get().change_note.startswith("Written for the gift_card")


def test_agents_do_not_see_the_knowledge_base_pages(live_server: Any, page: Any) -> None:
    agent = User.objects.create_user("alice", password="alice-pass-4821")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    sign_in(page, live_server.url, "alice", "alice-pass-4821")
    assert page.get_by_role("link", name="Knowledge base").count() == 0
    response = page.goto(f"{live_server.url}/kb/gaps")
    assert response is not None and response.status == 404
