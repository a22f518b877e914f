"""The agents' queue: SLA order, filters, search, keyset pages, assignment and bulk actions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from tests.support import builders
from triage import selectors, services, sla
from triage.errors import ApplicationError
from triage.models import AuditEvent, Draft, Intent, OutboundEmail, ReviewAction, RouteDecision, Ticket

pytestmark = pytest.mark.django_db


def _agent(name: str, group: str = "agents") -> User:
    user = User.objects.create_user(name, password=f"pw-{name}-123")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def alice() -> User:
    return _agent("alice")


def _ticket(subject: str, *, urgency: str = "normal", age_minutes: int = 0, status: str = "awaiting_review",
            **fields: Any) -> Ticket:
    ticket = builders.ticket(subject=subject, body=f"Message about {subject}", from_email="c@example.com",
                                   urgency=urgency, status=status, **fields)
    if age_minutes:
        created = timezone.now() - timedelta(minutes=age_minutes)
        Ticket.objects.filter(pk=ticket.pk).update(
            created_at=created, sla_due_at=sla.due_at(start=created, urgency=urgency))
        ticket.refresh_from_db()
    return ticket


def _drafted(subject: str, **fields: Any) -> Ticket:
    ticket = _ticket(subject, **fields)
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
    Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                         body=f"Reply about {subject}", grounded=True)
    return ticket


def _page(user: User, **filters: str) -> list[str]:
    page = selectors.queue_page(filters=selectors.queue_filters_validate(filters), user=user)
    return [t.subject for t in page.tickets]


def test_a_ticket_is_due_by_its_urgency_target_from_arrival() -> None:
    urgent = _ticket("urgent", urgency="urgent")
    low = _ticket("low", urgency="low")
    assert urgent.sla_due_at - urgent.created_at == timedelta(minutes=15)
    assert low.sla_due_at - low.created_at == timedelta(hours=24)


def test_the_queue_is_sorted_by_sla_due_time_not_arrival(alice: User) -> None:
    _ticket("low, new", urgency="low")
    _ticket("normal, an hour old", urgency="normal", age_minutes=60)
    _ticket("urgent, new", urgency="urgent")
    _ticket("high, new", urgency="high")
    assert _page(alice) == ["urgent, new", "high, new", "normal, an hour old", "low, new"]


def test_the_default_queue_shows_open_tickets_and_any_status_shows_all(alice: User) -> None:
    _ticket("waiting")
    _ticket("answered", status="approved")
    _ticket("automatic", status="ignored")
    assert _page(alice) == ["waiting"]
    assert sorted(_page(alice, status="")) == ["answered", "automatic", "waiting"]
    assert _page(alice, status="approved") == ["answered"]


def test_each_filter_narrows_the_queue(alice: User) -> None:
    bob = _agent("bob")
    refund = Intent.objects.create(name="get_refund")
    _ticket("refund on large", intent=refund, lane="large", engine="openai", assignee=bob)
    _ticket("plain mini", lane="mini", engine="local", assignee=alice, urgency="high")
    _ticket("unassigned", lane="human", urgency="low")
    assert _page(alice, intent="get_refund") == ["refund on large"]
    assert _page(alice, lane="mini") == ["plain mini"]
    assert _page(alice, engine="openai") == ["refund on large"]
    assert _page(alice, urgency="low") == ["unassigned"]
    assert _page(alice, assignee="me") == ["plain mini"]
    assert _page(alice, assignee="bob") == ["refund on large"]
    assert _page(alice, assignee="none") == ["unassigned"]


def test_breaching_and_nearly_breaching_tickets_can_be_listed_and_stand_out(client: Client, alice: User) -> None:
    breached = _ticket("breached", urgency="urgent", age_minutes=30)   # 15 min target, 30 min old
    nearly = _ticket("nearly", urgency="high", age_minutes=50)         # 60 min target, 10 min left (17%)
    _ticket("fine", urgency="low", age_minutes=5)
    assert _page(alice, sla="breached") == ["breached"]
    assert _page(alice, sla="at_risk") == ["breached", "nearly"]
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert re.search(rf'class="sla-breached[^"]*" data-ticket-id="{breached.pk}"', html)
    assert re.search(rf'class="sla-warn[^"]*" data-ticket-id="{nearly.pk}"', html)
    assert "Breached" in html and "15 min over" in html


def test_search_finds_words_in_subject_or_message_and_ticket_numbers(alice: User) -> None:
    parcel = _ticket("Parcel never came")
    _ticket("Password reset", )
    assert _page(alice, search="parcel") == ["Parcel never came"]
    assert _page(alice, search="message password") == ["Password reset"]   # words from subject and body
    assert _page(alice, search="never cam") == ["Parcel never came"]       # a substring of the subject
    assert _page(alice, search=f"#{parcel.pk}") == ["Parcel never came"]
    assert _page(alice, search=parcel.token.lower()) == ["Parcel never came"]


def test_keyset_pages_visit_every_ticket_once_forwards_and_back(alice: User) -> None:
    for i in range(7):
        _ticket(f"T{i}", age_minutes=70 - i)  # T0 is due first
    filters = selectors.QueueFilters()
    seen, after, pages = [], None, []
    while True:
        page = selectors.queue_page(filters=filters, user=alice, after=after, size=3)
        pages.append(page)
        seen += [t.subject for t in page.tickets]
        if not page.next_cursor:
            break
        after = page.next_cursor
    assert seen == [f"T{i}" for i in range(7)] and len(pages) == 3
    back = selectors.queue_page(filters=filters, user=alice, before=pages[2].prev_cursor, size=3)
    assert [t.subject for t in back.tickets] == ["T3", "T4", "T5"]
    first = selectors.queue_page(filters=filters, user=alice, before=back.prev_cursor, size=3)
    assert [t.subject for t in first.tickets] == ["T0", "T1", "T2"] and first.prev_cursor is None


def test_a_bad_filter_or_page_link_is_a_clear_400(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.get("/?urgency=extreme")
    assert response.status_code == 400 and "is not a urgency filter" in response.content.decode()
    response = client.get("/?after=not-a-cursor", HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "page link is not valid" in response.content.decode()


def test_the_queue_partial_runs_a_fixed_number_of_queries(client: Client, alice: User,
                                                           django_assert_num_queries: Any) -> None:
    client.force_login(alice)
    intent = Intent.objects.create(name="track_order")

    def count() -> int:
        sla.policy_cache_clear()
        # session, user, groups, SLA policy, one page of tickets (with intent, assignee and pending draft)
        with django_assert_num_queries(5) as captured:
            response = client.get("/", HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        return len(captured)

    _drafted("first", intent=intent, assignee=alice)
    assert count() == 5
    for i in range(30):
        _drafted(f"more {i}", intent=intent, assignee=_agent(f"agent{i}"))
    assert count() == 5


def test_taking_assigning_and_unassigning_are_recorded(alice: User) -> None:
    bob = _agent("bob")
    ticket = _ticket("help")
    services.tickets_bulk(action="take", ticket_ids=[ticket.pk], actor=alice)
    assert Ticket.objects.get(pk=ticket.pk).assignee == alice
    services.tickets_bulk(action="assign", ticket_ids=[ticket.pk], actor=alice, assignee=bob)
    assert Ticket.objects.get(pk=ticket.pk).assignee == bob
    services.tickets_bulk(action="unassign", ticket_ids=[ticket.pk], actor=alice)
    assert Ticket.objects.get(pk=ticket.pk).assignee is None
    trail = list(AuditEvent.objects.filter(action="ticket.assign", object_id=str(ticket.pk))
                 .order_by("id").values_list("before", "after"))
    assert trail == [({"assignee": None}, {"assignee": "alice"}), ({"assignee": "alice"}, {"assignee": "bob"}),
                     ({"assignee": "bob"}, {"assignee": None})]


def test_tickets_cannot_be_given_to_an_outsider(alice: User) -> None:
    outsider = User.objects.create_user("charlie")
    ticket = _ticket("help")
    with pytest.raises(ApplicationError, match="not an active agent"):
        services.ticket_assign(ticket_id=ticket.pk, assignee=outsider, actor=alice)


def test_bulk_approve_sends_each_ready_draft_and_reports_the_rest(alice: User) -> None:
    ready = [_drafted(f"ready {i}") for i in range(3)]
    no_draft = _ticket("nothing drafted", status="needs_human")
    done, failed = services.tickets_bulk(action="approve", ticket_ids=[t.pk for t in ready] + [no_draft.pk],
                                         actor=alice)
    assert done == 3 and failed == [(no_draft.pk, "no draft is waiting for review")]
    assert OutboundEmail.objects.filter(ticket__in=ready).count() == 3
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in ready]).values_list("status", flat=True)) == {"approved"}
    assert all(t.first_response_at for t in Ticket.objects.filter(pk__in=[t.pk for t in ready]))


def test_bulk_reject_needs_a_reason(alice: User) -> None:
    ticket = _drafted("wrong")
    with pytest.raises(ApplicationError, match="say why"):
        services.tickets_bulk(action="reject", ticket_ids=[ticket.pk], actor=alice, reason=" ")
    done, _ = services.tickets_bulk(action="reject", ticket_ids=[ticket.pk], actor=alice, reason="wrong policy")
    assert done == 1 and ReviewAction.objects.get(ticket=ticket).reason == "wrong policy"


def test_the_bulk_bar_refuses_bad_input_clearly(client: Client, alice: User) -> None:
    client.force_login(alice)
    ticket = _ticket("help")
    cases = [({"action": "take"}, "select at least one ticket"),
             ({"action": "explode", "ticket": ticket.pk}, "is not a bulk action"),
             ({"action": "assign", "ticket": ticket.pk}, "choose who"),
             ({"action": "assign", "ticket": ticket.pk, "assignee": "nobody"}, "there is no user"),
             ({"action": "take", "ticket": "12abc"}, "not a ticket number")]
    for data, message in cases:
        response = client.post("/queue/actions", data, HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and message in response["HX-Trigger"], data
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_a_keyboard_approve_returns_the_refreshed_rows_with_a_toast(client: Client, alice: User) -> None:
    client.force_login(alice)
    ticket = _drafted("approve me")
    response = client.post("/queue/actions", {"action": "approve", "ticket": ticket.pk, "status": "open"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "1 ticket approved" in response["HX-Trigger"]
    assert "approve me" not in response.content.decode()  # answered, so it left the open queue
    assert ReviewAction.objects.get(ticket=ticket).action == "approve"


def test_an_outsider_gets_404_from_the_queue_and_its_actions(client: Client) -> None:
    ticket = _ticket("help")
    User.objects.create_user("charlie", password="pw-charlie-123")
    client.login(username="charlie", password="pw-charlie-123")
    assert client.get("/").status_code == 404
    assert client.post("/queue/actions", {"action": "take", "ticket": ticket.pk}).status_code == 404
    assert Ticket.objects.get(pk=ticket.pk).assignee is None


def test_an_urgency_correction_moves_the_due_time(alice: User) -> None:
    from triage import corrections

    ticket = _ticket("help", urgency="normal")
    corrections.ticket_correct(ticket=ticket, user=alice, field="urgency", value="urgent")
    ticket.refresh_from_db()
    assert ticket.sla_due_at - ticket.created_at == timedelta(minutes=15)
