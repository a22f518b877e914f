"""Re-embedding the knowledge base after the embedding provider, model or dimension changed.

A job row records progress; the work itself is "every chunk whose vector another model or dimension
produced", so a job that a dying worker left half-way simply resumes: the chunks it finished are no longer
pending. A session advisory lock, which PostgreSQL releases when the worker's connection dies, keeps two
executions of a job (a redelivered message, a second click) from running at once.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from kb import indexing
from kb.embeddings import EmbeddingConfig, embedding_config, get_embedder
from kb.models import Chunk, ReembedJob

# pg_advisory_lock keys: ASCII "kbrj" (the running job) and "kbrs" (starting one).
RUN_LOCK = 0x6B62726A
START_LOCK = 0x6B627273
DEFAULT_BATCH = 32
LOCK_WAIT_S = 20.0


class ReembedError(Exception):
    pass


def chunks_pending(*, config: EmbeddingConfig) -> QuerySet[Chunk]:
    return Chunk.objects.filter(
        Q(embedding__isnull=True) | ~Q(embedding_model=config.key) | Q(embedding_dim__isnull=True)
        | ~Q(embedding_dim=config.dim)
    )


@dataclass(frozen=True)
class IndexStatus:
    config: EmbeddingConfig
    column_dim: int | None
    per_model: list[tuple[str, int | None, int]]  # (model, dimension, chunks); "" = awaiting re-embedding
    pending: int
    job: ReembedJob | None


def index_status() -> IndexStatus:
    config = embedding_config()
    per_model = [
        (row["embedding_model"], row["embedding_dim"], row["n"])
        for row in Chunk.objects.values("embedding_model", "embedding_dim").annotate(n=Count("id"))
        .order_by("-n", "embedding_model")
    ]
    return IndexStatus(
        config=config, column_dim=indexing.column_dimension(), per_model=per_model,
        pending=chunks_pending(config=config).count(), job=ReembedJob.objects.first(),
    )


def _lock_is_free(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
        if acquired:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    return acquired


def _reembed_task() -> Any:
    importlib.import_module("kb.tasks")  # registers the task in a process that has not imported it (a web one)
    return current_app.tasks["kb.reembed_chunks"]


def reembed_start(*, batch_size: int | None = None, enqueue: Callable[[int], None] | None = None) -> tuple[ReembedJob, bool]:
    """Start a job for the current settings, or return the active one (re-queued if no worker holds it)."""
    if batch_size is not None and batch_size < 1:
        raise ReembedError("the batch size must be at least 1")
    # By name from Celery's registry (loaded in a web process first): kb.tasks imports this module to call it.
    send = enqueue or (lambda job_id: _reembed_task().delay(job_id))
    config = embedding_config()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [START_LOCK])
        active = ReembedJob.objects.filter(status__in=[ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING]).first()
        if active is not None:
            # A worker that died with the job (its message lost, not redelivered) leaves the lock free.
            if _lock_is_free(RUN_LOCK):
                transaction.on_commit(lambda: send(active.pk))
            return active, False
        job = ReembedJob.objects.create(
            provider=config.provider, model=config.model, dimension=config.dim,
            batch_size=batch_size or DEFAULT_BATCH, total=chunks_pending(config=config).count(),
        )
        transaction.on_commit(lambda: send(job.pk))
    return job, True


def _fail(job: ReembedJob, message: str) -> None:
    job.status, job.error, job.finished_at = ReembedJob.Status.FAILED, message[:4000], timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])


def ensure_column_dimension(dim: int) -> bool:
    """Give the vector column `dim` dimensions, emptying it and rebuilding the HNSW index; False if it had them."""
    if indexing.column_dimension() == dim:
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        # Deferred foreign-key checks still queued in an enclosing transaction would make PostgreSQL refuse
        # the DDL; running them now is what COMMIT would do anyway.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Every old vector is of the wrong size; the chunks keep matching by full text until re-embedded.
        cursor.execute(f"DROP INDEX IF EXISTS {indexing.HNSW_INDEX}")
        cursor.execute(
            f"ALTER TABLE {indexing.CHUNK_TABLE} ALTER COLUMN embedding TYPE vector({int(dim)}) USING NULL"
        )
        # Built while empty, the index is maintained as vectors arrive, so vector search stays indexed.
        cursor.execute(indexing.hnsw_index_sql(table=indexing.CHUNK_TABLE, name=indexing.HNSW_INDEX))
        # Last: an UPDATE queues deferred foreign-key events, after which PostgreSQL refuses DDL on the table.
        cursor.execute(f"UPDATE {indexing.CHUNK_TABLE} SET embedding_model = '', embedding_dim = NULL")
    return True


_UPDATE = f"""
UPDATE {indexing.CHUNK_TABLE} SET embedding = %s::vector, embedding_model = %s, embedding_dim = %s WHERE id = %s
"""


def reembed_run(*, job_id: int) -> None:
    job = ReembedJob.objects.filter(pk=job_id).first()
    if job is None or not job.active:
        return
    # A redelivered message can arrive before PostgreSQL has noticed that the killed worker's connection is
    # gone and released its lock: wait a little before concluding that another execution is at work.
    deadline = time.monotonic() + LOCK_WAIT_S
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK])
            if cursor.fetchone()[0]:
                break
            if time.monotonic() > deadline:
                return  # another execution is working on it
            time.sleep(0.5)
    try:
        _run_locked(job)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK])


def _run_locked(job: ReembedJob) -> None:
    job.refresh_from_db()
    if not job.active:
        return
    config = embedding_config()
    if (config.provider, config.model, config.dim) != (job.provider, job.model, job.dimension):
        _fail(job, f"the worker embeds with {config.key} ({config.dim} dimensions) but the job was started for "
                   f"{job.provider}:{job.model} ({job.dimension}); give the worker the same KB_EMBEDDING_* settings")
        return
    now = timezone.now()
    job.status, job.attempts, job.worker_pid = ReembedJob.Status.RUNNING, job.attempts + 1, os.getpid()
    job.started_at, job.heartbeat_at = job.started_at or now, now
    job.save(update_fields=["status", "attempts", "worker_pid", "started_at", "heartbeat_at"])
    try:
        ensure_column_dimension(config.dim)
        pending = chunks_pending(config=config)
        # Resuming: what an earlier attempt finished is no longer pending.
        job.done = max(0, job.total - pending.count())
        job.save(update_fields=["done"])
        embedder = get_embedder(config)
        last_id = 0
        while True:
            batch = list(
                pending.filter(id__gt=last_id).order_by("id")
                .values_list("id", "article__title", "heading", "text")[: job.batch_size]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            vectors = embedder.passages([indexing.passage_text(title, heading, text) for _, title, heading, text in batch])
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(_UPDATE, [
                    (indexing.vector_literal(vector), config.key, config.dim, chunk_id)
                    for (chunk_id, *_), vector in zip(batch, vectors, strict=True)
                ])
                job.done = min(job.total, job.done + len(batch)) if job.total else job.done + len(batch)
                job.heartbeat_at = timezone.now()
                job.save(update_fields=["done", "heartbeat_at"])
    except Exception as exc:
        _fail(job, f"{type(exc).__name__}: {exc}")
        raise
    job.status, job.finished_at, job.done = ReembedJob.Status.DONE, timezone.now(), max(job.done, job.total)
    job.save(update_fields=["status", "finished_at", "done"])
