"""Agents leave internal notes on a ticket; the ticket page shows them and the ticket's audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support import builders
from triage import corrections
from triage.models import AuditEvent, Intent, Ticket, TicketNote, TriageRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent() -> User:
    user = User.objects.create_user("nora", password="pw")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def ticket() -> Ticket:
    intent = Intent.objects.create(name="track_order")
    Intent.objects.create(name="get_refund")
    ticket = builders.ticket(subject="Parcel", body="Where is it?", from_email="c@example.com", intent=intent,
                                   urgency="normal", sentiment="neutral", status="awaiting_review")
    TriageRun.objects.create(ticket=ticket, tier="nano", engine="local", model="m", intent=intent, urgency="normal",
                             sentiment="neutral", language="en", confidence=0.7, summary="s")
    return ticket


def test_an_agent_adds_a_note_and_sees_the_audit_trail(client: Client, agent: User, ticket: Ticket) -> None:
    client.force_login(agent)
    corrections.ticket_correct(ticket=ticket, user=agent, field="intent", value="get_refund")
    page = client.post(f"/tickets/{ticket.pk}/notes", {"body": "Customer called: <b>wants</b> a refund."},
                       follow=True).content.decode()
    note = TicketNote.objects.get()
    assert (note.ticket, note.user, note.body) == (ticket, agent, "Customer called: <b>wants</b> a refund.")
    assert "Customer called: &lt;b&gt;wants&lt;/b&gt; a refund." in page  # shown as text, never as markup
    trail = page[page.index('data-testid="audit-trail"'):]
    assert trail.index("ticket.correct.intent") < trail.index("ticket.note")
    assert "intent=track_order" in trail and "intent=get_refund" in trail
    assert AuditEvent.objects.filter(action="ticket.note", object_id=str(ticket.pk)).count() == 1


def test_an_empty_or_oversized_note_is_refused(client: Client, agent: User, ticket: Ticket) -> None:
    client.force_login(agent)
    empty = client.post(f"/tickets/{ticket.pk}/notes", {"body": "   "}, follow=True).content.decode()
    assert "write something in the note" in empty
    huge = client.post(f"/tickets/{ticket.pk}/notes", {"body": "x" * 10_001}, follow=True).content.decode()
    assert "at most 10,000 characters; this one has 10,001" in huge
    assert not TicketNote.objects.exists()


def test_outsiders_cannot_add_notes(client: Client, ticket: Ticket) -> None:
    User.objects.create_user("someone", password="pw")
    client.login(username="someone", password="pw")
    assert client.post(f"/tickets/{ticket.pk}/notes", {"body": "hi"}).status_code == 404
    assert client.post("/tickets/999999/notes", {"body": "hi"}).status_code == 404
    assert not TicketNote.objects.exists()
