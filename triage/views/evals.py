"""Admin pages for the local engine's learning and offline evals (classification, retrieval, replay), and the
Prometheus metrics endpoint."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from triage import learning
from triage.access import admin_required, is_admin
from triage.errors import ApplicationError
from triage.jobs import eval_upload_dir
from triage.models import Correction, EvalRun, Job, LocalModel, PromptVersion
from triage.queue import enqueue

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
CHART_RUNS = 6  # runs drawn side by side


@require_GET
@admin_required
def learning_page(request: HttpRequest) -> HttpResponse:
    since = timezone.now() - timedelta(days=30)
    corrections = Correction.objects.filter(created_at__gte=since)
    by_field = corrections.values("field").annotate(
        n=Count("id"), fast=Count("id", filter=Q(seconds_since_triage__lte=300))
    ).order_by("field")
    return render(request, "triage/settings/learning.html", {
        "models": list(LocalModel.objects.defer("artifact").select_related("created_by")[:30]),
        "active": LocalModel.objects.defer("artifact").filter(active=True).first(),
        "jobs": list(Job.objects.filter(kind=Job.Kind.TRAIN_LOCAL_MODEL)[:5]),
        "by_field": list(by_field),
        "recent": list(corrections.select_related("user", "ticket").order_by("-created_at")[:20]),
        "fingerprint_changed": _data_changed(),
        "reviewed": learning.reviewed_calibration(days=30),
    })


def _data_changed() -> bool:
    newest = LocalModel.objects.only("metrics").order_by("-version").first()
    return newest is None or newest.metrics.get("fingerprint") != learning.data_fingerprint()


@require_POST
@admin_required
def learning_train(request: HttpRequest) -> HttpResponse:
    job = learning.training_request(actor=request.user)
    messages.success(request, f"Training job #{job.pk} is {job.status}.")
    return redirect("settings_learning")


@require_GET
@admin_required
def job_status(request: HttpRequest, job_id: int) -> HttpResponse:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404
    return render(request, "triage/settings/_job.html", {"job": job})


def _save_upload(request: HttpRequest, field: str, suffix: str = ".csv") -> str | None:
    upload = request.FILES.get(field)
    if upload is None:
        return None
    if upload.size > MAX_UPLOAD_BYTES:
        raise ApplicationError(f"{upload.name} is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    if not upload.name.lower().endswith(suffix):
        raise ApplicationError(f"{upload.name} is not a {suffix} file")
    # A random name: the file is the admin's, but its name must not choose a path on the server.
    name = f"{secrets.token_hex(8)}{suffix}"
    with (eval_upload_dir() / name).open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return name


@require_POST
@admin_required
def eval_start(request: HttpRequest) -> HttpResponse:
    try:
        tier = request.POST.get("tier", "local")
        if tier not in ("local", "nano", "mini", "large"):
            raise ApplicationError("choose a tier: local, nano, mini or large")
        text_column = request.POST.get("text_column", "").strip()
        label_column = request.POST.get("label_column", "").strip()
        if not text_column or not label_column:
            raise ApplicationError("name the text column and the label column")
        test_file = _save_upload(request, "test_file")
        if test_file is None:
            raise ApplicationError("choose a test CSV file")
        train_file = _save_upload(request, "train_file")
        # Read the files now, so a wrong column is reported on this page rather than in a failed job.
        from triage.evals import read_labelled_csv

        folder = eval_upload_dir()
        read_labelled_csv(folder / test_file, text_column=text_column, label_column=label_column)
        if train_file:
            read_labelled_csv(folder / train_file, text_column=text_column, label_column=label_column)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("settings_evals")
    dataset = request.FILES["test_file"].name + (f" (trained on {request.FILES['train_file'].name})"
                                                 if train_file else "")
    params = {"tier": tier, "text_column": text_column, "label_column": label_column, "test_file": test_file,
              "train_file": train_file, "dataset": dataset[:300],
              "name": (request.POST.get("name") or "").strip()[:200] or f"{tier} on {dataset}"[:200]}
    _start_job(request, Job.Kind.TRIAGE_EVAL, params)
    return redirect("settings_evals")


def _replay_form(request: HttpRequest, *, default_limit: int, max_limit: int, what: str,
                 check_version: Callable[[int], None]) -> tuple[str, int, int | None]:
    """A replay's tier, ticket count and prompt version from the form; ValueError or ApplicationError."""
    tier = request.POST.get("tier", "")
    if tier not in ("local", "nano", "mini", "large"):
        raise ApplicationError("choose a tier: local, nano, mini or large")
    limit = int(request.POST.get("limit") or default_limit)
    if not 1 <= limit <= max_limit:
        raise ApplicationError(f"replay {what + ' ' if what else ''}between 1 and {max_limit:,} tickets")
    version_text = (request.POST.get("prompt_version") or "").strip()
    prompt_version = int(version_text) if version_text else None
    if prompt_version is not None:
        check_version(prompt_version)
    return tier, limit, prompt_version


