"""The cast for access tests (alice is an admin, bob an agent, charlie signed in with no role) and one real
object behind every id a URL can carry."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver

from kb.services import article_create
from tests.support.data import triaged_history
from triage.models import Draft, EvalRun, Job, Macro, Message, MessageAttachment


@dataclass(frozen=True)
class Cast:
    alice: User
    bob: User
    charlie: User


@pytest.fixture
def cast(db: Any) -> Cast:
    admins = Group.objects.get_or_create(name="admins")[0]
    agents = Group.objects.get_or_create(name="agents")[0]
    alice = User.objects.create_user("alice", password="alice-pass-8310")
    alice.groups.add(admins)
    bob = User.objects.create_user("bob", password="bob-pass-8310")
    bob.groups.add(agents)
    charlie = User.objects.create_user("charlie", password="charlie-pass-8310")
    return Cast(alice, bob, charlie)


@pytest.fixture
def samples(cast: Cast) -> dict[str, str]:
    """URL parameter name -> the id of a real object (so a 404 is the access check, not a missing row)."""
    triaged_history()
    draft = Draft.objects.filter(status=Draft.Status.PENDING).select_related("ticket").first()
    assert draft is not None
    ticket = draft.ticket
    message = Message.objects.create(
        ticket=ticket,
        direction=Message.Direction.INBOUND,
        message_id="walk-1@example.com",
        from_email=ticket.from_email,
    )
    attachment = MessageAttachment(
        message=message, filename="receipt.pdf", content_type="application/pdf", size=5
    )
    attachment.file.save("walk-receipt.pdf", ContentFile(b"%PDF-"), save=True)
    job = Job.objects.create(kind=Job.Kind.TRIAGE_EVAL, created_by=cast.alice)
    macro = Macro.objects.create(name="Thanks", body="Thanks, {{first_name}}.")
    run = EvalRun.objects.create(kind=EvalRun.Kind.TRIAGE, name="walk", job=job)
    article = article_create(
        actor=cast.alice, title="Returns", body="Send it back within 30 days.", publish=True
    )
    return {
        "ticket_id": str(ticket.pk),
        "draft_id": str(draft.pk),
        "attachment_id": str(attachment.pk),
        "job_id": str(job.pk),
        "macro_id": str(macro.pk),
        "run_id": str(run.pk),
        "user_id": str(cast.bob.pk),
        "article_id": str(article.pk),
        "version": "1",
        # Django admin's own parameters: its views check staff status before they read anything.
        "object_id": str(cast.bob.pk),
        "id": str(cast.bob.pk),
        "content_type_id": "1",
        "app_label": "auth",
        "url": "no-such-page/",
        "secret": "not-the-secret",
        # A password-reset link's user and token (a wrong token: the page says the link does not work).
        "uidb64": "MQ",
        "token": "not-a-reset-token",
    }


MISSING_ID = "987654321"


@dataclass(frozen=True)
class Route:
    pattern: str  # as Django spells it, e.g. "tickets/<int:ticket_id>/"
    name: str  # with its namespace, e.g. "api:get_ticket"; the pattern for unnamed ones

    @property
    def parameters(self) -> list[str]:
        return [a or b for a, b in re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", self.pattern)]

    def path(self, values: dict[str, str]) -> str:
        def route_value(match: re.Match[str]) -> str:
            return values[match.group(1)]

        text = re.sub(r"<(?:\w+:)?(\w+)>", route_value, self.pattern)
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", route_value, text)
        return "/" + text.replace("^", "").replace("$", "")


def every_route() -> list[Route]:
    """Every URL pattern Django resolves, included URLconfs and namespaces followed."""

    def walk(resolver: URLResolver, prefix: str, namespace: str) -> list[Route]:
        routes = []
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = ":".join(n for n in (namespace, entry.namespace) if n)
                routes += walk(entry, prefix + str(entry.pattern), inner)
            else:
                assert isinstance(entry, URLPattern)
                pattern = prefix + str(entry.pattern)
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or pattern
                routes.append(Route(pattern, name))
        return routes

    return walk(get_resolver(), "", "")


ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def gunicorn(log: Path, *args: str, **env: str) -> Iterator[int]:
    """A real gunicorn serving the app from the checkout on a free loopback port, on this test's database
    (the test must commit what the server should see: transaction=True)."""
    from django.db import connection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    environment = {
        **os.environ,
        "TIERDESK_DB_NAME": connection.settings_dict["NAME"],
        "DB_CONN_MAX_AGE": "0",
        **env,
    }
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "triage.wsgi", "--bind", f"127.0.0.1:{port}", *args],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not listen within 60 s"
                    time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
