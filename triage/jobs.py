"""Background jobs an admin starts from the UI (or the schedule does): claimed once, progress recorded."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from triage import evals, learning
from triage.errors import ApplicationError
from triage.models import EvalRun, Job

logger = logging.getLogger(__name__)

# A running job whose worker died is taken up again by the redelivered task after this long without progress.
STALE_AFTER = timedelta(minutes=10)


def _claim(job_id: int) -> Job | None:
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id).filter(
        Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, started_at__lt=now - STALE_AFTER)
    ).update(status=Job.Status.RUNNING, started_at=now)
    return Job.objects.select_related("created_by").get(pk=job_id) if claimed else None


def _progress(job: Job) -> Any:
    def report(done: int, total: int) -> None:
        # Also refreshes started_at, so a long job that is moving is never taken for a dead one.
        Job.objects.filter(pk=job.pk).update(done=done, total=total, started_at=timezone.now())

    return report


def eval_upload_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "evals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_run(*, job_id: int) -> None:
    job = _claim(job_id)
    if job is None:
        return  # finished, or another worker holds it
    params = job.params
    try:
        if job.kind == Job.Kind.TRAIN_LOCAL_MODEL:
            learning.local_model_train(trigger=params.get("trigger", "manual"), actor=job.created_by,
                                       progress=_progress(job))
        elif job.kind == Job.Kind.TRIAGE_EVAL:
            folder = eval_upload_dir()
            test = evals.read_labelled_csv(folder / params["test_file"], text_column=params["text_column"],
                                           label_column=params["label_column"])
            train = evals.read_labelled_csv(folder / params["train_file"], text_column=params["text_column"],
                                            label_column=params["label_column"]) if params.get("train_file") else None
            report = evals.classification_eval(test=test, train=train, tier=params["tier"], progress=_progress(job))
            EvalRun.objects.create(kind=EvalRun.Kind.TRIAGE, name=params["name"], tier=params["tier"],
                                   engine=report["engine"], model=report["model"], dataset=params["dataset"],
                                   report=report, job=job, created_by=job.created_by)
        elif job.kind == Job.Kind.REPLAY:
            report = evals.replay(tier=params["tier"], prompt_version=params.get("prompt_version"),
                                  limit=params["limit"], days=params.get("days"), progress=_progress(job))
            EvalRun.objects.create(kind=EvalRun.Kind.REPLAY, name=params["name"], tier=params["tier"],
                                   engine=report["engine"], model=report["model"],
                                   dataset=f"last {report['n']} tickets", report=report, job=job,
                                   created_by=job.created_by)
        elif job.kind == Job.Kind.DRAFT_EVAL:
            from triage import draft_evals

            folder = eval_upload_dir()
            report = draft_evals.draft_eval(tickets=draft_evals.tickets_load(folder / params["tickets_file"]),
                                            articles=draft_evals.kb_load(folder / params["kb_file"]),
                                            tier=params["tier"], judge_tier=params.get("judge"),
                                            progress=_progress(job))
            report["dataset"] = params["dataset"]
            EvalRun.objects.create(kind=EvalRun.Kind.DRAFT, name=params["name"], tier=params["tier"],
                                   engine=report["engine"], model=report["model"], dataset=params["dataset"],
                                   report=report, job=job, created_by=job.created_by)
        elif job.kind == Job.Kind.DRAFT_REPLAY:
            from triage import draft_evals

            report = draft_evals.draft_replay(tier=params["tier"], prompt_version=params.get("prompt_version"),
                                              limit=params["limit"], progress=_progress(job))
            EvalRun.objects.create(kind=EvalRun.Kind.DRAFT_REPLAY, name=params["name"], tier=params["tier"],
                                   engine=report["engine"], model=report["model"],
                                   dataset=f"last {report['n']} answered tickets", report=report, job=job,
                                   created_by=job.created_by)
        else:
            raise ApplicationError(f"unknown job kind {job.kind!r}")
    except ApplicationError as exc:
        Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error=str(exc), finished_at=timezone.now())
        return
    except SoftTimeLimitExceeded:
        minutes = settings.JOB_TIME_LIMIT_S / 60
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, finished_at=timezone.now(),
            error=f"stopped after the time limit of {minutes:g} minutes (TIERDESK_JOB_TIME_LIMIT_S); "
                  "try a smaller run, or raise the limit")
        return
    except Exception as exc:
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                                             finished_at=timezone.now())
        return
    Job.objects.filter(pk=job.pk).update(status=Job.Status.DONE, finished_at=timezone.now())
