from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from triage import services
from triage.errors import ApplicationError


class Command(BaseCommand):
    help = "Train the local engine's intent classifier on the taxonomy's labelled examples and activate it."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = services.local_model_train()
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"local model v{model.version} ({model.kind}) trained on {model.n_examples} examples")
