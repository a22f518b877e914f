"""Sessions end after TIERDESK_SESSION_IDLE_MINUTES without a request, polls excepted, and optionally at an
absolute age; the session row is not written on every request; htmx requests that find no session get a
redirect htmx follows as a whole page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from triage.sessions import RENEWED_AT, SIGNED_IN_AT

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
POLL = {"HTTP_HX_REQUEST": "true", "HTTP_X_TIERDESK_POLL": "true"}


@pytest.fixture
def lena() -> User:
    user = User.objects.create_user("lena", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def browser(lena: User) -> Client:
    """Signed in through the real form, as a browser does."""
    client = Client()
    assert client.post("/login/", {"username": "lena", "password": PASSWORD}).status_code == 302
    return client


def session_row(client: Client) -> Session:
    return Session.objects.get(pk=client.cookies[settings.SESSION_COOKIE_NAME].value)


def pass_time(client: Client, minutes: float) -> None:
    """Move the stored session `minutes` into the past: its expiry and its stamps, as if that time had gone by."""
    row = session_row(client)
    shift = timedelta(minutes=minutes)
    store = SessionStore(session_key=row.pk)
    for stamp in (SIGNED_IN_AT, RENEWED_AT):
        store[stamp] -= round(shift.total_seconds())
    store.save()
    Session.objects.filter(pk=row.pk).update(expire_date=row.expire_date - shift)


def signed_in(client: Client, **headers: Any) -> bool:
    response = client.get("/", **headers)
    assert response.status_code in (200, 302)
    return response.status_code == 200


def session_writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if re.match(r'(UPDATE|INSERT INTO) "django_session"', q["sql"])]


def test_signing_in_gives_the_idle_limit_in_the_store_and_the_cookie(lena: User) -> None:
    client = Client()
    response = client.post("/login/", {"username": "lena", "password": PASSWORD})
    assert settings.SESSION_COOKIE_AGE == 480 * 60  # TIERDESK_SESSION_IDLE_MINUTES' default
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 480 * 60
    left = session_row(client).expire_date - timezone.now()
    assert timedelta(minutes=479) < left <= timedelta(minutes=480)


def test_a_session_idle_past_the_limit_is_sent_to_sign_in(browser: Client) -> None:
    pass_time(browser, 481)
    response = browser.get("/dashboard")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/dashboard"


def test_a_session_idle_just_under_the_limit_is_kept(browser: Client) -> None:
    pass_time(browser, 479)
    assert signed_in(browser)


def test_requests_keep_a_session_alive_past_the_limit(browser: Client) -> None:
    for _ in range(3):  # 15 hours in all, never 8 without a request
        pass_time(browser, 300)
        assert signed_in(browser)


def test_requests_move_the_expiry_once_a_tenth_of_the_limit_has_passed_not_on_every_request(
    browser: Client,
) -> None:
    before = session_row(browser).expire_date
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert signed_in(browser)
    assert session_writes(queries) == [] and session_row(browser).expire_date == before
    pass_time(browser, 49)  # just over 48 minutes, a tenth of the 8 hours
    with CaptureQueriesContext(connection) as queries:
        assert signed_in(browser)
        assert signed_in(browser)
    assert len(session_writes(queries)) == 1
    assert session_row(browser).expire_date - timezone.now() > timedelta(minutes=479)


def test_polls_do_not_keep_a_session_alive(browser: Client) -> None:
    pass_time(browser, 300)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert browser.get("/", **POLL).status_code == 200
    assert session_writes(queries) == []
    pass_time(browser, 181)
    assert not signed_in(browser)


def test_an_htmx_request_without_a_session_is_sent_to_sign_in_as_a_whole_page(browser: Client) -> None:
    pass_time(browser, 481)
    poll = browser.get("/?status=open&page=2", HTTP_HX_CURRENT_URL="http://testserver/?urgency=high", **POLL)
    # Not the sign-in page swapped into the rows: an instruction htmx follows by loading the page itself,
    # and after signing in, back to the queue as the agent had filtered it.
    assert poll.status_code == 200 and poll.content == b""
    assert poll["HX-Redirect"] == "/login/?next=%2F%3Furgency%3Dhigh"
    action = browser.post("/queue/actions", {"action": "take", "ticket": "1"}, HTTP_HX_REQUEST="true",
                          HTTP_HX_CURRENT_URL="http://testserver/tickets/7/")
    assert action["HX-Redirect"] == "/login/?next=%2Ftickets%2F7%2F"
    # A page from another origin in HX-Current-URL cannot make sign-in send anyone there afterwards.
    odd = browser.get("/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver//evil.example/")
    assert odd["HX-Redirect"] == "/login/?next=%2F"


def test_htmx_redirects_other_than_to_sign_in_are_left_alone(browser: Client) -> None:
    response = browser.get("/kb", HTTP_HX_REQUEST="true")  # APPEND_SLASH's redirect
    assert response.status_code == 301 and "HX-Redirect" not in response


def test_an_absolute_lifetime_ends_even_a_busy_session(browser: Client, settings: Any) -> None:
    settings.SESSION_MAX_AGE_S = 3600
    key = session_row(browser).pk
    pass_time(browser, 30)
    assert signed_in(browser)
    pass_time(browser, 29)
    assert signed_in(browser)
    pass_time(browser, 2)
    assert not signed_in(browser)
    assert not Session.objects.filter(pk=key).exists()


def test_without_an_absolute_lifetime_a_busy_session_goes_on(browser: Client) -> None:
    assert settings.SESSION_MAX_AGE_S == 0  # TIERDESK_SESSION_MAX_HOURS' default
    for _ in range(10):  # 50 hours
        pass_time(browser, 300)
        assert signed_in(browser)
