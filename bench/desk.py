"""How fast the agent's desk answers with a large ticket table: the queue partial under each filter, a
deep keyset page, search, and the ticket partial.

    .venv/bin/python bench/desk.py [--tickets 100000] [--repeat 30]

Uses the embedded PostgreSQL (started if needed) with its own database, `tierdesk_desk`, filled once
with synthetic tickets (intents, lanes, engines, urgencies, assignees, drafts, model calls). Requests go
through Django's full stack (middleware, session, templates) with a signed-in agent, as the browser's
htmx requests do; the figures are server time per request, p50 and p95, with the queries each ran.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from _common import percentile, report
from _common import setup_django as setup_embedded

DB = "tierdesk_desk"

WORDS = ("refund order parcel password invoice address card charged twice delivery late broken screen "
         "subscription cancel account locked discount coupon warranty return label shipping customs "
         "tracking number payment failed upgrade downgrade plan receipt email change name").split()


def setup_django() -> None:
    setup_embedded(DB)
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    from django.db import connection

    with connection.cursor() as cursor:  # a migration may have added columns the planner has no statistics for
        cursor.execute("ANALYZE triage_ticket")


def populate(n: int) -> None:
    from datetime import timedelta

    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction
    from django.utils import timezone

    from triage import sla
    from triage.models import Draft, Intent, ModelCall, RouteDecision, Ticket

    have = Ticket.objects.count()
    if have >= n:
        return
    rng = random.Random(7)
    group = Group.objects.get_or_create(name="agents")[0]
    agents = []
    for i in range(10):
        user, created = User.objects.get_or_create(username=f"agent{i}")
        if created:
            user.set_password("bench-pass-4821")
            user.save()
            user.groups.add(group)
        agents.append(user)
    intents = [Intent.objects.get_or_create(name=f"intent_{i}")[0] for i in range(27)]
    policy = sla.policy_current()
    now = timezone.now()
    statuses = (["approved"] * 50 + ["rejected"] * 5 + ["ignored"] * 3 + ["awaiting_review"] * 22
                + ["needs_human"] * 15 + ["drafting"] * 2 + ["new"] * 3)
    print(f"populating {n - have} tickets…", flush=True)
    batch = 5000
    for start in range(have, n, batch):
        size = min(batch, n - start)
        rows = []
        for i in range(size):
            created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 90))
            urgency = rng.choice(["low", "normal", "normal", "normal", "high", "urgent"])
            status = rng.choice(statuses)
            answered = created + timedelta(minutes=rng.randint(1, 600)) if status == "approved" else None
            rows.append(Ticket(
                subject=" ".join(rng.sample(WORDS, 4)).capitalize(), body=" ".join(rng.choices(WORDS, k=60)),
                from_email=f"customer{start + i}@example.com", from_name=f"Customer {start + i}",
                status=status, urgency=urgency, intent=rng.choice(intents), confidence=rng.random(),
                lane=rng.choice(["mini", "mini", "mini", "large", "human"]),
                engine=rng.choice(["local", "local", "openai"]), created_at=created,
                assignee=rng.choice([None, None, *agents]), first_response_at=answered,
                sla_due_at=sla.due_at(start=created, urgency=urgency, policy=policy),
            ))
        with transaction.atomic():
            tickets = Ticket.objects.bulk_create(rows)
            decisions = RouteDecision.objects.bulk_create(
                RouteDecision(ticket=t, lane=t.lane, reasons=["within_contract"]) for t in tickets)
            Draft.objects.bulk_create(
                Draft(ticket=t, route_decision=d, tier="mini", engine="local", model="m",
                      body="Hi,\n\nHere is what to do [1].\n\nKind regards",
                      status="pending" if t.status == "awaiting_review" else "approved")
                for t, d in zip(tickets, decisions, strict=True) if t.status in ("awaiting_review", "approved"))
            ModelCall.objects.bulk_create(
                ModelCall(ticket=t, step=step, tier=tier, engine="local", model="m", prompt_id=step, prompt_version=1,
                          tokens_in=900, tokens_out=80, latency_ms=rng.randint(5, 900), schema_valid=True)
                for t in tickets for step, tier in (("classify", "nano"), ("draft", "mini")))
        print(f"  {start + size}", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(client: Any, url: str, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, HTTP_HX_REQUEST="true")
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    with CaptureQueriesContext(connection) as queries:
        client.get(url, HTTP_HX_REQUEST="true")
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(percentile(samples, 0.95), 1),
            "queries": len(queries)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    setup_django()
    populate(args.tickets)

    from django.contrib.auth.models import User
    from django.test import Client

    from triage import selectors
    from triage.models import Ticket

    client = Client()
    agent = User.objects.get(username="agent0")
    client.force_login(agent)
    client.get("/", HTTP_HX_REQUEST="true")  # warm: templates compiled, connection open

    # A deep page: follow the keyset 40 pages in (2,000 tickets down the open queue).
    cursor = None
    for _ in range(40):
        page = selectors.queue_page(filters=selectors.QueueFilters(), user=agent, after=cursor)
        cursor = page.next_cursor
    ticket = Ticket.objects.filter(status="awaiting_review").order_by("-id").first()
    assert ticket is not None
    cases = {
        "queue, open (default)": "/",
        "queue, any status": "/?status=",
        "queue, page 41 by keyset": f"/?after={cursor}",
        "queue, intent + lane": "/?intent=intent_3&lane=large",
        "queue, mine": "/?assignee=me",
        "queue, breaching or nearly": "/?sla=at_risk",
        "queue, engine openai, urgent": "/?engine=openai&urgency=urgent",
        "queue, search words": "/?search=parcel%20customs&status=",
        "queue, search substring": "/?search=rcel%20cust&status=",
        "ticket partial": f"/tickets/{ticket.pk}/",
    }
    figures: dict[str, Any] = {"tickets": Ticket.objects.count()}
    for name, url in cases.items():
        figures[name] = timed(client, url, args.repeat)
        print(f"{name:32s} p50 {figures[name]['p50_ms']:7.1f} ms   p95 {figures[name]['p95_ms']:7.1f} ms"
              f"   {figures[name]['queries']} queries", flush=True)
    report("desk", figures, [f"{name}.p50_ms" for name in cases])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
