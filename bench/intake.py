"""Intake: POST /api/v1/tickets and Postmark's inbound webhook against a real gunicorn.

    .venv/bin/python bench/intake.py [--requests 2000] [--concurrency 16] [--rates 100,300] [--seconds 30]
    .venv/bin/python bench/intake.py --profile 500      # where one intake request spends its time

Starts the embedded PostgreSQL and Redis if needed, a `tierdesk_bench` database, and gunicorn on a free
loopback port with gunicorn.conf.py's workers and threads; no Celery worker runs, so this measures intake
alone (tickets are stored and queued; the queue is purged at the end). The database holds --customers
known customers (one ticket in ten comes from one of them), as a shop's does. Three measurements, each with
the CPU milliseconds per request that gunicorn, PostgreSQL, Redis and this client spent (the figure to compare
across runs on a shared machine, where throughput moves with whatever else runs):

  saturation   --concurrency closed-loop clients, each sending its next request when the last is answered:
               the most requests per second the server completes, with the latency that costs.
  fixed rate   open loop: for each rate in --rates, requests are sent on a fixed timetable for --seconds,
               whether or not earlier ones were answered, and each latency runs from the request's
               *scheduled* send time, so a stalled server is charged for every request it held up (no
               coordinated omission). Reports offered and achieved rates, p50/p95/p99/max and errors.
  webhook      the Postmark webhook at saturation.

The fixed-rate runs come last, slowest first, each after the server has worked off what the last one left.

With --profile N, no server runs: N requests go through Django's WSGI handler in this process under
cProfile, and the functions with the most cumulative time are printed.

Figures go to bench/results/intake.json, with the ratio to the previous run's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import runpy
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import (
    ROOT,
    CpuMeter,
    embedded_service_pids,
    free_port,
    latency_ms,
    machine,
    percentile,
    purge_pipeline_queue,
    report,
    setup_django,
    wait_for_port,
)

Request = tuple[str, bytes, dict[str, str]]
# Redis database 15: the tickets stored here queue tasks that no worker should take.
REDIS_DB = 15


def setup(customers: int) -> tuple[dict[str, str], str]:
    services = setup_django("tierdesk_bench", redis_db=REDIS_DB, env={
        "TIERDESK_POSTMARK_INBOUND_USER": "bench", "TIERDESK_POSTMARK_INBOUND_PASSWORD": "bench-pass",
        "LOG_LEVEL": "WARNING",
    })
    from triage import services as product

    populate_customers(customers)
    return services.env, product.api_key_create(name="bench")[1]


def populate_customers(n: int) -> None:
    """Known customers, as a shop has: intake looks up every sender among them."""
    from django.db import connection

    from triage.models import Customer

    have = Customer.objects.filter(email__startswith="known").count()
    if have >= n:
        return
    print(f"adding {n - have} customers…", flush=True)
    Customer.objects.bulk_create(
        (Customer(email=f"known{i}@example.com", name=f"Known {i}") for i in range(have, n)),
        batch_size=5000, ignore_conflicts=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE triage_customer")


def api_request(key: str, customers: int = 0) -> Callable[[int], Request]:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]

    def make(i: int) -> Request:
        # One ticket in ten from a known customer, in whatever case their mail client writes the address.
        sender = (f"Known{i * 7919 % customers}@Example.com" if customers and i % 10 == 0
                  else f"customer{i}-{run}@example.com")
        body = {"subject": f"Order {i} has not arrived", "body": "Hello, my parcel is late. " * 10,
                "from_email": sender}
        return "/api/v1/tickets", json.dumps(body).encode(), auth

    return make


def postmark_request() -> Callable[[int], Request]:
    basic = "Basic " + base64.b64encode(b"bench:bench-pass").decode()
    template = json.loads((ROOT / "fixtures" / "email" / "providers" / "postmark_inbound.json").read_text())

    def make(i: int) -> Request:
        payload = dict(template)
        payload["MessageID"] = str(uuid.uuid4())
        payload["Headers"] = [h for h in template.get("Headers", []) if h["Name"].lower() != "message-id"]
        payload["Headers"].append({"Name": "Message-ID", "Value": f"<bench-{uuid.uuid4().hex}@example.com>"})
        return "/inbound/postmark/", json.dumps(payload).encode(), {"Authorization": basic,
                                                                   "Content-Type": "application/json"}

    return make


# --- Closed loop: saturation ----------------------------------------------------------------------

def saturate(port: int, n: int, concurrency: int, make: Callable[[int], Request]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        path, body, headers = make(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started)
        if status not in (200, 201):
            errors += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    return {"requests": n, "concurrency": concurrency, "rps": round(n / elapsed, 1), **latency_ms(latencies),
            "mean_ms": round(statistics.mean(latencies) * 1000, 1), "errors": errors}


# --- Open loop: a fixed timetable -----------------------------------------------------------------

async def _send(port: int, request: Request, timeout: float) -> int:
    """One request on a fresh connection; the response's status, or 0 when there was none."""
    path, body, headers = request
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n{head}\r\n").encode() + body

    async def exchange() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            await reader.read()  # to the end: the server closes after the response
            return status
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError, ValueError, IndexError):
        return 0


