"""Re-embedding runs on a real Celery worker, survives the worker's death, and changes the vector dimension."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings

from kb.indexing import column_dimension
from kb.models import Chunk, ReembedJob
from kb.reembed import ensure_column_dimension, reembed_start
from kb.selectors import kb_search
from kb.services import article_upsert
from tests.conftest import wait_for
from tests.support import data
from tests.support.scripted_openai import ScriptedOpenAI

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LOCAL = ("local:multilingual-e5-small", 384)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as scripted:
        yield scripted


@pytest.fixture(autouse=True)
def shipped_dimension() -> Iterator[None]:
    yield
    # Schema changes outlive a transactional test; the rest of the suite expects the shipped column.
    ensure_column_dimension(384)


def openai_settings(server: ScriptedOpenAI, *, dim: int) -> override_settings:
    return override_settings(
        KB_EMBEDDING_PROVIDER="openai", KB_EMBEDDING_MODEL="scripted-embed", KB_EMBEDDING_BASE_URL=server.base_url,
        KB_EMBEDDING_API_KEY="sk-test", KB_EMBEDDING_DIM=dim, KB_EMBEDDING_MAX_RETRIES=0,
    )


def job_done(job_id: int) -> ReembedJob | None:
    job = ReembedJob.objects.get(pk=job_id)
    assert job.status != ReembedJob.Status.FAILED, job.error
    return job if job.status == ReembedJob.Status.DONE else None


def models_of_chunks() -> set[tuple[str, int | None]]:
    return set(Chunk.objects.values_list("embedding_model", "embedding_dim"))


def test_the_worker_reembeds_chunks_another_model_produced(celery_worker: None, server: ScriptedOpenAI) -> None:
    with openai_settings(server, dim=384):
        data.load_kb(public=False)
    assert models_of_chunks() == {("openai:scripted-embed", 384)}
    # The deployment is back on the bundled model: the old vectors no longer take part in vector search.
    assert kb_search(query="I forgot my password", k=1)[0].vector_rank is None

    job, created = reembed_start()
    assert created and job.total == Chunk.objects.count()
    done = wait_for(lambda: job_done(job.pk), timeout=120)
    assert (done.done, done.attempts) == (done.total, 1) and done.finished_at is not None
    assert models_of_chunks() == {LOCAL}
    [top] = kb_search(query="I forgot my password", k=1)
    assert top.article_slug == "Account Access/Recover Password" and top.vector_rank == 1


@pytest.mark.skipif(os.environ.get("TIERDESK_TEST_WORKER_POOL") == "threads",
                    reason="kills the pool process running the job, which prefork replaces at once; "
                    "a threads worker is that one process, so the job waits for redelivery")
def test_a_job_resumes_where_a_killed_worker_left_it(celery_worker: None, server: ScriptedOpenAI) -> None:
    with openai_settings(server, dim=384), (data.FIXTURES / "kb" / "abcd_articles.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            article_upsert(slug=row["id"], title=row["title"], body=row["body"])
    job, _ = reembed_start(batch_size=1)
    running = wait_for(lambda: ReembedJob.objects.filter(pk=job.pk, done__gte=5, worker_pid__isnull=False).first(),
                       timeout=120)
    os.kill(running.worker_pid, signal.SIGKILL)

    done = wait_for(lambda: job_done(job.pk), timeout=300)
    assert done.attempts == 2 and done.worker_pid != running.worker_pid
    assert done.done == done.total == Chunk.objects.count()
    assert models_of_chunks() == {LOCAL}


def test_a_dimension_change_alters_the_column_and_rebuilds_the_hnsw_index(
    celery_worker: None, server: ScriptedOpenAI
) -> None:
    with openai_settings(server, dim=64):
        assert ensure_column_dimension(64)
        data.load_kb(public=False)
        assert column_dimension() == 64 and models_of_chunks() == {("openai:scripted-embed", 64)}
        assert kb_search(query="I forgot my password", k=1)[0].vector_rank == 1

    # Configured for 384 dimensions again: the column still holds 64, and search works by full text alone.
    [top] = kb_search(query="I forgot my password", k=1)
    assert top.article_slug == "Account Access/Recover Password" and top.vector_rank is None

    job, _ = reembed_start()
    wait_for(lambda: job_done(job.pk), timeout=120)
    assert column_dimension() == 384 and models_of_chunks() == {LOCAL}
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'kb_chunk_embedding_hnsw'")
        [definition] = cursor.fetchone()
    assert "USING hnsw (embedding vector_cosine_ops)" in definition
    [top] = kb_search(query="I forgot my password", k=1)
    assert top.article_slug == "Account Access/Recover Password" and top.vector_rank == 1
