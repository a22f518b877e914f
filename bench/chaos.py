"""Faults under load: tickets through the real intake while workers are killed and the broker and database
restart, then a check that nothing acknowledged was lost, nothing was drafted or sent twice, and every ticket
reached a state a person can act on.

    .venv/bin/python bench/chaos.py [--tickets 1000] [--rate 15] [--kill-every 8] [--redis-restarts 1]
                                    [--pg-restarts 1] [--seed 7] [--report out.json]

Runs on a PostgreSQL and Redis of its own (a temporary state directory), so it never disturbs the embedded
services of `./run`. What it starts:
- gunicorn serving the app; a client posts tickets to `POST /api/v1/tickets` at a fixed rate, retrying a
  refused request with the same Idempotency-Key as any client should;
- one Celery worker (prefork, 2 processes), and Celery beat running the stalled-work sweeper beside it;
- a real SMTP server on loopback; an "agent" thread approves every `--approve-every`-th draft, so replies
  are sent while the faults happen;
- the faults: SIGKILL of the worker's main process (its whole process group dies with it, as when a
  container is killed) or of one pool process, at random intervals, the worker restarted after a main kill;
  Redis killed with SIGKILL and restarted; PostgreSQL shut down and restarted.

Prints the invariants and figures, writes them to bench/results/chaos.json (and `--report`), compares with
the previous run, and exits 1 when an invariant fails. tests/triage/test_chaos.py runs it small.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import csv
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import free_port, machine, percentile, report  # noqa: E402 (after the path is set)

IN_FLIGHT = ("new", "classifying", "routing", "drafting")


@dataclass
class Intake:
    """What the client saw: every attempt's status and latency, and the tickets the server acknowledged."""

    acknowledged: dict[int, int] = field(default_factory=dict)  # request number → ticket id
    attempts: list[tuple[float, int, float]] = field(default_factory=list)  # (sent at, status, seconds)
    given_up: list[int] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Faults:
    log: list[tuple[float, str]] = field(default_factory=list)
    outages: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"redis": [], "postgres": []})
    done: threading.Event = field(default_factory=threading.Event)

    def note(self, what: str) -> None:
        self.log.append((time.monotonic(), what))
        print(f"  fault: {what}", flush=True)


class Services:
    """PostgreSQL and Redis under a state directory of this run's own."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def start_all(self) -> None:
        from triage import devservices

        devservices.ensure_postgres(database="tierdesk")
        devservices.ensure_redis()

    def redis_pid(self) -> int | None:
        from triage import devservices

        return devservices._read_pid(devservices.redis_dir() / "redis.pid")

    def pg_pid(self) -> int | None:
        from triage import devservices

        return devservices._read_pid(devservices.pg_data_dir() / "postmaster.pid")

    def stop_all(self) -> None:
        from triage import devservices

        devservices.stop([p for p in (self.redis_pid(), self.pg_pid()) if p])


class Worker:
    def __init__(self, env: dict[str, str], state: Path) -> None:
        self.env, self.state = env, state
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.state / f"worker-{self.starts}.log", "wb")  # noqa: SIM115 - the worker writes to it
        # The scheduler (the sweeper) runs as a process of its own, as in a deployment with several workers:
        # the kills below are the worker's, and a worker's pool processes are then only its pool.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "triage", "worker", "-Q", "pipeline,jobs,email", "--concurrency", "2",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--hostname", f"chaos-{self.starts}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def pool_pids(self) -> list[int]:
        import psutil

        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill_main(self) -> None:
        """SIGKILL the main process, then the rest of its process group, as a killed container would."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_main()