def _classify_version_exists(version: int) -> None:
    from triage.llm.prompts import CLASSIFY

    if version != CLASSIFY.version and not PromptVersion.objects.filter(prompt_id="classify", version=version).exists():
        raise ApplicationError(f"the classify prompt has no version {version}")


def _draft_version_exists(version: int) -> None:
    from triage.controls import prompt_for

    prompt_for(prompt_id="draft", version=version)  # raises for a version that does not exist


def _replay_start(request: HttpRequest, *, kind: str, label: str, prompt_id: str, default_limit: int,
                  max_limit: int, what: str, check_version: Callable[[int], None]) -> HttpResponse:
    try:
        tier, limit, prompt_version = _replay_form(request, default_limit=default_limit, max_limit=max_limit,
                                                   what=what, check_version=check_version)
    except ValueError:
        messages.error(request, "the number of tickets and the prompt version must be whole numbers")
        return redirect("settings_evals")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("settings_evals")
    name = (request.POST.get("name") or "").strip()[:200] or \
        f"{label}: {tier}" + (f", {prompt_id} prompt v{prompt_version}" if prompt_version else "")
    _start_job(request, kind, {"tier": tier, "prompt_version": prompt_version, "limit": limit, "name": name})
    return redirect("settings_evals")


@require_POST
@admin_required
def replay_start(request: HttpRequest) -> HttpResponse:
    return _replay_start(request, kind=Job.Kind.REPLAY, label="replay", prompt_id="classify", default_limit=200,
                         max_limit=5000, what="", check_version=_classify_version_exists)


@require_POST
@admin_required
def draft_eval_start(request: HttpRequest) -> HttpResponse:
    from triage import draft_evals

    saved: dict[str, str] = {}  # the path a file was saved at → the name the admin knows it by
    try:
        tier = request.POST.get("tier", "local")
        draft_evals.check_tier(tier)
        judge_tier = "large" if request.POST.get("judge") else None
        if judge_tier:
            from triage.llm.judge import JudgeUnavailable, judge_config

            try:
                judge_config()
            except JudgeUnavailable as exc:
                raise ApplicationError(str(exc)) from exc
        tickets_file = _save_upload(request, "tickets_file", ".jsonl")
        kb_file = _save_upload(request, "kb_file", ".jsonl")
        if tickets_file is None or kb_file is None:
            raise ApplicationError("choose a tickets file and a knowledge-base file (JSON Lines)")
        # Read both now, so a bad line is reported on this page rather than in a failed job.
        folder = eval_upload_dir()
        saved = {str(folder / tickets_file): request.FILES["tickets_file"].name,
                 str(folder / kb_file): request.FILES["kb_file"].name}
        tickets = draft_evals.tickets_load(folder / tickets_file)
        draft_evals.gold_resolve(tickets, draft_evals.kb_load(folder / kb_file))
    except ApplicationError as exc:
        message = exc.message
        for path, name in saved.items():
            message = message.replace(path, name)
        messages.error(request, message)
        return redirect("settings_evals")
    dataset = f"{request.FILES['tickets_file'].name} · {request.FILES['kb_file'].name}"[:300]
    name = (request.POST.get("name") or "").strip()[:200] or f"drafts: {tier} on {request.FILES['tickets_file'].name}"
    _start_job(request, Job.Kind.DRAFT_EVAL, {"tier": tier, "judge": judge_tier, "tickets_file": tickets_file,
                                              "kb_file": kb_file, "dataset": dataset, "name": name[:200]})
    return redirect("settings_evals")


@require_POST
@admin_required
def draft_replay_start(request: HttpRequest) -> HttpResponse:
    return _replay_start(request, kind=Job.Kind.DRAFT_REPLAY, label="draft replay", prompt_id="draft",
                         default_limit=100, max_limit=2000, what="the drafts of", check_version=_draft_version_exists)


