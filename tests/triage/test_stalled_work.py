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
from tests.support import builders, data
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
    ticket = builders.ticket(subject="Cancel order", body="Please cancel my order 1234.",
                                   from_email="b@example.com")
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    fresh = builders.ticket(subject="Fresh", body="Just arrived.", from_email="c@example.com")

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


@pytest.fixture
def new_ticket() -> Ticket:
    from triage import learning

    data.load_taxonomy(per_intent=20)
    learning.local_model_train()
    return builders.ticket(subject="Where is my order?", body="Ordered last week, nothing yet.",
                                 from_email="ana@example.com")


@pytest.mark.django_db
def test_a_second_delivery_leaves_a_step_another_delivery_is_working_on(new_ticket: Ticket) -> None:
    from triage import steps
    from triage.models import ModelCall

    Ticket.objects.filter(pk=new_ticket.pk).update(step_claim="task-a", step_claimed_at=timezone.now())
    steps.ticket_classify(ticket_id=new_ticket.pk, token="task-b")
    new_ticket.refresh_from_db()
    assert new_ticket.status == "new" and new_ticket.step_claim == "task-a"
    assert not ModelCall.objects.filter(ticket=new_ticket).exists()  # no model was asked twice


@pytest.mark.django_db
def test_the_same_task_redelivered_takes_its_step_over_and_clears_the_claim(new_ticket: Ticket) -> None:
    from triage import steps

    Ticket.objects.filter(pk=new_ticket.pk).update(status="classifying", step_claim="task-a",
                                                   step_claimed_at=timezone.now())
    steps.ticket_classify(ticket_id=new_ticket.pk, token="task-a")
    new_ticket.refresh_from_db()
    assert new_ticket.status == "routing"
    assert (new_ticket.step_claim, new_ticket.step_claimed_at) == ("", None)


@pytest.mark.django_db
def test_a_claim_older_than_the_stall_window_is_taken_over(new_ticket: Ticket, settings: Any) -> None:
    from triage import steps

    settings.STALLED_AFTER_S = 60
    Ticket.objects.filter(pk=new_ticket.pk).update(
        status="classifying", step_claim="task-of-a-killed-worker",
        step_claimed_at=timezone.now() - timedelta(seconds=61))
    steps.ticket_classify(ticket_id=new_ticket.pk, token="sweeper-task")
    steps.ticket_route(ticket_id=new_ticket.pk, token="route-task")
    new_ticket.refresh_from_db()
    assert new_ticket.status in {"drafting", "needs_human"}
    assert new_ticket.triage_runs.count() == 1 and new_ticket.step_claim == ""


@pytest.mark.django_db
def test_a_step_that_finds_nothing_to_do_releases_its_claim(new_ticket: Ticket) -> None:
    from triage import steps

    steps.ticket_route(ticket_id=new_ticket.pk, token="early")  # the ticket is not at the routing step
    Ticket.objects.filter(pk=new_ticket.pk).update(status="routing")
    steps.ticket_route(ticket_id=new_ticket.pk, token="late")
    new_ticket.refresh_from_db()
    assert new_ticket.step_claim == "" and new_ticket.route_decisions.count() == 1


@pytest.mark.django_db
def test_a_waiting_ticket_is_requeued_once_per_stall_window_not_once_per_sweep(
        monkeypatch: pytest.MonkeyPatch, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.STALLED_AFTER_S = 120
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.classify_ticket, "apply_async", lambda args, **kw: sent.append(tuple(args)))
    ticket = builders.ticket(subject="Waiting", body="Still in the queue.", from_email="d@example.com")
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.stalled_work_requeue() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.stalled_work_requeue() == 0  # the next sweep, a minute later, leaves it alone
    assert sent == [(ticket.pk,)]
