"""Every URL Django resolves and every operation in the OpenAPI document, requested by each kind of visitor
with the ids of real objects: anonymous visitors are sent to sign in (or get 401 from the API), an outsider
gets 404 whether or not the object exists, an agent gets 404 on admin pages.

A route added later fails test_every_route_is_classified until it is put in one of the sets below.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.security.conftest import MISSING_ID, Cast, Route, every_route

pytestmark = pytest.mark.django_db

AGENT = {
    "queue",
    "queue_action",
    "ticket_detail",
    "attachment_download",
    "draft_approve",
    "draft_reject",
    "draft_regenerate",
    "ticket_escalate",
    "dashboard",
    "ticket_correct",
    "ticket_note",
    "reply_send",
    "macro_picker",
    "macro_fill",
    "kb_version",
}
ADMIN = {
    "settings_learning",
    "settings_learning_train",
    "settings_job",
    "settings_evals",
    "settings_eval_start",
    "settings_replay_start",
    "settings_eval_detail",
    "settings_sla",
    "settings_team",
    "settings_team_member",
    "settings_macros",
    "settings_macro_edit",
    "settings_macro_active",
    "settings_routing",
    "settings_routing_preview",
    "settings_routing_publish",
    "settings_intent_sensitive",
    "settings_switches",
    "settings_prompts",
    "settings_gates",
    "settings_shadow",
    "settings_audit",
    "settings_kb_index",
    "kb_list",
    "kb_new",
    "kb_preview",
    "kb_import",
    "kb_gaps",
    "kb_history",
    "kb_edit",
    "settings_draft_eval_start",
    "settings_draft_replay_start",
    "kb_publish",
    "kb_retire",
    "kb_restore",
}
ADMIN_OR_SCRAPER = {"metrics"}  # a Prometheus scraper's token, or a signed-in admin; 404 to everyone else
WEBHOOK = {
    "inbound_postmark",
    "inbound_mailgun",
    "inbound_mailgun_mime",
    "inbound_sendgrid",
    "inbound_sendgrid_secret",
}
API = {"api:create_ticket", "api:list_tickets", "api:get_ticket", "api:list_articles", "api:upsert_article"}
PUBLIC = {
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "healthz",
    "api:openapi-json",
    "api:openapi-view",
    "api:api-root",
}


def is_django_admin(route: Route) -> bool:
    return route.pattern.startswith("admin/")


def to_admin_sign_in(response: Any) -> bool:
    # The admin's logout sends a visitor who is not staff to the admin's index, which sends them to sign in.
    return response.status_code == 302 and response["Location"].split("?")[0] in ("/admin/login/", "/admin/")


def read(response: Any) -> None:
    # Consumed rather than close()d: closing sends request_finished, which would close the test's connection.
    if response.streaming:
        b"".join(response.streaming_content)


def routes_in(names: set[str]) -> list[Route]:
    return [r for r in every_route() if r.name in names]


def ids(samples: dict[str, str], *, missing: bool = False) -> dict[str, str]:
    return {
        k: MISSING_ID if (missing and k.endswith("_id")) or (missing and k == "version") else v
        for k, v in samples.items()
    }


def statuses(client: Client, path: str) -> dict[str, Any]:
    return {"GET": client.get(path), "POST": client.post(path)}


def test_every_route_is_classified() -> None:
    known = AGENT | ADMIN | ADMIN_OR_SCRAPER | WEBHOOK | API | PUBLIC
    unclassified = sorted({r.name for r in every_route() if r.name not in known and not is_django_admin(r)})
    assert not unclassified, f"say who may use these routes in {__file__}: {unclassified}"
    stale = known - {r.name for r in every_route()}
    assert not stale, f"these routes no longer exist: {sorted(stale)}"


def test_every_route_parameter_has_a_real_sample(samples: dict[str, str]) -> None:
    unknown = {p for r in every_route() for p in r.parameters} - set(samples)
    assert not unknown, f"add a sample object for {sorted(unknown)} in tests/security/conftest.py"


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, samples: dict[str, str]) -> None:
    for route in routes_in(AGENT | ADMIN):
        path = route.path(samples)
        answers = statuses(client, path)
        for method, response in answers.items():
            assert response.status_code in (302, 405), (method, path, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith("/login/?next="), (method, path)
        assert any(r.status_code == 302 for r in answers.values()), path
    for route in routes_in(ADMIN_OR_SCRAPER):
        assert client.get(route.path(samples)).status_code == 404


def test_anonymous_visitors_to_the_django_admin_are_sent_to_its_sign_in(
    client: Client, samples: dict[str, str]
) -> None:
    for route in filter(is_django_admin, every_route()):
        response = client.get(route.path(samples))
        if route.name == "admin:login":
            assert response.status_code == 200
            continue
        assert to_admin_sign_in(response) or response.status_code == 405, (
            route.pattern,
            response.status_code,
        )


def test_public_routes_answer_without_signing_in(client: Client, samples: dict[str, str]) -> None:
    for route in routes_in(PUBLIC):
        response = client.get(route.path(samples))
        # logout is POST-only; the API root lists nothing and answers 404 like any unknown API path
        assert response.status_code in (
            (405,) if route.name == "logout" else (404,) if route.name == "api:api-root" else (200,)
        ), (route.name, response.status_code)


def test_an_outsider_gets_404_everywhere_whether_or_not_the_object_exists(
    client: Client, cast: Cast, samples: dict[str, str]
) -> None:
    client.force_login(cast.charlie)
    for route in routes_in(AGENT | ADMIN | ADMIN_OR_SCRAPER):
        real = statuses(client, route.path(samples))
        missing = statuses(client, route.path(ids(samples, missing=True)))
        for method in real:
            assert real[method].status_code in (404, 405), (method, route.pattern, real[method].status_code)
            # a 405 comes before any lookup, so it says nothing about the object either
            assert real[method].status_code == missing[method].status_code, (method, route.pattern)
            assert real[method].content == missing[method].content, (method, route.pattern)
        assert any(r.status_code == 404 for r in real.values()), route.pattern


def test_an_outsider_is_not_staff_in_the_django_admin(
    client: Client, cast: Cast, samples: dict[str, str]
) -> None:
    client.force_login(cast.charlie)
    for route in filter(is_django_admin, every_route()):
        if route.name == "admin:login":
            continue
        response = client.get(route.path(samples))
        assert to_admin_sign_in(response) or response.status_code == 405, (
            route.pattern,
            response.status_code,
        )
        other = client.get(route.path(ids(samples, missing=True)))
        assert (other.status_code, other.get("Location", "").split("?")[0]) == (
            response.status_code,
            response.get("Location", "").split("?")[0],
        )


def test_an_agent_gets_404_on_admin_pages_and_works_the_agent_pages(
    client: Client, cast: Cast, samples: dict[str, str]
) -> None:
    client.force_login(cast.bob)
    for route in routes_in(ADMIN | ADMIN_OR_SCRAPER):
        answers = statuses(client, route.path(samples))
        assert {r.status_code for r in answers.values()} <= {404, 405}, route.pattern
        assert any(r.status_code == 404 for r in answers.values()), route.pattern
    for route in routes_in(AGENT):
        response = client.get(route.path(samples))
        assert response.status_code in (200, 405), (route.pattern, response.status_code)
        read(response)


def test_an_admin_opens_every_page_so_the_samples_are_real(
    client: Client, cast: Cast, samples: dict[str, str]
) -> None:
    client.force_login(cast.alice)
    opened = 0
    for route in routes_in(AGENT | ADMIN | ADMIN_OR_SCRAPER):
        response = client.get(route.path(samples))
        assert response.status_code in (200, 405), (route.pattern, response.status_code)
        opened += response.status_code == 200
        read(response)
    assert opened >= 20


def test_webhooks_refuse_anyone_without_the_providers_credentials(
    client: Client, cast: Cast, settings: Any, samples: dict[str, str]
) -> None:
    settings.POSTMARK_INBOUND_USER, settings.POSTMARK_INBOUND_PASSWORD = "pm", "pm-secret"
    settings.MAILGUN_SIGNING_KEY = "mg-key"
    settings.SENDGRID_INBOUND_SECRET = "sg-secret"
    for visitor in (None, cast.charlie, cast.alice):  # a session is no credential for a webhook
        if visitor is not None:
            client.force_login(visitor)
        for route in routes_in(WEBHOOK):
            response = client.post(
                route.path(samples), b"x=1", content_type="application/x-www-form-urlencoded"
            )
            assert response.status_code == 401, (route.pattern, response.status_code)
            assert response.json()["detail"]
            assert client.get(route.path(samples)).status_code == 405


def test_every_api_operation_in_the_openapi_document_needs_an_api_key(
    client: Client, cast: Cast, samples: dict[str, str]
) -> None:
    document = client.get("/api/v1/openapi.json").json()
    operations = [(path, method) for path, item in document["paths"].items() for method in item]
    assert operations
    # The document and the URLconf name the same API: nothing routed is left out of the document.
    routed = {"/" + r.pattern.replace("<", "{").replace(">", "}") for r in routes_in(API)}
    assert routed == set(document["paths"])
    for visitor in (None, cast.charlie, cast.alice):  # the API takes keys, never a browser session
        if visitor is not None:
            client.force_login(visitor)
        for path, method in operations:
            url = path.replace("{ticket_id}", samples["ticket_id"])
            response = getattr(client, method)(url, content_type="application/json")
            assert response.status_code == 401, (visitor, method, path, response.status_code)
            assert "API key" in response.json()["detail"]
            assert response["WWW-Authenticate"] == "Bearer"
