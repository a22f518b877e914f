"""Lockout after repeated failed sign-ins, through the real sign-in form (CSRF token and all)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
WRONG = "Tr0ub4dor&3-wrong"


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def lena(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("lena", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    return user


def sign_in(browser: Client, username: str, password: str) -> Any:
    page = browser.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    return browser.post(
        "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)}
    )


def signed_in(browser: Client) -> bool:
    return browser.get("/").status_code == 200


def test_five_failures_lock_the_account_even_against_the_right_password(browser: Client, lena: Any) -> None:
    for _ in range(4):
        page = sign_in(browser, "lena", WRONG)
        assert page.status_code == 200 and "didn't match" in page.content.decode()
    fifth = sign_in(browser, "lena", WRONG)
    assert fifth.status_code == 429
    refused = sign_in(browser, "lena", PASSWORD)
    assert refused.status_code == 429
    text = refused.content.decode()
    assert "locked after 5 failed sign-ins" in text and "Try again in 15 minutes" in text
    assert 14 * 60 < int(refused["Retry-After"]) <= 15 * 60
    assert not signed_in(browser)


def test_the_account_opens_again_after_the_cool_off(browser: Client, lena: Any) -> None:
    for _ in range(5):
        sign_in(browser, "lena", WRONG)
    assert sign_in(browser, "lena", PASSWORD).status_code == 429
    # The cool-off is counted from the last failure: move it 16 minutes into the past.
    AccessAttempt.objects.filter(username="lena").update(
        attempt_time=AccessAttempt.objects.get(username="lena").attempt_time - timedelta(minutes=16)
    )
    assert sign_in(browser, "lena", PASSWORD).status_code == 302
    assert signed_in(browser)
    assert not AccessAttempt.objects.filter(username="lena").exists()


def test_a_success_resets_the_count(browser: Client, lena: Any) -> None:
    for _ in range(4):
        sign_in(browser, "lena", WRONG)
    assert sign_in(browser, "lena", PASSWORD).status_code == 302
    browser.post("/logout/")
    for _ in range(4):
        assert sign_in(browser, "lena", WRONG).status_code == 200
    assert sign_in(browser, "lena", PASSWORD).status_code == 302


def test_one_locked_username_does_not_lock_another(
    browser: Client, lena: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user("omar", password=PASSWORD)
    for _ in range(5):
        sign_in(browser, "lena", WRONG)
    assert sign_in(browser, "omar", PASSWORD).status_code == 302


def test_the_limits_come_from_settings(browser: Client, lena: Any, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    sign_in(browser, "lena", WRONG)
    locked = sign_in(browser, "lena", WRONG)
    assert locked.status_code == 429 and int(locked["Retry-After"]) <= 180


def test_the_lockout_is_logged_with_the_username_and_never_the_password(
    browser: Client, lena: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(5):
        sign_in(browser, "lena", WRONG)
    sign_in(browser, "lena", PASSWORD)
    lines = [r.getMessage() for r in caplog.records]
    assert any("lena" in line and "locked out" in line.lower() for line in lines)
    assert not any(WRONG in line or PASSWORD in line for line in lines)
    stored = AccessAttempt.objects.get(username="lena")
    assert WRONG not in stored.post_data and PASSWORD not in stored.post_data
