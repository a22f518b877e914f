"""Intake throughput: POST /api/v1/tickets and Postmark's inbound webhook against a real gunicorn.

    .venv/bin/python bench/intake.py [--requests 2000] [--concurrency 16] [--workers 2]

Starts the embedded PostgreSQL and Redis if needed, a `tierdesk_bench` database, and gunicorn on a
free loopback port; no Celery worker runs, so this measures intake alone (tickets are stored and
queued). Prints requests per second and latency percentiles, and the ratio to the previous run
(bench/results/intake.json).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "intake.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup() -> tuple[dict[str, str], str]:
    from triage import devservices

    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        devservices.ensure_postgres(database="tierdesk_bench")
    if not env.get("REDIS_URL"):
        devservices.ensure_redis()
        # A Redis database of its own: the tickets stored here queue tasks that no worker should take.
        env["REDIS_URL"] = devservices.default_redis_url() + "?virtual_host=15"
    env.update({"TIERDESK_DB_NAME": "tierdesk_bench", "DJANGO_SETTINGS_MODULE": "triage.settings",
                "TIERDESK_POSTMARK_INBOUND_USER": "bench", "TIERDESK_POSTMARK_INBOUND_PASSWORD": "bench-pass",
                "LOG_LEVEL": "WARNING"})
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from triage import services

    call_command("migrate", verbosity=0)
    return env, services.api_key_create(name="bench")[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fire(port: int, n: int, concurrency: int, make: object) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        path, body, headers = make(i)  # type: ignore[operator]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status not in (200, 201):
            errors += 1
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    return {"requests": n, "rps": round(n / elapsed, 1), "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1), "errors": errors,
            "mean_ms": round(statistics.mean(latencies) * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    env, key = setup()
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "triage.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def api(i: int) -> tuple[str, bytes, dict[str, str]]:
            body = {"subject": f"Order {i} has not arrived", "body": "Hello, my parcel is late. " * 10,
                    "from_email": f"customer{i}@example.com"}
            return "/api/v1/tickets", json.dumps(body).encode(), auth

        basic = "Basic " + base64.b64encode(b"bench:bench-pass").decode()
        template = json.loads((ROOT / "fixtures" / "email" / "providers" / "postmark_inbound.json").read_text())

        def postmark(i: int) -> tuple[str, bytes, dict[str, str]]:
            payload = dict(template)
            payload["MessageID"] = str(uuid.uuid4())
            payload["Headers"] = [h for h in template.get("Headers", []) if h["Name"].lower() != "message-id"]
            payload["Headers"].append({"Name": "Message-ID", "Value": f"<bench-{uuid.uuid4().hex}@example.com>"})
            return "/inbound/postmark/", json.dumps(payload).encode(), {"Authorization": basic,
                                                                       "Content-Type": "application/json"}

        fire(port, 50, 4, api)  # warm up connections and caches
        figures = {"api_tickets": fire(port, args.requests, args.concurrency, api),
                   "postmark_webhook": fire(port, max(200, args.requests // 4), args.concurrency, postmark),
                   "concurrency": args.concurrency, "gunicorn_workers": args.workers}
    finally:
        server.terminate()
        server.wait(timeout=20)
        from triage.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("pipeline")
    print(json.dumps(figures, indent=2))
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        for name in ("api_tickets", "postmark_webhook"):
            if previous.get(name, {}).get("rps"):
                print(f"{name}: ×{figures[name]['rps'] / previous[name]['rps']:.2f} the previous run's rate")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
