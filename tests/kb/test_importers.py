"""Imports from folders, zips and Zendesk exports: idempotent, per-file failures, hostile archives refused."""

from __future__ import annotations

import io
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from kb.importers import ImportRefused, kb_import
from kb.models import Article, ArticleVersion, Chunk
from kb.selectors import kb_search
from triage.models import AuditEvent

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kb_import"
HELP_CENTER = FIXTURES / "help_center"
ARTICLES = {"account/passwort-zuruecksetzen.md", "account/two-factor.html", "billing/invoices.md",
            "billing/refunds.md", "shipping/international_shipping.md"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "help_center"
    shutil.copytree(HELP_CENTER, copy)
    return copy


def zip_of(entries: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    buffer.seek(0)
    return buffer


def zip_folder(root: Path) -> io.BytesIO:
    """As `zip -r help_center.zip help_center` makes it: every path under the folder's name."""
    return zip_of({f"{root.name}/{p.relative_to(root).as_posix()}": p.read_bytes()
                   for p in sorted(root.rglob("*")) if p.is_file()})


def test_a_folder_imports_markdown_and_html_with_titles_headings_and_languages(folder: Path) -> None:
    report = kb_import(source=folder)
    assert set(report.created) == ARTICLES and not report.failed
    assert report.skipped == ["shipping/carriers.txt"]
    titles = dict(Article.objects.values_list("slug", "title"))
    assert titles == {
        "billing/refunds.md": "Refunds for cancelled orders",  # front matter
        "billing/invoices.md": "Downloading an invoice",  # first heading
        "account/two-factor.html": "Turning on two-factor authentication",  # <title>
        "account/passwort-zuruecksetzen.md": "Passwort zurücksetzen",
        "shipping/international_shipping.md": "International shipping",  # the file name
    }
    two_factor = Article.objects.get(slug="account/two-factor.html")
    assert "## Setting it up" in two_factor.body and "## Lost phone" in two_factor.body
    assert "analytics" not in two_factor.body and "track(" not in two_factor.body and "color" not in two_factor.body
    assert not two_factor.body.startswith("# Turning on")  # the title is not repeated as the first heading
    headings = set(Chunk.objects.filter(article=two_factor).values_list("heading", flat=True))
    assert {"Setting it up", "Lost phone"} <= headings
    assert Article.objects.get(slug="account/passwort-zuruecksetzen.md").language == "de"
    assert Article.objects.get(slug="billing/refunds.md").language == "en"
    assert kb_search(query="I lost my phone and can't get the two-factor code", k=1)[0].article_slug == \
        "account/two-factor.html"


def test_importing_the_same_folder_again_changes_nothing(folder: Path) -> None:
    kb_import(source=folder)
    chunks = list(Chunk.objects.order_by("id").values_list("id", "article_version"))
    versions = ArticleVersion.objects.count()
    report = kb_import(source=folder)
    assert set(report.unchanged) == ARTICLES and not (report.created or report.updated or report.failed)
    assert list(Chunk.objects.order_by("id").values_list("id", "article_version")) == chunks
    assert ArticleVersion.objects.count() == versions


def test_a_changed_file_becomes_one_new_version_and_only_its_chunks_are_reindexed(folder: Path) -> None:
    kb_import(source=folder)
    refunds = Article.objects.get(slug="billing/refunds.md")
    others = list(Chunk.objects.exclude(article=refunds).order_by("id").values_list("id", flat=True))
    old_chunks = set(Chunk.objects.filter(article=refunds).values_list("id", flat=True))
    path = folder / "billing" / "refunds.md"
    path.write_text(path.read_text().replace("5 to 10", "3 to 5"))

    report = kb_import(source=folder)
    assert report.updated == ["billing/refunds.md"] and len(report.unchanged) == 4
    refunds.refresh_from_db()
    assert refunds.id == Article.objects.get(slug="billing/refunds.md").id and refunds.version == 2
    assert "3 to 5" in refunds.body and refunds.versions.count() == 2
    assert list(Chunk.objects.exclude(article=refunds).order_by("id").values_list("id", flat=True)) == others
    new_chunks = set(Chunk.objects.filter(article=refunds).values_list("id", flat=True))
    assert new_chunks and old_chunks.isdisjoint(new_chunks)


def test_a_dry_run_reports_and_writes_nothing(folder: Path) -> None:
    report = kb_import(source=folder, dry_run=True)
    assert set(report.created) == ARTICLES and "dry run" in report.summary()
    assert not Article.objects.exists()


def test_a_zip_of_the_folder_keeps_the_same_ids(folder: Path) -> None:
    kb_import(source=folder)
    report = kb_import(source=zip_folder(folder), filename="help_center.zip")
    assert set(report.unchanged) == ARTICLES and report.skipped == ["shipping/carriers.txt"]


def test_a_zendesk_export_of_concatenated_pages() -> None:
    report = kb_import(source=FIXTURES / "zendesk" / "articles_concatenated.json")
    assert set(report.created) == {f"zendesk:36000100{n}" for n in (1, 2, 3, 4, 5)}
    assert [(f.name, f.reason) for f in report.failed] == [("zendesk:360001006", "it has no title")]
    returns = Article.objects.get(slug="zendesk:360001002")
    assert "30 days" in returns.body and "## Refund timing" in returns.body  # the newer copy, headings kept
    assert Article.objects.get(slug="zendesk:360001004").status == "draft"  # Zendesk drafts stay drafts
    assert Article.objects.get(slug="zendesk:360001005").language == "de"
    assert Article.objects.get(slug="zendesk:360001001").source == "zendesk"
    assert "- Not available on public holidays" in Article.objects.get(slug="zendesk:360001003").body


def test_a_zendesk_export_as_a_list_of_pages_is_the_same_export() -> None:
    kb_import(source=FIXTURES / "zendesk" / "articles_concatenated.json")
    report = kb_import(source=FIXTURES / "zendesk" / "articles_pages.json")
    assert len(report.unchanged) == 5 and not report.created and not report.updated


def test_zip_members_that_leave_the_archive_or_are_links_fail_alone() -> None:
    archive = zip_of({
        "good.md": b"# Good\n\nA fine article.",
        "../evil.md": b"# Evil\n\nOutside.",
        "/etc/passwd.md": b"# Abs\n\nAbsolute.",
        "link.md": b"/etc/shadow",
        "latin1.md": "# Café\n\nCrème brûlée à volonté.".encode("latin-1"),
        "empty.md": b"---\ntitle: Empty\n---\n",
    }, symlinks=("link.md",))
    report = kb_import(source=archive, filename="kb.zip")
    assert report.created == ["good.md"]
    reasons = {f.name: f.reason for f in report.failed}
    assert "path traversal" in reasons["../evil.md"]
    assert "absolute paths" in reasons["/etc/passwd.md"]
    assert "symbolic links" in reasons["link.md"]
    assert "not UTF-8" in reasons["latin1.md"]
    assert "no article text" in reasons["empty.md"]
    assert list(Article.objects.values_list("slug", flat=True)) == ["good.md"]


def test_a_zip_bomb_is_refused_before_anything_is_written(settings: object) -> None:
    settings.KB_IMPORT_MAX_TOTAL_BYTES = 10 * 2**20  # type: ignore[attr-defined]
    archive = zip_of({"a.md": b"# A\n\nfine", "bomb.md": b"0" * (20 * 2**20)})
    assert len(archive.getvalue()) < 100_000  # 20 MiB of zeros compresses to almost nothing
    with pytest.raises(ImportRefused, match="expands to 20971529 bytes; the limit is 10485760"):
        kb_import(source=archive, filename="kb.zip")
    assert not Article.objects.exists()


def test_a_member_that_lies_about_its_size_is_not_inflated_past_it() -> None:
    archive = zip_of({"ok.md": b"# Ok\n\nsmall", "liar.md": b"# Liar\n\n" + b"0" * 2**20}).getvalue()
    # Rewrite liar.md's declared size (local header and central directory) to 16 bytes.
    local = archive.index(b"PK\x03\x04", archive.index(b"PK\x03\x04") + 4)
    central = archive.index(b"PK\x01\x02", archive.index(b"PK\x01\x02") + 4)
    patched = bytearray(archive)
    patched[local + 22:local + 26] = struct.pack("<I", 16)
    patched[central + 24:central + 28] = struct.pack("<I", 16)
    report = kb_import(source=io.BytesIO(bytes(patched)), filename="kb.zip")
    assert report.created == ["ok.md"]
    assert [f.name for f in report.failed] == ["liar.md"] and "could not be extracted" in report.failed[0].reason


def test_too_many_files_are_refused(settings: object) -> None:
    settings.KB_IMPORT_MAX_FILES = 3  # type: ignore[attr-defined]
    with pytest.raises(ImportRefused, match="holds 4 files; the limit is 3"):
        kb_import(source=zip_of({f"{n}.md": b"# T\n\nx" for n in range(4)}), filename="kb.zip")
    assert not Article.objects.exists()


def test_a_folder_with_too_many_files_is_refused(folder: Path, settings: object) -> None:
    settings.KB_IMPORT_MAX_FILES = 5  # type: ignore[attr-defined]
    with pytest.raises(ImportRefused, match="the folder holds 6 files; the limit is 5"):
        kb_import(source=folder)
    assert not Article.objects.exists()


def test_a_file_over_the_size_limit_fails_alone(settings: object) -> None:
    settings.KB_IMPORT_MAX_FILE_BYTES = 1000  # type: ignore[attr-defined]
    report = kb_import(source=zip_of({"big.md": b"# Big\n\n" + b"word " * 400, "ok.md": b"# Ok\n\nsmall"}),
                       filename="kb.zip")
    assert report.created == ["ok.md"] and "larger than 1000 bytes" in report.failed[0].reason


def test_inputs_that_are_not_archives_or_exports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="not a readable zip"):
        kb_import(source=io.BytesIO(b"PK\x03\x04 truncated"), filename="kb.zip")
    bad_json = tmp_path / "export.json"
    bad_json.write_text('{"articles": [{"id": 1,')
    with pytest.raises(ImportRefused, match="not valid JSON"):
        kb_import(source=bad_json)
    other_json = tmp_path / "tickets.json"
    other_json.write_text('{"tickets": []}')
    with pytest.raises(ImportRefused, match="not a Zendesk Help Center export"):
        kb_import(source=other_json)
    with pytest.raises(ImportRefused, match="does not exist"):
        kb_import(source=tmp_path / "missing")
    assert not Article.objects.exists()


def test_a_symlink_in_a_folder_is_not_followed(folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nnot for the KB")
    (folder / "billing" / "secret.md").symlink_to(secret)
    (folder / "elsewhere").symlink_to(tmp_path)
    report = kb_import(source=folder)
    assert {f.name: f.reason for f in report.failed} == {"billing/secret.md": "symbolic links are not followed",
                                                         "elsewhere": "symbolic links are not followed"}
    assert not Article.objects.filter(title="Secret").exists()


def test_the_command_reports_each_file_and_fails_when_a_file_failed(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("kb_import", str(folder), "--dry-run")
    out = capsys.readouterr().out
    assert "created    billing/refunds.md" in out and "5 created, 0 updated, 0 unchanged, 0 failed" in out
    assert not Article.objects.exists()
    (folder / "broken.md").write_bytes(b"\xff\xfe# binary\x00")
    with pytest.raises(CommandError, match="1 file\\(s\\) failed"):
        call_command("kb_import", str(folder), "--format", "folder")
    assert "broken.md: this is a binary file" in capsys.readouterr().err
    assert Article.objects.count() == 5
    assert AuditEvent.objects.get(action="kb.import").after["created"] == 5  # the dry run is not logged
