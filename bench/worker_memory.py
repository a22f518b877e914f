"""Pipeline memory: a real Celery worker with many model calls in flight, and what it costs in memory.

    .venv/bin/python bench/worker_memory.py [--tickets 200] [--model-latency 3] [--pool threads]
                                            [--concurrency 64]

Starts the embedded PostgreSQL and Redis if needed, a database `tierdesk_bench_worker` holding the demo
store's taxonomy, the 55 ABCD articles and its routing policy, the scripted OpenAI-compatible server in this
process answering every request validly after --model-latency seconds, and one Celery worker on a Redis
database of its own with every tier pointed at that server. Then --tickets tickets go through the real
intake (POST /api/v1/tickets, in this process) at once, so model calls pile up.

Every --interval seconds it samples the requests the model server is answering at that moment, the memory
of the worker's process tree (RSS, and USS and PSS, which count pages shared between processes once), its
threads and the database connections open. It reports the peaks, the memory idle before the first ticket,
how long the tickets took, and whether each one went through classify, route and draft exactly once. The
default worker (prefork, 2 processes) holds at most 2 calls at once: run it with --pool prefork
--concurrency 2 to compare. Figures go to bench/results/worker_memory.json (a run with another pool or
concurrency to worker_memory-<pool>-<concurrency>.json), with the ratio to the previous run's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

from _common import (
    ROOT,
    machine,
    pipeline_world,
    process_tree,
    purge_pipeline_queue,
    report,
    setup_django,
    ticket_texts,
)

DATABASE = "tierdesk_bench_worker"
REDIS_DB = 13
FINAL = ("awaiting_review", "needs_human", "failed")
MB = 1024 * 1024


def start_worker(env: dict[str, str], server_url: str, pool: str,
                 concurrency: int) -> subprocess.Popen[bytes]:
    tiers = {f"TIERDESK_{tier}_{name}": value for tier in ("NANO", "MINI", "LARGE")
             for name, value in (("BASE_URL", server_url), ("API_KEY", "sk-bench"))}
    env = {**env, **tiers, "TIERDESK_MODEL_MAX_RETRIES": "0", "TIERDESK_MODEL_TIMEOUT": "60",
           "TIERDESK_WORKER_POOL": pool, "TIERDESK_WORKER_CONCURRENCY": str(concurrency),
           "LOG_LEVEL": "WARNING"}
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "bench" / "results" / "worker_memory.log", "w")  # noqa: SIM115 (the worker writes it)
    worker = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "celery"), "-A", "triage", "worker", "-Q", "pipeline", "--pool", pool,
         "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
         "--hostname", f"bench-memory-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    from triage.celery import app

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError("the worker exited during start-up; see bench/results/worker_memory.log")
        if app.control.ping(timeout=0.5):
            return worker
    worker.terminate()
    raise RuntimeError("the worker did not answer a ping within 90 s")


class Sampler(threading.Thread):
    """Samples the model server's requests in flight and the worker tree's memory until stopped."""

    def __init__(self, server: Any, worker_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.server, self.worker_pid, self.interval = server, worker_pid, interval
        self.samples: list[dict[str, float]] = []
        self.started = time.monotonic()
        self.halt = threading.Event()

    def memory(self) -> dict[str, float]:
        import psutil

        rss = uss = pss = 0
        threads = processes = 0
        for proc in process_tree(self.worker_pid):
            try:
                info = proc.memory_full_info()
                threads += proc.num_threads()
            except psutil.NoSuchProcess:
                continue
            processes += 1
            rss, uss, pss = rss + info.rss, uss + info.uss, pss + getattr(info, "pss", 0)
        return {"rss_mb": rss / MB, "uss_mb": uss / MB, "pss_mb": pss / MB, "threads": threads,
                "processes": processes}

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append({"t": time.monotonic() - self.started, "in_flight": self.server.in_flight,
                                 **self.memory()})
            self.halt.wait(self.interval)


def db_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def submit(n: int) -> list[int]:
    """n tickets through POST /api/v1/tickets: the real intake view, database and broker."""
    from django.test import Client

    from triage import services

    key = services.api_key_create(name="bench-worker-memory")[1]
    client, texts, ids = Client(), ticket_texts(), []
    run = int(time.time())
    for i in range(n):
        subject, body = texts[i % len(texts)]
        payload = {"subject": subject, "body": f"{body}\n\nOrder {run}-{i}",
                   "from_email": f"c{run}-{i}@example.com", "from_name": f"Customer {i}"}
        response = client.post("/api/v1/tickets", json.dumps(payload), content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def check(ids: list[int]) -> dict[str, Any]:
    """Whether every ticket went through each step once, with one successful call per model step."""
    from django.db.models import Count, Q

    from triage.models import Ticket

    rows = Ticket.objects.filter(pk__in=ids).annotate(
        n_runs=Count("triage_runs", distinct=True), n_decisions=Count("route_decisions", distinct=True),
        n_drafts=Count("drafts", distinct=True), n_calls=Count("model_calls", distinct=True),
        n_failed=Count("model_calls", filter=~Q(model_calls__error=""), distinct=True),
    ).values("status", "n_runs", "n_decisions", "n_drafts", "n_calls", "n_failed")
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    once = sum(1 for r in rows if (r["n_runs"], r["n_decisions"], r["n_drafts"]) == (1, 1, 1))
    return {"statuses": statuses, "each_step_once": once, "model_calls": sum(r["n_calls"] for r in rows),
            "failed_model_calls": sum(r["n_failed"] for r in rows),
            "correct": once == len(ids) and statuses.get("awaiting_review", 0) == len(ids)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--model-latency", type=float, default=3.0, help="seconds the model server takes")
    parser.add_argument("--pool", choices=("threads", "prefork"), default="threads")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the tickets")
    args = parser.parse_args()
    services = setup_django(DATABASE, redis_db=REDIS_DB, env={"LOG_LEVEL": "WARNING"})
    from tests.support.scripted_openai import ScriptedOpenAI, valid_reply
    from triage.llm import breaker
    from triage.models import Ticket

    print("loading the demo store (the first run embeds the knowledge base)…", flush=True)
    pipeline_world()
    for tier in ("nano", "mini", "large"):
        breaker.reset(tier)
    purge_pipeline_queue()
    responder = functools.partial(valid_reply, delay=args.model_latency)
    figures: dict[str, Any] = {"machine_at_start": machine(), "pool": args.pool,
                               "concurrency": args.concurrency, "tickets": args.tickets,
                               "model_latency_s": args.model_latency}
    with ScriptedOpenAI(respond=responder, keep_requests=False) as server:
        worker = start_worker(services.env, server.base_url, args.pool, args.concurrency)
        sampler = Sampler(server, worker.pid, args.interval)
        try:
            time.sleep(2)
            idle = sampler.memory()
            print(f"worker idle: {idle}", flush=True)
            sampler.start()
            started = time.monotonic()
            ids = submit(args.tickets)
            submitted = time.monotonic() - started
            print(f"{len(ids)} tickets submitted in {submitted:.1f} s", flush=True)
            peak_connections, last_report = 0, 0.0
            deadline = started + args.timeout
            while time.monotonic() < deadline:
                peak_connections = max(peak_connections, db_connections())
                done = Ticket.objects.filter(pk__in=ids, status__in=FINAL).count()
                if time.monotonic() - last_report > 5:
                    latest = sampler.samples[-1] if sampler.samples else {}
                    print(f"  {done}/{len(ids)} done, {latest.get('in_flight')} calls in flight, "
                          f"worker RSS {latest.get('rss_mb', 0):.0f} MB", flush=True)
                    last_report = time.monotonic()
                if done == len(ids):
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        finally:
            sampler.halt.set()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
            purge_pipeline_queue()
        samples = sampler.samples
        figures.update({
            "served_requests": server.served,
            "peak_in_flight": max(s["in_flight"] for s in samples),
            "idle": {k: round(v, 1) for k, v in idle.items()},
            "peak": {k: round(max(s[k] for s in samples), 1)
                     for k in ("rss_mb", "uss_mb", "pss_mb", "threads")},
            "peak_db_connections": peak_connections,
            "seconds": round(elapsed, 1), "tickets_per_s": round(len(ids) / elapsed, 2),
            "pipeline": check(ids),
            # One sample a second, to plot memory against calls in flight.
            "timeline": [{k: round(v, 1) for k, v in s.items()}
                         for s in samples[::max(1, round(1 / args.interval))]],
        })
    figures["machine_at_end"] = machine()
    shown = {k: v for k, v in figures.items() if k != "timeline"}
    print(json.dumps(shown, indent=2))
    limit = 1536
    print(f"\npeak in flight {figures['peak_in_flight']} calls; worker memory peak RSS "
          f"{figures['peak']['rss_mb']:.0f} MB, PSS {figures['peak']['pss_mb']:.0f} MB "
          f"({'within' if figures['peak']['pss_mb'] <= limit else 'over'} 1.5 GB); "
          + ("every ticket drafted exactly once" if figures["pipeline"]["correct"]
             else "PIPELINE CHECK FAILED"))
    name = "worker_memory" if (args.pool, args.concurrency) == ("threads", 64) else \
        f"worker_memory-{args.pool}-{args.concurrency}"
    report(name, figures, ["peak_in_flight", "peak.rss_mb", "peak.pss_mb", "peak.uss_mb", "idle.pss_mb",
                           "tickets_per_s"])
    return 0 if figures["pipeline"]["correct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
