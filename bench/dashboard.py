"""How long the dashboard page takes to render over 100,000 stored tickets.

    .venv/bin/python bench/dashboard.py [--tickets 100000] [--days 90] [--repeat 15]

Uses the embedded PostgreSQL (started if needed) with its own database, `tierdesk_bench_dashboard`,
filled once with a synthetic history spread over the last `--days` days: tickets across lanes and
urgencies with their classify and draft calls, route decisions with reason codes, drafts, agents'
decisions and corrections (tests/support/history.py, the browser test's generator). Renders
GET /dashboard for each period as a signed-in agent and prints p50/p95 per period, then compares with
the previous run's figures in bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta

from _common import percentile, report, setup_django

DATABASE = "tierdesk_bench_dashboard"
PERIODS = ("24h", "7d", "30d", "90d")


def populate(n: int, days: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from tests.support import history
    from triage.models import Ticket

    have = Ticket.objects.count()
    if have >= n:
        _bring_forward()
        return
    print(f"populating {n - have} tickets over {days} days…", flush=True)
    started = time.perf_counter()
    history.populate(tickets=n - have, days=days, now=timezone.now(), seed=have + 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"populated in {time.perf_counter() - started:.0f} s", flush=True)


# Every stored time, so a history written days ago still ends now and the presets ("last 24 hours") cover it.
SHIFTED = {
    "triage_ticket": ("created_at", "sla_due_at", "first_response_at"),
    "triage_triagerun": ("created_at",), "triage_modelcall": ("created_at",), "triage_routedecision": ("created_at",),
    "triage_draft": ("created_at",), "triage_reviewaction": ("created_at",), "triage_correction": ("created_at",),
}


def _bring_forward() -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from triage.models import Ticket

    newest = Ticket.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    if newest is None or timezone.now() - newest < timedelta(hours=1):
        return
    gap = timezone.now() - newest
    print(f"moving the history {gap} forward…", flush=True)
    with transaction.atomic(), connection.cursor() as cursor:
        for table, columns in SHIFTED.items():
            assignments = ", ".join(f"{c} = {c} + %s" for c in columns)
            cursor.execute(f"UPDATE {table} SET {assignments}", [gap] * len(columns))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    services = setup_django(DATABASE)
    try:
        return run(args)
    finally:
        services.stop()  # the embedded PostgreSQL, if this run started it


def run(args: argparse.Namespace) -> int:
    populate(args.tickets, args.days)

    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from triage.models import ModelCall, ReviewAction, RouteDecision, Ticket

    agent, _ = User.objects.get_or_create(username="bench-agent")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    client = Client()
    client.force_login(agent)
    counts = {"tickets": Ticket.objects.count(), "model_calls": ModelCall.objects.count(),
              "route_decisions": RouteDecision.objects.count(), "reviews": ReviewAction.objects.count()}
    print(json.dumps(counts))
    figures: dict[str, object] = {**counts}
    for period in PERIODS:
        client.get("/dashboard", {"period": period})  # warm the connection and the template cache
        timings = []
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/dashboard", {"period": period})
        assert response.status_code == 200, response.status_code
        n_queries = len(queries)  # read now: the log is cleared by the next request
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            client.get("/dashboard", {"period": period})
            timings.append((time.perf_counter() - t0) * 1000)
        figures[period] = {"p50_ms": round(statistics.median(timings), 1),
                           "p95_ms": round(percentile(timings, 0.95), 1), "queries": n_queries}
        print(f"{period:>4}: p50 {figures[period]['p50_ms']:7.1f} ms   p95 {figures[period]['p95_ms']:7.1f} ms"  # type: ignore[index]
              f"   ({n_queries} queries, {args.repeat} renders)", flush=True)
    report("dashboard", figures, [f"{period}.p50_ms" for period in PERIODS])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
