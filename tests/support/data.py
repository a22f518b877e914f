"""Small, real data for tests: part of the shipped taxonomy and knowledge base."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User

from kb.importers import parse_document
from kb.services import abcd_article_markdown, article_upsert
from tests.support import builders
from triage import learning
from triage.models import Draft, Intent, IntentExample, ReviewAction, RouteDecision, TriageRun

FIXTURES = Path(settings.BASE_DIR) / "fixtures"
KB_SLUGS = (
    "Account Access/Recover Password",
    "Account Access/Recover Username",
    "Order Issue/Status Delivery Time",
    "Shipping Issue/Shipping Status",
    "Manage Account/Manage Change Address",
    "Product Defect/Initiate Refund",
)


def load_taxonomy(*, per_intent: int = 60) -> None:
    for item in json.loads((FIXTURES / "bitext" / "intents.json").read_text()):
        Intent.objects.update_or_create(
            name=item["name"],
            defaults={"category": item["category"], "description": item["description"],
                      "sensitive": bool(item.get("sensitive", False))},
        )
    intents = {i.name: i for i in Intent.objects.all()}
    taken: dict[str, int] = defaultdict(int)
    examples = []
    with (FIXTURES / "bitext" / "utterances.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if taken[row["intent"]] < per_intent:
                taken[row["intent"]] += 1
                examples.append(IntentExample(intent=intents[row["intent"]], text=row["utterance"]))
    IntentExample.objects.bulk_create(examples)


# The demo help centre's articles on the same subjects: what drafts may quote.
HELP_CENTRE = (
    "account/reset-your-password.md",
    "account/edit-your-details.md",
    "delivery/delivery-times.md",
    "delivery/track-your-order.md",
    "delivery/change-delivery-address.md",
    "returns/refunds.md",
    "returns/damaged-or-wrong-item.md",
)


def load_kb(*, public: bool = True) -> None:
    """Six agent guidelines (internal) and, unless `public` is False, seven help-centre articles (public)."""
    with (FIXTURES / "kb" / "abcd_guidelines.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            if row["id"] in KB_SLUGS:
                slug, title, body = abcd_article_markdown(row)
                article_upsert(slug=slug, title=title, body=body, source="abcd-guidelines", audience="internal")
    if public:
        for slug in HELP_CENTRE:
            item = parse_document(slug, (FIXTURES / "kb" / "helpcentre" / slug).read_bytes(), source="helpcentre")
            article_upsert(slug=slug, title=item.title, body=item.body, source="helpcentre",
                           language=item.language, audience=item.audience)


def seed_small() -> None:
    load_taxonomy()
    load_kb()
    learning.local_model_train()


def triaged_history() -> None:
    """Four triaged tickets: one approved, one rejected, two undecided, at confidences 0.95 to 0.3."""
    intent = Intent.objects.create(name="track_order")
    for i, (confidence, action) in enumerate([(0.95, "approve"), (0.7, "reject"), (0.65, None), (0.3, None)]):
        ticket = builders.ticket(subject=f"T{i}", body="b", from_email=f"c{i}@example.com", intent=intent,
                                       status="awaiting_review")
        run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent,
                                       urgency="normal", sentiment="neutral", language="en",
                                       confidence=confidence, summary="s")
        lane = "mini" if confidence >= 0.5 else "large"
        decision = RouteDecision.objects.create(ticket=ticket, triage_run=run, lane=lane, top_similarity=0.9)
        draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier=lane, engine="local", model="m",
                                     body="hello")
        if action:
            user = User.objects.get_or_create(username="agent")[0]
            ReviewAction.objects.create(ticket=ticket, draft=draft, user=user, action=action, drafted_text="hello")
