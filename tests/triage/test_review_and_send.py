"""Approving a draft sends the reply over SMTP once; every decision is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings

from tests.support import builders
from triage import services
from triage.errors import ApplicationError
from triage.models import Draft, Intent, OutboundEmail, ReviewAction, RouteDecision, Ticket, TriageRun

pytestmark = pytest.mark.django_db

BODY = "Hi Ana,\n\nYour order left our warehouse yesterday [1].\n\nKind regards,\nCustomer Support"


@pytest.fixture
def agent() -> User:
    user = User.objects.create_user("alice", password="pw-alice-123")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def draft() -> Draft:
    intent = Intent.objects.create(name="track_order")
    ticket = builders.ticket(subject="Where is my order?", body="Nothing yet.", from_email="ana@example.com",
                                   from_name="Ana", status="awaiting_review", intent=intent, lane="mini")
    run = TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="tierdesk-local",
                                   intent=intent, urgency="normal", sentiment="neutral", language="en",
                                   confidence=0.9, summary="Where is my order")
    decision = RouteDecision.objects.create(ticket=ticket, triage_run=run, lane="mini",
                                            reasons=["within_contract"])
    return Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local",
                                model="tierdesk-local", body=BODY, grounded=True)


def smtp(sink: Any) -> Any:
    return override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                             EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port)


def test_an_edited_approval_records_the_diff_and_sends_once(draft: Draft, agent: User, smtp_server: Any) -> None:
    edited = BODY.replace("yesterday", "this morning")
    review = services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=edited)
    assert review.action == "edit_approve"
    assert "-Your order left our warehouse yesterday [1]." in review.diff
    assert "+Your order left our warehouse this morning [1]." in review.diff
    outbound = OutboundEmail.objects.get(review=review)
    with smtp(smtp_server):
        assert services.outbound_send(outbound_id=outbound.pk) is True
        # A redelivered task finds the row already claimed and sends nothing.
        assert services.outbound_send(outbound_id=outbound.pk) is False
    [message] = smtp_server.to("ana@example.com")
    assert message["Subject"] == f"Re: Where is my order? [{draft.ticket.token}]"
    # A Message-ID past the 78-character line is folded onto a continuation line, which parses back with the
    # folding's leading space (RFC 5322 allows whitespace around it).
    assert message["Message-ID"].strip() == outbound.message_id
    assert "this morning" in message.get_content()
    outbound.refresh_from_db()
    assert outbound.status == "sent" and outbound.attempts == 1 and outbound.sent_at is not None
    draft.refresh_from_db()
    draft.ticket.refresh_from_db()
    assert draft.status == "approved" and draft.ticket.status == "approved"


def test_a_draft_cannot_be_decided_twice(draft: Draft, agent: User) -> None:
    services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=None)
    with pytest.raises(ApplicationError) as err:
        services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=None)
    assert err.value.status == 409
    assert OutboundEmail.objects.count() == 1


def test_an_unchanged_approval_is_recorded_as_such(draft: Draft, agent: User) -> None:
    review = services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=BODY)
    assert review.action == "approve" and review.diff == ""


def test_an_empty_reply_is_refused(draft: Draft, agent: User) -> None:
    with pytest.raises(ApplicationError, match="empty"):
        services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text="  \n")
    assert ReviewAction.objects.count() == 0


def test_a_failed_send_is_kept_with_its_error_for_a_retry(draft: Draft, agent: User) -> None:
    review = services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=None)
    outbound = OutboundEmail.objects.get(review=review)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                           EMAIL_HOST="127.0.0.1", EMAIL_PORT=1, EMAIL_TIMEOUT=2), pytest.raises(OSError):
        services.outbound_send(outbound_id=outbound.pk)
    outbound.refresh_from_db()
    assert outbound.status == "failed" and outbound.last_error


def test_rejecting_needs_a_reason_and_sends_the_ticket_to_a_human(draft: Draft, agent: User) -> None:
    with pytest.raises(ApplicationError):
        services.draft_reject(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, reason=" ")
    review = services.draft_reject(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent,
                                   reason="Wrong order number")
    assert review.action == "reject" and review.reason == "Wrong order number"
    draft.ticket.refresh_from_db()
    assert draft.ticket.status == "needs_human"
    assert OutboundEmail.objects.count() == 0


def test_the_ticket_page_shows_which_engine_wrote_what(client: Client, draft: Draft, agent: User) -> None:
    client.force_login(agent)
    page = client.get(f"/tickets/{draft.ticket_id}/").content.decode()
    assert "nano tier · local engine · tierdesk-local" in page
    assert "mini tier · local engine · tierdesk-local" in page


def test_approving_through_the_ui_queues_the_reply(client: Client, draft: Draft, agent: User) -> None:
    client.force_login(agent)
    response = client.post(f"/tickets/{draft.ticket_id}/drafts/{draft.pk}/approve", {"body": BODY + "\nP.S."})
    assert response.status_code == 302
    assert OutboundEmail.objects.get().body.endswith("P.S.")


def test_an_outsider_gets_404(client: Client, draft: Draft) -> None:
    User.objects.create_user("charlie", password="pw-charlie-123")
    client.login(username="charlie", password="pw-charlie-123")
    assert client.get(f"/tickets/{draft.ticket_id}/").status_code == 404
    assert client.get("/").status_code == 404
    response = client.post(f"/tickets/{draft.ticket_id}/drafts/{draft.pk}/approve", {"body": "hi"})
    assert response.status_code == 404
    assert OutboundEmail.objects.count() == 0


def test_anonymous_visitors_are_sent_to_login(client: Client, draft: Draft) -> None:
    response = client.get(f"/tickets/{draft.ticket_id}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_queue_runs_a_fixed_number_of_queries(client: Client, draft: Draft, agent: User,
                                                  django_assert_num_queries: Any) -> None:
    for i in range(5):
        builders.ticket(subject=f"T{i}", body="b", from_email="x@example.com", intent=draft.ticket.intent)
    client.force_login(agent)
    # session, user, group check, tickets page
    with django_assert_num_queries(4):
        response = client.get("/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"T4" in response.content


def test_a_reply_to_an_email_ticket_carries_threading_headers_and_threads_back(agent: User,
                                                                              smtp_server: Any) -> None:
    from dataclasses import replace

    from tests.triage.intake.test_ingest import mail
    from triage.intake.ingest import email_ingest

    first = mail("first@example.com", references=("older@example.com",), from_email="ana.thread@example.com")
    ticket = email_ingest(first, provider="mime").ticket
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
    draft = Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                                 body="Your order is on its way.")
    Ticket.objects.filter(pk=ticket.pk).update(status="awaiting_review")
    review = services.draft_approve(ticket_id=ticket.pk, draft_id=draft.pk, user=agent, final_text=None)
    with smtp(smtp_server):
        services.outbound_send(outbound_id=review.outbound_email.pk)
    [sent] = smtp_server.to("ana.thread@example.com")
    assert sent["In-Reply-To"] == "<first@example.com>"
    assert sent["References"] == "<older@example.com> <first@example.com>"
    assert sent["Subject"] == f"Re: Where is my order? [{ticket.token}]"
    assert f"support+{ticket.token}@tierdesk.localhost" in sent["Reply-To"]
    assert "Auto-Submitted" not in sent  # a person approved it: not automatic mail

    answer = replace(mail("answer@example.com"), in_reply_to=sent["Message-ID"].strip().strip("<>"), subject="Re: hi")
    result = email_ingest(answer, provider="mime")
    assert result.ticket == ticket and result.outcome == "reopened"


def test_a_send_whose_worker_died_is_sent_again_with_the_same_message_id(draft: Draft, agent: User,
                                                                        smtp_server: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    review = services.draft_approve(ticket_id=draft.ticket_id, draft_id=draft.pk, user=agent, final_text=None)
    outbound = OutboundEmail.objects.get(review=review)
    # The worker claimed the row and died before recording the result.
    OutboundEmail.objects.filter(pk=outbound.pk).update(status="sending", attempts=1,
                                                        claimed_at=timezone.now() - timedelta(minutes=3))
    with smtp(smtp_server):
        assert services.outbound_send(outbound_id=outbound.pk) is False  # a fresh claim is left alone
        OutboundEmail.objects.filter(pk=outbound.pk).update(claimed_at=timezone.now() - timedelta(minutes=11))
        assert services.stalled_work_requeue() == 1  # the sweeper picks the abandoned send up
        assert services.outbound_send(outbound_id=outbound.pk) is True
    outbound.refresh_from_db()
    assert outbound.status == "sent" and outbound.attempts == 2
    assert [m["Message-ID"].strip() for m in smtp_server.to("ana@example.com")].count(outbound.message_id) == 1
