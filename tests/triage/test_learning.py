"""Corrections teach the local engine; a retrained model replaces the active one only if it is not worse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from tests.conftest import wait_for
from tests.support import builders, data
from triage import corrections, learning, services, steps
from triage.errors import ApplicationError
from triage.models import AuditEvent, Correction, Intent, IntentExample, Job, LocalModel, Ticket, TriageRun


@pytest.fixture
def agent(db: None) -> User:
    user = User.objects.create_user("agent-1", password="pw")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


def _triaged(intent: Intent, *, minutes_ago: int = 2) -> Ticket:
    ticket = builders.ticket(subject="Where is my parcel", body="It has not arrived after two weeks.",
                                   from_email="c@example.com", intent=intent, urgency="normal",
                                   sentiment="neutral", status="awaiting_review")
    run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent,
                                   urgency="normal", sentiment="neutral", language="en", confidence=0.8,
                                   summary="s")
    TriageRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return ticket


@pytest.mark.django_db
def test_an_intent_correction_is_recorded_and_becomes_one_training_example(agent: User) -> None:
    track, refund = Intent.objects.create(name="track_order"), Intent.objects.create(name="get_refund")
    ticket = _triaged(track, minutes_ago=3)

    correction = corrections.ticket_correct(ticket=ticket, user=agent, field="intent", value="get_refund")

    assert correction is not None
    assert (correction.old_value, correction.new_value, correction.user) == ("track_order", "get_refund", agent)
    assert 170 <= correction.seconds_since_triage <= 200
    ticket.refresh_from_db()
    assert ticket.intent == refund
    example = IntentExample.objects.get(ticket=ticket)
    assert (example.intent, example.source) == (refund, "correction")
    assert "Where is my parcel" in example.text and "two weeks" in example.text
    assert AuditEvent.objects.filter(action="ticket.correct.intent").count() == 1

    # Corrected again: the one example moves; setting the same value again records nothing.
    corrections.ticket_correct(ticket=ticket, user=agent, field="intent", value="track_order")
    assert IntentExample.objects.filter(ticket=ticket).get().intent == track
    assert corrections.ticket_correct(ticket=ticket, user=agent, field="intent", value="track_order") is None
    assert Correction.objects.filter(ticket=ticket).count() == 2


@pytest.mark.django_db
def test_urgency_and_sentiment_corrections_are_validated(agent: User) -> None:
    ticket = _triaged(Intent.objects.create(name="track_order"))
    corrections.ticket_correct(ticket=ticket, user=agent, field="urgency", value="urgent")
    ticket.refresh_from_db()
    assert ticket.urgency == "urgent"
    # The urgency model learns from it; the intent the agent left standing is taken as confirmed.
    example = IntentExample.objects.get()
    assert (example.intent.name, example.urgency, example.source) == ("track_order", "urgent", "correction")
    for field, value in [("urgency", "whenever"), ("sentiment", "furious"), ("intent", "no_such_intent"),
                         ("language", "fr")]:
        with pytest.raises(ApplicationError):
            corrections.ticket_correct(ticket=ticket, user=agent, field=field, value=value)
    assert list(Correction.objects.values_list("field", "new_value")) == [("urgency", "urgent")]


@pytest.mark.django_db
def test_a_ticket_can_be_corrected_to_other(agent: User) -> None:
    ticket = _triaged(Intent.objects.create(name="track_order"))
    corrections.ticket_correct(ticket=ticket, user=agent, field="intent", value="other")
    assert IntentExample.objects.get(ticket=ticket).intent.name == "other"


@pytest.mark.django_db
def test_the_ticket_page_takes_corrections_from_an_agent(client: Client, agent: User) -> None:
    ticket = _triaged(Intent.objects.create(name="track_order"))
    Intent.objects.create(name="get_refund")
    client.force_login(agent)
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert 'name="intent"' in page and '<option value="other"' in page
    response = client.post(f"/tickets/{ticket.pk}/correct",
                           {"intent": "get_refund", "urgency": "normal", "sentiment": "negative"}, follow=True)
    assert "Corrected intent, sentiment." in response.content.decode()
    assert sorted(Correction.objects.values_list("field", flat=True)) == ["intent", "sentiment"]
    bad = client.post(f"/tickets/{ticket.pk}/correct", {"urgency": "someday"}, follow=True)
    assert "not a valid urgency" in bad.content.decode()


@pytest.mark.django_db
def test_the_held_back_examples_are_stable_and_never_trained_on() -> None:
    data.load_taxonomy(per_intent=20)
    ids = list(IntentExample.objects.values_list("id", flat=True))
    held = [i for i in ids if learning.in_holdout(i)]
    assert 0.12 < len(held) / len(ids) < 0.28
    assert held == [i for i in ids if learning.in_holdout(i)]
    model = learning.local_model_train()
    assert model.active and model.n_holdout == len(held) and model.n_examples == len(ids) - len(held)
    assert model.metrics["macro_f1"] > 0.6 and "no active model" in model.decision


@pytest.mark.django_db
def test_a_worse_model_is_kept_out_unless_forced() -> None:
    data.load_taxonomy(per_intent=20)
    first = learning.local_model_train()
    # Agents' "corrections" that scramble half the intents: a model trained on them scores worse.
    intents = list(Intent.objects.order_by("name"))
    for i, intent in enumerate(intents[: len(intents) // 2]):
        wrong = intents[-1 - i]
        IntentExample.objects.filter(intent=intent).exclude(
            id__in=[e for e in IntentExample.objects.values_list("id", flat=True) if learning.in_holdout(e)]
        ).update(intent=wrong, source="correction")

    second = learning.local_model_train()

    assert not second.active and f"kept v{first.version}" in second.decision
    assert second.metrics["macro_f1"] < second.metrics["active_macro_f1"]
    assert LocalModel.objects.get(active=True) == first
    forced = learning.local_model_train(force=True)
    assert forced.active and "made active by command" in forced.decision


@pytest.mark.django_db
def test_the_schedule_retrains_only_when_examples_changed() -> None:
    data.load_taxonomy(per_intent=10)
    assert learning.training_scheduled() is not None  # no model yet
    Job.objects.all().delete()
    learning.local_model_train()
    assert learning.training_scheduled() is None
    example = IntentExample.objects.first()
    example.intent = Intent.objects.exclude(pk=example.intent_id).first()
    example.save()
    job = learning.training_scheduled()
    assert job is not None and job.params == {"trigger": "schedule"}
    assert learning.training_request(actor=None) == job  # one training at a time


@pytest.mark.django_db
def test_an_out_of_scope_ticket_is_labelled_other_and_escalated() -> None:
    data.seed_small()
    ticket, _ = services.ticket_create(
        subject="Football tonight",
        body="Who do you think will win the match tonight, and what's the weather going to be like in Lisbon?",
        from_email="x@example.com",
    )
    steps.ticket_classify(ticket_id=ticket.pk)
    steps.ticket_route(ticket_id=ticket.pk)
    ticket.refresh_from_db()
    assert ticket.intent.name == "other"
    decision = ticket.route_decisions.get()
    assert "out_of_scope" in decision.reasons and decision.lane != "mini"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_an_admin_trains_a_model_in_the_background(celery_worker: None, client: Client, admin_user: Any) -> None:
    data.load_taxonomy(per_intent=10)
    client.force_login(admin_user)
    client.post("/settings/learning/train")
    job = Job.objects.get(kind="train_local_model")
    wait_for(lambda: Job.objects.get(pk=job.pk).status in {"done", "failed"}, timeout=120)
    job.refresh_from_db()
    assert (job.status, job.error) == ("done", "")
    model = LocalModel.objects.get(active=True)
    assert (model.trigger, model.created_by) == ("manual", admin_user)
    page = client.get("/settings/learning").content.decode()
    assert f"v{model.version}" in page and "made active" in page


@pytest.mark.django_db
def test_agents_cannot_reach_the_learning_page(client: Client, agent: User) -> None:
    client.force_login(agent)
    assert client.get("/settings/learning").status_code == 404
    assert client.post("/settings/learning/train").status_code == 404
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_job_left_queued_or_on_a_dead_worker_is_queued_again(monkeypatch: pytest.MonkeyPatch,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    from triage import tasks
    from triage.jobs import job_run

    sent: list[int] = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, retry: sent.append(args[0]))
    now = timezone.now()
    lost = Job.objects.create(kind="replay", params={})
    Job.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=5))
    Job.objects.create(kind="replay", params={})  # just queued: its task is on its way
    dead = Job.objects.create(kind="triage_eval", status="running", started_at=now - timedelta(minutes=15))
    Job.objects.create(kind="triage_eval", status="running", started_at=now - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.stalled_work_requeue()
    assert sorted(sent) == sorted([lost.pk, dead.pk])

    finished = Job.objects.create(kind="replay", params={}, status="done", finished_at=now)
    job_run(job_id=finished.pk)  # a redelivered task for a finished job changes nothing
    finished.refresh_from_db()
    assert (finished.status, finished.error, finished.finished_at) == ("done", "", now)
    failing = Job.objects.create(kind="replay", params={"tier": "mini", "limit": 5, "name": "r"})
    job_run(job_id=failing.pk)
    failing.refresh_from_db()
    assert (failing.status, failing.error) == ("failed", "there are no classified tickets to replay")


@pytest.mark.django_db
def test_a_job_stopped_at_its_time_limit_fails_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    from triage import evals
    from triage.jobs import job_run

    def too_long(**kwargs: Any) -> dict[str, Any]:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(evals, "replay", too_long)
    job = Job.objects.create(kind="replay", params={"tier": "mini", "limit": 5, "name": "r"})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.finished_at is not None
    assert job.error.startswith("stopped after the time limit of 45 minutes (TIERDESK_JOB_TIME_LIMIT_S)")


def test_background_jobs_and_mail_have_their_own_queues_and_jobs_a_time_limit() -> None:
    from django.conf import settings

    from kb import tasks as kb_tasks
    from triage import tasks
    from triage.celery import app

    names = ["triage.classify_ticket", "triage.route_ticket", "triage.draft_ticket", "triage.shadow_ticket",
             "triage.remember_reply", "triage.requeue_stalled_work", "triage.run_job",
             "triage.retrain_local_model", "kb.reembed_chunks", "triage.send_outbound_email",
             "triage.send_password_reset"]
    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in names}
    assert queues == {**dict.fromkeys(names[:6], "pipeline"), **dict.fromkeys(names[6:9], "jobs"),
                      **dict.fromkeys(names[9:], "email")}
    assert {queue.name for queue in app.amqp.queues.values()} == {"pipeline", "jobs", "email"}
    for task in (tasks.run_job, tasks.retrain_local_model, kb_tasks.reembed_chunks):
        assert 0 < task.soft_time_limit < task.time_limit < settings.CELERY_VISIBILITY_TIMEOUT_S
