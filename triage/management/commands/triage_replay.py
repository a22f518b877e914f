from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import evals
from triage.errors import ApplicationError
from triage.models import EvalRun


class Command(BaseCommand):
    help = ("Replay stored tickets through a candidate tier and classify-prompt version; report, per lane, "
            "where it disagrees with production and with agents' corrections.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tier", required=True, choices=["nano", "mini", "large", "local"])
        parser.add_argument("--prompt-version", type=int, help="classify prompt version (default: production's)")
        parser.add_argument("--limit", type=int, default=200, help="how many of the newest classified tickets")
        parser.add_argument("--days", type=int, help="only tickets from the last N days")
        parser.add_argument("--output", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            report = evals.replay(tier=options["tier"], prompt_version=options["prompt_version"],
                                  limit=options["limit"], days=options["days"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        name = f"replay: {options['tier']}" + (f", classify prompt v{options['prompt_version']}"
                                                if options["prompt_version"] else "")
        EvalRun.objects.create(kind=EvalRun.Kind.REPLAY, name=name, tier=options["tier"], engine=report["engine"],
                               model=report["model"][:200], dataset=f"last {report['n']} tickets", report=report)
        if options["output"]:
            options["output"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.stdout.write(json.dumps({k: report[k] for k in ("n", "tier", "engine", "model", "prompt", "per_lane",
                                                             "cost_usd", "latency_ms")}, indent=2))
