from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import evals
from triage.errors import ApplicationError
from triage.models import EvalRun


class Command(BaseCommand):
    help = (
        "Score classification on a labelled CSV or a JSONL ticket set: accuracy, macro-F1, per-label and "
        "per-language scores, confusion, `other` rate, calibration (accuracy per confidence band, expected "
        "calibration error), urgency, cost and latency. With --train, a separate local model is trained on that "
        "file for this run only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--test", required=True, type=Path,
                            help="CSV of texts and labels, or JSONL tickets (subject, body, intent, language, urgency)")
        parser.add_argument("--text-column", default="", help="the CSV's text column")
        parser.add_argument("--label-column", default="", help="the CSV's label column")
        parser.add_argument("--train", type=Path, help="CSV to train a local model on for this run only")
        parser.add_argument("--tier", default="local", choices=["nano", "mini", "large", "local"])
        parser.add_argument("--output", type=Path, help="write the report here as JSON")
        parser.add_argument("--name", default="", help="the run's name on the evals page")
        parser.add_argument("--no-save", action="store_true", help="do not keep the run in the evals history")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            columns = {"text_column": options["text_column"], "label_column": options["label_column"]}
            test = evals.read_labelled(options["test"], **columns)
            train = evals.read_labelled(options["train"], **columns) if options["train"] else None
            report = evals.classification_eval(test=test, train=train, tier=options["tier"],
                                               progress=self._progress)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        dataset = options["test"].name + (f" (trained on {options['train'].name})" if options["train"] else "")
        report["dataset"] = dataset
        if options["output"]:
            options["output"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if not options["no_save"]:
            run = EvalRun.objects.create(
                kind=EvalRun.Kind.TRIAGE, name=options["name"] or f"{options['tier']} on {dataset}"[:200],
                tier=options["tier"], engine=report["engine"], model=report["model"][:200], dataset=dataset[:300],
                report=report,
            )
            report["eval_run_id"] = run.pk
        summary = {k: report[k] for k in ("n", "accuracy", "macro_f1", "other_rate", "other_rate_in_scope",
                                          "cost_usd", "latency_ms", "classify_per_second", "engine", "model", "tier",
                                          "train", "failed")}
        summary["ece"] = report["calibration"]["ece"]
        summary["accuracy_by_confidence"] = {f"{b['low']:.1f}-{b['high']:.1f}": [b["n"], b["accuracy"]]
                                             for b in report["calibration"]["bands"]}
        for key in ("per_language", "urgency"):
            if key in report:
                summary[key] = report[key]
        self.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False))

    def _progress(self, done: int, total: int) -> None:
        self.stderr.write(f"classified {done}/{total}")
