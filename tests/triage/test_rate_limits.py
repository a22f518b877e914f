"""Rate limits: sign-in per address and per username, the API per key, webhooks per address; 429 with
Retry-After and a message that says what happened."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory

from triage import services, throttle
from triage.models import Ticket

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email" / "providers"


def address() -> str:
    # Documentation addresses (RFC 3849), one /64 per call: the limiter counts IPv6 clients by /64.
    return f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}::1"


def sign_in(client: Client, username: str, password: str, ip: str) -> Any:
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_sign_in_is_limited_per_address(client: Client, settings: Any, django_user_model: Any) -> None:
    settings.RATE_LOGIN_IP, settings.RATE_LOGIN_USERNAME = "3/m", None
    django_user_model.objects.create_user("mia", password="right-horse-battery")
    ip = address()
    for name in ("a", "b", "c"):
        assert sign_in(client, name, "wrong", ip).status_code == 200  # the form again, with its error
    refused = sign_in(client, "mia", "right-horse-battery", ip)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # the right password did not get in
    assert sign_in(client, "mia", "right-horse-battery", address()).status_code == 302  # another address may


def test_sign_in_is_limited_per_username_whatever_the_address(client: Client, settings: Any) -> None:
    settings.RATE_LOGIN_IP, settings.RATE_LOGIN_USERNAME = None, "3/5m"
    for _ in range(3):
        assert sign_in(client, "Noor", "wrong", address()).status_code == 200
    refused = sign_in(client, "noor", "wrong", address())  # case does not make a new budget
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 300
    assert sign_in(client, "someone-else", "wrong", address()).status_code == 200


def test_the_api_is_limited_per_key_with_a_json_429(client: Client, settings: Any) -> None:
    settings.RATE_API_KEY = "2/m"
    busy, quiet = services.api_key_create(name="busy")[1], services.api_key_create(name="quiet")[1]
    for _ in range(2):
        assert client.get("/api/v1/tickets", HTTP_AUTHORIZATION=f"Bearer {busy}").status_code == 200
    refused = client.get("/api/v1/tickets", HTTP_AUTHORIZATION=f"Bearer {busy}")
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/json")
    assert "too many requests" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    posted = client.post(
        "/api/v1/tickets",
        {"subject": "s", "body": "b", "from_email": "a@example.com"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {busy}",
    )
    assert posted.status_code == 429 and Ticket.objects.count() == 0
    assert client.get("/api/v1/tickets", HTTP_AUTHORIZATION=f"Bearer {quiet}").status_code == 200


def test_webhooks_are_limited_per_address_before_anything_is_checked_or_written(
    client: Client, settings: Any
) -> None:
    settings.RATE_WEBHOOK_IP = "2/m"
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    body = (FIXTURES / "postmark_inbound.json").read_bytes()
    ip = address()
    wrong = "Basic " + base64.b64encode(b"pm:guess").decode()
    right = "Basic " + base64.b64encode(b"pm:pm-secret").decode()
    for _ in range(2):  # someone guessing the credentials
        assert (
            client.post(
                "/inbound/postmark/",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=wrong,
                REMOTE_ADDR=ip,
            ).status_code
            == 401
        )
    refused = client.post(
        "/inbound/postmark/", body, content_type="application/json", HTTP_AUTHORIZATION=right, REMOTE_ADDR=ip
    )
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert "too many webhook deliveries" in refused.json()["detail"]
    assert Ticket.objects.count() == 0
    assert (
        client.post(
            "/inbound/postmark/",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=right,
            REMOTE_ADDR=address(),
        ).status_code
        == 200
    )


def test_limits_set_to_zero_are_off(client: Client, settings: Any) -> None:
    settings.RATE_API_KEY = None
    key = services.api_key_create(name="bench")[1]
    statuses = {
        client.get("/api/v1/tickets?limit=1", HTTP_AUTHORIZATION=f"Bearer {key}").status_code
        for _ in range(30)
    }
    assert statuses == {200}


def test_an_unreachable_counter_store_lets_requests_through_and_says_so(
    client: Client, settings: Any, caplog: Any, tmp_path: Path
) -> None:
    settings.RATE_API_KEY = "1/m"
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"unix://{tmp_path / 'nobody-listens.sock'}",
        },
    }
    key = services.api_key_create(name="k")[1]
    for _ in range(3):
        assert client.get("/api/v1/tickets", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert "rate limit store unavailable" in caplog.text


def test_the_client_address_is_read_through_the_configured_number_of_proxies(settings: Any) -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.0.0.1"
    )
    settings.TRUSTED_PROXY_COUNT = 0
    assert throttle.client_ip(request) == "10.0.0.2"  # no proxy trusted: the header is the client's to forge
    settings.TRUSTED_PROXY_COUNT = 2
    assert throttle.client_ip(request) == "198.51.100.7"  # not the forged left-most entry
    settings.TRUSTED_PROXY_COUNT = 5
    assert throttle.client_ip(request) == "10.0.0.2"  # fewer hops than proxies: the header is not trusted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100/m", "100/m"),
        ("5/15m", "5/15m"),
        ("0", None),
        ("off", None),
        ("", "60/5m"),
    ],
)
def test_rates_are_read_from_the_environment(monkeypatch: Any, value: str, expected: str | None) -> None:
    from triage.settings import envrate

    monkeypatch.setenv("TIERDESK_TEST_RATE", value)
    assert envrate("TIERDESK_TEST_RATE", "60/5m") == expected


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/m", "10/0m", "-1/m"])
def test_a_malformed_rate_refuses_to_start(monkeypatch: Any, value: str) -> None:
    from triage.settings import envrate

    monkeypatch.setenv("TIERDESK_TEST_RATE", value)
    with pytest.raises(ImproperlyConfigured, match="TIERDESK_TEST_RATE"):
        envrate("TIERDESK_TEST_RATE", "60/5m")
