"""Faults under load, for real: bench/chaos.py small enough for the suite.

It runs on a PostgreSQL and Redis of its own, so restarting them never touches the suite's: tickets arrive
through gunicorn while the worker is SIGKILLed at random points (whole process or one pool process), Redis is
SIGKILLed and restarted, and PostgreSQL is shut down and restarted; an agent approves drafts meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.worker
@pytest.mark.slow
def test_nothing_acknowledged_is_lost_and_nothing_happens_twice_under_kills_and_restarts(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--tickets", "60", "--rate", "5", "--kill-every", "3",
         "--outage", "3", "--stalled-after", "10", "--approve-every", "3", "--deadline", "420", "--seed", "11",
         "--state-dir", str(tmp_path / "state"), "--report", str(report), "--no-results"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert report.exists(), completed.stdout[-3000:] + completed.stderr[-3000:]
    figures = json.loads(report.read_text())
    # The faults happened: several worker kills, one Redis and one PostgreSQL restart during intake.
    assert figures["worker_kills"] >= 3
    assert (figures["redis_restarts"], figures["postgres_restarts"]) == (1, 1)
    # Every ticket the API acknowledged is stored, and none is left mid-pipeline.
    assert figures["acknowledged"] == 60 and figures["given_up"] == 0 and figures["lost"] == 0
    assert figures["in_flight_left"] == {}
    assert set(figures["statuses"]) <= {"awaiting_review", "needs_human", "approved"}
    # No ticket was classified, routed or drafted twice, and no reply went out twice.
    assert figures["most_drafts_per_ticket"] == 1
    assert figures["most_triage_runs_per_ticket"] == 1 and figures["most_route_decisions_per_ticket"] == 1
    assert figures["approved"] >= 5
    assert figures["outbound"] == {"sent": figures["approved"]}
    assert figures["replies_delivered"] == figures["approved"] and figures["replies_delivered_twice"] == 0
    # While Redis was down the API still took tickets (stored, queued later by the sweeper).
    assert figures["intake_statuses_broker_down"] and set(figures["intake_statuses_broker_down"]) <= {"201"}
    # While PostgreSQL was down a request got 503 and the client's retry with the same key succeeded.
    assert set(figures["intake_statuses_database_down"]) <= {"201", "200", "503", "0"}
    assert figures["failures"] == [] and completed.returncode == 0, completed.stdout[-3000:]
