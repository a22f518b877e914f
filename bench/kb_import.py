"""How long knowledge-base imports and the gaps page take.

    .venv/bin/python bench/kb_import.py [--copies 2] [--tickets 20000]

Uses the embedded PostgreSQL (started if needed, stopped again if this script started it) with its own
database, `tierdesk_bench_kb`, emptied of articles each run. The corpus is the 55 ABCD guidelines in
fixtures/kb, written `--copies` times as markdown files and once more as HTML, zipped. Prints the time of
a first import (every passage embedded), a second import of the same zip (nothing written), a re-import
with one file changed (one article re-chunked), a Zendesk export of the same articles, and the gaps
page's query and grouping over `--tickets` routed tickets. Figures go to bench/results/kb_import.json.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import random
import sys
import time
import zipfile

from _common import ROOT, setup_django
from _common import report as report_figures

DB = "tierdesk_bench_kb"


def corpus(copies: int) -> dict[str, str]:
    from kb.services import abcd_article_markdown

    files: dict[str, str] = {}
    rows = [json.loads(line) for line in (ROOT / "fixtures" / "kb" / "abcd_guidelines.jsonl").open() if line.strip()]
    for row in rows:
        slug, title, body = abcd_article_markdown(row)
        for c in range(copies):
            files[f"help/md{c}/{slug}.md"] = f"# {title} ({c})\n\n{body}"
        paragraphs = "".join(f"<h2>{html.escape(p[3:])}</h2>" if p.startswith("## ") else f"<p>{html.escape(p)}</p>"
                             for p in body.split("\n\n"))
        files[f"help/html/{slug}.html"] = f"<html><head><title>{html.escape(title)}</title></head><body>{paragraphs}</body></html>"
    return files


def zipped(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    return buffer


def timed(label: str, fn: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    print(f"{label:<42} {elapsed:8.2f} s", flush=True)
    return elapsed, result


def populate_routes(n: int) -> None:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from triage.models import Intent, RouteDecision, Ticket

    if RouteDecision.objects.count() >= n:
        return
    rng = random.Random(11)
    words = ["refund", "gift", "card", "voucher", "expired", "parcel", "customs", "invoice", "address", "password",
             "warranty", "kettle", "subscription", "cancel", "charge", "twice", "discount", "store", "pickup"]
    intents = [Intent.objects.get_or_create(name=f"intent_{i}")[0] for i in range(27)]
    due = timezone.now() + timedelta(hours=8)
    with transaction.atomic():
        tickets = Ticket.objects.bulk_create(
            Ticket(subject=" ".join(rng.sample(words, 3)), body=" ".join(rng.choices(words, k=40)),
                   from_email="c@example.com", intent=rng.choice(intents), sla_due_at=due) for _ in range(n))
        RouteDecision.objects.bulk_create(
            RouteDecision(ticket=t, lane="mini", top_similarity=rng.choice([None, rng.random()])) for t in tickets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--tickets", type=int, default=20_000)
    args = parser.parse_args()
    services = setup_django(DB)
    try:
        return run(args)
    finally:
        services.stop()  # the embedded PostgreSQL, if this run started it


def run(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from kb import gaps
    from kb.importers import kb_import
    from kb.models import Article, Chunk

    Article.objects.all().delete()
    files = corpus(args.copies)
    print(f"{len(files)} files, {sum(len(t) for t in files.values()) / 1024:.0f} KiB of text")
    first, report = timed("first import (all embedded)", lambda: kb_import(source=zipped(files), filename="k.zip"))
    chunks = Chunk.objects.count()
    print(f"  {report.summary()}; {chunks} passages")  # type: ignore[attr-defined]
    again, report = timed("same zip again", lambda: kb_import(source=zipped(files), filename="k.zip"))
    print(f"  {report.summary()}")  # type: ignore[attr-defined]
    name = next(iter(files))
    files[name] += "\n\n## Note\n\nThis step changed."
    one, report = timed("one file changed", lambda: kb_import(source=zipped(files), filename="k.zip"))
    print(f"  {report.summary()}")  # type: ignore[attr-defined]

    export = {"articles": [{"id": 900000 + i, "title": a.title, "body": f"<p>{html.escape(a.body)}</p>",
                            "locale": "en-us", "draft": False, "updated_at": "2026-01-01T00:00:00Z"}
                           for i, a in enumerate(Article.objects.all()[:55])]}
    zendesk, report = timed("zendesk export, 55 articles",
                            lambda: kb_import(source=io.BytesIO(json.dumps(export).encode()), filename="a.json"))
    print(f"  {report.summary()}")  # type: ignore[attr-defined]

    populate_routes(args.tickets)
    since = timezone.now() - timedelta(days=30)
    load, rows = timed(f"gaps: latest decisions of {args.tickets} tickets", lambda: gaps.route_rows(since=since))
    group, found = timed("gaps: grouping", lambda: gaps.group_gaps(rows, threshold=0.8))  # type: ignore[arg-type]
    print(f"  {len(found)} gaps, largest {found[0].tickets} tickets")  # type: ignore[index,attr-defined]

    figures = {
        "files": len(files), "passages": chunks, "first_import_s": round(first, 2),
        "files_per_s_first": round(len(files) / first, 1), "same_zip_again_s": round(again, 2),
        "one_changed_s": round(one, 2), "zendesk_55_s": round(zendesk, 2), "gap_tickets": args.tickets,
        "gap_query_s": round(load, 3), "gap_group_s": round(group, 3),
    }
    print(json.dumps(figures, indent=2))
    report_figures("kb_import", figures,
                   ["first_import_s", "same_zip_again_s", "one_changed_s", "gap_query_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
