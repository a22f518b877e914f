"""What the benchmarks share: Django on the embedded services, percentiles, free ports, results files.

Each benchmark keeps its figures in bench/results/<name>.json (not committed: figures belong to the machine
that made them) and prints its headline figures' ratios to the previous run's.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "bench" / "results"


# --- Django on the embedded services --------------------------------------------------------------

@dataclass
class Services:
    env: dict[str, str]  # the environment for a child process (gunicorn, a Celery worker) to see the same
    started: list[int] = field(default_factory=list)  # PIDs of the embedded services this run started

    def stop(self) -> None:
        """Stop what this run started (nothing when PostgreSQL and Redis were already running)."""
        if not self.started:
            return
        from django.db import connections

        from triage import devservices

        connections.close_all()
        devservices.stop(self.started)


def setup_django(database: str, *, redis_db: int | None = None, migrate: bool = True,
                 env: Mapping[str, str] | None = None) -> Services:
    """Django on `database` of the embedded PostgreSQL (started unless DATABASE_URL is set), migrated.

    With `redis_db`, the embedded Redis too (unless REDIS_URL is set), on a Redis database of its own: the
    tasks a benchmark queues must not reach a worker of another checkout or of the test suite.
    """
    from triage import devservices

    started = []
    if not os.environ.get("DATABASE_URL"):
        pid = devservices.ensure_postgres(database=database)
        if pid:
            started.append(pid)
    os.environ["TIERDESK_DB_NAME"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")
    if redis_db is not None and not os.environ.get("REDIS_URL"):
        pid = devservices.ensure_redis()
        if pid:
            started.append(pid)
        os.environ["REDIS_URL"] = f"{devservices.default_redis_url()}?virtual_host={redis_db}"
    os.environ.update(env or {})
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return Services(env=dict(os.environ), started=started)


def pipeline_world() -> None:
    """The demo store without its sample tickets: taxonomy, the 55 ABCD articles (embedded once by the
    configured provider), the default and risky intents' contracts and the policy gates."""
    from django.conf import settings

    from kb.services import kb_import_abcd_jsonl
    from triage import demo

    fixtures = settings.BASE_DIR / "fixtures"
    demo.taxonomy_load(intents_path=fixtures / "bitext" / "intents.json",
                       utterances_path=fixtures / "bitext" / "utterances.csv")
    kb_import_abcd_jsonl(path=fixtures / "kb" / "abcd_guidelines.jsonl")
    demo.policy_ensure()


def ticket_texts() -> list[tuple[str, str]]:
    """(subject, body) of realistic tickets: the demo's samples and the KB evaluation's questions."""
    samples = json.loads((ROOT / "fixtures" / "sample_tickets.json").read_text())
    texts = [(t["subject"], t["body"]) for t in samples]
    with (ROOT / "fixtures" / "kb" / "abcd_queries.jsonl").open() as handle:
        for line in handle:
            if line.strip():
                query = json.loads(line)["query"]
                texts.append((query[:60].rsplit(" ", 1)[0], f"Hello,\n\n{query}\n\nThanks"))
    return texts


def purge_pipeline_queue() -> int:
    """Drop the tasks a benchmark queued and no worker took; returns how many there were."""
    from triage.celery import app

    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_purge("pipeline") or 0)


# --- Figures --------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile, q in [0, 1], interpolated between the nearest ranks (numpy's default, and
    statistics.quantiles(method="inclusive")): smooth for the 15 or 30 samples some benchmarks take."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    return {"p50_ms": round(percentile(ms, 0.50), 2), "p95_ms": round(percentile(ms, 0.95), 2),
            "p99_ms": round(percentile(ms, 0.99), 2), "max_ms": round(max(ms), 2) if ms else math.nan}


def machine() -> dict[str, Any]:
    """How busy the machine was: figures from a loaded machine are not comparable with a quiet one's."""
    return {"cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}


# --- Processes ------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[Any]:
    """The process and all its descendants (psutil.Process), those still alive."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def embedded_service_pids() -> dict[str, int]:
    """The embedded PostgreSQL's postmaster and Redis server, when this state directory runs them."""
    from triage import devservices

    pids = {}
    for name, path in (("postgres", devservices.pg_data_dir() / "postmaster.pid"),
                       ("redis", devservices.redis_dir() / "redis.pid")):
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pids[name] = int(path.read_text().split()[0])
    return pids


class CpuMeter:
    """CPU seconds (user + system) that named process trees use between readings.

    On 2 shared cores a throughput figure moves with whatever else runs; the CPU each request costs the
    app, the database and Redis does not, so it is the figure to compare before and after a change.
    A process that exits between readings takes its CPU time with it: measure long-lived processes.
    """

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)

    def read(self) -> dict[str, dict[int, float]]:
        import psutil

        totals: dict[str, dict[int, float]] = {"client": {os.getpid(): time.process_time()}}
        for name, pid in self.roots.items():
            totals[name] = {}
            for proc in process_tree(pid):
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                totals[name][proc.pid] = times.user + times.system
        return totals

    @staticmethod
    def per_item_ms(before: Mapping[str, Mapping[int, float]], after: Mapping[str, Mapping[int, float]],
                    items: int) -> dict[str, float]:
        """Milliseconds of CPU per item, by tree and in total. A process started in between counts from
        zero; one that ended in between (a restarted gunicorn worker) is missing, so the figure is a floor."""
        used = {name: sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after[name].items())
                for name in before}
        per = {name: 1000 * seconds / max(items, 1) for name, seconds in used.items()}
        return {**{k: round(v, 3) for k, v in per.items()}, "total": round(sum(per.values()), 3)}


# --- Network --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


# --- Results files --------------------------------------------------------------------------------

def results_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.json"


def results_load(name: str) -> dict[str, Any]:
    path = results_path(name)
    return json.loads(path.read_text()) if path.exists() else {}


def results_save(name: str, figures: Mapping[str, Any]) -> Path:
    path = results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def lookup(figures: Mapping[str, Any], key: str) -> Any:
    """figures["a"]["b"] for "a.b"; a flat key that itself holds dots is found first."""
    if key in figures:
        return figures[key]
    value: Any = figures
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def compare(previous: Mapping[str, Any], figures: Mapping[str, Any], keys: Iterable[str]) -> dict[str, float]:
    """Print this run's value over the previous run's for each key both runs have; returns the ratios."""
    ratios = {}
    for key in keys:
        before, now = lookup(previous, key), lookup(figures, key)
        if not isinstance(before, (int, float)) or not isinstance(now, (int, float)) or not before:
            continue
        ratios[key] = now / before
        print(f"vs previous run: {key} {now:g} (was {before:g}, ×{now / before:.2f})")
    if previous and not ratios:
        print("vs previous run: no figure in common")
    return ratios


def report(name: str, figures: Mapping[str, Any], keys: Iterable[str], *,
           save: bool = True) -> dict[str, float]:
    """Compare with the previous run's file, then replace it with this run's figures."""
    previous = results_load(name)
    ratios = compare(previous, figures, keys)
    if save:
        print(f"figures written to {results_save(name, figures).relative_to(ROOT)}")
    return ratios
