from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.embeddings import EmbeddingError
from kb.evaluation import EvalInputError, articles_load, kb_evaluate, queries_load


class Command(BaseCommand):
    help = (
        "Measure retrieval (hit@1, hit@5, MRR, latency) on a knowledge base and questions given as JSON Lines, "
        "in a temporary index that never touches the deployment's knowledge base."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", type=Path, required=True, help='articles: {"id", "title", "body"[, "language"]}')
        parser.add_argument("--queries", type=Path, required=True, help='questions: {"query", "gold_id"}')
        parser.add_argument("--output", type=Path, help="also write the JSON report here")
        parser.add_argument("--k", type=int, default=10, help="passages retrieved per question (default 10)")
        parser.add_argument("--name", default="", help="the run's name on the evals page")
        parser.add_argument("--no-save", action="store_true", help="do not keep the run in the evals history")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            articles = articles_load(options["kb"])
            queries = queries_load(options["queries"], article_ids={a.id for a in articles})
            report = kb_evaluate(articles=articles, queries=queries, k=options["k"])
        except (EvalInputError, EmbeddingError) as exc:
            raise CommandError(str(exc)) from exc
        text = json.dumps(report, indent=2, ensure_ascii=False)
        if options["output"]:
            try:
                options["output"].write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{options['output']}: cannot write the report ({exc})") from exc
        if not options["no_save"]:
            # Kept beside the classification evals so an admin sees retrieval quality over time.
            from triage.models import EvalRun

            embedding = report["embedding"]
            run = EvalRun.objects.create(
                kind=EvalRun.Kind.KB, name=options["name"] or f"retrieval on {options['kb'].name}"[:200],
                engine=embedding["provider"], model=f"{embedding['model']} ({embedding['dim']}-d)"[:200],
                dataset=f"{options['kb'].name} · {options['queries'].name}"[:300], report=report,
            )
            report["eval_run_id"] = run.pk
        summary = {key: value for key, value in report.items() if key != "misses"}
        self.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False))
