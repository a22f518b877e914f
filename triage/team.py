"""The team: admins add agents, change roles and deactivate accounts. Every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from triage.access import ADMINS, AGENTS, role_of
from triage.audit import audit
from triage.errors import ApplicationError

ROLES = {"agent": AGENTS, "admin": ADMINS}


def _set_groups(user: Any, role: str) -> None:
    if role not in ROLES:
        raise ApplicationError(f"{role!r} is not a role; choose agent or admin")
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLES.values()}
    user.groups.remove(*groups.values())
    user.groups.add(groups[ROLES[role]])
    user._tierdesk_groups = None  # the per-request cache in triage.access


def user_create(*, actor: Any, username: str, email: str, role: str, password: str) -> Any:
    User = get_user_model()
    username = username.strip()
    if not username or len(username) > 150:
        raise ApplicationError("a username is 1 to 150 characters")
    try:
        User.username_validator(username)
        if email:
            validate_email(email)
        validate_password(password, User(username=username, email=email))
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages)) from exc
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise ApplicationError(f"there is already a user called {username!r}")
        user = User.objects.create_user(username=username, email=email, password=password)
        _set_groups(user, role)
        audit(actor=actor, action="user.create", obj=user, before=None, after={"username": username, "role": role})
    return user


def user_role_set(*, actor: Any, user_id: int, role: str) -> Any:
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
        if user is None:
            raise ApplicationError("no such user", status=404)
        before = role_of(user)
        if user.pk == actor.pk and role != "admin":
            raise ApplicationError("you cannot take away your own admin role; ask another admin")
        _set_groups(user, role)
        audit(actor=actor, action="user.role", obj=user, before={"role": before}, after={"role": role})
    return user


def user_active_set(*, actor: Any, user_id: int, active: bool) -> Any:
    from triage.models import Ticket

    with transaction.atomic():
        user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
        if user is None:
            raise ApplicationError("no such user", status=404)
        if user.pk == actor.pk and not active:
            raise ApplicationError("you cannot deactivate yourself")
        user.is_active = active
        user.save(update_fields=["is_active"])
        released = 0
        if not active:
            # Their open tickets go back to the team rather than waiting on someone who cannot sign in.
            released = Ticket.objects.filter(assignee=user).exclude(
                status__in=["approved", "rejected", "ignored"]).update(assignee=None)
        audit(actor=actor, action="user.activate" if active else "user.deactivate", obj=user,
              before={"active": not active}, after={"active": active, "tickets_released": released})
    return user
