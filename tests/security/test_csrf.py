"""CSRF: every route of the browser UI refuses a state-changing request that lacks the token, and nothing
changes; the webhooks and the Bearer API are exempt by design, because they authenticate every request
with a credential a browser does not send on its own."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import resolve

from tests.security.conftest import Cast, every_route
from tests.security.test_outsider_walk import API, PUBLIC, WEBHOOK
from triage import services
from triage.models import Ticket, TicketNote

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email" / "providers"


def fingerprint() -> dict[str, str]:
    """A digest of every row of every table, so any insert, update or delete shows."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = [row[0] for row in cursor.fetchall()]
        digests = {}
        for table in tables:
            cursor.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"
            )
            digests[table] = cursor.fetchone()[0]
    return digests


def browser_with_cookie(user: Any | None) -> Client:
    """A browser that has the CSRF cookie (it has seen a page) but whose forged request carries no token."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    client.get("/login/")
    assert "csrftoken" in client.cookies
    return client


def ui_routes() -> list[Any]:
    exempt = WEBHOOK | API | {name for name in PUBLIC if name.startswith("api:")}
    return [r for r in every_route() if r.name not in exempt]


def test_only_the_webhooks_and_the_api_are_exempt_from_csrf() -> None:
    exempt = set()
    for route in every_route():
        callback = resolve(route.path(dict.fromkeys(route.parameters, "1"))).func
        if getattr(callback, "csrf_exempt", False):
            exempt.add(route.name)
    assert exempt <= WEBHOOK | API | PUBLIC
    assert exempt >= WEBHOOK


@pytest.mark.parametrize("token", [None, "forged-token-forged-token-forged-token-forged-token-1234"])
def test_every_state_changing_ui_request_without_the_token_is_refused_and_changes_nothing(
    cast: Cast, samples: dict[str, str], token: str | None
) -> None:
    client = browser_with_cookie(cast.alice)
    headers = {} if token is None else {"HTTP_X_CSRFTOKEN": token}
    before = fingerprint()
    refused = 0
    for route in ui_routes():
        path = route.path(samples)
        for method in UNSAFE:
            response = getattr(client, method)(
                path, {"body": "changed", "action": "publish"} if method == "post" else "", **headers
            )
            assert response.status_code == 403, (method, path, response.status_code)
            assert "CSRF verification failed" in response.content.decode(), (method, path)
            refused += 1
    assert refused >= 4 * 50
    assert fingerprint() == before


def test_the_sign_in_form_needs_the_token_too(cast: Cast) -> None:
    client = browser_with_cookie(None)
    response = client.post("/login/", {"username": "alice", "password": "alice-pass-8310"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_same_request_with_the_token_goes_through(cast: Cast, samples: dict[str, str]) -> None:
    client = browser_with_cookie(cast.bob)
    page = client.get(f"/tickets/{samples['ticket_id']}/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    response = client.post(
        f"/tickets/{samples['ticket_id']}/notes",
        {"body": "Checked with the carrier.", "csrfmiddlewaretoken": token.group(1)},
    )
    assert response.status_code in (200, 302)
    assert TicketNote.objects.filter(body="Checked with the carrier.").exists()


def test_webhooks_take_deliveries_without_a_csrf_token(settings: Any) -> None:
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/inbound/postmark/",
        (FIXTURES / "postmark_inbound.json").read_bytes(),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"pm:pm-secret").decode(),
    )
    assert response.status_code == 200 and Ticket.objects.count() == 1


def test_the_api_takes_a_bearer_key_without_a_csrf_token_even_beside_a_session(cast: Cast) -> None:
    client = browser_with_cookie(cast.alice)
    key = services.api_key_create(name="csrf")[1]
    response = client.post(
        "/api/v1/tickets",
        {"subject": "s", "body": "b", "from_email": "a@example.com"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201
    # and the session alone, without the key, is no credential for the API at all
    assert (
        client.post(
            "/api/v1/tickets",
            {"subject": "s", "body": "b", "from_email": "a@example.com"},
            content_type="application/json",
        ).status_code
        == 401
    )