def post_tickets(port: int, api_key: str, count: int, rate: float, intake: Intake, texts: list[str]) -> None:
    """Open loop: request i is due at start + i/rate whatever happened to the ones before it."""
    start = time.monotonic()
    lock = threading.Lock()

    def one(number: int) -> None:
        body = json.dumps({"subject": f"Order question #{number}", "body": texts[number % len(texts)],
                           "from_email": f"customer{number}@example.com", "from_name": f"Customer {number}"})
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                   "Idempotency-Key": f"chaos-{number}"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sent = time.monotonic()
            status = 0
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/api/v1/tickets", body, headers)
                response = conn.getresponse()
                status, payload = response.status, response.read()
                conn.close()
            except OSError:
                payload = b""
            with lock:
                intake.attempts.append((sent, status, time.monotonic() - sent))
            if status in (200, 201):
                with lock:
                    intake.acknowledged[number] = json.loads(payload)["id"]
                return
            time.sleep(0.5)  # refused (503 while the database restarts) or unreachable: retry, same key
        with lock:
            intake.given_up.append(number)

    threads = []
    for number in range(count):
        due = start + number / rate
        time.sleep(max(0.0, due - time.monotonic()))
        thread = threading.Thread(target=one, args=(number,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    intake.done.set()


def approve_drafts(every: int, stop: threading.Event, approved: list[int]) -> None:
    """An agent approving drafts as they arrive (every `every`-th ticket), so replies go out under the faults."""
    from django.contrib.auth.models import User
    from django.db import connection

    from triage import services
    from triage.errors import ApplicationError
    from triage.models import Draft

    while not stop.is_set():
        try:
            agent = User.objects.get(username="chaos-agent")
            ready = (Draft.objects.filter(status="pending", ticket__status="awaiting_review")
                     .values_list("ticket_id", "pk"))
            for ticket_id, draft_id in ready:
                if ticket_id % every == 0:
                    with contextlib.suppress(ApplicationError):
                        services.draft_approve(ticket_id=ticket_id, draft_id=draft_id, user=agent, final_text=None)
                        approved.append(ticket_id)
        except Exception:
            connection.close()
        stop.wait(1.0)
    connection.close()


def run_faults(args: argparse.Namespace, worker: Worker, services: Services, faults: Faults, intake: Intake,
               rng: random.Random) -> None:
    from triage import devservices

    duration = args.tickets / args.rate
    start = time.monotonic()
    plan: list[tuple[float, str]] = []
    t = rng.uniform(0.5, 1.5) * args.kill_every
    while t < duration:
        plan.append((t, "kill"))
        t += rng.uniform(0.5, 1.5) * args.kill_every
    for i in range(args.redis_restarts):
        plan.append((duration * (i + 1) / (args.redis_restarts + 1) * 0.8, "redis"))
    for i in range(args.pg_restarts):
        plan.append((duration * (i + 1) / (args.pg_restarts + 1) * 0.9 + 1.0, "postgres"))
    plan.sort()
    for at, what in plan:
        time.sleep(max(0.0, start + at - time.monotonic()))
        if what == "kill":
            pool = worker.pool_pids()
            if pool and rng.random() < 0.5:
                pid = rng.choice(pool)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                faults.note(f"SIGKILL pool process {pid}")
            else:
                assert worker.proc is not None
                faults.note(f"SIGKILL worker {worker.proc.pid} and its process group")
                worker.kill_main()
                time.sleep(rng.uniform(0.5, 3.0))
                worker.start()
        elif what == "redis":
            pid = services.redis_pid()
            down = time.monotonic()
            if pid:
                os.kill(pid, signal.SIGKILL)
                faults.note(f"SIGKILL redis {pid}")
            time.sleep(args.outage)
            for leftover in ("redis.sock", "redis.pid"):
                (devservices.redis_dir() / leftover).unlink(missing_ok=True)
            devservices.ensure_redis()
            faults.outages["redis"].append((down, time.monotonic()))
            faults.note("redis started again")
        elif what == "postgres":
            pid = services.pg_pid()
            down = time.monotonic()
            if pid:
                devservices.stop([pid])  # fast shutdown: open transactions are rolled back
                faults.note(f"postgres {pid} shut down")
            time.sleep(args.outage)
            devservices.ensure_postgres(database="tierdesk")
            faults.outages["postgres"].append((down, time.monotonic()))
            faults.note("postgres started again")
    faults.done.set()


def pipeline_state() -> dict[str, Any]:
    from django.db.models import Count

    from triage.models import Draft, OutboundEmail, RouteDecision, Ticket, TriageRun

    statuses = dict(Counter(Ticket.objects.values_list("status", flat=True)))
    most = {
        "drafts": Draft.objects.values("ticket").annotate(n=Count("id")).order_by("-n").values_list("n", flat=True)[:1],
        "route_decisions": RouteDecision.objects.values("ticket").annotate(n=Count("id")).order_by("-n")
        .values_list("n", flat=True)[:1],
        "triage_runs": TriageRun.objects.values("ticket").annotate(n=Count("id")).order_by("-n")
        .values_list("n", flat=True)[:1],
    }
    outbound = dict(Counter(OutboundEmail.objects.values_list("status", flat=True)))
    return {"statuses": statuses, "most_per_ticket": {k: (list(v) or [0])[0] for k, v in most.items()},
            "outbound": outbound}


def settled(state: dict[str, Any], intake: Intake) -> bool:
    in_flight = sum(state["statuses"].get(s, 0) for s in IN_FLIGHT)
    unsent = sum(n for s, n in state["outbound"].items() if s != "sent")
    return intake.done.is_set() and in_flight == 0 and unsent == 0


def wait_for_web(port: int) -> None:
    """Until gunicorn's workers answer a request (an unauthenticated one: 401)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/tickets")
            if conn.getresponse().status == 401:
                return
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 120 s")


def drive(args: argparse.Namespace, rng: random.Random, port: int, api_key: str, texts: list[str],
          worker: Worker, services: Services) -> tuple[Intake, Faults, tuple[list[int], float, float, float]]:
    """Offer the tickets with the faults and the agent running, then wait until the run settles."""
    from django.db import connection

    intake, faults = Intake(), Faults()
    stop_agent = threading.Event()
    approved: list[int] = []
    started = time.monotonic()
    print(f"offering {args.tickets} tickets at {args.rate:g}/s with faults", flush=True)
    threads = [
        threading.Thread(target=post_tickets, args=(port, api_key, args.tickets, args.rate, intake, texts)),
        threading.Thread(target=run_faults, args=(args, worker, services, faults, intake, rng)),
        threading.Thread(target=approve_drafts, args=(args.approve_every, stop_agent, approved)),
    ]
    for thread in threads:
        thread.start()
    threads[1].join()
    last_fault = faults.log[-1][0] if faults.log else started
    deadline = time.monotonic() + args.deadline
    progress = time.monotonic()
    while time.monotonic() < deadline:
        try:
            current = pipeline_state()
        except Exception:
            connection.close()
            time.sleep(1)
            continue
        if settled(current, intake):
            break
        if time.monotonic() - progress > 15:
            print(f"  waiting: {current['statuses']} outbound {current['outbound']}", flush=True)
            progress = time.monotonic()
        time.sleep(1)
    settled_at = time.monotonic()
    stop_agent.set()
    threads[0].join(timeout=5)
    threads[2].join(timeout=5)
    return intake, faults, (approved, started, settled_at, last_fault)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=15.0, help="tickets offered per second")
    parser.add_argument("--kill-every", type=float, default=8.0, help="mean seconds between worker kills")
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--pg-restarts", type=int, default=1)
    parser.add_argument("--outage", type=float, default=4.0, help="seconds each service stays down")
    parser.add_argument("--approve-every", type=int, default=4)
    parser.add_argument("--stalled-after", type=int, default=20, help="the sweeper's stall window, seconds")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds to wait for the run to settle")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state-dir", help="keep services and logs here (default: a temporary directory)")
    parser.add_argument("--report", help="also write the figures to this JSON file")
    parser.add_argument("--no-results", action="store_true",
                        help="neither compare with nor replace bench/results/chaos.json (the test suite's run)")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    state = Path(args.state_dir or tempfile.mkdtemp(prefix="tierdesk-chaos-")).resolve()
    state.mkdir(parents=True, exist_ok=True)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update({"TIERDESK_STATE_DIR": str(state), "DJANGO_SETTINGS_MODULE": "triage.settings",
                       "LOG_LEVEL": "WARNING", "DB_CONN_MAX_AGE": "0"})
    for name in [k for k in os.environ if k.startswith(("OPENAI_", "TIERDESK_NANO", "TIERDESK_MINI",
                                                         "TIERDESK_LARGE"))]:
        os.environ.pop(name)
    services = Services(state)
    services.start_all()
    atexit.register(services.stop_all)  # on success, failure or an exception alike
    from triage import devservices

    os.environ["DATABASE_URL"] = devservices.default_database_url("tierdesk")
    os.environ["REDIS_URL"] = devservices.default_redis_url()
    print(f"state directory: {state}", flush=True)

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from tests.support import data
    from tests.support.smtp import SmtpSink
    from triage import services as app_services
    from triage.models import ModelCall, OutboundEmail, Ticket

    call_command("migrate", verbosity=0)
    print("seeding the taxonomy, knowledge base and local model", flush=True)
    data.seed_small()
    User.objects.create_user("chaos-agent", password=None)
    api_key = app_services.api_key_create(name="chaos")[1]
    with (ROOT / "fixtures" / "bitext" / "utterances.csv").open(newline="") as handle:
        texts = [row["utterance"] for row, _ in zip(csv.DictReader(handle), range(400), strict=False)]
    connection.close()

    port = free_port()
    web_env = dict(os.environ)
    worker_env = dict(os.environ)
    with SmtpSink() as smtp:
        worker_env.update({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "EMAIL_TIMEOUT": "5",
                           "TIERDESK_SWEEP_SECONDS": "5", "TIERDESK_STALLED_AFTER_S": str(args.stalled_after),
                           "TIERDESK_SEND_CLAIM_EXPIRES_S": str(args.stalled_after),
                           "TIERDESK_RETRAIN_HOURS": "0"})
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "triage.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--threads", "4", "--log-level", "warning"],
            cwd=ROOT, env=web_env, stdout=open(state / "web.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        worker = Worker(worker_env, state)
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "triage", "beat", "--schedule", str(state / "celerybeat-schedule"),
             "--loglevel", "INFO"],
            cwd=ROOT, env=worker_env, stdout=open(state / "beat.log", "wb"),  # noqa: SIM115 - beat writes to it
            stderr=subprocess.STDOUT,
        )
        try:
            worker.start()
            wait_for_web(port)
            intake, faults, figures_raw = drive(args, rng, port, api_key, texts, worker, services)
            current = pipeline_state()
            acknowledged = set(intake.acknowledged.values())
            stored = set(Ticket.objects.filter(pk__in=acknowledged).values_list("pk", flat=True))
            delivered = Counter(str(m["Message-ID"]).strip().strip("<>") for _rcpts, m in smtp.messages)
            sent_ids = {m.strip("<>") for m in
                        OutboundEmail.objects.filter(status="sent").values_list("message_id", flat=True)}
            calls = dict(Counter(ModelCall.objects.values_list("step", flat=True)))
        finally:
            worker.stop()
            beat.terminate()
            beat.wait(timeout=30)
            web.terminate()
            web.wait(timeout=30)
    approved, started, settled_at, last_fault = figures_raw

    def window(kind: str) -> list[float]:
        return [seconds * 1000 for sent, status, seconds in intake.attempts
                if any(a <= sent <= b for a, b in faults.outages[kind])]

    all_ms = [s * 1000 for _t, status, s in intake.attempts if status in (200, 201)]
    redis_ms = window("redis")
    redis_statuses = Counter(status for sent, status, _s in intake.attempts
                             if any(a <= sent <= b for a, b in faults.outages["redis"]))
    pg_statuses = Counter(status for sent, status, _s in intake.attempts
                          if any(a <= sent <= b for a, b in faults.outages["postgres"]))
    in_flight = {s: current["statuses"].get(s, 0) for s in IN_FLIGHT if current["statuses"].get(s)}
    figures: dict[str, Any] = {
        "tickets_offered": args.tickets,
        "acknowledged": len(acknowledged),
        "given_up": len(intake.given_up),
        "lost": len(acknowledged - stored),
        "in_flight_left": in_flight,
        "statuses": current["statuses"],
        "most_drafts_per_ticket": current["most_per_ticket"]["drafts"],
        "most_route_decisions_per_ticket": current["most_per_ticket"]["route_decisions"],
        "most_triage_runs_per_ticket": current["most_per_ticket"]["triage_runs"],
        "approved": len(approved),
        "model_calls_per_ticket": {step: round(n / max(1, len(acknowledged)), 2) for step, n in calls.items()},
        "outbound": current["outbound"],
        "replies_delivered": sum(delivered.values()),
        "replies_delivered_twice": sum(1 for n in delivered.values() if n > 1),
        "sent_not_delivered": len(sent_ids - set(delivered)),
        "worker_kills": sum(1 for _t, what in faults.log if what.startswith("SIGKILL") and "redis" not in what),
        "redis_restarts": len(faults.outages["redis"]),
        "postgres_restarts": len(faults.outages["postgres"]),
        "seconds_total": round(settled_at - started, 1),
        "seconds_to_settle_after_last_fault": round(settled_at - last_fault, 1),
        "intake_p50_ms": round(percentile(all_ms, 0.50), 1),
        "intake_p99_ms": round(percentile(all_ms, 0.99), 1),
        "intake_p99_ms_broker_down": round(percentile(redis_ms, 0.99), 1),
        "intake_statuses_broker_down": {str(k): v for k, v in redis_statuses.items()},
        "intake_statuses_database_down": {str(k): v for k, v in pg_statuses.items()},
        "machine": machine(),
        "state_dir": str(state),
    }
    failures = []
    if figures["lost"] or figures["given_up"]:
        failures.append("acknowledged tickets lost or intake gave up")
    if in_flight:
        failures.append(f"tickets still in flight: {in_flight}")
    if figures["most_drafts_per_ticket"] > 1 or figures["most_triage_runs_per_ticket"] > 1 \
            or figures["most_route_decisions_per_ticket"] > 1:
        failures.append("a ticket was classified, routed or drafted twice")
    if figures["replies_delivered_twice"] or figures["sent_not_delivered"]:
        failures.append("a reply was delivered twice, or marked sent and never delivered")
    if any(s != "sent" for s in current["outbound"]):
        failures.append(f"replies not sent: {current['outbound']}")
    if any(str(s) not in ("200", "201") for s in redis_statuses):
        failures.append(f"intake refused tickets while the broker was down: {dict(redis_statuses)}")
    figures["failures"] = failures

    for name, value in figures.items():
        print(f"{name}: {value}")
    report("chaos", figures, ("seconds_to_settle_after_last_fault", "intake_p50_ms", "intake_p99_ms",
                              "intake_p99_ms_broker_down"), save=not args.no_results)
    if args.report:
        Path(args.report).write_text(json.dumps(figures, indent=2) + "\n")
    print("FAILED: " + "; ".join(failures) if failures else "all invariants held")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
