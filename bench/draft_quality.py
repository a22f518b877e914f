"""The local engine's drafts against the extractive engine it replaced, through draft_eval, on two sets.

  store    fixtures/draft_eval/store_tickets.jsonl: 42 realistic store tickets in five languages, written for
           Tierdesk, never in the reply memory. Drafted twice: with their gold intents (drafting alone), and
           with the intents the deployment's nano tier gives them (the pipeline as it runs).
  bitext   every 20th row of Bitext's LLM file (../shared/datasets, CDLA-Sharing-1.0): one-line requests with
           a reference reply each. None of it is in the reply memory. Read at run time; nothing is stored.

Each set is drafted by the current engine and by the extractive one (bench/_extractive_baseline.py: the
sentences that best overlap the ticket, as bullets), over the same temporary knowledge base (the demo help
centre, public) and the same retrieval; the ratios compare the two. The deployment's reply memory must be
loaded (`seed_demo`, or the first run of this bench does it on its own database).

Usage (from the repository root):
    .venv/bin/python bench/draft_quality.py [--data-dir ../shared/datasets] [--only store,bitext]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import ROOT, compare, results_load, results_save, setup_django

STORE = ROOT / "fixtures" / "draft_eval" / "store_tickets.jsonl"
HELP_CENTRE = ROOT / "fixtures" / "kb" / "helpcentre"
HEADLINE = ("citation_recall", "citation_precision", "supported_share", "reference_f1", "reference_similarity",
            "defects", "tickets_with_defects")


def _world() -> None:
    from triage import demo, learning, reply_memory
    from triage.models import Intent, LocalModel, ReplyMemory

    if not Intent.objects.exists():
        demo.taxonomy_load(intents_path=ROOT / "fixtures" / "bitext" / "intents.json",
                           utterances_path=ROOT / "fixtures" / "bitext" / "utterances.csv")
    if not ReplyMemory.objects.filter(source="reference").exists():
        reply_memory.reference_load()
    if not LocalModel.objects.filter(active=True).exists():
        learning.local_model_train(trigger=LocalModel.Trigger.SEED)


@contextmanager
def extractive_engine() -> Iterator[None]:
    """The local tier writes as it did before the reply memory (the same passages, the same markers)."""
    import _extractive_baseline as old

    from triage.llm import replies

    current = replies.write

    def write(*, subject: str, body: str, from_name: str, sources: Any, escalated: bool, instruction: str = "",
              **_: Any) -> replies.Reply:
        refs = [old.PassageRef(s.marker, s.title, s.text) for s in sources]
        text, cited = old.compose_draft(from_name=from_name, subject=subject, body=body, intent="", passages=refs,
                                        escalated=escalated, instruction=instruction)
        return replies.Reply(text=text, cited=cited)

    replies.write = write  # type: ignore[assignment]
    try:
        yield
    finally:
        replies.write = current  # type: ignore[assignment]


def _bitext(data_dir: Path) -> list[Any]:
    from triage.draft_evals import EvalTicket

    path = data_dir / "bitext_customer_support" / "bitext_llm_dev.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [EvalTicket(id=f"bitext-{i}", subject="", body=r["instruction"], intent=r["intent"], language="en",
                       reference_reply=r["response"]) for i, r in enumerate(rows) if i % 20 == 0]


def _run(name: str, tickets: list[Any], articles: list[Any]) -> dict[str, Any]:
    from triage.draft_evals import draft_eval

    figures: dict[str, Any] = {}
    for engine in ("reply", "extractive"):
        if engine == "extractive":
            with extractive_engine():
                report = draft_eval(tickets=tickets, articles=articles, tier="local")
        else:
            report = draft_eval(tickets=tickets, articles=articles, tier="local")
        figures[engine] = {k: report.get(k) for k in HEADLINE} | {"defects_by_kind": report["defects_by_kind"],
                                                                 "n": report["n"]}
    for key in ("reference_f1", "reference_similarity", "supported_share"):
        new, old = figures["reply"][key], figures["extractive"][key]
        figures[f"ratio_{key}"] = round(new / old, 3) if new is not None and old else None
    print(f"\n{name}: {figures['reply']['n']} tickets")
    print(f"  {'':22} {'reply engine':>14} {'extractive':>12}")
    for key in HEADLINE:
        print(f"  {key:22} {figures['reply'][key]!s:>14} {figures['extractive'][key]!s:>12}")
    print(f"  defects by kind        {figures['reply']['defects_by_kind']} | {figures['extractive']['defects_by_kind']}")
    print(f"  ratio reply/extractive: reference F1 {figures['ratio_reference_f1']}, "
          f"similarity {figures['ratio_reference_similarity']}, supported {figures['ratio_supported_share']}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--only", default="store,bitext")
    args = parser.parse_args()
    services = setup_django("tierdesk_bench_drafts")
    try:
        from dataclasses import replace

        from triage.draft_evals import gold_resolve, kb_load, tickets_load

        _world()
        articles = kb_load(HELP_CENTRE)
        results: dict[str, Any] = {}
        only = set(args.only.split(","))
        if "store" in only:
            tickets = gold_resolve(tickets_load(STORE), articles)
            results["store_gold_intent"] = _run("store tickets, gold intents", tickets, articles)
            results["store_classified"] = _run("store tickets, intents from the nano tier",
                                               [replace(t, intent="") for t in tickets], articles)
        if "bitext" in only:
            results["bitext"] = _run("Bitext held out (every 20th row)", _bitext(args.data_dir), articles)
        previous = results_load("draft_quality")
        results_save("draft_quality", results)
        compare(previous, results, ["store_gold_intent.reply.reference_f1", "store_classified.reply.reference_f1",
                                    "bitext.reply.reference_f1"])
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
