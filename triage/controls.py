"""The runtime routing controls an admin changes: contracts, switches, prompts, gates, shadows.

Reads return plain routing dataclasses; every write is versioned or audited (who, when, before,
after) and takes effect on the next ticket, without a restart.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.forms.models import model_to_dict
from django.utils import timezone

from triage import policy, routing, vocabulary
from triage.audit import audit
from triage.errors import ApplicationError
from triage.llm import prompts as default_prompts
from triage.llm.prompts import Prompt
from triage.models import (
    Contract,
    GateRule,
    Intent,
    ModelCall,
    PromptVersion,
    ShadowConfig,
    Switches,
)

CONTRACT_FIELDS = ("quality_bar", "latency_budget_s", "risk", "escalate_urgency", "drafts_allowed", "fallback",
                   "daily_budget_usd", "budget_action", "rollout_percent")
SWITCH_FIELDS = ("force_mini", "drafts_off", "large_off", "nano_enabled", "mini_enabled", "large_enabled",
                 "nano_daily_budget_usd", "mini_daily_budget_usd", "large_daily_budget_usd", "budget_action",
                 "weak_retrieval_below")


# --- Switches -----------------------------------------------------------------------------------

def switches_row() -> Switches:
    row = Switches.objects.order_by("pk").first()
    return row if row is not None else Switches.objects.create()


def switches_current(row: Switches | None = None) -> routing.Switches:
    """The switches as routing reads them. A step passes the row it read, so one decision sees one version."""
    row = row if row is not None else switches_row()
    return routing.Switches(
        version=row.version, force_mini=row.force_mini, drafts_off=row.drafts_off, large_off=row.large_off,
        enabled=frozenset(t for t in vocabulary.TIERS if getattr(row, f"{t}_enabled")),
        weak_retrieval_below=row.weak_retrieval_below,
    )


def switches_update(*, actor: AbstractBaseUser | None, **changes: Any) -> Switches:
    unknown = set(changes) - set(SWITCH_FIELDS)
    if unknown:
        raise ApplicationError(f"unknown switches: {', '.join(sorted(unknown))}")
    if "weak_retrieval_below" in changes and not 0 <= float(changes["weak_retrieval_below"]) <= 1:
        raise ApplicationError("the weak-retrieval threshold must be between 0 and 1")
    with transaction.atomic():
        row = Switches.objects.select_for_update().filter(pk=switches_row().pk).get()
        before = {f: getattr(row, f) for f in SWITCH_FIELDS}
        for name, value in changes.items():
            setattr(row, name, value)
        after = {f: getattr(row, f) for f in SWITCH_FIELDS}
        if after == before:
            return row
        row.version += 1
        row.updated_by = actor if actor is not None and actor.is_authenticated else None
        row.full_clean(exclude=["updated_by"])
        row.save()
        changed = {k for k in after if after[k] != before[k]}
        audit(actor=actor, action="switches.update", obj=row,
              before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
        return row


# --- Contracts ----------------------------------------------------------------------------------

def _to_contract(row: Contract | None, intent: Intent | None) -> routing.Contract:
    sensitive = bool(intent and intent.sensitive)
    name = intent.name if intent else None
    if row is None:
        return routing.Contract(intent=name, version=0, sensitive=sensitive)
    return routing.Contract(
        intent=name, version=row.version, quality_bar=row.quality_bar, latency_budget_s=row.latency_budget_s,
        risk=row.risk, escalate_urgency=row.escalate_urgency, drafts_allowed=row.drafts_allowed,
        fallback=row.fallback, sensitive=sensitive,
    )


def _pick_version(versions: list[Contract], ticket_id: int | None) -> Contract | None:
    """The newest version, unless it is still rolling out and this ticket falls outside its share."""
    if not versions:
        return None
    newest = versions[0]
    if newest.rollout_percent >= 100 or len(versions) == 1 or ticket_id is None:
        return newest
    in_rollout = routing.bucket(ticket_id, f"contract:{newest.intent_id}:{newest.version}") < newest.rollout_percent
    return newest if in_rollout else versions[1]


def contract_for(*, intent: Intent | None, ticket_id: int | None = None) -> tuple[Contract | None, routing.Contract]:
    """The intent's contract (falling back to the default contract) that applies to this ticket."""
    if intent is not None:
        own = list(Contract.objects.filter(intent=intent).order_by("-version")[:2])
        if own:
            row = _pick_version(own, ticket_id)
            return row, _to_contract(row, intent)
    default = list(Contract.objects.filter(intent__isnull=True).order_by("-version")[:2])
    row = _pick_version(default, ticket_id)
    return row, _to_contract(row, intent)


