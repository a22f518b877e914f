"""Admin page for the knowledge base's retrieval index: embedding settings, chunks per model, re-embedding."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from kb.embeddings import EmbeddingError
from kb.reembed import ReembedError, index_status, reembed_start
from triage.access import admin_required


@admin_required
@require_http_methods(["GET", "POST"])
def kb_index_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            job, created = reembed_start()
        except (ReembedError, EmbeddingError, ImproperlyConfigured) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Re-embedding job {job.pk} {'started' if created else 'is already running'}.")
        return redirect("settings_kb_index")
    # The server picks the partial: the progress region polls itself while a job is active.
    template = "kb/index.html#progress" if request.htmx else "kb/index.html"
    response = render(request, template, {"status": index_status()})
    response["Vary"] = "HX-Request"
    return response
