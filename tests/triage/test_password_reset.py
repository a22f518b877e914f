"""Password reset by email, through the real forms (CSRF tokens and all) and a real SMTP server: the same answer
for any address, a link that works once and not for long, validated passwords, the lockout lifted, rate limits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.test import Client, override_settings

from tests.conftest import wait_for
from triage import accounts, tasks

pytestmark = pytest.mark.django_db

OLD = "correct-horse-battery-staple"
NEW = "plum-orchard-lantern-42"


def smtp(sink: Any) -> Any:
    return override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                             EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port)


@pytest.fixture
def lena() -> User:
    user = User.objects.create_user("lena", email=f"lena.{uuid.uuid4().hex[:8]}@example.com", password=OLD)
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


@pytest.fixture
def queued(monkeypatch: Any, smtp_server: Any) -> Iterator[list[list[str]]]:
    """What the request queues for the worker; the worker's part then runs here, at once, over SMTP."""
    calls: list[list[str]] = []

    def apply_async(args: list[str], retry: bool) -> None:
        calls.append(args)
        with smtp(smtp_server):
            accounts.password_reset_send(email=args[0], base_url=args[1])

    monkeypatch.setattr(tasks.send_password_reset, "apply_async", apply_async)
    yield calls


def csrf(client: Client, path: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(path).content.decode())
    assert match is not None, path
    return match.group(1)


def ask(client: Client, email: str, **extra: Any) -> Any:
    return client.post("/password/reset/", {"email": email, "csrfmiddlewaretoken": csrf(client, "/password/reset/")},
                       **extra)


def link_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(r"https?://\S+", body.get_content())
    assert match is not None
    return match.group(0)


def set_password(client: Client, link: str, password: str) -> Any:
    """Open the link (it moves the token into the session) and submit the form it leads to."""
    opened = client.get(urlsplit(link).path)
    assert opened.status_code == 302 and opened["Location"].endswith("/set-password/")
    form_path = opened["Location"]
    return client.post(form_path, {"new_password1": password, "new_password2": password,
                                   "csrfmiddlewaretoken": csrf(client, form_path)})


def sign_in(client: Client, username: str, password: str) -> Any:
    return client.post("/login/", {"username": username, "password": password,
                                   "csrfmiddlewaretoken": csrf(client, "/login/")})


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_forgotten_password_is_reset_by_email_end_to_end(
    celery_worker: None, smtp_server: Any, lena: User, browser: Client
) -> None:
    assert 'href="/password/reset/"' in browser.get("/login/").content.decode()  # "Forgot your password?"
    sent = ask(browser, lena.email)
    assert sent.status_code == 302 and sent["Location"] == "/password/reset/sent"
    assert "If an account has that email address" in browser.get(sent["Location"]).content.decode()

    [message] = wait_for(lambda: smtp_server.to(lena.email), timeout=60)  # sent by the worker
    assert message["Subject"] == "Reset your Tierdesk password"
    assert "lena" in message.get_content() and "within 60 minutes" in message.get_content()
    link = link_in(message)
    assert link.startswith("http://testserver/password/reset/")

    done = set_password(browser, link, NEW)
    assert done.status_code == 302 and done["Location"] == "/password/reset/done"
    assert "Your new password is set" in browser.get(done["Location"]).content.decode()
    assert sign_in(browser, "lena", OLD).status_code == 200  # the form again: the old password is gone
    assert sign_in(browser, "lena", NEW).status_code == 302
    assert browser.get("/").status_code == 200


def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    queued: list[list[str]], smtp_server: Any, lena: User, browser: Client
) -> None:
    unknown = f"nobody.{uuid.uuid4().hex[:8]}@example.com"
    known, other = ask(browser, lena.email), ask(browser, unknown)
    assert (known.status_code, known["Location"]) == (other.status_code, other["Location"])
    assert [args[0] for args in queued] == [lena.email, unknown]  # the same work for both, in the request
    assert len(smtp_server.to(lena.email)) == 1
    assert smtp_server.to(unknown) == []


def test_the_address_is_matched_whatever_its_case(queued: list[list[str]], smtp_server: Any, lena: User,
                                                  browser: Client) -> None:
    ask(browser, lena.email.upper())
    assert len(smtp_server.to(lena.email)) == 1


def test_inactive_accounts_and_accounts_without_a_password_get_no_mail(
    queued: list[list[str]], smtp_server: Any, lena: User, browser: Client
) -> None:
    lena.is_active = False
    lena.save()
    ask(browser, lena.email)
    lena.is_active = True
    lena.set_unusable_password()
    lena.save()
    ask(browser, lena.email)
    assert len(queued) == 2 and smtp_server.to(lena.email) == []


