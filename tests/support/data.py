"""Small, real data for tests: part of the shipped taxonomy and knowledge base."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from django.conf import settings

from kb.services import abcd_article_markdown, article_upsert
from triage import services
from triage.models import Intent, IntentExample

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


def load_kb() -> None:
    with (FIXTURES / "kb" / "abcd_guidelines.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            if row["id"] in KB_SLUGS:
                slug, title, body = abcd_article_markdown(row)
                article_upsert(slug=slug, title=title, body=body, source="abcd-guidelines")


def seed_small() -> None:
    load_taxonomy()
    load_kb()
    services.local_model_train()
