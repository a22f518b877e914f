"""Bring articles in from outside: a folder or zip of markdown and HTML files, or a Zendesk Help Center export.

Every source is read and checked in full before anything is written, then each article is written in its
own transaction (`article_sync`), so a bad file is reported and never half-stored. The external id is the
file's path relative to the folder (or zip), or `zendesk:<id>`, so a re-import updates in place.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError

from kb.markdown import html_to_markdown
from kb.services import ArticleError, article_sync

FORMATS = ("auto", "folder", "zip", "zendesk")
ARTICLE_SUFFIXES = {".md", ".markdown", ".html", ".htm"}
MAX_SLUG = 255


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


class ImportRefused(Exception):
    """The whole input is refused (nothing was written): a zip bomb, too many files, not JSON, …"""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ImportItem:
    external_id: str
    title: str
    body: str
    language: str = ""
    draft: bool = False
    source: str = ""
    # "public" or "internal" when the source says; empty keeps an existing article's (a new one: the import's).
    audience: str = ""


@dataclass(frozen=True)
class Failure:
    name: str
    reason: str


@dataclass
class ImportReport:
    dry_run: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pk: None = None  # so the audit log can name it like any other changed object

    def audit_record(self, **extra: object) -> dict[str, object]:
        """What the audit log keeps of an import: the counts and the ids that changed (the first 100)."""
        return {**extra, **self.counts(), "created_ids": self.created[:100], "updated_ids": self.updated[:100],
                "failed_ids": [f.name for f in self.failed[:100]]}

    def counts(self) -> dict[str, int]:
        return {"created": len(self.created), "updated": len(self.updated), "unchanged": len(self.unchanged),
                "failed": len(self.failed), "skipped": len(self.skipped)}

    def summary(self) -> str:
        c = self.counts()
        text = (f"{c['created']} created, {c['updated']} updated, {c['unchanged']} unchanged, "
                f"{c['failed']} failed")
        if c["skipped"]:
            text += f", {c['skipped']} skipped (not markdown or HTML)"
        return text + (" (dry run: nothing was written)" if self.dry_run else "")


# --- One document -------------------------------------------------------------------------------

def _decode(raw: bytes) -> str:
    if b"\x00" in raw:
        raise ValueError("this is a binary file, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the text is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                         "save it as UTF-8 and import again") from exc


def _title_from_name(name: str) -> str:
    stem = PurePosixPath(name).stem
    words = re.sub(r"[-_]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def _drop_leading_heading(body: str, title: str) -> str:
    """Remove a first `# Title` line that only repeats the title."""
    lines = body.lstrip().splitlines()
    if lines and re.fullmatch(r"#\s+" + re.escape(title) + r"\s*#*\s*", lines[0].strip()):
        return "\n".join(lines[1:]).strip()
    return body.strip()


def parse_markdown(name: str, text: str) -> tuple[str, str, str, bool, str]:
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"the front matter is not valid YAML: {str(exc).splitlines()[0]}") from exc
    meta: dict[str, Any] = dict(post.metadata)
    body = post.content
    title = str(meta.get("title") or "").strip()
    if not title:
        first = next((line for line in body.splitlines() if line.strip()), "")
        match = re.fullmatch(r"\s*#\s+(.+?)\s*#*\s*", first)
        title = match.group(1) if match else _title_from_name(name)
    language = str(meta.get("language") or meta.get("lang") or meta.get("locale") or "")
    draft = bool(meta.get("draft")) or str(meta.get("status", "")).lower() == "draft"
    audience = str(meta.get("audience") or meta.get("visibility") or "").strip().lower()
    if audience and audience not in ("public", "internal"):
        raise ValueError(f"the front matter's audience must be public or internal, not {audience!r}")
    return title, _drop_leading_heading(body, title), language, draft, audience


def parse_html(name: str, text: str) -> tuple[str, str, str]:
    import lxml.html
    from lxml.etree import ParserError

    try:
        doc = lxml.html.document_fromstring(text)
    except ParserError as exc:
        raise ValueError(f"the HTML could not be read: {exc}") from exc
    title = " ".join((doc.findtext(".//title") or "").split())
    if not title:
        h1 = doc.find(".//h1")
        title = " ".join(h1.text_content().split()) if h1 is not None else ""
    title = title or _title_from_name(name)
    body_el = doc.find(".//body")
    html = lxml.html.tostring(body_el if body_el is not None else doc, encoding="unicode")
    return title, _drop_leading_heading(html_to_markdown(html), title), str(doc.get("lang") or "")


def parse_document(name: str, raw: bytes, *, source: str) -> ImportItem:
    """One markdown or HTML file as an article; raises ValueError with the reason it cannot be."""
    text = _decode(raw)
    suffix = PurePosixPath(name).suffix.lower()
    draft, audience = False, ""
    if suffix in (".html", ".htm"):
        title, body, language = parse_html(name, text)
    else:
        title, body, language, draft, audience = parse_markdown(name, text)
    if not body.strip():
        raise ValueError("the file has no article text")
    if len(name) > MAX_SLUG:
        raise ValueError(f"the path is longer than {MAX_SLUG} characters")
    return ImportItem(external_id=name, title=title[:300], body=body, language=language, draft=draft, source=source,
                      audience=audience)


# --- Sources ------------------------------------------------------------------------------------

def read_folder(root: Path) -> Iterator[ImportItem | Failure | str]:
    """Items, failures, or the relative name of a file that is not an article (skipped)."""
    if not root.is_dir():
        raise ImportRefused(f"{root} is not a folder")
    max_files, max_bytes = _limit("KB_IMPORT_MAX_FILES", 2000), _limit("KB_IMPORT_MAX_FILE_BYTES", 5 * 2**20)
    max_total = _limit("KB_IMPORT_MAX_TOTAL_BYTES", 50 * 2**20)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # A symlinked folder is listed so it can be reported; hidden folders (.git) hold no articles.
        files.extend(here / d for d in dirnames if not d.startswith(".") and (here / d).is_symlink())
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
        files.extend(here / f for f in filenames if not f.startswith("."))
    files.sort()
    if len(files) > max_files:
        raise ImportRefused(f"the folder holds {len(files)} files; the limit is {max_files}")
    total = sum(p.lstat().st_size for p in files if p.suffix.lower() in ARTICLE_SUFFIXES)
    if total > max_total:
        raise ImportRefused(f"the folder's articles hold {total} bytes; the limit is {max_total}")
    for path in files:
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            yield Failure(name, "symbolic links are not followed")
        elif path.suffix.lower() not in ARTICLE_SUFFIXES:
            yield name
        elif path.stat().st_size > max_bytes:
            yield Failure(name, f"the file is larger than {max_bytes} bytes")
        else:
            try:
                yield parse_document(name, path.read_bytes(), source="folder")
            except ValueError as exc:
                yield Failure(name, str(exc))


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute paths are not allowed in the archive"
    if ".." in re.split(r"[/\\]", name):
        return "the path leaves the archive (path traversal)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic links are not followed"
    if info.flag_bits & 0x1:
        return "the file is encrypted"
    return None


def read_zip(source: Path | IO[bytes]) -> Iterator[ImportItem | Failure | str]:
    max_files = _limit("KB_IMPORT_MAX_FILES", 2000)
    max_total = _limit("KB_IMPORT_MAX_TOTAL_BYTES", 50 * 2**20)
    max_bytes = _limit("KB_IMPORT_MAX_FILE_BYTES", 5 * 2**20)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRefused(f"this is not a readable zip archive ({exc})") from exc
    with archive:
        # Hidden files (.DS_Store) and macOS resource forks are not articles; ".." is kept to be refused.
        members = [i for i in archive.infolist() if not i.is_dir()
                   and not any(p == "__MACOSX" or (p.startswith(".") and p != "..") for p in i.filename.split("/"))]
        if len(members) > max_files:
            raise ImportRefused(f"the archive holds {len(members)} files; the limit is {max_files}")
        # Declared sizes bound what is decompressed (zipfile stops at file_size and checks the CRC), so
        # summing them refuses a zip bomb before a byte is inflated.
        total = sum(i.file_size for i in members)
        if total > max_total:
            raise ImportRefused(f"the archive expands to {total} bytes; the limit is {max_total}")
        names = [i.filename for i in members]
        # A zip of a folder repeats the folder's name in every path; dropping it keeps ids the same as
        # importing the folder itself.
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        for info in members:
            name = info.filename.split("/", 1)[1] if strip else info.filename
            problem = _zip_member_problem(info)
            if problem:
                yield Failure(info.filename, problem)
                continue
            if PurePosixPath(name).suffix.lower() not in ARTICLE_SUFFIXES:
                yield name
                continue
            if info.file_size > max_bytes:
                yield Failure(name, f"the file is larger than {max_bytes} bytes")
                continue
            try:
                raw = archive.read(info)
            except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as exc:
                yield Failure(name, f"the file could not be extracted: {exc}")
                continue
            try:
                yield parse_document(name, raw, source="zip")
            except ValueError as exc:
                yield Failure(name, str(exc))


def _json_values(text: str) -> Iterator[Any]:
    """One JSON document, or several concatenated (paginated exports saved one after another)."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ImportRefused(f"the export is not valid JSON: {exc.msg} at line {exc.lineno} column "
                                f"{exc.colno}") from exc
        yield value