def test_a_link_works_once(queued: list[list[str]], smtp_server: Any, lena: User, browser: Client) -> None:
    ask(browser, lena.email)
    link = link_in(smtp_server.to(lena.email)[0])
    assert set_password(browser, link, NEW).status_code == 302
    again = browser.get(urlsplit(link).path)
    assert again.status_code == 200 and "This link does not work" in again.content.decode()
    # Nor does the form it led to take another password.
    refused = browser.post(urlsplit(link).path.rsplit("/", 2)[0] + "/set-password/",  # the token's place
                           {"new_password1": "other-" + NEW, "new_password2": "other-" + NEW,
                            "csrfmiddlewaretoken": csrf(browser, "/login/")})
    assert "This link does not work" in refused.content.decode()
    lena.refresh_from_db()
    assert lena.check_password(NEW)


def test_a_link_expires(queued: list[list[str]], smtp_server: Any, lena: User, browser: Client,
                        monkeypatch: Any) -> None:
    ask(browser, lena.email)
    link = link_in(smtp_server.to(lena.email)[0])
    later = datetime.now() + timedelta(minutes=61)  # noqa: DTZ005 (Django's token clock is naive local time)
    monkeypatch.setattr(PasswordResetTokenGenerator, "_now", lambda self: later)
    expired = browser.get(urlsplit(link).path)
    assert expired.status_code == 200 and "This link does not work" in expired.content.decode()


def test_signing_in_after_asking_voids_the_link(queued: list[list[str]], smtp_server: Any, lena: User,
                                                browser: Client) -> None:
    ask(browser, lena.email)
    link = link_in(smtp_server.to(lena.email)[0])
    assert sign_in(Client(), "lena", OLD).status_code == 302  # remembered it after all
    assert "This link does not work" in browser.get(urlsplit(link).path).content.decode()


def test_the_new_password_must_pass_the_validators(queued: list[list[str]], smtp_server: Any, lena: User,
                                                   browser: Client) -> None:
    ask(browser, lena.email)
    opened = browser.get(urlsplit(link_in(smtp_server.to(lena.email)[0])).path)
    form = opened["Location"]
    for weak, why in (("password", "too common"), ("lena", "too short"), (lena.email, "too similar")):
        refused = browser.post(form, {"new_password1": weak, "new_password2": weak,
                                      "csrfmiddlewaretoken": csrf(browser, form)})
        assert refused.status_code == 200 and why in refused.content.decode(), weak
    lena.refresh_from_db()
    assert lena.check_password(OLD)


def test_a_reset_lifts_the_sign_in_lockout_and_signs_out_other_browsers(
    queued: list[list[str]], smtp_server: Any, lena: User, browser: Client
) -> None:
    elsewhere = Client()
    assert sign_in(elsewhere, "lena", OLD).status_code == 302
    for _ in range(5):
        sign_in(browser, "lena", "not-the-password")
    assert sign_in(browser, "lena", OLD).status_code == 429  # locked out
    ask(browser, lena.email)
    assert set_password(browser, link_in(smtp_server.to(lena.email)[0]), NEW).status_code == 302
    assert not AccessAttempt.objects.filter(username="lena").exists()
    assert sign_in(browser, "lena", NEW).status_code == 302
    assert elsewhere.get("/").status_code == 302  # the session signed in with the old password is over


def test_requests_are_limited_per_email_address_with_or_without_an_account(
    queued: list[list[str]], lena: User, browser: Client, settings: Any
) -> None:
    settings.RATE_RESET_IP, settings.RATE_RESET_EMAIL = None, "2/h"
    unknown = f"nobody.{uuid.uuid4().hex[:8]}@example.com"
    for address in (lena.email, unknown):
        assert [ask(browser, address).status_code for _ in range(2)] == [302, 302]
        refused = ask(browser, address.upper())
        assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 3600
        assert "Too many reset requests. Try again in" in refused.content.decode()
    assert len(queued) == 4  # nothing queued for the refused ones
    assert ask(browser, f"someone.{uuid.uuid4().hex[:8]}@example.com").status_code == 302


def test_requests_are_limited_per_client_address(queued: list[list[str]], browser: Client, settings: Any) -> None:
    settings.RATE_RESET_IP, settings.RATE_RESET_EMAIL = "3/h", None
    for i in range(3):
        assert ask(browser, f"a{i}@example.com", REMOTE_ADDR="192.0.2.7").status_code == 302
    refused = ask(browser, "a4@example.com", REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert ask(browser, "a4@example.com", REMOTE_ADDR="192.0.2.8").status_code == 302


def test_links_start_with_site_url_when_it_is_set(queued: list[list[str]], smtp_server: Any, lena: User,
                                                   browser: Client, settings: Any) -> None:
    settings.SITE_URL = "https://desk.example.com"
    ask(browser, lena.email, HTTP_HOST="localhost")
    assert link_in(smtp_server.to(lena.email)[0]).startswith("https://desk.example.com/password/reset/")


def test_without_site_url_a_host_outside_allowed_hosts_is_refused(queued: list[list[str]], lena: User,
                                                                  browser: Client) -> None:
    csrf(browser, "/password/reset/")
    response = browser.post("/password/reset/", {"email": lena.email}, HTTP_HOST="attacker.example")
    assert response.status_code == 400 and queued == []
