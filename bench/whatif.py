"""How long the admin's what-if takes over N stored tickets.

    .venv/bin/python bench/whatif.py [--tickets 50000] [--repeat 5]

Uses the embedded PostgreSQL (started if needed) with its own database, `tierdesk_bench`, filled
once with synthetic classified tickets. Prints the time to load the rows and to simulate the
current and a proposed contract, and compares with the previous run's figures in
bench/results/whatif.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from _common import report, setup_django


def populate(n: int) -> None:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from triage.models import Intent, RouteDecision, Ticket, TriageRun

    have = RouteDecision.objects.count()
    if have >= n:
        return
    rng = random.Random(7)
    intents = [Intent.objects.get_or_create(name=f"intent_{i}")[0] for i in range(27)]
    due = timezone.now() + timedelta(hours=8)
    batch = 5000
    print(f"populating {n - have} tickets…", flush=True)
    for start in range(have, n, batch):
        size = min(batch, n - start)
        with transaction.atomic():
            tickets = Ticket.objects.bulk_create(
                Ticket(
                    subject=f"t{start + i}", body="b", from_email="c@example.com", status="awaiting_review",
                    sla_due_at=due,
                )
                for i in range(size)
            )
            runs = TriageRun.objects.bulk_create(
                TriageRun(
                    ticket=t,
                    tier="nano",
                    engine="local",
                    model="m",
                    intent=rng.choice(intents),
                    urgency=rng.choice(["low", "normal", "normal", "high", "urgent"]),
                    sentiment=rng.choice(["negative", "neutral", "neutral", "positive"]),
                    language="en",
                    confidence=rng.betavariate(5, 2),
                    summary="",
                )
                for t in tickets
            )
            RouteDecision.objects.bulk_create(
                RouteDecision(
                    ticket=t,
                    triage_run=r,
                    lane="mini" if r.confidence >= 0.5 else "large",
                    top_similarity=rng.uniform(0.7, 0.95),
                )
                for t, r in zip(tickets, runs, strict=True)
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    setup_django("tierdesk_bench")
    populate(args.tickets)

    from triage import controls, routing, selectors, whatif

    since = controls.whatif_since(365)
    load, simulate, total, warm = [], [], [], []
    summary = None
    for _ in range(args.repeat):
        selectors._whatif_cache.update(key=None, rows=None)  # the first preview after a change: cold
        t0 = time.perf_counter()
        rows = selectors.whatif_rows(since=since)
        costs = selectors.whatif_costs(since=since)
        t1 = time.perf_counter()
        current = controls.contracts_all()
        proposed = {**current, None: routing.Contract(intent=None, quality_bar=0.7)}
        switches = controls.switches_current()
        whatif.observed(rows, costs)
        summary = whatif.simulate(rows, proposed, switches, costs)
        t2 = time.perf_counter()
        load.append(t1 - t0)
        simulate.append(t2 - t1)
        total.append(t2 - t0)
        # The next preview while the admin edits the form: nothing new was routed, rows are reused.
        t3 = time.perf_counter()
        again = selectors.whatif_rows(since=since)
        whatif.simulate(again, proposed, switches, selectors.whatif_costs(since=since))
        warm.append(time.perf_counter() - t3)
    figures = {
        "tickets": len(rows),
        "load_rows_s_median": round(statistics.median(load), 4),
        "observed_and_simulate_s_median": round(statistics.median(simulate), 4),
        "total_s_median": round(statistics.median(total), 4),
        "total_s_min": round(min(total), 4),
        "repeat_preview_s_median": round(statistics.median(warm), 4),
    }
    print(json.dumps(figures, indent=2))
    assert summary is not None
    print(f"proposed escalation rate {summary.escalation_rate:.1%}, {summary.changed} tickets change lane")
    report("whatif", figures, ["total_s_median", "repeat_preview_s_median"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
