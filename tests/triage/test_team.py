"""Admins manage the team; roles decide what each person sees; an outsider sees nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support import builders
from triage import team
from triage.access import role_of
from triage.errors import ApplicationError
from triage.models import AuditEvent, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada() -> User:
    user = User.objects.create_user("ada", password="pw-ada-123456")
    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    return user


def test_an_admin_adds_an_agent_who_can_then_sign_in(client: Client, ada: User) -> None:
    client.force_login(ada)
    response = client.post("/settings/team", {"username": "bea", "email": "bea@example.com", "role": "agent",
                                              "password": "a-long-first-password-91"})
    assert response.status_code == 302
    bea = User.objects.get(username="bea")
    assert role_of(bea) == "agent"
    assert AuditEvent.objects.filter(action="user.create", object_id=str(bea.pk)).exists()
    other = Client()
    assert other.login(username="bea", password="a-long-first-password-91")
    assert other.get("/").status_code == 200
    assert other.get("/settings/team").status_code == 404


def test_a_weak_password_or_taken_name_is_refused_with_the_reason(client: Client, ada: User) -> None:
    client.force_login(ada)
    response = client.post("/settings/team", {"username": "bea", "role": "agent", "password": "short"})
    assert response.status_code == 400 and "too short" in response.content.decode()
    assert 'value="bea"' in response.content.decode()  # what was typed is kept
    response = client.post("/settings/team", {"username": "ADA", "role": "agent", "password": "another-long-pass-77"})
    assert response.status_code == 400 and "already a user" in response.content.decode()
    assert not User.objects.filter(username="bea").exists()


def test_promoting_and_demoting_changes_what_a_person_can_open(client: Client, ada: User) -> None:
    bea = team.user_create(actor=ada, username="bea", email="", role="agent", password="a-long-first-password-91")
    bea_client = Client()
    bea_client.force_login(bea)
    assert bea_client.get("/settings/sla").status_code == 404
    client.force_login(ada)
    client.post(f"/settings/team/{bea.pk}", {"role": "admin"})
    assert bea_client.get("/settings/sla").status_code == 200
    client.post(f"/settings/team/{bea.pk}", {"role": "agent"})
    assert bea_client.get("/settings/sla").status_code == 404


def test_an_admin_cannot_demote_or_deactivate_themselves(ada: User) -> None:
    with pytest.raises(ApplicationError, match="your own admin role"):
        team.user_role_set(actor=ada, user_id=ada.pk, role="agent")
    with pytest.raises(ApplicationError, match="deactivate yourself"):
        team.user_active_set(actor=ada, user_id=ada.pk, active=False)


def test_deactivating_someone_releases_their_open_tickets_and_locks_them_out(ada: User) -> None:
    bea = team.user_create(actor=ada, username="bea", email="", role="agent", password="a-long-first-password-91")
    open_ticket = builders.ticket(subject="s", body="b", from_email="c@example.com", assignee=bea)
    done = builders.ticket(subject="s", body="b", from_email="c@example.com", assignee=bea, status="approved")
    team.user_active_set(actor=ada, user_id=bea.pk, active=False)
    assert Ticket.objects.get(pk=open_ticket.pk).assignee is None
    assert Ticket.objects.get(pk=done.pk).assignee == bea  # history keeps who answered
    assert not Client().login(username="bea", password="a-long-first-password-91")


def test_agents_and_outsiders_cannot_reach_team_pages(client: Client, ada: User) -> None:
    bea = team.user_create(actor=ada, username="bea", email="", role="agent", password="a-long-first-password-91")
    charlie = User.objects.create_user("charlie", password="pw-charlie-123")
    for user in (bea, charlie):
        client.force_login(user)
        assert client.get("/settings/team").status_code == 404
        assert client.post(f"/settings/team/{ada.pk}", {"role": "agent"}).status_code == 404
    assert role_of(User.objects.get(pk=ada.pk)) == "admin"
