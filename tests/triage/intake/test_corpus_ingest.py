"""The whole email corpus through `manage.py ingest_email`: threaded, deduplicated, loops and bounces handled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.support import builders
from triage.intake.mime import parse_mime
from triage.models import Message, OutboundEmail, ReviewAction, Ticket

pytestmark = pytest.mark.django_db

CORPUS = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "email").glob("*.eml"))


@pytest.fixture
def our_replies(django_user_model: Any) -> dict[str, Ticket]:
    """One ticket per reply of ours that the corpus answers or bounces, keyed by that reply's Message-ID."""
    agent = django_user_model.objects.create(username="alice")
    ours: dict[str, Ticket] = {}
    for path in CORPUS:
        email = parse_mime(path.read_bytes())
        for ref in filter(None, [email.in_reply_to, *email.references, email.bounced_message_id]):
            if ref.startswith("tierdesk.") and ref not in ours:
                ticket = builders.ticket(subject="Earlier question", body="…", from_email="x@example.com",
                                               status="approved")
                review = ReviewAction.objects.create(ticket=ticket, user=agent, action="approve", drafted_text="…")
                OutboundEmail.objects.create(ticket=ticket, review=review, to_email="x@example.com",
                                             subject="Re: Earlier question", body="…", status="sent",
                                             message_id=f"<{ref}>")
                ours[ref] = ticket
    return ours


def test_the_corpus_is_threaded_deduplicated_and_filtered(our_replies: dict[str, Ticket], settings: Any,
                                                          tmp_path: Any, capsys: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    assert len(CORPUS) >= 15 and our_replies
    call_command("ingest_email", *map(str, CORPUS))
    first_counts = (Ticket.objects.count(), Message.objects.count())
    for path in CORPUS:
        email = parse_mime(path.read_bytes())
        if email.is_bounce:
            if email.bounced_message_id in our_replies:
                outbound = OutboundEmail.objects.get(message_id=f"<{email.bounced_message_id}>")
                assert outbound.status == "bounced", path.name
            continue
        message = Message.objects.get(message_id=email.message_id)
        ours = next((r for r in filter(None, [email.in_reply_to, *reversed(email.references)])
                     if r in our_replies), None)
        if ours is not None:
            assert message.ticket == our_replies[ours], path.name
            expected = "approved" if email.auto_submitted else "new"
            assert message.ticket.status == expected, path.name
        elif email.auto_submitted:
            assert message.ticket.status == "ignored", path.name
        else:
            assert message.ticket.status == "new" and message.ticket.channel == "email", path.name
    # Everything again: nothing new is written.
    call_command("ingest_email", *map(str, CORPUS))
    assert (Ticket.objects.count(), Message.objects.count()) == first_counts
    assert "duplicate" in capsys.readouterr().out


def test_unreadable_input_is_reported_and_the_rest_still_taken(tmp_path: Any) -> None:
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(b"")
    with pytest.raises(Exception, match="1 of 2 messages were not taken"):
        call_command("ingest_email", str(garbage), str(CORPUS[0]))
    assert Message.objects.count() == 1


def test_html_mail_is_shown_sanitised_in_a_sandbox(client: Any, admin_user: Any, settings: Any,
                                                   tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    path = next(p for p in CORPUS if p.name == "html_only_script.eml")
    call_command("ingest_email", str(path))
    ticket = Ticket.objects.get()
    client.force_login(admin_user)
    page = client.get(f"/tickets/{ticket.pk}/").content.decode()
    assert 'sandbox=""' in page and "srcdoc=" in page
    assert "<script" not in page.split("srcdoc=", 1)[1].split("</iframe>", 1)[0]
    assert "onerror" not in ticket.messages.get().html