def _zendesk_articles(values: Iterator[Any]) -> Iterator[Any]:
    for value in values:
        pages = value if isinstance(value, list) else [value]
        for page in pages:
            if isinstance(page, dict) and isinstance(page.get("articles"), list):
                yield from page["articles"]
            elif isinstance(page, dict) and "id" in page and "body" in page:
                yield page  # a bare list of articles
            else:
                raise ImportRefused('this is not a Zendesk Help Center export: expected {"articles": [...]} pages')


def read_zendesk(raw: bytes) -> Iterator[ImportItem | Failure | str]:
    try:
        text = _decode(raw)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from exc
    latest: dict[str, dict[str, Any]] = {}
    failures: list[Failure] = []
    for n, article in enumerate(_zendesk_articles(_json_values(text)), 1):
        if not isinstance(article, dict) or not re.fullmatch(r"\d+", str(article.get("id", ""))):
            failures.append(Failure(f"article #{n}", "it has no numeric id"))
            continue
        key = str(article["id"])
        # The same article on two pages (an export taken while someone edited): keep the newest.
        if key not in latest or str(article.get("updated_at") or "") >= str(latest[key].get("updated_at") or ""):
            latest[key] = article
    yield from failures
    for key, article in latest.items():
        name = f"zendesk:{key}"
        title = article.get("title")
        body = article.get("body")
        if not isinstance(title, str) or not title.strip():
            yield Failure(name, "it has no title")
        elif body is not None and not isinstance(body, str):
            yield Failure(name, "its body is not HTML text")
        elif not (markdown := html_to_markdown(body or "")):
            yield Failure(name, "it has no body")
        else:
            yield ImportItem(external_id=name, title=" ".join(title.split())[:300],
                             body=_drop_leading_heading(markdown, title.strip()),
                             language=str(article.get("locale") or ""), draft=bool(article.get("draft")),
                             source="zendesk")


