from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import learning
from triage.errors import ApplicationError
from triage.models import LocalModel


class Command(BaseCommand):
    help = (
        "Train the local engine's intent classifier on the taxonomy's examples and agents' corrections; it "
        "becomes active only if it is not worse on the held-back examples (or with --force)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="make the new model active even if it scores lower")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = learning.local_model_train(trigger=LocalModel.Trigger.COMMAND, force=options["force"],
                                               progress=lambda d, t: self.stderr.write(f"embedded {d}/{t} examples"))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"local model v{model.version} ({model.kind}) trained on {model.n_examples} examples "
            f"in {model.train_seconds:.1f} s: {model.decision}"
        )
