"""An agent's corrections to a ticket's classification: recorded, audited, and kept as the ticket's training
example (an intent corrected, or an urgency set with the intent left standing), so the next model learns them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from triage import sla
from triage.audit import audit
from triage.errors import ApplicationError
from triage.learning import example_text, intent_other
from triage.models import Correction, Intent, IntentExample, Sentiment, Ticket, TriageRun, Urgency
from triage.routing import OTHER_INTENT
from triage.services import ticket_lock_for_change

_ALLOWED: dict[str, set[str]] = {
    Correction.Field.URGENCY: {u.value for u in Urgency},
    Correction.Field.SENTIMENT: {s.value for s in Sentiment},
}


@transaction.atomic
def ticket_correct(*, ticket: Ticket, user: AbstractBaseUser, field: str, value: str) -> Correction | None:
    """Record an agent's correction of the classification and apply it to the ticket.

    An intent correction also becomes a training example for the local classifier (one per ticket, moved
    if the ticket is corrected again); an urgency correction labels that example's urgency (creating it with
    the ticket's intent if there is none). Setting the value the ticket already has records nothing.
    """
    if field not in Correction.Field.values:
        raise ApplicationError(f"{field!r} cannot be corrected; choose intent, urgency or sentiment")
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    run = TriageRun.objects.filter(ticket=locked).order_by("-created_at", "-id").first()
    if field == Correction.Field.INTENT:
        intent = Intent.objects.filter(name=value).first()
        if intent is None:
            if value != OTHER_INTENT:
                raise ApplicationError(f"{value!r} is not an intent in the taxonomy")
            intent = intent_other()
        old = locked.intent.name if locked.intent is not None else ""
        if old == intent.name:
            return None
        locked.intent = intent
        IntentExample.objects.update_or_create(
            ticket=locked,
            defaults={"intent": intent, "text": example_text(locked), "source": IntentExample.Source.CORRECTION,
                      "created_by": user},
        )
    else:
        if value not in _ALLOWED[field]:
            raise ApplicationError(f"{value!r} is not a valid {field}; choose one of {', '.join(sorted(_ALLOWED[field]))}")
        old = getattr(locked, field)
        if old == value:
            return None
        setattr(locked, field, value)
        if field == Correction.Field.URGENCY and locked.intent_id:
            # The urgency model learns from it; the intent the agent left standing is taken as confirmed.
            example, created = IntentExample.objects.get_or_create(
                ticket=locked, defaults={"intent_id": locked.intent_id, "text": example_text(locked),
                                         "source": IntentExample.Source.CORRECTION, "created_by": user,
                                         "urgency": value})
            if not created:
                IntentExample.objects.filter(pk=example.pk).update(urgency=value)
    update = [field, "updated_at", "revision"]
    if field == Correction.Field.URGENCY:
        locked.sla_due_at = sla.due_at(start=locked.created_at, urgency=value)
        update.append("sla_due_at")
    locked.revision += 1
    locked.save(update_fields=update)
    since = int((timezone.now() - run.created_at).total_seconds()) if run else None
    correction = Correction.objects.create(
        ticket=locked, triage_run=run, field=field, old_value=old, new_value=value, user=user,
        seconds_since_triage=since,
    )
    audit(actor=user, action=f"ticket.correct.{field}", obj=locked, before={field: old}, after={field: value})
    return correction


@transaction.atomic
def ticket_classification_correct(*, ticket_id: int, user: AbstractBaseUser, values: dict[str, str],
                                  expected_revision: int | None) -> list[Correction]:
    """An agent's corrections from one form (any of intent, urgency, sentiment), applied together or not at all.

    Refused with 409 when the ticket changed since the form was rendered. Only a real change bumps the
    revision (in `ticket_correct`), so saving the form unchanged does not make other agents' forms stale.
    """
    ticket = ticket_lock_for_change(ticket_id=ticket_id, expected_revision=expected_revision, bump=False)
    changed = []
    for field in Correction.Field.values:
        value = values.get(field)
        if value:
            correction = ticket_correct(ticket=ticket, user=user, field=field, value=value)
            if correction is not None:
                changed.append(correction)
    return changed
