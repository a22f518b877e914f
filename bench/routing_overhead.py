"""Routing overhead: what the pipeline costs a ticket besides waiting for the model.

    .venv/bin/python bench/routing_overhead.py [--tickets 200] [--model-latency 0.05]

Runs triage/steps.py's classify → route → draft in this process, one ticket at a time, with every tier
pointed at the scripted OpenAI-compatible server (tests/support/scripted_openai.py), which answers every
request validly after a fixed delay. A step's overhead is its wall time minus the time the model server spent
answering it (measured inside the server): the database, the broker, PII redaction, knowledge-base retrieval,
the policy gates, and the OpenAI SDK's own work around each call (building the request, loopback HTTP,
parsing the answer).

The database `tierdesk_bench_routing` holds the demo store's taxonomy, the 55 ABCD articles (embedded once
by the configured provider, the bundled e5 model by default) and its routing policy; the tasks the steps
queue go to a Redis database of their own and are purged at the end.

Prints p50/p95/p99 of the overhead per ticket and per step, and what inside each step took the time; the
query's embedding (part of retrieval) is also shown apart, with the total without it. Then the mean CPU
each step costs this process, its PostgreSQL backend and Redis: wall time moves with whatever else runs on
a shared machine, CPU per ticket much less, so it is the figure to compare before and after a change.
Figures go to bench/results/routing_overhead.json, with the ratio to the previous run's.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from _common import (
    embedded_service_pids,
    latency_ms,
    machine,
    pipeline_world,
    purge_pipeline_queue,
    report,
    setup_django,
    ticket_texts,
)

DATABASE = "tierdesk_bench_routing"
REDIS_DB = 14
STEPS = ("classify", "route", "draft")


class Clock:
    """Seconds spent inside wrapped functions since the last reset (one thread: the steps run in this one)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - started

        setattr(owner, attribute, timed)

    def reset(self) -> None:
        self.spent.clear()


def instrument(clock: Clock) -> None:
    """Time the parts of each step worth naming. The steps look these names up at call time."""
    from kb.embeddings import get_embedder
    from triage import steps
    from triage.llm import openai_engine

    clock.wrap(openai_engine, "chat_json", "model_call")
    clock.wrap(steps, "ticket_text", "redaction")
    clock.wrap(steps, "kb_search", "retrieval")
    clock.wrap(steps, "_gate", "gates")
    clock.wrap(get_embedder(), "query", "query_embedding")  # the instance kb_search uses


class Cpu:
    """CPU seconds of this process (all threads: the e5 model's OpenMP threads work for the step), of this
    connection's PostgreSQL backend and of Redis. Wall time moves with whatever else runs on the machine;
    CPU per ticket is the figure to compare across runs."""

    def __init__(self) -> None:
        import psutil
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        self.processes = {"postgres": psutil.Process(backend)}
        redis = embedded_service_pids().get("redis")
        if redis:
            self.processes["redis"] = psutil.Process(redis)

    def read(self) -> dict[str, float]:
        times = {name: p.cpu_times() for name, p in self.processes.items()}
        return {"app": time.process_time(), **{name: t.user + t.system for name, t in times.items()}}


def run_ticket(i: int, text: tuple[str, str], server: Any, clock: Clock, cpu: Cpu) -> dict[str, Any]:
    from triage import services, steps
    from triage.models import ModelCall, Ticket

    subject, body = text
    ticket, _ = services.ticket_create(subject=subject, body=f"{body}\n\nOrder {100000 + i}",
                                       from_email=f"customer{i}@example.com", from_name=f"Customer {i}")
    sample: dict[str, Any] = {}
    functions: dict[str, Callable[..., None]] = {
        "classify": steps.ticket_classify, "route": steps.ticket_route, "draft": steps.ticket_draft}
    for step in STEPS:
        clock.reset()
        busy = server.busy_seconds
        cpu_before = cpu.read()
        started = time.perf_counter()
        functions[step](ticket_id=ticket.pk)
        wall = time.perf_counter() - started
        cpu_after = cpu.read()
        while server.in_flight:  # the server counts a request once its answer is written
            time.sleep(0.0005)
        model = server.busy_seconds - busy
        sample[step] = {"wall": wall, "model": model, "overhead": wall - model,
                        **{f"cpu_{k}": cpu_after[k] - cpu_before[k] for k in cpu_before},
                        "sdk": clock.spent["model_call"] - model, **{k: clock.spent[k] for k in (
                            "redaction", "retrieval", "query_embedding", "gates")}}
    sample["status"] = Ticket.objects.values_list("status", flat=True).get(pk=ticket.pk)
    sample["calls"] = ModelCall.objects.filter(ticket_id=ticket.pk).count()
    return sample


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    def pcts(values: list[float]) -> dict[str, float]:
        return latency_ms(values)

    overhead = {"total": pcts([sum(s[step]["overhead"] for step in STEPS) for s in samples]),
                "total_without_query_embedding": pcts([
                    sum(s[step]["overhead"] - s[step]["query_embedding"] for step in STEPS)
                    for s in samples])}
    for step in STEPS:
        overhead[step] = pcts([s[step]["overhead"] for s in samples])
    parts = {
        "classify": ("redaction", "sdk"),
        "route": ("retrieval", "query_embedding"),
        "draft": ("redaction", "gates", "sdk"),
    }
    inside: dict[str, Any] = {}
    for step, names in parts.items():
        for name in names:
            inside[f"{step}.{name}"] = pcts([s[step][name] for s in samples])
        # What is left: the ORM, the database, the broker, routing and tier code.
        named = [n for n in names if n != "query_embedding"]  # inside retrieval already
        inside[f"{step}.rest"] = pcts([s[step]["overhead"] - sum(s[step][n] for n in named) for s in samples])
    cpu_names = [k.removeprefix("cpu_") for k in samples[0]["classify"] if k.startswith("cpu_")]
    cpu_ms = {step: {k: round(1000 * statistics.mean(s[step][f"cpu_{k}"] for s in samples), 2)
                     for k in cpu_names} for step in STEPS}
    cpu_ms["total"] = {k: round(sum(cpu_ms[st][k] for st in STEPS), 2) for k in cpu_names}
    for part in cpu_ms.values():
        part["all"] = round(sum(part.values()), 2)
    statuses: dict[str, int] = defaultdict(int)
    for s in samples:
        statuses[s["status"]] += 1
    return {
        "overhead_ms": overhead, "inside_ms": inside, "cpu_ms_per_ticket": cpu_ms,
        "model_wait_per_ticket_ms": round(1000 * statistics.mean(sum(s[st]["model"] for st in STEPS)
                                                                 for s in samples), 1),
        "model_calls_per_ticket": round(statistics.mean(s["calls"] for s in samples), 2),
        "outcomes": dict(statuses),
    }


