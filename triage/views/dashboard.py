"""The team's dashboard: charts over a chosen period, each with the numbers behind it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from triage import dashboard
from triage.access import agent_required
from triage.errors import ApplicationError


@require_GET
@agent_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"presets": dashboard.PRESETS, "query": request.GET}
    status = 200
    try:
        period = dashboard.period_parse(query=request.GET)
    except ApplicationError as exc:
        context["error"] = exc.message
        status = exc.status
    else:
        board = dashboard.dashboard_for(period=period)
        context.update(period=period, board=board, charts=dashboard.chart_data(board))
    # The server picks the partial: an htmx request swaps only the dashboard's body. Restoring a page that
    # fell out of htmx's history cache replaces the whole document, so that request gets the whole page.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "triage/dashboard.html#dashboard-body" if partial else "triage/dashboard.html"
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response
