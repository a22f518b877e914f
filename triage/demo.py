"""The demo: an online store's taxonomy, knowledge base, users and sample tickets."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction

from kb.importers import kb_import
from kb.services import kb_import_abcd_jsonl
from triage import controls, learning, reply_memory, services
from triage.models import OTHER_INTENT, Contract, Customer, Intent, IntentExample, LocalModel, Ticket

FIXTURES = Path(settings.BASE_DIR) / "fixtures"


@dataclass(frozen=True)
class DemoLogins:
    agent: tuple[str, str]
    admin: tuple[str, str]


@transaction.atomic
def taxonomy_load(*, intents_path: Path, utterances_path: Path) -> int:
    """Load intents and their labelled examples; safe to run again (it adds nothing twice)."""
    for item in json.loads(intents_path.read_text(encoding="utf-8")):
        Intent.objects.update_or_create(
            name=item["name"],
            defaults={"category": item.get("category", ""), "description": item.get("description", ""),
                      "sensitive": bool(item.get("sensitive", False))},
        )
    if IntentExample.objects.filter(source=IntentExample.Source.SEED).exists():
        return 0
    intents = {i.name: i for i in Intent.objects.all()}
    with utterances_path.open(encoding="utf-8", newline="") as handle:
        rows = [(r["utterance"], r["intent"]) for r in csv.DictReader(handle) if r["intent"] in intents]
    IntentExample.objects.bulk_create(
        IntentExample(intent=intents[label], text=text, source=IntentExample.Source.SEED) for text, label in rows
    )
    return len(rows)


@transaction.atomic
def labelled_load(*, utterances_path: Path, tickets_path: Path) -> int:
    """The store's own labelled data: short requests in the languages its customers write (CSV: utterance,
    intent, language) and whole tickets with intent and urgency (JSONL: subject, body, intent, urgency).
    Only examples not yet in the database are added (by text), so a grown fixture reaches a demo seeded
    before; returns how many were added."""
    intents = {i.name: i for i in Intent.objects.all()}
    intents.setdefault(OTHER_INTENT, learning.intent_other())
    with utterances_path.open(encoding="utf-8", newline="") as handle:
        examples = [IntentExample(intent=intents[r["intent"]], text=r["utterance"], source=IntentExample.Source.SEED)
                    for r in csv.DictReader(handle) if r["intent"] in intents]
    for line in tickets_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if item["intent"] in intents:
                examples.append(IntentExample(
                    intent=intents[item["intent"]], text=f"{' '.join(item['subject'].split())}\n{item['body']}".strip(),
                    source=IntentExample.Source.TICKET, urgency=item.get("urgency", "")))
    present = set(IntentExample.objects.filter(
        source__in=(IntentExample.Source.SEED, IntentExample.Source.TICKET)).values_list("source", "text"))
    fresh = list({(e.source, e.text): e for e in examples if (e.source, e.text) not in present}.values())
    IntentExample.objects.bulk_create(fresh)
    return len(fresh)


def users_ensure(*, password_agent: str, password_admin: str) -> DemoLogins:
    agents, _ = Group.objects.get_or_create(name="agents")
    admins, _ = Group.objects.get_or_create(name="admins")
    agent, created = User.objects.get_or_create(username="agent", defaults={"email": "agent@tierdesk.localhost"})
    if created:
        agent.set_password(password_agent)
        agent.save()
    agent.groups.add(agents)
    admin, created = User.objects.get_or_create(
        username="admin", defaults={"email": "admin@tierdesk.localhost", "is_staff": True, "is_superuser": True}
    )
    if created:
        admin.set_password(password_admin)
        admin.save()
    admin.groups.add(admins)
    return DemoLogins(agent=("agent", password_agent), admin=("admin", password_admin))


def demo_api_key(*, key_file: Path) -> str:
    """The demo's API key: created once, kept (mode 600) in the state directory so each run can print it."""
    if key_file.exists():
        raw = key_file.read_text().strip()
        if services.api_key_authenticate(raw=raw) is not None:
            return raw
    _key, raw = services.api_key_create(name="demo")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(raw)
    key_file.chmod(0o600)
    return raw


def policy_ensure() -> None:
    """The demo's routing policy: a default contract, stricter contracts for risky intents, gate rules."""
    controls.gate_rules_seed()
    controls.switches_row()
    if not Contract.objects.filter(intent__isnull=True).exists():
        controls.contract_publish(actor=None, intent=None, quality_bar=0.5, latency_budget_s=60, risk="low",
                                  escalate_urgency="urgent", drafts_allowed=True, fallback="escalate")
    risky = {"payment_issue": "high", "delete_account": "high", "complaint": "medium", "get_refund": "medium"}
    for name, risk in risky.items():
        intent = Intent.objects.filter(name=name).first()
        if intent is not None and not Contract.objects.filter(intent=intent).exists():
            controls.contract_publish(actor=None, intent=intent, quality_bar=0.6, latency_budget_s=120, risk=risk,
                                      escalate_urgency="high", drafts_allowed=True, fallback="escalate")
    Customer.objects.get_or_create(email="jordan.p@example.com", defaults={"name": "Jordan Patel", "vip": True})


def seed(*, password_agent: str, password_admin: str) -> dict[str, object]:
    added = taxonomy_load(intents_path=FIXTURES / "bitext" / "intents.json",
                          utterances_path=FIXTURES / "bitext" / "utterances.csv")
    added += labelled_load(utterances_path=FIXTURES / "store" / "utterances.csv",
                           tickets_path=FIXTURES / "store" / "labelled_tickets.jsonl")
    # The help centre customers read (public: drafts quote and cite it), and the agents' procedures (internal).
    helpcentre = kb_import(source=FIXTURES / "kb" / "helpcentre", fmt="folder", audience="public")
    if helpcentre.failed:
        raise RuntimeError(f"the demo help centre did not import: {helpcentre.failed}")
    articles = kb_import_abcd_jsonl(path=FIXTURES / "kb" / "abcd_guidelines.jsonl")
    articles += len(helpcentre.created) + len(helpcentre.updated) + len(helpcentre.unchanged)
    if not LocalModel.objects.filter(active=True).exists():
        learning.local_model_train(trigger=LocalModel.Trigger.SEED)
    reply_memory.reference_load()
    logins = users_ensure(password_agent=password_agent, password_admin=password_admin)
    policy_ensure()
    sent = 0
    if not Ticket.objects.filter(channel="demo").exists():
        # The same intake the API uses, so the demo tickets go through the real pipeline.
        for item in json.loads((FIXTURES / "sample_tickets.json").read_text(encoding="utf-8")):
            services.ticket_create(**item, channel="demo")
            sent += 1
    return {"examples_added": added, "articles": articles, "tickets_sent": sent, "logins": logins}
