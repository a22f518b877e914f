"""In chromium: the queue's polls are marked as polls, and when the session ends under an open queue, the next
poll takes the agent to the sign-in page (not into the table), and signing in brings them back."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session

from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_an_ended_session_takes_the_open_queue_to_sign_in_and_back(live_server: Any, page: Any) -> None:
    user = User.objects.create_user("lena", password="lena-pass-3390")
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    sign_in(page, live_server.url, "lena", "lena-pass-3390")
    with page.expect_request(lambda r: r.headers.get("hx-trigger") == "queue-rows", timeout=15_000) as poll:
        pass
    assert poll.value.headers.get("x-tierdesk-poll") == "true"
    with page.expect_request(lambda r: r.headers.get("hx-trigger") == "filters") as choice:
        page.get_by_label("Urgency").select_option("high")
    assert "x-tierdesk-poll" not in choice.value.headers  # the agent's own doing
    page.wait_for_url("**/?*urgency=high*")

    Session.objects.all().delete()  # the session ends (idle, signed out elsewhere, or its absolute age)
    page.wait_for_url("**/login/?next=*", timeout=15_000)
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.locator("#queue-rows").count() == 0

    page.get_by_label("Username").fill("lena")
    page.get_by_label("Password").fill("lena-pass-3390")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Queue").wait_for()
    assert "urgency=high" in page.url  # back to the queue as it was filtered
