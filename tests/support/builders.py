"""Rows as the product's services create them, for tests that need one without going through intake."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from triage import sla
from triage.models import Ticket


def ticket(**fields: Any) -> Ticket:
    """A ticket stored as `services.ticket_create` stores one: its SLA due time set from its arrival and urgency
    (unless the test sets it)."""
    fields.setdefault("created_at", timezone.now())
    fields.setdefault("sla_due_at", sla.due_at(start=fields["created_at"], urgency=fields.get("urgency") or None))
    return Ticket.objects.create(**fields)
