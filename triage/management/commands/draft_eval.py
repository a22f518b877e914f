from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import draft_evals
from triage.errors import ApplicationError
from triage.models import EvalRun


class Command(BaseCommand):
    help = (
        "Draft tickets from a JSON Lines file with one tier over a temporary knowledge base, and score the drafts: "
        "gold-article citation recall and precision, supported sentences, similarity to reference replies, "
        "defects, refusals, cost and latency; optionally a large model's rubric score."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tickets", type=Path, required=True,
                            help='JSON Lines: {"id", "subject", "body", "from_name", "reference_reply"?, '
                                 '"gold_article"?, "intent"?, "language"?}')
        parser.add_argument("--kb", type=Path, required=True,
                            help="articles as JSON Lines (id, title, body, language?, audience?) or a folder of "
                                 "markdown files with front matter")
        # Not argparse choices: an unknown tier is reported in the same words as every other bad input.
        parser.add_argument("--tier", default="local", help="nano, mini, large or local (default local)")
        parser.add_argument("--prompt-version", type=int, help="draft prompt version (default: production's)")
        parser.add_argument("--judge", help="score each draft with this tier's model (only: large)")
        parser.add_argument("--limit", type=int, help="only the first N tickets")
        parser.add_argument("--output", type=Path, help="also write the JSON report here")
        parser.add_argument("--name", default="", help="the run's name on the evals page")
        parser.add_argument("--no-save", action="store_true", help="do not keep the run in the evals history")

    def handle(self, *args: Any, **options: Any) -> None:
        tier = options["tier"]
        try:
            draft_evals.check_tier(tier)
            if options["limit"] is not None and options["limit"] < 1:
                raise ApplicationError("--limit must be at least 1")
            tickets = draft_evals.tickets_load(options["tickets"])[:options["limit"]]
            articles = draft_evals.kb_load(options["kb"])
            report = draft_evals.draft_eval(tickets=tickets, articles=articles, tier=tier,
                                            prompt_version=options["prompt_version"], judge_tier=options["judge"],
                                            progress=self._progress)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        dataset = f"{options['tickets'].name} · {options['kb'].name}"
        report["dataset"] = dataset
        if options["output"]:
            try:
                options["output"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{options['output']}: cannot write the report ({exc})") from exc
        if not options["no_save"]:
            run = EvalRun.objects.create(
                kind=EvalRun.Kind.DRAFT, name=(options["name"] or f"drafts: {tier} on {options['tickets'].name}")[:200],
                tier=tier, engine=report["engine"], model=report["model"][:200], dataset=dataset[:300], report=report,
            )
            report["eval_run_id"] = run.pk
        self.stdout.write(summary_text(report))

    def _progress(self, done: int, total: int) -> None:
        self.stderr.write(f"drafted {done}/{total}")


def _fmt(value: Any) -> str:
    return "—" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def summary_text(report: dict[str, Any]) -> str:
    """The report's headline figures, one per line, as a person reads them in a terminal."""
    by_kind = ", ".join(f"{k} {v}" for k, v in report["defects_by_kind"].items()) or "none"
    if not report.get("internal_text_gate", True):
        by_kind += "; no internal_text gate here, so internal text is counted by citations of internal articles"
    rows = [
        ("citation recall", report["citation_recall"],
         f"gold article cited; {report['tickets_with_gold']} tickets have one"),
        ("citation precision", report["citation_precision"], "citations that are the gold article"),
        ("supported sentences", report["supported_share"], f"{report['sentences']} sentences; {report['support_rule']}"),
        ("reference token F1", report["reference_f1"], f"{report['reference_n']} tickets with a reference reply"),
        ("reference similarity", report["reference_similarity"], report["similarity"]),
        ("defects", report["defects"], by_kind),
        ("refusals", report["refusals"], f"rate {_fmt(report['refusal_rate'])}"),
        ("cost", f"${report['cost_usd']:.6f}", ""),
        ("latency ms", f"p50 {report['latency_ms']['p50']} · p95 {report['latency_ms']['p95']}", ""),
    ]
    judge = report.get("judge")
    if judge:
        rows.append(("judge score", report["judge_mean"],
                     (f"of 5 on {report['judged']} drafts; rubric {judge['rubric']['id']} v{judge['rubric']['version']}, "
                     f"{judge['model']}, {judge['failed']} failed, ${judge['cost_usd']:.6f}")))
    prompt = report["prompt"]
    lines = [(f"Drafts: {report['n']} tickets · tier {report['tier']} · engine {report['engine']} · "
             f"model {report['model']} · prompt {prompt['id']} v{prompt['version']}")]
    lines += [f"  {label:<21} {_fmt(value):<12} {note}".rstrip() for label, value, note in rows]
    if "eval_run_id" in report:
        lines.append(f"  kept as eval run #{report['eval_run_id']}")
    return "\n".join(lines)
