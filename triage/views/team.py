"""Admin pages for the team: SLA targets and the people who work the queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from triage import sla, team
from triage.access import ROLE_GROUPS, admin_required
from triage.errors import ApplicationError
from triage.vocabulary import URGENCIES_MOST_FIRST

WEEKDAY_NAMES = ((1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun"))


def _int(raw: str | None, label: str) -> int:
    try:
        return int((raw or "").strip())
    except ValueError as exc:
        raise ApplicationError(f"{label} must be a whole number") from exc


def _time(raw: str | None, label: str) -> dt.time:
    try:
        return dt.time.fromisoformat((raw or "").strip())
    except ValueError as exc:
        raise ApplicationError(f"{label} must be a time such as 09:00") from exc


@require_http_methods(["GET", "POST"])
@admin_required
def sla_page(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        try:
            values: dict[str, Any] = {f"{u}_minutes": _int(request.POST.get(f"{u}_minutes"), f"the {u} target")
                                      for u in URGENCIES_MOST_FIRST}
            values.update(
                business_hours=request.POST.get("business_hours") == "on",
                day_start=_time(request.POST.get("day_start"), "the day's start"),
                day_end=_time(request.POST.get("day_end"), "the day's end"),
                weekdays=sorted(_int(d, "a working day") for d in request.POST.getlist("weekdays")),
                timezone=(request.POST.get("timezone") or "UTC").strip(),
                warn_percent=_int(request.POST.get("warn_percent"), "the warning share"),
            )
            sla.policy_update(user=request.user, values=values)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status = 400
        else:
            messages.success(request, "SLA targets saved; every open ticket's due time was recomputed.")
            return redirect("settings_sla")
    return render(request, "triage/settings/sla.html", {
        "policy": sla.policy_current() if status == 200 else _posted(request), "urgencies": URGENCIES_MOST_FIRST,
        "weekday_names": WEEKDAY_NAMES,
    }, status=status)


def _posted(request: HttpRequest) -> dict[str, Any]:
    """What the admin typed, shown back after an error so nothing is lost."""
    post = request.POST
    return {**{f"{u}_minutes": post.get(f"{u}_minutes", "") for u in URGENCIES_MOST_FIRST},
            "business_hours": post.get("business_hours") == "on", "day_start": post.get("day_start", ""),
            "day_end": post.get("day_end", ""), "timezone": post.get("timezone", ""),
            "warn_percent": post.get("warn_percent", ""),
            "weekdays": [int(d) for d in post.getlist("weekdays") if d.isdigit()]}


@require_http_methods(["GET", "POST"])
@admin_required
def team_page(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        try:
            user = team.user_create(actor=request.user, username=request.POST.get("username", ""),
                                    email=request.POST.get("email", "").strip(), role=request.POST.get("role", ""),
                                    password=request.POST.get("password", ""))
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status = 400
        else:
            messages.success(request, f"{user.username} can now sign in.")
            return redirect("settings_team")
    users = (get_user_model().objects.prefetch_related("groups")
             .annotate(open_tickets=Count("assigned_tickets", filter=Q(
                 assigned_tickets__status__in=sla.OPEN_STATUSES)))
             .filter(Q(groups__name__in=ROLE_GROUPS) | Q(is_superuser=True)).distinct().order_by("username"))
    return render(request, "triage/settings/team.html", {"users": users, "form": request.POST}, status=status)


@require_POST
@admin_required
def team_member(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        if role := request.POST.get("role"):
            user = team.user_role_set(actor=request.user, user_id=user_id, role=role)
            messages.success(request, f"{user.username} is now an {role}.")
        elif (active := request.POST.get("active")) in ("0", "1"):
            user = team.user_active_set(actor=request.user, user_id=user_id, active=active == "1")
            messages.success(request, f"{user.username} is {'active again' if user.is_active else 'deactivated'}.")
        else:
            raise ApplicationError("choose a role, or activate or deactivate the account")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("settings_team")
