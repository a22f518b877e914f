from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

from triage import demo, devservices


class Command(BaseCommand):
    help = "Load the demo store: taxonomy, knowledge base, local model, users and sample tickets."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo.seed(
            password_agent=os.environ.get("TIERDESK_DEMO_AGENT_PASSWORD", "agent-demo-pass"),
            password_admin=os.environ.get("TIERDESK_DEMO_ADMIN_PASSWORD", "admin-demo-pass"),
        )
        key = demo.demo_api_key(key_file=devservices.state_dir() / "demo_api_key")
        self.stdout.write(f"demo API key: {key}")
        self.stdout.write(
            f"taxonomy examples added: {result['examples_added']}; KB articles: {result['articles']}; "
            f"sample tickets sent: {result['tickets_sent']}"
        )
