"""Celery tasks of the knowledge base: each takes an id, calls one service, and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from kb import reembed


# acks_late + reject_on_worker_lost: a worker killed mid-job puts the message back and another resumes it.
# It runs on the "jobs" queue under the jobs' time limits (settings.JOB_TIME_LIMIT_S).
@shared_task(name="kb.reembed_chunks", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=settings.JOB_TIME_LIMIT_S, time_limit=settings.JOB_TIME_LIMIT_S + 60)
def reembed_chunks(job_id: int) -> None:
    reembed.reembed_run(job_id=job_id)