# --- The import ---------------------------------------------------------------------------------

def _detect(source: Path | IO[bytes], filename: str) -> str:
    if isinstance(source, Path) and source.is_dir():
        return "folder"
    suffix = PurePosixPath(filename or (source.name if isinstance(source, Path) else "")).suffix.lower()
    if suffix == ".zip":
        return "zip"
    if suffix == ".json":
        return "zendesk"
    head = source.open("rb").read(4) if isinstance(source, Path) else _peek(source)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.lstrip()[:1] in (b"{", b"["):
        return "zendesk"
    raise ImportRefused("give a folder, a .zip of markdown/HTML files or a Zendesk .json export")


def _peek(handle: IO[bytes]) -> bytes:
    head = handle.read(4)
    handle.seek(0)
    return head


def kb_import(*, source: Path | IO[bytes], fmt: str = "auto", filename: str = "", dry_run: bool = False,
              actor: Any = None, audience: str = "") -> ImportReport:
    """`audience`: for articles whose file does not say (front matter `audience:`); empty: new ones are public,
    existing ones keep theirs."""
    if fmt not in FORMATS:
        raise ImportRefused(f"the format must be one of {', '.join(FORMATS)}")
    if audience and audience not in ("public", "internal"):
        raise ImportRefused(f"the audience must be public or internal, not {audience!r}")
    if isinstance(source, Path) and not source.exists():
        raise ImportRefused(f"{source} does not exist")
    kind = _detect(source, filename) if fmt == "auto" else fmt
    if kind == "folder":
        if not isinstance(source, Path):
            raise ImportRefused("an uploaded file cannot be a folder; upload a .zip")
        entries = list(read_folder(source))
    elif kind == "zip":
        entries = list(read_zip(source))
    else:
        raw = source.read_bytes() if isinstance(source, Path) else source.read()
        entries = list(read_zendesk(raw))
    report = ImportReport(dry_run=dry_run)
    for entry in entries:
        if isinstance(entry, str):
            report.skipped.append(entry)
        elif isinstance(entry, Failure):
            report.failed.append(entry)
        else:
            try:
                _article, outcome = article_sync(slug=entry.external_id, title=entry.title, body=entry.body,
                                                 language=entry.language, draft=entry.draft, source=entry.source,
                                                 actor=actor, dry_run=dry_run, audience=entry.audience or audience)
            except ArticleError as exc:
                report.failed.append(Failure(entry.external_id, exc.message))
                continue
            except IntegrityError:
                # Another import created the same id between our read and our write.
                report.failed.append(Failure(entry.external_id, "another import wrote this article at the same "
                                                                "time; import again to update it"))
                continue
            getattr(report, outcome).append(entry.external_id)
    return report
