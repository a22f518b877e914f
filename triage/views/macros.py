"""Admin pages for macros: the saved replies agents insert in the composer."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from triage import macros
from triage.access import admin_required
from triage.errors import ApplicationError
from triage.models import Macro

PAGE = "triage/settings/macros.html"


def _group_id(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ApplicationError("that group does not exist")
    return int(raw)


def _form(request: HttpRequest) -> dict[str, Any]:
    """What the admin typed, shown back after an error so nothing is lost."""
    return {"name": request.POST.get("name", ""), "body": request.POST.get("body", ""),
            "group_id": request.POST.get("group", ""), "active": request.POST.get("active") == "on"}


def _page(request: HttpRequest, *, form: dict[str, Any], editing: Macro | None, status: int) -> HttpResponse:
    return render(request, PAGE, {
        "macros": list(macros.macros_admin_list()), "groups": list(Group.objects.order_by("name")),
        "form": form, "editing": editing, "placeholders": macros.PLACEHOLDERS,
    }, status=status)


@require_http_methods(["GET", "POST"])
@admin_required
def macros_page(request: HttpRequest) -> HttpResponse:
    """The macro list, and the form that adds one."""
    if request.method == "POST":
        try:
            macro = macros.macro_create(actor=request.user, name=request.POST.get("name", ""),
                                        body=request.POST.get("body", ""), group_id=_group_id(request.POST.get("group")))
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return _page(request, form=_form(request), editing=None, status=400)
        messages.success(request, f"Macro “{macro.name}” saved; agents can insert it now.")
        return redirect("settings_macros")
    return _page(request, form={"active": True}, editing=None, status=200)


@require_http_methods(["GET", "POST"])
@admin_required
def macro_edit(request: HttpRequest, macro_id: int) -> HttpResponse:
    macro = Macro.objects.select_related("group").filter(pk=macro_id).first()
    if macro is None:
        raise Http404
    if request.method == "POST":
        try:
            macros.macro_update(actor=request.user, macro_id=macro_id, name=request.POST.get("name", ""),
                                body=request.POST.get("body", ""), group_id=_group_id(request.POST.get("group")),
                                active=request.POST.get("active") == "on")
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return _page(request, form=_form(request), editing=macro, status=exc.status)
        messages.success(request, "Macro saved.")
        return redirect("settings_macros")
    form = {"name": macro.name, "body": macro.body, "group_id": str(macro.group_id or ""), "active": macro.active}
    return _page(request, form=form, editing=macro, status=200)


@require_POST
@admin_required
def macro_active(request: HttpRequest, macro_id: int) -> HttpResponse:
    active = request.POST.get("active") == "1"
    try:
        macro = macros.macro_active_set(actor=request.user, macro_id=macro_id, active=active)
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404 from exc
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Macro “{macro.name}” {'is offered again' if active else 'deactivated'}.")
    return redirect("settings_macros")
