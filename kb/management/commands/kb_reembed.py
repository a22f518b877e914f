from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.embeddings import EmbeddingError
from kb.models import ReembedJob
from kb.reembed import ReembedError, index_status, reembed_run, reembed_start


class Command(BaseCommand):
    help = "Re-embed every chunk whose vector another embedding model or dimension produced (a background job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, help="chunks per batch (default 32)")
        parser.add_argument("--wait", action="store_true", help="poll the job until it finishes")
        parser.add_argument("--here", action="store_true",
                            help="run the job in this process instead of on a Celery worker")

    def handle(self, *args: Any, **options: Any) -> None:
        status = index_status()
        self.stdout.write(f"embedding: {status.config.key}, {status.config.dim} dimensions; "
                          f"{status.pending} chunks to re-embed")
        try:
            enqueue = (lambda job_id: None) if options["here"] else None
            job, created = reembed_start(batch_size=options["batch_size"], enqueue=enqueue)
            self.stdout.write(f"{'started' if created else 'already running:'} job {job.pk} ({job.total} chunks)")
            if options["here"]:
                reembed_run(job_id=job.pk)
        except (ReembedError, EmbeddingError) as exc:
            raise CommandError(str(exc)) from exc
        if not (options["wait"] or options["here"]):
            return
        while True:
            job.refresh_from_db()
            self.stdout.write(f"job {job.pk}: {job.status} {job.done}/{job.total}")
            if not job.active:
                break
            time.sleep(2)
        if job.status == ReembedJob.Status.FAILED:
            raise CommandError(f"job {job.pk} failed: {job.error}")
