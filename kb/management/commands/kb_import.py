from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.importers import FORMATS, ImportRefused, kb_import
from triage.audit import audit


class Command(BaseCommand):
    help = ("Import knowledge-base articles from a folder or zip of markdown/HTML files, or a Zendesk Help "
            "Center JSON export. Re-importing updates changed articles and leaves the rest untouched.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=FORMATS, default="auto")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
        parser.add_argument("--audience", choices=["public", "internal"], default="",
                            help="for articles whose file does not say (front matter `audience:`): public "
                                 "(customers may read and drafts may quote it) or internal (agents only)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = kb_import(source=options["path"], fmt=options["format"], dry_run=options["dry_run"],
                               audience=options["audience"])
        except ImportRefused as exc:
            raise CommandError(exc.message) from exc
        if not options["dry_run"]:

            audit(actor=None, action="kb.import", obj=report, before=None,
                           after=report.audit_record(file=str(options["path"]), via="kb_import command"))
        for label in ("created", "updated", "unchanged"):
            for name in getattr(report, label):
                self.stdout.write(f"{label:9}  {name}")
        for name in report.skipped:
            self.stdout.write(f"skipped    {name} (not markdown or HTML)")
        for failure in report.failed:
            self.stderr.write(f"failed     {failure.name}: {failure.reason}")
        self.stdout.write(report.summary())
        if report.failed:
            raise CommandError(f"{len(report.failed)} file(s) failed; the others were imported")
