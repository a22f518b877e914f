"""Who may see and change what: the one place every view and endpoint asks.

Two roles, as Django groups: `agents` work tickets; `admins` also change routing contracts, switches,
SLA targets, users and the knowledge base. A superuser counts as an admin. Anyone else who signs in
(an outsider) gets 404 everywhere, never a hint that a page or ticket exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

AGENTS, ADMINS = "agents", "admins"
ROLE_GROUPS = (AGENTS, ADMINS)


def user_groups(user: Any) -> frozenset[str]:
    """The user's group names, read once per request however many checks ask."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_tierdesk_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._tierdesk_groups = cached
    return cached


def is_agent(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active
                and (user.is_superuser or user_groups(user) & set(ROLE_GROUPS)))


def is_admin(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_superuser or ADMINS in user_groups(user)))


def role_of(user: Any) -> str:
    return "admin" if is_admin(user) else "agent" if is_agent(user) else "none"


def _require(check: Callable[[Any], bool]) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                raise Http404
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


agent_required = _require(is_agent)
agent_required.__doc__ = "Signed-in agents and admins only; anyone else gets a 404."
admin_required = _require(is_admin)
admin_required.__doc__ = "Admins only; agents and outsiders get a 404."


def ticket_for_user(user: Any, ticket_id: int) -> None:
    """Raise 404 unless `user` may work ticket `ticket_id`.

    Every agent works the whole team's queue (tickets are not private to their assignee), so the check is
    the role plus existence; it lives here so that a narrower rule (teams, brands) changes one function.
    """
    from triage.models import Ticket

    if not is_agent(user) or not Ticket.objects.filter(pk=ticket_id).exists():
        raise Http404
