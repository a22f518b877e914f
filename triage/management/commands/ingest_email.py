from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.intake.ingest import email_ingest
from triage.intake.mime import parse_mime
from triage.intake.types import InboundError


class Command(BaseCommand):
    help = "Take raw MIME emails (.eml files, or - for standard input) as tickets or replies on tickets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", help="paths to .eml files, or - to read one message from stdin")

    def handle(self, *args: Any, **options: Any) -> None:
        failures = 0
        for name in options["files"]:
            try:
                raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                self.stderr.write(f"{name}: cannot read: {exc.strerror}")
                failures += 1
                continue
            try:
                email = parse_mime(raw, max_attachment_bytes=settings.TIERDESK_MAX_ATTACHMENT_BYTES,
                                   max_attachments=settings.TIERDESK_MAX_ATTACHMENTS)
                result = email_ingest(email, provider="mime")
            except InboundError as exc:
                self.stderr.write(f"{name}: not taken: {exc.message}")
                failures += 1
                continue
            ticket = f"ticket #{result.ticket.pk} ({result.ticket.token})" if result.ticket else "no ticket"
            self.stdout.write(f"{name}: {result.outcome}, {ticket}")
        if failures:
            raise CommandError(f"{failures} of {len(options['files'])} messages were not taken")