def _start_job(request: HttpRequest, kind: str, params: dict[str, Any]) -> None:
    with transaction.atomic():
        job = Job.objects.create(kind=kind, params=params, created_by=request.user)
        enqueue("run_job", job.pk)
    messages.success(request, f"Job #{job.pk} queued: {params['name']}.")


def _chart_data(runs: list[EvalRun]) -> dict[str, Any]:
    """What the evals page draws: F1 by intent per run, cost against quality, replay agreement by lane."""
    triage_runs = [r for r in runs if r.kind == EvalRun.Kind.TRIAGE][:CHART_RUNS]
    labels = sorted({label for r in triage_runs for label in r.report.get("per_label", {})})
    return {
        "f1_by_intent": {
            "labels": labels,
            "runs": [{"name": f"#{r.pk} {r.name}",
                      "values": [r.report.get("per_label", {}).get(label, {}).get("f1") for label in labels]}
                     for r in triage_runs],
        },
        "cost_quality": [
            {"name": f"#{r.pk} {r.name}", "tier": r.tier,
             "cost_per_1k": round(1000 * r.report.get("cost_usd", 0) / max(r.report.get("n", 1), 1), 4),
             "macro_f1": r.report.get("macro_f1")}
            for r in triage_runs
        ],
        "replay": [
            {"name": f"#{r.pk} {r.name}",
             "lanes": {lane: v.get("agreement_with_production") for lane, v in r.report.get("per_lane", {}).items()}}
            for r in runs if r.kind == EvalRun.Kind.REPLAY
        ][:CHART_RUNS],
        "draft_cost_quality": [
            {"name": f"#{r.pk} {r.name}", "tier": r.tier,
             "cost_per_1k": round(1000 * (r.report.get("cost_usd") or 0) / max(r.report.get("n") or 1, 1), 4),
             "reference_f1": r.report.get("reference_f1")}
            for r in runs if r.kind in (EvalRun.Kind.DRAFT, EvalRun.Kind.DRAFT_REPLAY)
            and r.report.get("reference_f1") is not None
        ][:CHART_RUNS * 2],
    }


@require_GET
@admin_required
def evals_page(request: HttpRequest) -> HttpResponse:
    runs = list(EvalRun.objects.select_related("created_by")[:100])
    selected_ids = {int(x) for x in request.GET.getlist("run") if x.isdigit()}
    chosen = [r for r in runs if r.pk in selected_ids] if selected_ids else runs
    versions = list(PromptVersion.objects.filter(prompt_id__in=["classify", "draft"]).order_by("-version"))
    draft_kinds = (EvalRun.Kind.DRAFT, EvalRun.Kind.DRAFT_REPLAY)
    return render(request, "triage/settings/evals.html", {
        "runs": [r for r in runs if r.kind not in draft_kinds],
        # Drafts have figures of their own (citations, defects, similarity to what was sent): a table of their own.
        "draft_runs": [r for r in runs if r.kind in draft_kinds],
        "selected_ids": selected_ids,
        "jobs": list(Job.objects.filter(kind__in=[Job.Kind.TRIAGE_EVAL, Job.Kind.REPLAY, Job.Kind.DRAFT_EVAL,
                                             Job.Kind.DRAFT_REPLAY])[:8]),
        "charts": _chart_data(chosen),
        "prompt_versions": [v for v in versions if v.prompt_id == "classify"],
        "draft_prompt_versions": [v for v in versions if v.prompt_id == "draft"],
    })


@require_GET
@admin_required
def eval_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = EvalRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404
    confusion = run.report.get("confusion") or {}
    matrix = confusion.get("matrix") or []
    peak = max((max(row) for row in matrix if row), default=0) or 1
    # A cell's shade is its count in tenths of the largest, named by a class (shade-0 to shade-10): the
    # Content-Security-Policy allows no inline style attribute.
    rows = [
        {"label": label, "cells": [{"n": n, "shade": round(10 * n / peak), "diagonal": i == j} for j, n in enumerate(row)]}
        for i, (label, row) in enumerate(zip(confusion.get("labels", []), matrix, strict=False))
    ]
    return render(request, "triage/settings/eval_detail.html", {
        "run": run, "report": run.report, "confusion_labels": confusion.get("labels", []), "confusion_rows": rows,
        "charts": _chart_data([run]),
    })


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for a scraper holding TIERDESK_METRICS_TOKEN or a signed-in admin; else 404."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from triage.metrics import TierdeskCollector

    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if not ((token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())) or is_admin(request.user)):
        raise Http404
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TierdeskCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
