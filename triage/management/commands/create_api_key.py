from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from triage import services


class Command(BaseCommand):
    help = "Create an API key and print it once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what the key is for, e.g. 'zendesk-bridge'")

    def handle(self, *args: Any, **options: Any) -> None:
        _key, raw = services.api_key_create(name=options["name"])
        self.stdout.write(raw)
