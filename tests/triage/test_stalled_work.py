"""Work that stops moving (a killed worker, a broker outage) is picked up again, and intake never fails."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.conftest import wait_for
from tests.support import data
from triage import services, tasks
from triage.models import Ticket


@pytest.mark.django_db
def test_intake_answers_201_when_the_broker_is_down(client: Client, monkeypatch: pytest.MonkeyPatch,
                                                    django_capture_on_commit_callbacks: Any) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to redis: Connection refused")

    monkeypatch.setattr(tasks.classify_ticket, "apply_async", broker_down)
    key = services.api_key_create(name="tests")[1]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/api/v1/tickets",
            json.dumps({"subject": "Hello", "body": "Anyone there?", "from_email": "a@example.com"}),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}",
        )
    assert len(callbacks) == 1
    assert response.status_code == 201
    assert Ticket.objects.get(pk=response.json()["id"]).status == "new"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_sweeper_requeues_a_ticket_whose_task_was_lost(celery_worker: None) -> None:
    data.seed_small()
    # Stored without its task, as if the broker had lost it, and older than the stall window.
    ticket = Ticket.objects.create(subject="Cancel order", body="Please cancel my order 1234.",
                                   from_email="b@example.com")
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    fresh = Ticket.objects.create(subject="Fresh", body="Just arrived.", from_email="c@example.com")

    assert services.stalled_work_requeue() == 1
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == "awaiting_review", timeout=90)
    assert Ticket.objects.get(pk=fresh.pk).status == "new"


@pytest.mark.django_db
def test_a_task_for_a_ticket_that_no_longer_exists_does_nothing() -> None:
    from triage import steps

    steps.ticket_classify(ticket_id=987654)
    steps.ticket_route(ticket_id=987654)
    steps.ticket_draft(ticket_id=987654)
    assert not Ticket.objects.exists()
