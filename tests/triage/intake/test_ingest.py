"""Inbound email becomes tickets and thread replies: threading, dedupe, re-opening, loops and bounces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from django.db import connection

from triage.intake.ingest import email_ingest, thread_text
from triage.intake.types import Attachment, InboundEmail
from triage.models import Draft, Message, OutboundEmail, ReviewAction, RouteDecision, Ticket

pytestmark = pytest.mark.django_db


def mail(message_id: str = "m1@example.com", **kw: Any) -> InboundEmail:
    base = InboundEmail(
        message_id=message_id, in_reply_to=None, references=(), subject="Where is my order?",
        from_email="ana@example.com", from_name="Ana Silva", to=("support@tierdesk.localhost",), cc=(), date=None,
        text="Hi, my order has not arrived.\n\n> quoted older text", html="",
        reply_text="Hi, my order has not arrived.",
    )
    return replace(base, **kw)


def test_a_new_email_opens_a_ticket_with_the_senders_words(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks() as queued:
        result = email_ingest(mail(), provider="postmark", event_id="pm-1")
    assert result.outcome == "created" and len(queued) == 1
    ticket = result.ticket
    assert (ticket.channel, ticket.status, ticket.body) == ("email", "new", "Hi, my order has not arrived.")
    assert ticket.messages.get().provider_event_id == "pm-1"


def test_the_same_message_twice_is_stored_once() -> None:
    first = email_ingest(mail(), provider="postmark", event_id="pm-1")
    again = email_ingest(mail(), provider="mailgun", event_id="mg-9")
    assert again.outcome == "duplicate" and again.ticket == first.ticket
    assert Ticket.objects.count() == 1 and Message.objects.count() == 1


def _decided(ticket: Ticket) -> None:
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini")
    Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m", body="x")
    Ticket.objects.filter(pk=ticket.pk).update(status="awaiting_review")


@pytest.mark.parametrize("link", ["in_reply_to", "references", "subject_token", "plus_address"])
def test_a_reply_joins_its_ticket_and_reopens_it(link: str, django_capture_on_commit_callbacks: Any) -> None:
    ticket = email_ingest(mail(), provider="mime").ticket
    _decided(ticket)
    reply = mail("m2@example.com", reply_text="It arrived broken.", text="It arrived broken.")
    reply = {
        "in_reply_to": replace(reply, in_reply_to="m1@example.com"),
        "references": replace(reply, references=("unknown@x", "m1@example.com")),
        "subject_token": replace(reply, subject=f"Re: Where is my order? [{ticket.token}]"),
        "plus_address": replace(reply, to=(f"support+{ticket.token.lower()}@tierdesk.localhost",)),
    }[link]
    with django_capture_on_commit_callbacks() as queued:
        result = email_ingest(reply, provider="mime")
    assert result.outcome == "reopened" and result.ticket == ticket and len(queued) == 1
    ticket.refresh_from_db()
    assert ticket.status == "new"
    assert Draft.objects.get(ticket=ticket).status == "superseded"
    assert thread_text(ticket).startswith("It arrived broken.\n\nEarlier in this conversation:\n- Hi, my order")


def test_a_reply_to_our_sent_reply_threads_by_its_message_id(django_user_model: Any) -> None:
    ticket = email_ingest(mail(), provider="mime").ticket
    _decided(ticket)
    user = django_user_model.objects.create(username="alice")
    review = ReviewAction.objects.create(ticket=ticket, user=user, action="approve", drafted_text="x")
    OutboundEmail.objects.create(ticket=ticket, review=review, to_email="ana@example.com", subject="Re: x",
                                 body="x", message_id="<tierdesk.1.abc@tierdesk.localhost>")
    result = email_ingest(mail("m3@example.com", in_reply_to="tierdesk.1.abc@tierdesk.localhost"), provider="mime")
    assert result.ticket == ticket and result.outcome == "reopened"


def test_an_unrelated_email_opens_a_new_ticket() -> None:
    email_ingest(mail(), provider="mime")
    other = email_ingest(mail("m9@example.com", in_reply_to="nobody@x", subject="New question"), provider="mime")
    assert other.outcome == "created" and Ticket.objects.count() == 2


def test_an_auto_reply_is_kept_but_starts_no_triage(django_capture_on_commit_callbacks: Any) -> None:
    ticket = email_ingest(mail(), provider="mime").ticket
    _decided(ticket)
    with django_capture_on_commit_callbacks() as queued:
        result = email_ingest(mail("ooo@example.com", in_reply_to="m1@example.com", auto_submitted=True),
                              provider="mime")
    assert result.outcome == "appended" and queued == []
    ticket.refresh_from_db()
    assert ticket.status == "awaiting_review"


def test_automatic_mail_with_no_thread_is_stored_as_ignored(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks() as queued:
        result = email_ingest(mail("news@example.com", auto_submitted=True), provider="mime")
    assert result.ticket.status == "ignored" and queued == []


def test_a_bounce_is_recorded_against_the_reply_that_bounced(django_user_model: Any) -> None:
    ticket = email_ingest(mail(), provider="mime").ticket
    user = django_user_model.objects.create(username="alice")
    review = ReviewAction.objects.create(ticket=ticket, user=user, action="approve", drafted_text="x")
    outbound = OutboundEmail.objects.create(ticket=ticket, review=review, to_email="ana@example.com",
                                            subject="Re: x", body="x", status="sent",
                                            message_id="<tierdesk.42.abc123@tierdesk.localhost>")
    result = email_ingest(mail("dsn@mx.example.com", is_bounce=True, text="550 5.1.1 user unknown",
                               bounced_message_id="tierdesk.42.abc123@tierdesk.localhost"), provider="mime")
    assert result.outcome == "bounce" and Ticket.objects.count() == 1
    outbound.refresh_from_db()
    assert outbound.status == "bounced" and "user unknown" in outbound.bounce_detail


def test_attachments_are_stored_outside_the_database(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    email = mail(attachments=(Attachment("invoice ü.pdf", "application/pdf", b"%PDF-1.4 data"),
                              Attachment("logo.png", "image/png", b"\x89PNG", content_id="logo1", inline=True)))
    message = email_ingest(email, provider="mime").message
    stored = list(message.attachments.order_by("id"))
    assert [(a.filename, a.size, a.inline) for a in stored] == [("invoice ü.pdf", 13, False), ("logo.png", 4, True)]
    assert stored[0].file.read() == b"%PDF-1.4 data"
    assert str(tmp_path) in stored[0].file.path


@pytest.mark.django_db(transaction=True)
def test_a_thousand_concurrent_deliveries_of_one_message_store_it_once() -> None:
    def deliver(i: int) -> str:
        try:
            return email_ingest(mail("burst@example.com"), provider="postmark", event_id="pm-burst").outcome
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(deliver, range(1000)))
    assert outcomes.count("created") == 1 and outcomes.count("duplicate") == 999
    assert Ticket.objects.count() == 1 and Message.objects.count() == 1


def test_agents_download_attachments_and_outsiders_get_404(client: Any, django_user_model: Any, settings: Any,
                                                           tmp_path: Any) -> None:
    from django.contrib.auth.models import Group

    settings.MEDIA_ROOT = str(tmp_path)
    email = mail(attachments=(Attachment("<script>.html", "text/html", b"<script>alert(1)</script>"),))
    result = email_ingest(email, provider="mime")
    attachment = result.message.attachments.get()
    url = f"/tickets/{result.ticket.pk}/attachments/{attachment.pk}"
    outsider = django_user_model.objects.create_user("charlie", password="pw-charlie-1")
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    agent = django_user_model.objects.create_user("alice", password="pw-alice-1")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    client.force_login(agent)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/octet-stream"
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"
    assert client.get(f"/tickets/{result.ticket.pk + 1}/attachments/{attachment.pk}").status_code == 404
    page = client.get(f"/tickets/{result.ticket.pk}/").content.decode()
    assert "&lt;script&gt;.html" in page and 'data-testid="thread"' in page