async def _timetable(port: int, rate: float, seconds: float, make: Callable[[int], Request],
                     timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n = max(1, round(rate * seconds))
    start = loop.time() + 0.5
    done: list[tuple[float, float, float, int]] = []  # scheduled, sent, finished, status

    async def one(i: int) -> None:
        scheduled = start + i / rate
        request = make(i)
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        sent = loop.time()
        status = await _send(port, request, timeout)
        done.append((scheduled, sent, loop.time(), status))

    await asyncio.gather(*(one(i) for i in range(n)))
    ok = [d for d in done if d[3] in (200, 201)]
    span = max(d[2] for d in done) - start
    lag = [d[1] - d[0] for d in done]
    return {
        "offered_rps": round(rate, 1), "seconds": seconds, "requests": n,
        "achieved_rps": round(len(ok) / span, 1) if span > 0 else 0.0,
        # Latency from the scheduled send time: a late send is the server's delay too.
        **latency_ms([d[2] - d[0] for d in done]),
        "errors": n - len(ok),
        # How late this client itself sent (its own CPU time on the same cores); large values mean the
        # client, not the server, could not keep the timetable.
        "client_send_lag_p99_ms": round(percentile(lag, 0.99) * 1000, 2),
    }


def fixed_rate(port: int, rate: float, seconds: float, make: Callable[[int], Request],
               timeout: float = 10.0) -> dict[str, Any]:
    return asyncio.run(_timetable(port, rate, seconds, make, timeout))


def settle(meter: CpuMeter, *, timeout: float = 120.0) -> None:
    """Wait until gunicorn is idle: a rate above what it can serve leaves requests queued after the run."""
    deadline = time.monotonic() + timeout
    last = sum(meter.read()["gunicorn"].values())
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(meter.read()["gunicorn"].values())
        if now - last < 0.02:  # under 4 % of a core
            return
        last = now


# --- Profile --------------------------------------------------------------------------------------

def profile(n: int, key: str, customers: int, top: int = 35) -> None:
    """N intake requests through Django's whole WSGI stack in this process, under cProfile."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    make = api_request(key, customers)

    def post(i: int) -> int:
        path, body, headers = make(i)
        response = client.post(path, body, content_type="application/json",
                               HTTP_AUTHORIZATION=headers["Authorization"])
        return response.status_code

    for i in range(20):  # warm: connections, caches, lazy imports
        post(i)
    with CaptureQueriesContext(connection) as queries:
        assert post(20) == 201
    print(f"queries per request: {len(queries)}")
    for q in queries:
        print(f"  {q['sql'][:150]}")
    started = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        post(100 + i)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{n} requests in {elapsed:.2f} s under the profiler: {1000 * elapsed / n:.2f} ms each, one thread")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())
    purge_pipeline_queue()


# --- Main -----------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="saturation: requests (0 skips it)")
    parser.add_argument("--concurrency", type=int, default=16, help="saturation: closed-loop clients")
    parser.add_argument("--rates", default="100,300", help="fixed-rate runs, requests per second ('' skips)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each fixed-rate run")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker (default: the conf's)")
    parser.add_argument("--customers", type=int, default=100_000, help="known customers in the database")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N requests in-process instead")
    args = parser.parse_args()
    env, key = setup(args.customers)
    if args.profile:
        profile(args.profile, key, args.customers)
        return 0
    port = free_port()
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "triage.wsgi", "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    figures: dict[str, Any] = {"machine_at_start": machine()}
    meter = CpuMeter({"gunicorn": server.pid, **embedded_service_pids()})

    def measured(name: str, label: str, run: Callable[[], dict[str, Any]]) -> None:
        before = meter.read()
        result = run()
        # CPU per request of each process: the figure that holds still on a machine shared with other work.
        result["cpu_ms_per_request"] = meter.per_item_ms(before, meter.read(), result["requests"])
        figures[name] = result
        print(f"{label}:", json.dumps(result), flush=True)

    try:
        wait_for_port(port)
        api = api_request(key, args.customers)
        saturate(port, 50, 4, api)  # warm up connections and caches
        figures["gunicorn"] = gunicorn_settings(args.workers, args.threads)
        figures["customers"] = args.customers
        if args.requests:
            measured("api_tickets", "saturation",
                     lambda: saturate(port, args.requests, args.concurrency, api))
            measured("postmark_webhook", "webhook saturation",
                     lambda: saturate(port, max(200, args.requests // 4), args.concurrency,
                                      postmark_request()))
        for rate in sorted(float(r) for r in args.rates.split(",") if r.strip()):
            settle(meter)
            measured(f"api_tickets_at_{rate:g}_rps", f"fixed rate {rate:g}/s",
                     lambda rate=rate: fixed_rate(port, rate, args.seconds, api))  # type: ignore[misc]
    finally:
        server.terminate()
        server.wait(timeout=20)
        purge_pipeline_queue()
    figures["machine_at_end"] = machine()
    keys = ["api_tickets.rps", "api_tickets.p99_ms", "api_tickets.cpu_ms_per_request.total",
            "api_tickets.cpu_ms_per_request.gunicorn", "postmark_webhook.rps"]
    keys += [f"{k}.{m}" for k in figures if k.startswith("api_tickets_at_")
             for m in ("achieved_rps", "p99_ms")]
    report("intake", figures, keys)
    return 0


def gunicorn_settings(workers: int | None, threads: int | None) -> dict[str, Any]:
    """The workers and threads of the server under test: the options given, else gunicorn.conf.py's."""
    namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    return {"workers": workers or namespace.get("workers", 1),
            "threads": threads or namespace.get("threads", 1)}


if __name__ == "__main__":
    raise SystemExit(main())
