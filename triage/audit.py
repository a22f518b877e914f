"""The audit trail: who changed what, with the values before and after. Every admin and agent change writes one
event through `audit()`; the audit log page and a ticket's history read them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from triage.models import AuditEvent


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, (Decimal, datetime)) else v) for k, v in values.items()}


def audit(*, actor: AbstractBaseUser | None, action: str, obj: Any, before: dict[str, Any] | None,
          after: dict[str, Any] | None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None, action=action,
        object_type=type(obj).__name__, object_id=str(getattr(obj, "pk", "") or ""),
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
    )
