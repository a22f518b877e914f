"""The composer: an agent writes a reply from scratch, from a macro or from the draft, and the thread shows what
was actually sent. Macros are managed by admins, offered by group, and filled from the ticket; a reply with an
unfilled blank is never sent."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings

from tests.support import builders
from triage import blanks, macros, services
from triage.errors import ApplicationError
from triage.llm import replies
from triage.models import (
    AuditEvent,
    Draft,
    Intent,
    Macro,
    Message,
    OutboundEmail,
    ReviewAction,
    RouteDecision,
    Ticket,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DRAFT = "Hi Ana,\n\nYour order left our warehouse yesterday.\n\nKind regards,\nCustomer Support"


def member(username: str, *groups: str) -> User:
    user = User.objects.create_user(username, password=f"pw-{username}-123", first_name=username.title())
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def alice() -> User:
    return member("alice", "agents")


@pytest.fixture
def ada() -> User:
    return member("ada", "admins")


@pytest.fixture
def needs_human() -> Ticket:
    return builders.ticket(subject="Parcel damaged", body="My order #AB-48213 arrived broken. What now?",
                                 from_email="ana.lopez@example.com", from_name="Ana Lopez", status="needs_human",
                                 lane="human")


@pytest.fixture
def drafted() -> Draft:
    intent = Intent.objects.create(name="track_order")
    ticket = builders.ticket(subject="Where is my order?", body="Nothing yet.", from_email="ana@example.com",
                                   from_name="Ana", status="awaiting_review", intent=intent, lane="mini")
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
    return Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                                body=DRAFT, grounded=True)


# --- Sending from the composer -------------------------------------------------------------------

def test_a_reply_written_from_scratch_on_a_needs_human_ticket_is_queued_once_and_recorded(
    needs_human: Ticket, alice: User
) -> None:
    review = services.reply_send(ticket_id=needs_human.pk, user=alice, text="  Hi Ana, a new one is on its way.\n",
                                 expected_revision=needs_human.revision)
    assert review.action == ReviewAction.Action.COMPOSE and review.draft is None
    assert review.final_text == "Hi Ana, a new one is on its way."
    [outbound] = OutboundEmail.objects.all()
    assert outbound.review == review and outbound.body == review.final_text
    assert outbound.to_email == "ana.lopez@example.com"
    assert outbound.subject == f"Re: Parcel damaged [{needs_human.token}]"
    needs_human.refresh_from_db()
    assert needs_human.status == "approved" and needs_human.first_response_at is not None
    assert needs_human.revision == 2
    assert AuditEvent.objects.filter(action="reply.send", object_id=str(needs_human.pk), actor=alice).count() == 1


def test_a_reply_from_scratch_sets_the_pending_draft_aside(drafted: Draft, alice: User) -> None:
    services.reply_send(ticket_id=drafted.ticket_id, user=alice, text="Hi Ana, it arrives tomorrow.",
                        expected_revision=None)
    drafted.refresh_from_db()
    assert drafted.status == Draft.Status.SUPERSEDED
    with pytest.raises(ApplicationError) as err:  # approving it now would send a second answer
        services.draft_approve(ticket_id=drafted.ticket_id, draft_id=drafted.pk, user=alice, final_text=None)
    assert err.value.status == 409
    assert OutboundEmail.objects.count() == 1


def test_an_empty_reply_is_refused(needs_human: Ticket, alice: User) -> None:
    with pytest.raises(ApplicationError, match="composer is empty"):
        services.reply_send(ticket_id=needs_human.pk, user=alice, text=" \n ", expected_revision=None)
    assert ReviewAction.objects.count() == 0 and OutboundEmail.objects.count() == 0


def test_a_reply_with_blanks_is_refused_by_the_composer_and_by_approval(
    needs_human: Ticket, drafted: Draft, alice: User
) -> None:
    text = "Hi Ana, your order [[order number]] ships on [[date]]. Again: [[order number]]."
    with pytest.raises(ApplicationError) as err:
        services.reply_send(ticket_id=needs_human.pk, user=alice, text=text, expected_revision=None)
    assert err.value.message == "Fill in the highlighted blanks before sending: [[order number]], [[date]]"
    with pytest.raises(ApplicationError, match=r"Fill in the highlighted blanks before sending: \[\[order number\]\]"):
        services.draft_approve(ticket_id=drafted.ticket_id, draft_id=drafted.pk, user=alice, final_text=text)
    # A draft that itself holds a blank cannot be approved as it stands either.
    Draft.objects.filter(pk=drafted.pk).update(body="Hi Ana, order [[order number]] is on its way.")
    with pytest.raises(ApplicationError, match="highlighted blanks"):
        services.draft_approve(ticket_id=drafted.ticket_id, draft_id=drafted.pk, user=alice, final_text=None)
    assert OutboundEmail.objects.count() == 0 and ReviewAction.objects.count() == 0
    drafted.refresh_from_db()
    assert drafted.status == Draft.Status.PENDING


def test_the_page_highlights_a_pending_drafts_blanks_and_says_why_it_cannot_be_approved(
    client: Client, drafted: Draft, alice: User
) -> None:
    Draft.objects.filter(pk=drafted.pk).update(body="Hi Ana, order [[order number]] <b>ships</b>.")
    client.force_login(alice)
    html = client.get(f"/tickets/{drafted.ticket_id}/").content.decode()
    assert 'Hi Ana, order <mark class="blank">[[order number]]</mark> &lt;b&gt;ships&lt;/b&gt;.' in html
    assert "Fill in the highlighted blanks before sending: [[order number]]" in html


def test_blanks_are_single_line_bracketed_slots_of_at_most_sixty_characters() -> None:
    assert blanks.blanks("[[first name]] and [[order number]] and [[first name]]") == [
        "[[first name]]", "[[order number]]"]
    assert blanks.blanks("a [[list]] of [x] and [[]] and [[two\nlines]] and [[" + "x" * 61 + "]]") == ["[[list]]"]
    assert blanks.refusal("nothing to fill") is None


def test_a_reply_repeating_the_models_instructions_is_refused(needs_human: Ticket, alice: User,
                                                             settings: Any) -> None:
    with pytest.raises(ApplicationError, match="confidential instructions"):
        services.reply_send(ticket_id=needs_human.pk, user=alice, text=f"Sure! {settings.PROMPT_CANARY}",
                            expected_revision=None)
    assert OutboundEmail.objects.count() == 0


def test_a_stale_composer_is_refused_naming_who_changed_what_and_nothing_is_saved(
    client: Client, drafted: Draft, alice: User
) -> None:
    bob = member("bob", "agents")
    opened_at = drafted.ticket.revision
    services.draft_reject(ticket_id=drafted.ticket_id, draft_id=drafted.pk, user=bob, reason="Wrong parcel",
                          expected_revision=opened_at)
    with pytest.raises(ApplicationError) as err:
        services.reply_send(ticket_id=drafted.ticket_id, user=alice, text="Hi", expected_revision=opened_at)
    assert err.value.status == 409 and "bob rejected the draft" in err.value.message

    client.force_login(alice)
    response = client.post(f"/tickets/{drafted.ticket_id}/reply",
                           {"body": "My carefully written reply", "expected_revision": opened_at}, **HTMX)
    assert response.status_code == 409 and response["HX-Retarget"] == "#ticket-alert"
    html = response.content.decode()
    assert "bob rejected the draft" in html and "My carefully written reply" in html  # the agent's text is kept
    assert not ReviewAction.objects.filter(action="compose").exists() and OutboundEmail.objects.count() == 0


def test_sending_through_the_page_answers_with_the_ticket_and_an_empty_composer(
    client: Client, needs_human: Ticket, alice: User
) -> None:
    client.force_login(alice)
    response = client.post(f"/tickets/{needs_human.pk}/reply",
                           {"body": "Hi Ana, a replacement is on its way.", "expected_revision": needs_human.revision},
                           **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Reply queued for sending." in html
    composer = html[html.index('id="composer-body"'):html.index("</textarea>", html.index('id="composer-body"'))]
    assert "hx-preserve" not in composer and composer.endswith(">")  # empty, and not kept from before the send
    assert "Hi Ana, a replacement is on its way." in html  # in the thread, on its way
    assert OutboundEmail.objects.get().body == "Hi Ana, a replacement is on its way."


def test_sending_a_reply_started_from_the_draft_approves_the_draft_with_its_diff(
    client: Client, drafted: Draft, alice: User
) -> None:
    client.force_login(alice)
    edited = DRAFT.replace("yesterday", "this morning")
    response = client.post(f"/tickets/{drafted.ticket_id}/reply",
                           {"body": edited, "from_draft": drafted.pk, "expected_revision": drafted.ticket.revision})
    assert response.status_code == 302
    review = ReviewAction.objects.get()
    assert review.action == "edit_approve" and review.draft == drafted and review.edit_distance
    assert "+Your order left our warehouse this morning." in review.diff
    assert OutboundEmail.objects.get().body == edited


def test_a_blank_refused_through_the_page_says_which_blanks(client: Client, needs_human: Ticket,
                                                           alice: User) -> None:
    client.force_login(alice)
    response = client.post(f"/tickets/{needs_human.pk}/reply", {"body": "Order [[order number]]"}, **HTMX)
    assert response.status_code == 400
    assert "Fill in the highlighted blanks before sending: [[order number]]" in response.content.decode()


def test_an_outsider_or_anonymous_visitor_gets_nothing(client: Client, needs_human: Ticket) -> None:
    macro = Macro.objects.create(name="Thanks", body="Thanks {{first_name}}")
    response = client.post(f"/tickets/{needs_human.pk}/reply", {"body": "Hi"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(member("charlie"))
    assert client.post(f"/tickets/{needs_human.pk}/reply", {"body": "Hi"}).status_code == 404
    assert client.get(f"/tickets/{needs_human.pk}/macros").status_code == 404
    assert client.get(f"/tickets/{needs_human.pk}/macros/{macro.pk}").status_code == 404
    assert client.get("/settings/macros").status_code == 404
    assert OutboundEmail.objects.count() == 0


# --- The thread -----------------------------------------------------------------------------------

def test_the_thread_shows_what_was_sent_not_the_draft(client: Client, drafted: Draft, alice: User) -> None:
    Message.objects.create(ticket=drafted.ticket, direction="inbound", message_id="ana-1@example.com",
                           from_email="ana@example.com", from_name="Ana", text="Where is my order?")
    edited = DRAFT.replace("yesterday", "this morning")
    review = services.draft_approve(ticket_id=drafted.ticket_id, draft_id=drafted.pk, user=alice, final_text=edited)
    outbound = review.outbound_email
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        services.outbound_send(outbound_id=outbound.pk)
    client.force_login(alice)
    html = client.get(f"/tickets/{drafted.ticket_id}/").content.decode()
    thread = html[html.index('data-testid="thread"'):html.index("</ol>", html.index('data-testid="thread"'))]
    assert "Where is my order?" in thread
    assert "Your order left our warehouse this morning." in thread
    assert "Your order left our warehouse yesterday.\n" not in thread.split('data-testid="thread-diff"')[0]
    assert 'data-testid="sent-by">alice<' in thread and 'data-testid="delivery-status">sent' in thread
    # Recorded twice (the outbox and the outbound message kept for threading), shown once.
    assert thread.count('data-testid="thread-outbound"') == 1
    assert "Show changes from the draft" in thread
    assert '<span class="add">+Your order left our warehouse this morning.</span>' in thread
    assert thread.index("Where is my order?") < thread.index("this morning")


def test_a_ticket_without_messages_shows_its_body_then_the_reply(client: Client, needs_human: Ticket,
                                                                 alice: User) -> None:
    services.reply_send(ticket_id=needs_human.pk, user=alice, text="Hi Ana, sorry about that.",
                        expected_revision=None)
    client.force_login(alice)
    html = client.get(f"/tickets/{needs_human.pk}/").content.decode()
    assert "<h2>Conversation</h2>" in html
    assert html.index("arrived broken") < html.index("Hi Ana, sorry about that.")
    assert 'data-testid="delivery-status">sending…' in html
    assert "wrote and sent a reply" in html


# --- Macros: visibility and filling ---------------------------------------------------------------

def test_only_macros_for_everyone_or_the_agents_groups_are_offered(client: Client, needs_human: Ticket,
                                                                   alice: User) -> None:
    billing = Group.objects.create(name="billing")
    Macro.objects.create(name="Everyone", body="For all")
    Macro.objects.create(name="Billing only", body="For billing", group=billing)
    Macro.objects.create(name="Agents only", body="For agents", group=Group.objects.get(name="agents"))
    Macro.objects.create(name="Retired", body="Old", active=False)
    assert [m.name for m in macros.macros_for_user(alice)] == ["Agents only", "Everyone"]
    bea = member("bea", "agents", "billing")
    assert [m.name for m in macros.macros_for_user(bea)] == ["Agents only", "Billing only", "Everyone"]

    client.force_login(alice)
    picker = client.get(f"/tickets/{needs_human.pk}/macros", **HTMX).content.decode()
    assert "Everyone" in picker and "Agents only" in picker
    assert "Billing only" not in picker and "Retired" not in picker
    hidden = Macro.objects.get(name="Billing only")
    assert client.get(f"/tickets/{needs_human.pk}/macros/{hidden.pk}").status_code == 404


def test_the_picker_runs_a_fixed_number_of_queries(client: Client, needs_human: Ticket, alice: User,
                                                   django_assert_num_queries: Any) -> None:
    client.force_login(alice)
    for n in (1, 8):
        for i in range(n):
            Macro.objects.create(name=f"Macro {n}-{i}", body="Hi {{first_name}}")
        # session, user, groups, access check, the macros
        with django_assert_num_queries(5):
            response = client.get(f"/tickets/{needs_human.pk}/macros", **HTMX)
        assert response.content.decode().count('data-testid="macro-option"') == Macro.objects.count()


def test_placeholders_are_filled_from_the_ticket_and_the_rest_become_blanks(
    client: Client, needs_human: Ticket, alice: User
) -> None:
    macro = Macro.objects.create(
        name="Damaged", body="Hi {{first_name}} {{ last_name }},\n\nAbout order {{order_number}} ({{ticket_token}}): "
                             "we wrote to {{email}}.\n\n{{agent_name}}")
    client.force_login(alice)
    filled = client.get(f"/tickets/{needs_human.pk}/macros/{macro.pk}").json()
    assert filled == {
        "text": f"Hi Ana Lopez,\n\nAbout order AB-48213 ({needs_human.token}): we wrote to ana.lopez@example.com."
                "\n\nAlice",
        "blanks": [],
    }
    bare = builders.ticket(subject="Hello", body="Something is wrong.", from_email="kim@example.com",
                                 from_name="Kim", status="needs_human")
    filled = client.get(f"/tickets/{bare.pk}/macros/{macro.pk}").json()
    assert filled["text"].startswith("Hi Kim [[last name]],\n\nAbout order [[order number]] (")
    assert filled["blanks"] == ["[[last name]]", "[[order number]]"]


@pytest.mark.parametrize(("text", "number"), [
    ("Order #XX-12345 never came", "XX-12345"),
    ("my order number is 4821937", "4821937"),
    ("order #4821, sorry", "4821"),
    ("the 2024-05-01 delivery of 3 items", None),
    ("ticket TD-ABCD1234 again", None),
    ("ticket TD-12345678 again", None),
    ("I live at 10115 Berlin", None),  # a bare number may be a postcode or a phone: only a labelled one counts
])
def test_the_order_number_is_the_first_order_number_like_token(text: str, number: str | None) -> None:
    assert replies.order_number(text) == number


def test_an_order_number_in_a_later_message_is_found(client: Client, needs_human: Ticket, alice: User) -> None:
    Ticket.objects.filter(pk=needs_human.pk).update(body="It came broken.")
    Message.objects.create(ticket=needs_human, direction="inbound", message_id="later@example.com",
                           text="Sorry, the order is 77123456.")
    macro = Macro.objects.create(name="Order", body="Order {{order_number}}")
    assert macros.macro_fill(macro_id=macro.pk, ticket_id=needs_human.pk, user=alice).text == "Order 77123456"


# --- Macros: the admin's pages --------------------------------------------------------------------

def test_an_admin_adds_edits_and_deactivates_a_macro_and_each_change_is_audited(client: Client, ada: User) -> None:
    client.force_login(ada)
    response = client.post("/settings/macros", {"name": " Refund  sent ", "body": "Hi {{first_name}}, done.",
                                                "group": ""})
    assert response.status_code == 302
    macro = Macro.objects.get()
    assert macro.name == "Refund sent" and macro.group is None and macro.created_by == ada and macro.active
    agents = Group.objects.get_or_create(name="agents")[0]
    response = client.post(f"/settings/macros/{macro.pk}", {"name": "Refund sent", "body": "Hi {{first_name}}.",
                                                            "group": agents.pk, "active": "on"})
    assert response.status_code == 302
    response = client.post(f"/settings/macros/{macro.pk}/active", {"active": "0"})
    assert response.status_code == 302
    macro.refresh_from_db()
    assert macro.body == "Hi {{first_name}}." and macro.group == agents and not macro.active
    events = list(AuditEvent.objects.filter(object_type="Macro", object_id=str(macro.pk)).order_by("id"))
    assert [e.action for e in events] == ["macro.create", "macro.update", "macro.deactivate"]
    assert events[1].before == {"body": "Hi {{first_name}}, done.", "group": None}
    assert events[1].after == {"body": "Hi {{first_name}}.", "group": "agents"}
    assert all(e.actor == ada for e in events)
    assert not macros.macros_for_user(member("bea", "agents")).exists()


def test_macro_validation_errors_are_shown_and_what_was_typed_is_kept(client: Client, ada: User) -> None:
    Macro.objects.create(name="Welcome", body="Hello")
    client.force_login(ada)
    cases = [
        ({"name": "", "body": "Hi"}, "give the macro a name"),
        ({"name": "New", "body": "  "}, "write the macro&#x27;s text"),
        ({"name": "welcome", "body": "Hi again"}, "there is already a macro called &#x27;welcome&#x27;"),
        ({"name": "Typo", "body": "Hi {{frist_name}}"}, "{{frist_name}} is not a placeholder"),
        ({"name": "Long", "body": "x" * 10_001}, "at most 10,000 characters"),
        ({"name": "Grouped", "body": "Hi", "group": "999999"}, "that group does not exist"),
    ]
    for form, error in cases:
        response = client.post("/settings/macros", form)
        html = response.content.decode()
        assert response.status_code == 400 and error in html, (form, html[:200])
        if form["body"].strip():
            assert form["body"][:50] in html  # the admin's text is still in the form
    assert Macro.objects.count() == 1
    assert not AuditEvent.objects.filter(object_type="Macro").exists()


def test_renaming_onto_another_macros_name_is_refused(ada: User) -> None:
    Macro.objects.create(name="Welcome", body="Hello")
    other = macros.macro_create(actor=ada, name="Goodbye", body="Bye", group_id=None)
    with pytest.raises(ApplicationError, match="already a macro"):
        macros.macro_update(actor=ada, macro_id=other.pk, name="WELCOME", body="Bye", group_id=None, active=True)


def test_agents_cannot_manage_macros(client: Client, alice: User) -> None:
    macro = Macro.objects.create(name="Welcome", body="Hello")
    client.force_login(alice)
    assert client.get("/settings/macros").status_code == 404
    assert client.post("/settings/macros", {"name": "Mine", "body": "Hi"}).status_code == 404
    assert client.post(f"/settings/macros/{macro.pk}/active", {"active": "0"}).status_code == 404
    with pytest.raises(ApplicationError):
        macros.macro_create(actor=alice, name="Mine", body="Hi", group_id=None)
    assert Macro.objects.count() == 1 and Macro.objects.get().active


def test_the_macro_list_runs_a_fixed_number_of_queries(client: Client, ada: User,
                                                       django_assert_num_queries: Any) -> None:
    group = Group.objects.create(name="billing")
    client.force_login(ada)
    for n in (1, 10):
        for i in range(n):
            Macro.objects.create(name=f"Macro {n}-{i}", body="Hi {{first_name}}", group=group if i % 2 else None,
                                 created_by=ada)
        # session, user, groups, macros with their groups and authors, the groups to choose from
        with django_assert_num_queries(5):
            response = client.get("/settings/macros")
        assert response.content.decode().count('data-testid="macro-row"') == Macro.objects.count()
