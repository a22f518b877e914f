"""Celery tasks of the knowledge base: each takes an id, calls one service, and is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from kb import reembed


# acks_late + reject_on_worker_lost: a worker killed mid-job puts the message back and another resumes it.
@shared_task(name="kb.reembed_chunks", acks_late=True, reject_on_worker_lost=True)
def reembed_chunks(job_id: int) -> None:
    reembed.reembed_run(job_id=job_id)
