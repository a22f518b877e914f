from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.intake.imap import Mailbox, poll
from triage.intake.types import InboundError


class Command(BaseCommand):
    help = ("Take new mail from an IMAPS folder as tickets. The password comes from TIERDESK_IMAP_PASSWORD, "
            "never the command line.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", type=int, default=993)
        parser.add_argument("--user", required=True)
        parser.add_argument("--folder", default="INBOX")
        parser.add_argument("--move-to", help="folder to move taken mail to; without it, mail is flagged as read")
        parser.add_argument("--ca-file", help="a CA bundle for a server with a private certificate")
        parser.add_argument("--interval", type=int, default=0, help="poll every N seconds; 0 polls once")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("TIERDESK_IMAP_PASSWORD")
        if not password:
            raise CommandError("set TIERDESK_IMAP_PASSWORD to the mailbox password")
        mailbox = Mailbox(host=options["host"], port=options["port"], user=options["user"], password=password,
                          folder=options["folder"], move_to=options["move_to"], ca_file=options["ca_file"])
        while True:
            try:
                result = poll(mailbox, max_attachment_bytes=settings.TIERDESK_MAX_ATTACHMENT_BYTES,
                              max_attachments=settings.TIERDESK_MAX_ATTACHMENTS)
            except InboundError as exc:
                if exc.permanent or not options["interval"]:
                    raise CommandError(exc.message) from exc
                self.stderr.write(f"poll failed, will retry: {exc.message}")
            else:
                self.stdout.write(f"taken {result.taken}, duplicates {result.duplicates}, refused {result.refused}")
            if not options["interval"]:
                return
            time.sleep(options["interval"])
