"""Celery tasks: each takes an id (a reset email, the address asked about), calls one service, and is safe to
run twice."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from triage import accounts, reply_memory, services, steps

PIPELINE = {"acks_late": True, "reject_on_worker_lost": True}
# Background jobs (the "jobs" queue, settings.CELERY_TASK_ROUTES) stop at the soft limit, die at the hard one.
JOB_LIMITS = {"soft_time_limit": settings.JOB_TIME_LIMIT_S, "time_limit": settings.JOB_TIME_LIMIT_S + 60}


# The task id names the delivery: a redelivery of the same message may take over its step at once, a second
# message for the same step (the sweeper's) waits for the first to finish or go stale.
@shared_task(name="triage.classify_ticket", bind=True, **PIPELINE)
def classify_ticket(self: Task, ticket_id: int) -> None:
    steps.ticket_classify(ticket_id=ticket_id, token=self.request.id or "")


@shared_task(name="triage.route_ticket", bind=True, **PIPELINE)
def route_ticket(self: Task, ticket_id: int) -> None:
    steps.ticket_route(ticket_id=ticket_id, token=self.request.id or "")


@shared_task(name="triage.draft_ticket", bind=True, **PIPELINE)
def draft_ticket(self: Task, ticket_id: int) -> None:
    steps.ticket_draft(ticket_id=ticket_id, token=self.request.id or "")


@shared_task(name="triage.shadow_ticket", **PIPELINE)
def shadow_ticket(ticket_id: int, config_id: int) -> None:
    steps.ticket_shadow(ticket_id=ticket_id, config_id=config_id)


# SMTP faults are transient more often than not; the outbox row's claim makes a retry safe.
@shared_task(
    name="triage.send_outbound_email",
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
    **PIPELINE,
)
def send_outbound_email(outbound_id: int) -> None:
    services.outbound_send(outbound_id=outbound_id)


@shared_task(name="triage.remember_reply", **PIPELINE)
def remember_reply(review_id: int) -> None:
    reply_memory.remember(review_id=review_id)


# Not acks_late: a worker lost mid-send leaves the person to ask again rather than sending a second link. An
# SMTP fault before anything was sent is retried.
@shared_task(
    name="triage.send_password_reset", autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=120,
    max_retries=4,
)
def send_password_reset(email: str, base_url: str) -> None:
    accounts.password_reset_send(email=email, base_url=base_url)


@shared_task(name="triage.requeue_stalled_work", acks_late=True)
def requeue_stalled_work() -> int:
    return services.stalled_work_requeue()


@shared_task(name="triage.run_job", **PIPELINE, **JOB_LIMITS)
def run_job(job_id: int) -> None:
    from triage.jobs import job_run

    job_run(job_id=job_id)


@shared_task(name="triage.retrain_local_model", acks_late=True, **JOB_LIMITS)
def retrain_local_model() -> None:
    from triage.learning import training_scheduled

    training_scheduled()
