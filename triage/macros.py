"""Macros: saved replies with placeholders. Admins write them; agents insert them in the composer, filled from
the ticket they are answering. Every change is audited; a macro is deactivated, never deleted, so the audit
log's references stay readable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q, QuerySet

from triage.access import is_admin, user_groups
from triage.audit import audit
from triage.blanks import blanks
from triage.errors import ApplicationError
from triage.llm import replies
from triage.models import Macro, Message, Ticket

PLACEHOLDERS = ("first_name", "last_name", "email", "order_number", "amount", "ticket_token", "agent_name")
NAME_MAX_CHARS = 120
BODY_MAX_CHARS = 10_000



# --- Reads --------------------------------------------------------------------------------------

def macros_for_user(user: Any) -> QuerySet[Macro]:
    """The active macros this agent may insert: those for everyone, and those for a group they are in."""
    return Macro.objects.filter(Q(group__isnull=True) | Q(group__name__in=user_groups(user)), active=True)


def macros_admin_list() -> QuerySet[Macro]:
    return Macro.objects.select_related("group", "created_by").order_by("-active", "name")


@dataclass(frozen=True)
class Filled:
    text: str
    blanks: list[str]


def _values(ticket: Ticket, agent: Any, inbound: list[str]) -> dict[str, str | None]:
    # The same reading of the ticket as the drafting engine's slots, over the whole thread.
    name = ticket.from_name or (ticket.customer.name if ticket.customer_id else "") or ""
    found = replies.ticket_values(subject=ticket.subject, body="\n".join([ticket.body, *inbound]), from_name=name,
                                  from_email=ticket.from_email)
    return {
        **found,
        "ticket_token": ticket.token,
        "agent_name": (agent.get_full_name() or agent.get_username()) if agent is not None else None,
    }


def fill(body: str, values: dict[str, str | None]) -> Filled:
    """The macro's body with each placeholder replaced; one with no value becomes a blank for the agent."""
    text = replies.fill(body, values)
    return Filled(text=text, blanks=blanks(text))


def macro_fill(*, macro_id: int, ticket_id: int, user: Any) -> Filled:
    """The macro filled from the ticket; 404 for a macro this agent is not offered."""
    macro = macros_for_user(user).filter(pk=macro_id).first()
    ticket = Ticket.objects.select_related("customer").filter(pk=ticket_id).first()
    if macro is None or ticket is None:
        raise ApplicationError("no such macro", status=404)
    inbound = list(Message.objects.filter(ticket_id=ticket_id, direction=Message.Direction.INBOUND)
                   .order_by("created_at", "id").values_list("reply_text", "text"))
    return fill(macro.body, _values(ticket, user, [reply or text for reply, text in inbound]))


# --- Writes (admins) ----------------------------------------------------------------------------

def _clean(*, name: str, body: str, group_id: int | None, exclude_pk: int | None) -> tuple[str, str, Group | None]:
    name, body = " ".join((name or "").split()), (body or "").strip()
    if not name:
        raise ApplicationError("give the macro a name")
    if len(name) > NAME_MAX_CHARS:
        raise ApplicationError(f"a macro's name holds at most {NAME_MAX_CHARS} characters")
    if not body:
        raise ApplicationError("write the macro's text")
    if len(body) > BODY_MAX_CHARS:
        raise ApplicationError(f"a macro holds at most {BODY_MAX_CHARS:,} characters; this one has {len(body):,}")
    unknown = sorted({p for p in replies.SLOT_RE.findall(body) if p not in PLACEHOLDERS})
    if unknown:
        named = ", ".join("{{" + p + "}}" for p in unknown)
        verb = "is not a placeholder" if len(unknown) == 1 else "are not placeholders"
        raise ApplicationError(f"{named} {verb}; use {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)}")
    group = None
    if group_id is not None:
        group = Group.objects.filter(pk=group_id).first()
        if group is None:
            raise ApplicationError("that group does not exist")
    taken = Macro.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists()
    if taken:
        raise ApplicationError(f"there is already a macro called {name!r}")
    return name, body, group


def _snapshot(macro: Macro) -> dict[str, Any]:
    return {"name": macro.name, "body": macro.body, "group": macro.group.name if macro.group else None,
            "active": macro.active}


def _require_admin(actor: Any) -> None:
    if not is_admin(actor):
        raise ApplicationError("only admins manage macros", status=404)


def macro_create(*, actor: Any, name: str, body: str, group_id: int | None) -> Macro:
    _require_admin(actor)
    with transaction.atomic():
        name, body, group = _clean(name=name, body=body, group_id=group_id, exclude_pk=None)
        macro = Macro.objects.create(name=name, body=body, group=group, created_by=actor)
        audit(actor=actor, action="macro.create", obj=macro, before=None, after=_snapshot(macro))
    return macro


def macro_update(*, actor: Any, macro_id: int, name: str, body: str, group_id: int | None,
                 active: bool) -> Macro:
    _require_admin(actor)
    with transaction.atomic():
        macro = Macro.objects.select_for_update(of=("self",)).select_related("group").filter(pk=macro_id).first()
        if macro is None:
            raise ApplicationError("no such macro", status=404)
        before = _snapshot(macro)
        macro.name, macro.body, macro.group = _clean(name=name, body=body, group_id=group_id, exclude_pk=macro.pk)
        macro.active = active
        after = _snapshot(macro)
        if after == before:
            return macro
        macro.save()
        changed = {k for k in after if after[k] != before[k]}
        action = ("macro.deactivate" if changed == {"active"} and not active
                  else "macro.activate" if changed == {"active"} else "macro.update")
        audit(actor=actor, action=action, obj=macro, before={k: before[k] for k in changed},
              after={k: after[k] for k in changed})
    return macro


def macro_active_set(*, actor: Any, macro_id: int, active: bool) -> Macro:
    _require_admin(actor)
    macro = Macro.objects.select_related("group").filter(pk=macro_id).first()
    if macro is None:
        raise ApplicationError("no such macro", status=404)
    return macro_update(actor=actor, macro_id=macro_id, name=macro.name, body=macro.body,
                        group_id=macro.group_id, active=active)
