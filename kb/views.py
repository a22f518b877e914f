"""Knowledge-base pages: admins write, publish, retire and import articles and find gaps; agents open the
version of an article a draft cited."""

from __future__ import annotations

import difflib
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kb import gaps, services
from kb.importers import ImportRefused, kb_import
from kb.markdown import render_markdown
from kb.models import Article, ArticleVersion
from triage import controls
from triage.access import admin_required, agent_required
from triage.audit import audit

GAP_PERIODS = (7, 30, 90)


def _state(article: Article) -> dict[str, Any]:
    return {"slug": article.slug, "title": article.title, "version": article.version, "status": article.status,
            "language": article.language, "audience": article.audience}


def _audit(request: HttpRequest, action: str, article: Article, before: dict[str, Any] | None,
           **extra: Any) -> None:
    audit(actor=request.user, action=action, obj=article, before=before, after=_state(article) | extra)


def _list_context(status: str) -> dict[str, Any]:
    articles = Article.objects.annotate(latest=Max("versions__version"))
    if status in Article.Status.values:
        articles = articles.filter(status=status)
    counts = dict(Article.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {"articles": list(articles.order_by("title")), "status": status,
            "statuses": [(v, label, counts.get(v, 0)) for v, label in Article.Status.choices],
            "total": sum(counts.values()), "max_upload_mb": settings.KB_IMPORT_MAX_UPLOAD_BYTES // 2**20}


@require_GET
@admin_required
def article_list(request: HttpRequest) -> HttpResponse:
    return render(request, "kb/list.html", _list_context(request.GET.get("status") or ""))


def _form_values(post: Any) -> dict[str, str]:
    return {k: post.get(k, "") for k in ("title", "body", "language", "change_note", "audience")}


@require_http_methods(["GET", "POST"])
@admin_required
def article_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        values = _form_values(request.POST)
        try:
            with transaction.atomic():
                article = services.article_create(actor=request.user, publish=request.POST.get("action") == "publish",
                                                  **values)
                _audit(request, "kb.article.create", article, None)
        except services.ArticleError as exc:
            messages.error(request, exc.message)
            return render(request, "kb/edit.html", {"values": values, "preview": render_markdown(values["body"])},
                          status=400)
        messages.success(request, f"“{article.title}” saved as v1 ({article.status}).")
        return redirect("kb_history", article_id=article.pk)
    values = {k: request.GET.get(k, "") for k in ("title", "body", "language", "change_note", "audience")}
    return render(request, "kb/edit.html", {"values": values, "preview": render_markdown(values["body"])})


@require_http_methods(["GET", "POST"])
@admin_required
def article_edit(request: HttpRequest, article_id: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=article_id)
    latest = article.versions.order_by("-version").first()
    if request.method == "POST":
        values = _form_values(request.POST)
        publish = request.POST.get("action") == "publish"
        before = _state(article)
        try:
            with transaction.atomic():
                row = services.article_edit(actor=request.user, article_id=article.pk, publish=publish, **values)
                article.refresh_from_db()
                _audit(request, "kb.article.publish" if publish else "kb.article.edit", article, before,
                       saved_version=row.version)
        except services.ArticleError as exc:
            messages.error(request, exc.message)
            return render(request, "kb/edit.html", {"article": article, "values": values,
                                                    "preview": render_markdown(values["body"])}, status=400)
        messages.success(request, f"v{row.version} {'published' if publish else 'saved as a draft'}.")
        return redirect("kb_history", article_id=article.pk)
    source = latest or article
    values = {"title": source.title, "body": source.body, "language": source.language, "change_note": "",
              "audience": article.audience}
    return render(request, "kb/edit.html", {"article": article, "values": values, "latest": latest,
                                            "preview": render_markdown(values["body"])})


@require_POST
@admin_required
def article_preview(request: HttpRequest) -> HttpResponse:
    return render(request, "kb/edit.html#preview", {"preview": render_markdown(request.POST.get("body", ""))})


def _diff(a: ArticleVersion, b: ArticleVersion) -> list[tuple[str, str]]:
    """Lines of a unified diff from a to b, each with its kind for colouring."""
    old = [f"# {a.title}", "", *a.body.splitlines()]
    new = [f"# {b.title}", "", *b.body.splitlines()]
    lines = []
    for line in difflib.unified_diff(old, new, f"v{a.version}", f"v{b.version}", lineterm="", n=2):
        kind = ("meta" if line.startswith(("---", "+++", "@@")) else
                "add" if line.startswith("+") else "del" if line.startswith("-") else "same")
        lines.append((kind, line))
    return lines


@require_GET
@admin_required
def article_history(request: HttpRequest, article_id: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=article_id)
    versions = list(article.versions.select_related("created_by").order_by("-version"))
    by_number = {v.version: v for v in versions}
    diff = None
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    if not (a or b) and len(versions) >= 2:
        # By default, what the newest version changed.
        a, b = str(versions[1].version), str(versions[0].version)
    if a or b:
        if not (a.isdigit() and b.isdigit() and int(a) in by_number and int(b) in by_number):
            messages.error(request, "choose two versions this article has")
        else:
            diff = {"a": by_number[int(a)], "b": by_number[int(b)],
                    "lines": _diff(by_number[int(a)], by_number[int(b)])}
    pending = versions[0] if versions and versions[0].version > article.version else None
    return render(request, "kb/history.html", {
        "article": article, "versions": versions, "diff": diff, "a": a, "b": b, "pending": pending,
    })


@require_POST
@admin_required
def article_publish(request: HttpRequest, article_id: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=article_id)
    before = _state(article)
    try:
        with transaction.atomic():
            row = services.article_publish(actor=request.user, article_id=article.pk)
            article.refresh_from_db()
            _audit(request, "kb.article.publish", article, before)
    except services.ArticleError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"v{row.version} published; retrieval now uses it.")
    return redirect("kb_history", article_id=article.pk)


@require_POST
@admin_required
def article_retire(request: HttpRequest, article_id: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=article_id)
    before = _state(article)
    try:
        with transaction.atomic():
            article = services.article_retire(actor=request.user, article_id=article.pk)
            _audit(request, "kb.article.retire", article, before)
    except services.ArticleError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Article retired: drafts no longer draw on it; its history is kept.")
    return redirect("kb_history", article_id=article.pk)


@require_POST
@admin_required
def article_restore(request: HttpRequest, article_id: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=article_id)
    version = request.POST.get("version", "")
    before = _state(article)
    try:
        if not version.isdigit():
            raise services.ArticleError("choose a version to restore")
        with transaction.atomic():
            row = services.article_restore(actor=request.user, article_id=article.pk, version=int(version))
            article.refresh_from_db()
            _audit(request, "kb.article.restore", article, before, saved_version=row.version,
                   restored_from=int(version))
    except services.ArticleError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"v{version} restored as draft v{row.version}; publish it to make it live.")
    return redirect("kb_history", article_id=article.pk)


