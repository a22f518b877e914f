"""A ticket through the API, classified, routed and drafted by a real Celery worker on a real Redis."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.conftest import wait_for
from tests.support import data
from triage import services, steps
from triage.models import ModelCall, Ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_ticket_posted_to_the_api_is_classified_routed_and_drafted(celery_worker: None, client: Client) -> None:
    data.seed_small()
    key = services.api_key_create(name="tests")[1]
    response = client.post(
        "/api/v1/tickets",
        json.dumps({"subject": "Forgot my password",
                    "body": "I can't remember my password and cannot log in to my account. How do I reset it?",
                    "from_email": "sam@example.com", "from_name": "Sam Carter"}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201
    ticket_id = response.json()["id"]

    def drafted() -> dict | None:
        body = client.get(f"/api/v1/tickets/{ticket_id}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
        return body if body["status"] in {"awaiting_review", "needs_human", "failed"} else None

    body = wait_for(drafted, timeout=90)
    assert body["status"] == "awaiting_review"
    assert body["triage"]["intent"] == "recover_password"
    assert (body["triage"]["tier"], body["triage"]["engine"]) == ("nano", "local")
    assert body["route"]["lane"] in {"mini", "large"} and body["route"]["reasons"]
    draft = body["draft"]
    assert draft["grounded"] is True and draft["engine"] == "local"
    assert any("password" in c["article_title"].lower() for c in draft["citations"])
    # Every cited marker appears in the draft text, so an agent can see what backs each sentence.
    assert all(f"[{c['marker']}]" in draft["body"] for c in draft["citations"])
    steps = list(ModelCall.objects.filter(ticket_id=ticket_id).values_list("step", "engine"))
    assert steps == [("classify", "local"), ("draft", "local")]


def test_running_a_step_twice_changes_nothing(celery_worker: None) -> None:
    data.seed_small()
    ticket, _ = services.ticket_create(subject="Refund", body="My jacket arrived torn, I want my money back.",
                                       from_email="lee@example.com")
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    steps.ticket_classify(ticket_id=ticket.pk)
    steps.ticket_route(ticket_id=ticket.pk)
    steps.ticket_draft(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.status == "awaiting_review"
    assert (ticket.triage_runs.count(), ticket.route_decisions.count(), ticket.drafts.count()) == (1, 1, 1)
