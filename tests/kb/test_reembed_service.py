"""Starting, running and showing a re-embedding job, in this process (the worker's side is test_reembed_worker)."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

import kb.tasks
from kb.indexing import column_dimension
from kb.models import Chunk, ReembedJob
from kb.reembed import reembed_run, reembed_start
from tests.support import data
from tests.support.scripted_openai import ScriptedOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as scripted:
        yield scripted


def openai_settings(server: ScriptedOpenAI, *, dim: int) -> override_settings:
    return override_settings(
        KB_EMBEDDING_PROVIDER="openai", KB_EMBEDDING_MODEL="scripted-embed", KB_EMBEDDING_BASE_URL=server.base_url,
        KB_EMBEDDING_API_KEY="sk-test", KB_EMBEDDING_DIM=dim, KB_EMBEDDING_MAX_RETRIES=0,
    )


def no_queue(job_id: int) -> None:
    pass


def test_a_provider_switch_reembeds_through_the_endpoint_in_batches(server: ScriptedOpenAI) -> None:
    data.load_kb(public=False)
    total = Chunk.objects.count()
    with openai_settings(server, dim=48):
        job, created = reembed_start(batch_size=7, enqueue=no_queue)
        reembed_run(job_id=job.pk)
    job.refresh_from_db()
    assert created and (job.status, job.done, job.total) == ("done", total, total)
    assert column_dimension() == 48
    assert set(Chunk.objects.values_list("embedding_model", "embedding_dim")) == {("openai:scripted-embed", 48)}
    sizes = [len(r["json"]["input"]) for r in server.requests]
    assert sizes == [7] * (total // 7) + ([total % 7] if total % 7 else [])


def test_only_one_job_runs_at_a_time() -> None:
    first, created = reembed_start(enqueue=no_queue)
    again, created_again = reembed_start(enqueue=no_queue)
    assert created and not created_again and again.pk == first.pk
    assert ReembedJob.objects.count() == 1


def test_a_worker_with_other_settings_fails_the_job_clearly(server: ScriptedOpenAI) -> None:
    data.load_kb(public=False)
    with openai_settings(server, dim=48):
        job, _ = reembed_start(enqueue=no_queue)
    reembed_run(job_id=job.pk)  # this process embeds with the bundled model
    job.refresh_from_db()
    assert job.status == "failed" and "local:multilingual-e5-small" in job.error and "KB_EMBEDDING_" in job.error
    assert column_dimension() == 384


def test_the_command_runs_a_job_and_reports(server: ScriptedOpenAI) -> None:
    data.load_kb(public=False)
    out = StringIO()
    with openai_settings(server, dim=16):
        call_command("kb_reembed", "--here", "--batch-size", "50", stdout=out)
    assert f"{Chunk.objects.count()} chunks to re-embed" in out.getvalue()
    assert ReembedJob.objects.get().status == "done" and column_dimension() == 16
    with pytest.raises(CommandError, match="at least 1"):
        call_command("kb_reembed", "--batch-size", "0", stdout=StringIO())


@pytest.fixture
def admin_client(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_the_index_page_shows_settings_counts_and_progress(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    data.load_kb(public=False)
    Chunk.objects.filter(pk__in=Chunk.objects.values("pk")[:3]).update(embedding_model="openai:old", embedding_dim=1536)
    html = admin_client.get("/settings/kb/index").content.decode()
    assert "<strong>local</strong>" in html and "<strong>multilingual-e5-small</strong>" in html
    assert f"<td>local:multilingual-e5-small</td><td>384</td><td>{Chunk.objects.count() - 3}</td>" in html
    assert "<td>openai:old</td><td>1536</td><td>3</td>" in html
    assert "3 chunks to re-embed" in html and "hx-trigger" not in html

    sent: list[int] = []
    monkeypatch.setattr(kb.tasks.reembed_chunks, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/settings/kb/index", follow=True)
    assert "Re-embedding job" in response.content.decode()
    job = ReembedJob.objects.get()
    assert job.total == 3 and sent == [job.pk]
    partial = admin_client.get("/settings/kb/index", HTTP_HX_REQUEST="true").content.decode()
    assert "<h1>" not in partial and 'hx-trigger="every 2s"' in partial and "0 of 3 chunks" in partial


def test_agents_get_a_404(client: Client) -> None:
    client.force_login(User.objects.create_user("agent"))
    assert client.get("/settings/kb/index").status_code == 404
    assert client.post("/settings/kb/index").status_code == 404
    assert not ReembedJob.objects.exists()
