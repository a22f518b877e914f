"""Admin pages: routing contracts with a what-if preview, switches, prompts, gates, shadows, audit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.db.models import Avg, Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from triage import controls, routing, selectors, vocabulary, whatif
from triage.access import admin_required, is_admin  # noqa: F401  (re-exported)
from triage.audit import audit
from triage.errors import ApplicationError
from triage.models import (
    AuditEvent,
    BudgetAction,
    Contract,
    Fallback,
    GateResult,
    GateRule,
    Intent,
    PromptVersion,
    Risk,
    ShadowConfig,
    ShadowResult,
    Tier,
    Urgency,
)
from triage.policy import CATEGORIES


def _intent_or_default(value: str | None) -> Intent | None:
    if not value or value == "default":
        return None
    intent = Intent.objects.filter(name=value).first()
    if intent is None:
        raise ApplicationError(f"unknown intent {value!r}")
    return intent


def _decimal_or_none(value: str | None, label: str) -> Decimal | None:
    if value is None or not value.strip():
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ApplicationError(f"{label} must be a number of dollars") from exc
    if number < 0:
        raise ApplicationError(f"{label} must not be negative")
    return number


def _number(value: str | None, label: str, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"{label} must be a number") from exc
    if not low <= number <= high:
        raise ApplicationError(f"{label} must be between {low:g} and {high:g}")
    return number


def _contract_values(post: Any) -> dict[str, Any]:
    def choice(name: str, options: Any) -> str:
        value = post.get(name, "")
        if value not in options.values:
            raise ApplicationError(f"{name.replace('_', ' ')} must be one of {', '.join(options.values)}")
        return str(value)

    return {
        "quality_bar": _number(post.get("quality_bar"), "the quality bar", float, 0, 1),
        "latency_budget_s": _number(post.get("latency_budget_s"), "the latency budget", int, 1, 86400),
        "risk": choice("risk", Risk),
        "escalate_urgency": choice("escalate_urgency", Urgency),
        "drafts_allowed": post.get("drafts_allowed") == "on",
        "fallback": choice("fallback", Fallback),
        "daily_budget_usd": _decimal_or_none(post.get("daily_budget_usd"), "the daily budget"),
        "budget_action": choice("budget_action", BudgetAction),
        "rollout_percent": _number(post.get("rollout_percent", "100"), "the rollout", int, 0, 100),
    }


@require_GET
@admin_required
def routing_page(request: HttpRequest) -> HttpResponse:
    selected = request.GET.get("intent") or "default"
    try:
        intent = _intent_or_default(selected)
    except ApplicationError as exc:
        raise Http404 from exc
    row, contract = controls.contract_for(intent=intent)
    versions = Contract.objects.filter(intent=intent).select_related("created_by")[:10]
    intents = list(Intent.objects.order_by("name"))
    overview = [(i, controls.contract_for(intent=i)[1]) for i in intents]
    return render(request, "triage/settings/routing.html", {
        "selected": selected, "intent": intent, "contract": contract, "row": row, "versions": versions,
        "intents": intents, "overview": overview, "risks": Risk.choices, "urgencies": Urgency.choices,
        "fallbacks": Fallback.choices, "budget_actions": BudgetAction.choices,
        "days": controls.WHATIF_DEFAULT_DAYS,
    })


@require_POST
@admin_required
def routing_preview(request: HttpRequest) -> HttpResponse:
    """The what-if for the proposed contract, before anything is saved."""
    try:
        intent = _intent_or_default(request.POST.get("intent"))
        values = _contract_values(request.POST)
        days = _number(request.POST.get("days", controls.WHATIF_DEFAULT_DAYS), "the period", int, 1,
                       controls.WHATIF_MAX_DAYS)
        since = controls.whatif_since(days)
    except ApplicationError as exc:
        return render(request, "triage/settings/_whatif.html", {"error": exc.message})
    rows = selectors.whatif_rows(since=since)
    costs = selectors.whatif_costs(since=since)
    switches = controls.switches_current()
    current = controls.contracts_all()
    terms = {k: values[k] for k in ("quality_bar", "latency_budget_s", "risk", "escalate_urgency",
                                    "drafts_allowed", "fallback")}
    proposed = dict(current)
    if intent is not None:
        proposed[intent.name] = routing.Contract(intent=intent.name, sensitive=intent.sensitive, **terms)
    else:
        # The default contract applies to every intent that has none of its own.
        own = set(Contract.objects.filter(intent__isnull=False).values_list("intent__name", flat=True))
        proposed[None] = routing.Contract(intent=None, **terms)
        for name, contract in current.items():
            if name is not None and name not in own:
                proposed[name] = routing.Contract(intent=name, sensitive=contract.sensitive, **terms)
    before = whatif.observed(rows, costs)
    after = whatif.simulate(rows, proposed, switches, costs)
    return render(request, "triage/settings/_whatif.html", {"before": before, "after": after, "days": days})


@require_POST
@admin_required
def routing_publish(request: HttpRequest) -> HttpResponse:
    selected = request.POST.get("intent") or "default"
    try:
        intent = _intent_or_default(selected)
        row = controls.contract_publish(actor=request.user, intent=intent, **_contract_values(request.POST))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Contract v{row.version} for {intent.name if intent else 'the default'} published.")
    return redirect(f"/settings/routing?intent={selected}")


@require_POST
@admin_required
def intent_sensitive(request: HttpRequest) -> HttpResponse:
    intent = Intent.objects.filter(name=request.POST.get("intent")).first()
    if intent is None:
        raise Http404
    before = intent.sensitive
    intent.sensitive = request.POST.get("sensitive") == "on"
    intent.save(update_fields=["sensitive"])
    audit(actor=request.user, action="intent.sensitive", obj=intent, before={"sensitive": before},
                   after={"sensitive": intent.sensitive})
    messages.success(request, f"{intent.name} is {'now' if intent.sensitive else 'no longer'} sensitive.")
    return redirect(f"/settings/routing?intent={intent.name}")


@require_http_methods(["GET", "POST"])
@admin_required
def switches_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            changes: dict[str, Any] = {
                name: request.POST.get(name) == "on"
                for name in ("force_mini", "drafts_off", "large_off", "nano_enabled", "mini_enabled", "large_enabled")
            }
            for tier in vocabulary.TIERS:
                changes[f"{tier}_daily_budget_usd"] = _decimal_or_none(
                    request.POST.get(f"{tier}_daily_budget_usd"), f"the {tier} daily budget")
            action = request.POST.get("budget_action", "")
            if action not in BudgetAction.values:
                raise ApplicationError("choose what happens when a budget cap is hit")
            changes["budget_action"] = action
            changes["weak_retrieval_below"] = _number(request.POST.get("weak_retrieval_below"),
                                                      "the weak-retrieval threshold", float, 0, 1)
            controls.switches_update(actor=request.user, **changes)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Switches saved; they apply to the next ticket.")
        return redirect("settings_switches")
    return render(request, "triage/settings/switches.html", {
        "switches": controls.switches_row(), "spend": controls.spend_today(), "budget_actions": BudgetAction.choices,
        "tiers": vocabulary.TIERS,
    })


@require_http_methods(["GET", "POST"])
@admin_required
def prompts_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op")
        prompt_id = request.POST.get("prompt_id", "")
        try:
            if op == "create":
                controls.prompt_create(actor=request.user, prompt_id=prompt_id, system=request.POST.get("system", ""),
                                       rollout_percent=_number(request.POST.get("rollout_percent", "0"),
                                                               "the rollout", int, 0, 100))
            elif op == "rollout":
                controls.prompt_rollout(actor=request.user, prompt_id=prompt_id,
                                        version=_number(request.POST.get("version"), "the version", int, 1, 10**6),
                                        percent=_number(request.POST.get("percent"), "the rollout", int, 0, 100))
            elif op == "rollback":
                controls.prompt_rollback(actor=request.user, prompt_id=prompt_id)
            else:
                raise ApplicationError("unknown action")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Prompt saved.")
        return redirect("settings_prompts")
    prompts = []
    for prompt_id, default in controls.DEFAULT_PROMPTS.items():
        rows = list(PromptVersion.objects.filter(prompt_id=prompt_id).order_by("-version"))
        prompts.append({"id": prompt_id, "rows": rows, "serving": controls.prompt_for(prompt_id=prompt_id),
                        "default": default})
    return render(request, "triage/settings/prompts.html", {"prompts": prompts})


@require_http_methods(["GET", "POST"])
@admin_required
def gates_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            controls.gate_rule_save(actor=request.user, name=request.POST.get("name", "").strip(),
                                    category=request.POST.get("category", ""),
                                    pattern=request.POST.get("pattern", ""),
                                    message=request.POST.get("message", "").strip(),
                                    enabled=request.POST.get("enabled") == "on")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Gate rule saved.")
        return redirect("settings_gates")
    counts = (GateResult.objects.values("gate", "tier")
              .annotate(n_passed=Count("id", filter=Q(passed=True)), n_failed=Count("id", filter=Q(passed=False)))
              .order_by("gate", "tier"))
    return render(request, "triage/settings/gates.html", {
        "rules": GateRule.objects.all(), "counts": counts, "categories": CATEGORIES,
    })


@require_http_methods(["GET", "POST"])
@admin_required
def shadow_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            version = request.POST.get("prompt_version") or None
            controls.shadow_config_save(
                actor=request.user, name=request.POST.get("name", ""), step=request.POST.get("step", ""),
                tier=request.POST.get("tier", ""), model=request.POST.get("model", ""),
                prompt_version=_number(version, "the prompt version", int, 1, 10**6) if version else None,
                percent=_number(request.POST.get("percent"), "the share", int, 0, 100),
                active=request.POST.get("active") == "on",
                config_id=int(request.POST["config_id"]) if request.POST.get("config_id", "").isdigit() else None,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Shadow saved.")
        return redirect("settings_shadow")
    configs = []
    for config in ShadowConfig.objects.order_by("-created_at"):
        results = ShadowResult.objects.filter(config=config).select_related("ticket__intent")
        stats = results.aggregate(n=Count("id"), cost=Sum("cost_usd"), latency=Avg("latency_ms"),
                                  similarity=Avg("draft_similarity"), errors=Count("id", filter=~Q(error="")))
        agree = {"intent": 0, "urgency": 0, "lane": 0}
        for r in results:
            agree["intent"] += bool(r.intent) and r.ticket.intent is not None and r.intent == r.ticket.intent.name
            agree["urgency"] += bool(r.urgency) and r.urgency == r.ticket.urgency
            agree["lane"] += bool(r.lane) and r.lane == r.ticket.lane
        production = selectors.production_stats(ticket_ids=list(results.values_list("ticket_id", flat=True)),
                                                step=config.step)
        configs.append({"config": config, "stats": stats, "agree": agree, "production": production})
    return render(request, "triage/settings/shadow.html", {"configs": configs, "tiers": Tier.choices})


@require_GET
@admin_required
def audit_page(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.select_related("actor")[:200]
    return render(request, "triage/settings/audit.html", {"events": events})