def contracts_all() -> dict[str | None, routing.Contract]:
    """Every intent's newest contract (the default's under None), in three queries, for the what-if."""
    newest = {row.intent_id: row for row in
              Contract.objects.order_by("intent_id", "-version").distinct("intent_id")}
    contracts: dict[str | None, routing.Contract] = {None: _to_contract(newest.get(None), None)}
    for intent in Intent.objects.all():
        contracts[intent.name] = _to_contract(newest.get(intent.pk, newest.get(None)), intent)
    return contracts


def contract_publish(*, actor: AbstractBaseUser | None, intent: Intent | None, **values: Any) -> Contract:
    unknown = set(values) - set(CONTRACT_FIELDS)
    if unknown:
        raise ApplicationError(f"unknown contract fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        # Lock the intent (or the default's newest row) so two admins cannot publish the same version.
        if intent is not None:
            Intent.objects.select_for_update().filter(pk=intent.pk).get()
        current = Contract.objects.select_for_update().filter(intent=intent).order_by("-version").first()
        base = {f: getattr(current, f) for f in CONTRACT_FIELDS} if current else {}
        row = Contract(intent=intent, version=(current.version + 1) if current else 1,
                       created_by=actor if actor is not None and actor.is_authenticated else None,
                       **{**base, **values})
        try:
            row.full_clean(exclude=["created_by", "intent"])
        except Exception as exc:  # ValidationError with per-field messages
            raise ApplicationError(f"invalid contract: {exc}") from exc
        row.save()
        audit(actor=actor, action="contract.publish", obj=row, before=base or None,
              after={"intent": intent.name if intent else "(default)", "version": row.version,
                     **{f: getattr(row, f) for f in CONTRACT_FIELDS}})
        return row


# --- Budgets ------------------------------------------------------------------------------------

def _today_start() -> datetime:
    now = timezone.localtime()
    return timezone.make_aware(datetime.combine(now.date(), time.min), now.tzinfo)


def budget_state(*, intent: Intent | None, contract_row: Contract | None,
                 switches: Switches | None = None) -> routing.Budget:
    """Which tiers have hit today's cap: per tier from the switches, per intent from its contract."""
    row = switches if switches is not None else switches_row()
    since = _today_start()
    caps = {tier: getattr(row, f"{tier}_daily_budget_usd") for tier in vocabulary.TIERS}
    exhausted: dict[str, str] = {}
    # The day's spend is summed over every call made today, a cost that grows with the day's traffic: it is
    # read only when some tier has a cap to compare it with.
    if any(cap is not None for cap in caps.values()):
        spend = dict(ModelCall.objects.filter(created_at__gte=since).values_list("tier")
                     .annotate(s=Sum("cost_usd")).values_list("tier", "s"))
        for tier, cap in caps.items():
            if cap is not None and (spend.get(tier) or Decimal(0)) >= cap:
                exhausted[tier] = row.budget_action
    if intent is not None and contract_row is not None and contract_row.daily_budget_usd is not None:
        by_intent = ModelCall.objects.filter(created_at__gte=since, ticket__intent=intent).aggregate(
            s=Sum("cost_usd"))["s"] or Decimal(0)
        if by_intent >= contract_row.daily_budget_usd:
            for tier in vocabulary.TIERS:
                exhausted.setdefault(tier, contract_row.budget_action)
    return routing.Budget(exhausted=exhausted)


def spend_today() -> dict[str, Decimal]:
    rows = ModelCall.objects.filter(created_at__gte=_today_start()).values_list("tier").annotate(s=Sum("cost_usd"))
    return {tier: total or Decimal(0) for tier, total in rows.values_list("tier", "s")}


# --- Prompts ------------------------------------------------------------------------------------

DEFAULT_PROMPTS = {p.id: p for p in (default_prompts.CLASSIFY, default_prompts.DRAFT)}


def prompt_for(*, prompt_id: str, ticket_id: int | None = None, version: int | None = None) -> Prompt:
    """The active prompt, or a candidate rolling out to this ticket's share; the code's v1 by default."""
    rows = list(PromptVersion.objects.filter(prompt_id=prompt_id).order_by("-version"))
    if version is not None:
        chosen = next((r for r in rows if r.version == version), None)
        if chosen is None:
            if version == DEFAULT_PROMPTS[prompt_id].version:
                return DEFAULT_PROMPTS[prompt_id]
            raise ApplicationError(f"prompt {prompt_id} has no version {version}")
        return Prompt(chosen.prompt_id, chosen.version, chosen.system)
    active = next((r for r in rows if r.active), None)
    candidate = next((r for r in rows if not r.active and r.rollout_percent > 0
                      and (active is None or r.version > active.version)), None)
    if candidate is not None and ticket_id is not None and \
            routing.bucket(ticket_id, f"prompt:{prompt_id}:{candidate.version}") < candidate.rollout_percent:
        return Prompt(candidate.prompt_id, candidate.version, candidate.system)
    if active is not None:
        return Prompt(active.prompt_id, active.version, active.system)
    return DEFAULT_PROMPTS[prompt_id]


def system_prompts() -> list[str]:
    """Every system prompt text a model may have been given: the code's defaults and every stored version.

    A draft repeating a long run of any of them leaked its instructions (policy.prompt_leak)."""
    stored = PromptVersion.objects.values_list("system", flat=True).distinct()
    return list(dict.fromkeys([*(p.system for p in DEFAULT_PROMPTS.values()), *stored]))


def _check_prompt(prompt_id: str, system: str) -> None:
    placeholder = {"classify": "{intents}", "draft": "{passages}"}[prompt_id]
    if placeholder not in system:
        raise ApplicationError(f"the {prompt_id} prompt must contain {placeholder}")
    try:
        system.format(intents="", passages="", guidance="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ApplicationError(f"the prompt has a stray brace or unknown placeholder: {exc}") from exc


def prompt_create(*, actor: AbstractBaseUser | None, prompt_id: str, system: str,
                  rollout_percent: int = 0) -> PromptVersion:
    if prompt_id not in DEFAULT_PROMPTS:
        raise ApplicationError(f"unknown prompt {prompt_id!r}")
    if not 0 <= rollout_percent <= 100:
        raise ApplicationError("rollout must be between 0 and 100 percent")
    _check_prompt(prompt_id, system)
    with transaction.atomic():
        rows = PromptVersion.objects.select_for_update().filter(prompt_id=prompt_id)
        if not rows.exists():
            base = DEFAULT_PROMPTS[prompt_id]
            PromptVersion.objects.create(prompt_id=prompt_id, version=base.version, system=base.system,
                                         active=True, rollout_percent=100)
        latest = rows.order_by("-version").first()
        assert latest is not None
        row = PromptVersion.objects.create(prompt_id=prompt_id, version=latest.version + 1, system=system,
                                           rollout_percent=rollout_percent, created_by=_user(actor))
        audit(actor=actor, action="prompt.create", obj=row, before=None,
              after={"prompt_id": prompt_id, "version": row.version, "rollout_percent": rollout_percent})
        return row


def prompt_rollout(*, actor: AbstractBaseUser | None, prompt_id: str, version: int, percent: int) -> PromptVersion:
    """Set a candidate's share of traffic; 100 makes it the active version."""
    if not 0 <= percent <= 100:
        raise ApplicationError("rollout must be between 0 and 100 percent")
    with transaction.atomic():
        row = PromptVersion.objects.select_for_update().filter(prompt_id=prompt_id, version=version).first()
        if row is None:
            raise ApplicationError(f"prompt {prompt_id} has no version {version}", status=404)
        before = {"rollout_percent": row.rollout_percent, "active": row.active}
        if percent == 100:
            PromptVersion.objects.filter(prompt_id=prompt_id, active=True).update(active=False, rollout_percent=0)
            row.active = True
        row.rollout_percent = percent
        row.save()
        audit(actor=actor, action="prompt.rollout", obj=row, before=before,
              after={"rollout_percent": percent, "active": row.active})
        return row


def prompt_rollback(*, actor: AbstractBaseUser | None, prompt_id: str) -> PromptVersion:
    """Make the version before the active one active again and stop every rollout."""
    with transaction.atomic():
        rows = list(PromptVersion.objects.select_for_update().filter(prompt_id=prompt_id).order_by("-version"))
        active = next((r for r in rows if r.active), None)
        previous = next((r for r in rows if active is not None and r.version < active.version), None)
        if active is None or previous is None:
            raise ApplicationError(f"prompt {prompt_id} has no earlier version to roll back to", status=409)
        PromptVersion.objects.filter(prompt_id=prompt_id).update(active=False, rollout_percent=0)
        PromptVersion.objects.filter(pk=previous.pk).update(active=True, rollout_percent=100)
        audit(actor=actor, action="prompt.rollback", obj=previous, before={"active_version": active.version},
              after={"active_version": previous.version})
        previous.refresh_from_db()
        return previous


# --- Gates --------------------------------------------------------------------------------------

def gate_rules() -> list[policy.GateRule]:
    rows = GateRule.objects.filter(enabled=True)
    return [policy.GateRule(name=r.name, category=r.category, pattern=r.pattern, message=r.message) for r in rows]


def gate_rules_seed() -> int:
    created = 0
    for rule in policy.DEFAULT_RULES:
        _, made = GateRule.objects.get_or_create(
            name=rule.name, defaults={"category": rule.category, "pattern": rule.pattern, "message": rule.message})
        created += made
    return created


def gate_rule_save(*, actor: AbstractBaseUser | None, name: str, category: str, pattern: str, message: str,
                   enabled: bool = True) -> GateRule:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,99}", name):
        raise ApplicationError("a rule name is lower-case letters, digits, - and _")
    if category not in policy.CATEGORIES:
        raise ApplicationError(f"category must be one of {', '.join(policy.CATEGORIES)}")
    try:
        policy.validate_rule(policy.GateRule(name=name, category=category, pattern=pattern, message=message))
    except ValueError as exc:
        raise ApplicationError(str(exc)) from exc
    with transaction.atomic():
        row = GateRule.objects.select_for_update().filter(name=name).first()
        before = model_to_dict(row, fields=["category", "pattern", "message", "enabled"]) if row else None
        row = row or GateRule(name=name)
        row.category, row.pattern, row.message, row.enabled = category, pattern, message, enabled
        row.save()
        audit(actor=actor, action="gate.save", obj=row, before=before,
              after={"category": category, "pattern": pattern, "message": message, "enabled": enabled})
        return row


# --- Shadow lanes -------------------------------------------------------------------------------

def shadow_configs_for(*, step: str, ticket_id: int) -> list[ShadowConfig]:
    return [c for c in ShadowConfig.objects.filter(active=True, step=step)
            if routing.bucket(ticket_id, f"shadow:{c.pk}") < c.percent]


def shadow_config_save(*, actor: AbstractBaseUser | None, name: str, step: str, tier: str, model: str = "",
                       prompt_version: int | None = None, percent: int = 10,
                       active: bool = True, config_id: int | None = None) -> ShadowConfig:
    if step not in ("classify", "draft"):
        raise ApplicationError("a shadow runs the classify or the draft step")
    if tier not in vocabulary.TIERS:
        raise ApplicationError(f"tier must be one of {', '.join(vocabulary.TIERS)}")
    if not 0 <= percent <= 100:
        raise ApplicationError("the shadow share must be between 0 and 100 percent")
    if not name.strip():
        raise ApplicationError("give the shadow a name")
    if prompt_version is not None:
        prompt_for(prompt_id=step, version=prompt_version)  # raises if that version does not exist
    with transaction.atomic():
        row = ShadowConfig.objects.select_for_update().filter(pk=config_id).first() if config_id else None
        before = model_to_dict(row, fields=["name", "step", "tier", "model", "prompt_version", "percent",
                                            "active"]) if row else None
        row = row or ShadowConfig(created_by=_user(actor))
        row.name, row.step, row.tier, row.model = name.strip(), step, tier, model.strip()
        row.prompt_version, row.percent, row.active = prompt_version, percent, active
        row.save()
        audit(actor=actor, action="shadow.save", obj=row, before=before,
              after={"name": row.name, "step": step, "tier": tier, "model": row.model,
                     "prompt_version": prompt_version, "percent": percent, "active": active})
        return row


def _user(actor: AbstractBaseUser | None) -> Any:
    return actor if actor is not None and actor.is_authenticated else None


WHATIF_DEFAULT_DAYS = 30
WHATIF_MAX_DAYS = 365


def whatif_since(days: int) -> datetime:
    if not 1 <= days <= WHATIF_MAX_DAYS:
        raise ApplicationError(f"look back between 1 and {WHATIF_MAX_DAYS} days")
    return timezone.now() - timedelta(days=days)
