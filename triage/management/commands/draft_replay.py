from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import draft_evals
from triage.errors import ApplicationError
from triage.models import EvalRun


class Command(BaseCommand):
    help = ("Draft the newest tickets agents answered again with a candidate tier and draft-prompt version, over "
            "the live knowledge base, and compare each draft with what the agent sent, per lane.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tier", default="local", help="nano, mini, large or local (default local)")
        parser.add_argument("--prompt-version", type=int, help="draft prompt version (default: production's)")
        parser.add_argument("--limit", type=int, default=200, help="how many of the newest answered tickets")
        parser.add_argument("--output", type=Path)
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            report = draft_evals.draft_replay(tier=options["tier"], prompt_version=options["prompt_version"],
                                              limit=options["limit"], progress=self._progress)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        EvalRun.objects.create(kind=EvalRun.Kind.DRAFT_REPLAY, name=options["name"] or replay_name(options),
                               tier=options["tier"], engine=report["engine"], model=report["model"][:200],
                               dataset=f"last {report['n']} answered tickets", report=report)
        if options["output"]:
            options["output"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.stdout.write(json.dumps({k: report[k] for k in ("n", "tier", "engine", "model", "prompt", "per_lane",
                                                             "reference_f1", "production_f1", "defects", "cost_usd",
                                                             "latency_ms")}, indent=2, ensure_ascii=False))

    def _progress(self, done: int, total: int) -> None:
        self.stderr.write(f"drafted {done}/{total}")


def replay_name(options: dict[str, Any]) -> str:
    version = options.get("prompt_version")
    return f"draft replay: {options['tier']}" + (f", draft prompt v{version}" if version else "")
