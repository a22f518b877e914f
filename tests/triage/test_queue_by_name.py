"""Work is queued by task name (triage.queue): a process that never imported the task modules, as a web
process, still finds every task it queues."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
import django
django.setup()
assert "triage.tasks" not in sys.modules and "kb.tasks" not in sys.modules
from triage import queue
from kb import reembed
print(queue.task("triage.classify_ticket").name, queue.task("triage.send_outbound_email").name,
      reembed._reembed_task().name)
"""


def test_a_process_that_never_imported_the_task_modules_finds_the_tasks_it_queues() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "triage.settings"}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["triage.classify_ticket", "triage.send_outbound_email", "kb.reembed_chunks"]