@require_GET
@agent_required
def article_version(request: HttpRequest, article_id: int, version: int) -> HttpResponse:
    """Exactly the version a draft cited, whatever the article says now."""
    article = get_object_or_404(Article, pk=article_id)
    row = article.versions.select_related("created_by").filter(version=version).first()
    if row is None:
        # Versions written before the knowledge base kept history; the ticket still shows the cited excerpt.
        return render(request, "kb/version.html", {"article": article, "row": None, "version": version},
                      status=404)
    return render(request, "kb/version.html", {
        "article": article, "row": row, "html": render_markdown(row.body),
        "is_live": row.version == article.version and article.status == Article.Status.PUBLISHED,
    })


@require_POST
@admin_required
def article_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    dry_run = request.POST.get("dry_run") == "on"
    report = None
    try:
        if upload is None:
            raise ImportRefused("choose a .zip of markdown/HTML files or a Zendesk .json export")
        if upload.size is not None and upload.size > settings.KB_IMPORT_MAX_UPLOAD_BYTES:
            raise ImportRefused(f"the upload is larger than {settings.KB_IMPORT_MAX_UPLOAD_BYTES // 2**20} MiB")
        audience = request.POST.get("audience", "")
        report = kb_import(source=upload, filename=upload.name or "", dry_run=dry_run, actor=request.user,
                           audience=audience if audience in Article.Audience.values else "")
    except ImportRefused as exc:
        messages.error(request, f"Import refused, nothing was written: {exc.message}")
    else:
        if not dry_run:
            audit(actor=request.user, action="kb.import", obj=report, before=None,
                           after=report.audit_record(file=upload.name))
        (messages.warning if report.failed else messages.success)(request, f"Import: {report.summary()}.")
    return render(request, "kb/list.html", _list_context("") | {"report": report},
                  status=200 if report is not None else 400)


@require_GET
@admin_required
def gap_list(request: HttpRequest) -> HttpResponse:
    days_text = request.GET.get("days", "30")
    days = int(days_text) if days_text.isdigit() and int(days_text) in GAP_PERIODS else 30
    threshold = controls.switches_current().weak_retrieval_below
    rows = gaps.route_rows(since=timezone.now() - timedelta(days=days))
    found = gaps.group_gaps(rows, threshold=threshold)
    return render(request, "kb/gaps.html", {
        "gaps": [(g, urlencode(gaps.article_prefill(g))) for g in found], "days": days, "periods": GAP_PERIODS,
        "threshold": threshold, "routed": len(rows), "weak": sum(g.tickets for g in found),
    })
