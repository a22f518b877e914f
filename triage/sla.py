"""SLA targets: when a ticket's first answer is due, and how close it is to breaching.

A target is minutes by urgency. With business hours on, only minutes inside the working day (in the
policy's time zone, on its working weekdays) count, so a ticket that arrives on Friday evening with an
8-hour target is due on Monday afternoon, not on Saturday morning.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from triage.errors import ApplicationError
from triage.vocabulary import URGENCIES_MOST_FIRST

if TYPE_CHECKING:
    from triage.models import SlaPolicy

# A business-hours walk never needs more than a few weeks of days; this bounds a misconfigured policy.
MAX_DAYS_WALKED = 400


class SlaState(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # within the policy's warning share of the target
    BREACHED = "breached"
    MET = "met"  # answered before it was due
    MISSED = "missed"  # answered after it was due


# Intake reads the policy for every ticket; it is kept per process for this long. A change made through
# `policy_update` applies at once in that process, within this many seconds elsewhere, and also moves
# every open ticket's due time itself.
POLICY_CACHE_SECONDS = 30.0
_cache: dict[str, Any] = {"policy": None, "at": 0.0}


def policy_current() -> SlaPolicy:
    from triage.models import SlaPolicy

    now = time.monotonic()
    if _cache["policy"] is None or now - _cache["at"] > POLICY_CACHE_SECONDS:
        _cache["policy"] = SlaPolicy.objects.order_by("pk").first() or SlaPolicy()
        _cache["at"] = now
    return _cache["policy"]  # type: ignore[no-any-return]


def policy_cache_clear() -> None:
    _cache["policy"] = None


def due_at(*, start: dt.datetime, urgency: str | None, policy: SlaPolicy | None = None) -> dt.datetime:
    policy = policy or policy_current()
    minutes = policy.minutes_for(urgency)
    if not policy.business_hours:
        return start + dt.timedelta(minutes=minutes)
    return add_business_minutes(
        start, minutes, day_start=policy.day_start, day_end=policy.day_end,
        weekdays=set(policy.weekdays), tz=_zone(policy.timezone),
    )


def add_business_minutes(
    start: dt.datetime, minutes: int, *, day_start: dt.time, day_end: dt.time, weekdays: set[int], tz: dt.tzinfo,
) -> dt.datetime:
    """`start` plus `minutes` counted only inside [day_start, day_end) on `weekdays` (ISO, Monday = 1)."""
    if not weekdays or day_end <= day_start:
        raise ApplicationError("business hours need at least one working day and an end after the start")
    local = start.astimezone(tz)
    remaining = dt.timedelta(minutes=minutes)
    day = local.date()
    for _ in range(MAX_DAYS_WALKED):
        if day.isoweekday() in weekdays:
            opens = dt.datetime.combine(day, day_start, tzinfo=tz)
            closes = dt.datetime.combine(day, day_end, tzinfo=tz)
            begin = max(opens, local)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(dt.UTC)
                remaining -= available
        day += dt.timedelta(days=1)
    raise ApplicationError("the business-hours calendar has no working time within a year")


def state(*, due: dt.datetime, created: dt.datetime, answered: dt.datetime | None, warn_percent: int,
          now: dt.datetime | None = None) -> SlaState:
    if answered is not None:
        return SlaState.MET if answered <= due else SlaState.MISSED
    now = now or timezone.now()
    if now >= due:
        return SlaState.BREACHED
    if (due - now) <= (due - created) * (warn_percent / 100):
        return SlaState.WARN
    return SlaState.OK


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(f"{name!r} is not a time zone; use a name such as Europe/Berlin") from exc


# Still waiting for a first answer (a failed ticket too: a person must answer it).
OPEN_STATUSES = ("new", "classifying", "routing", "drafting", "awaiting_review", "needs_human", "failed")


def policy_update(*, user: Any, values: dict[str, Any]) -> SlaPolicy:
    """Change the SLA targets; open tickets' due times are recomputed from their arrival under the new policy."""
    from triage.audit import audit
    from triage.models import SlaPolicy, Ticket

    for urgency in URGENCIES_MOST_FIRST:
        value = values.get(f"{urgency}_minutes")
        if not isinstance(value, int) or not 1 <= value <= 60 * 24 * 90:
            raise ApplicationError(f"the {urgency} target must be a whole number of minutes from 1 to 129600")
    if not 0 <= int(values.get("warn_percent", 25)) <= 100:
        raise ApplicationError("the warning share must be from 0 to 100 percent")
    _zone(values.get("timezone", "UTC"))
    days = values.get("weekdays", [1, 2, 3, 4, 5])
    if not isinstance(days, list) or not all(isinstance(d, int) and 1 <= d <= 7 for d in days):
        raise ApplicationError("working days are ISO weekdays, 1 (Monday) to 7 (Sunday)")
    with transaction.atomic():
        policy = SlaPolicy.objects.select_for_update().order_by("pk").first() or SlaPolicy()
        before = {f: _plain(getattr(policy, f)) for f in values}
        for field, value in values.items():
            setattr(policy, field, value)
        if policy.business_hours and (not policy.weekdays or policy.day_end <= policy.day_start):
            raise ApplicationError("business hours need at least one working day and an end after the start")
        policy.updated_by = user
        policy.save()
        rows = Ticket.objects.filter(status__in=OPEN_STATUSES).values_list("pk", "created_at", "urgency")
        changes = [Ticket(pk=pk, sla_due_at=due_at(start=created, urgency=urgency or None, policy=policy))
                   for pk, created, urgency in rows.iterator(chunk_size=2000)]
        Ticket.objects.bulk_update(changes, ["sla_due_at"], batch_size=2000)
        audit(actor=user, action="sla.update", obj=policy, before=before,
              after={f: _plain(v) for f, v in values.items()})
    policy_cache_clear()  # this transaction reads the new policy at once
    transaction.on_commit(policy_cache_clear)  # and, after commit, so does every thread here
    return policy


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="minutes") if isinstance(value, dt.time) else value