def print_table(figures: dict[str, Any]) -> None:
    print(f"\n{'overhead per ticket':44s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}  (ms)")
    rows = [(f"total ({', '.join(STEPS)})", figures["overhead_ms"]["total"]),
            ("total without the query's embedding", figures["overhead_ms"]["total_without_query_embedding"])]
    for step in STEPS:
        rows.append((f"  {step}", figures["overhead_ms"][step]))
        rows += [(f"    {name.split('.', 1)[1].replace('_', ' ')}", value)
                 for name, value in figures["inside_ms"].items() if name.startswith(f"{step}.")]
    for label, p in rows:
        print(f"{label:44s} {p['p50_ms']:8.2f} {p['p95_ms']:8.2f} {p['p99_ms']:8.2f} {p['max_ms']:8.2f}")
    cpu = figures["cpu_ms_per_ticket"]
    print(f"\n{'mean CPU per ticket (ms)':44s} " + " ".join(f"{k:>8s}" for k in cpu["total"]))
    for step in (*STEPS, "total"):
        print(f"  {step:42s} " + " ".join(f"{v:8.2f}" for v in cpu[step].values()))
    print(f"\nmodel wait per ticket {figures['model_wait_per_ticket_ms']} ms over "
          f"{figures['model_calls_per_ticket']} calls; outcomes {figures['outcomes']}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5, help="tickets run first and not counted")
    parser.add_argument("--model-latency", type=float, default=0.05, help="seconds the model server takes")
    args = parser.parse_args()
    setup_django(DATABASE, redis_db=REDIS_DB, env={"LOG_LEVEL": "WARNING"})
    from django.conf import settings

    from tests.support.scripted_openai import ScriptedOpenAI, tier_settings, valid_reply
    from triage.llm import breaker

    print("loading the demo store (the first run embeds the knowledge base)…", flush=True)
    pipeline_world()
    texts = ticket_texts()
    clock = Clock()
    instrument(clock)
    responder = functools.partial(valid_reply, delay=args.model_latency)
    with ScriptedOpenAI(respond=responder, keep_requests=False) as server:
        settings.TIERS = tier_settings(server, timeout=30.0, max_retries=0)
        for tier in ("nano", "mini", "large"):
            breaker.reset(tier)
        figures: dict[str, Any] = {"machine_at_start": machine(), "tickets": args.tickets,
                                   "model_latency_ms": round(args.model_latency * 1000, 1),
                                   "embedding_provider": settings.KB_EMBEDDING_PROVIDER}
        try:
            cpu = Cpu()
            for i in range(args.warmup):
                run_ticket(i, texts[i % len(texts)], server, clock, cpu)
            samples = []
            for i in range(args.tickets):
                samples.append(run_ticket(args.warmup + i, texts[i % len(texts)], server, clock, cpu))
                if (i + 1) % 50 == 0:
                    print(f"  {i + 1} tickets", flush=True)
        finally:
            purge_pipeline_queue()
    figures |= summarise(samples)
    figures["machine_at_end"] = machine()
    print_table(figures)
    report("routing_overhead", figures, [
        "overhead_ms.total.p50_ms", "overhead_ms.total.p99_ms",
        "overhead_ms.total_without_query_embedding.p99_ms", "cpu_ms_per_ticket.total.all",
        *(f"overhead_ms.{step}.p99_ms" for step in STEPS)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
