from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from triage import services
from triage.models import IdempotencyRecord, Intent, Ticket

pytestmark = pytest.mark.django_db

URL = "/api/v1/tickets"


@pytest.fixture
def api_key() -> str:
    return services.api_key_create(name="tests")[1]


def _post(client: Client, key: str | None, payload: Any, **headers: str) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    extra.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post(URL, body, content_type="application/json", **extra)


TICKET = {"subject": "Where is my order?", "body": "It has not arrived.", "from_email": "ana@example.com"}


def test_it_creates_a_ticket_and_answers_201(client: Client, api_key: str) -> None:
    response = _post(client, api_key, {**TICKET, "from_name": "Ana", "metadata": {"plan": "gold"}})
    assert response.status_code == 201
    data = response.json()
    ticket = Ticket.objects.get(pk=data["id"])
    assert data["status"] == "new" and ticket.status == "new"
    assert ticket.from_name == "Ana" and ticket.metadata == {"plan": "gold"}
    assert data["triage"] is None and data["draft"] is None


def test_it_refuses_a_missing_or_wrong_key(client: Client) -> None:
    assert _post(client, None, TICKET).status_code == 401
    response = _post(client, "tdk_not-a-key", TICKET)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert Ticket.objects.count() == 0


def test_a_revoked_key_is_refused(client: Client) -> None:
    key, raw = services.api_key_create(name="old")
    key.revoked_at = key.created_at
    key.save()
    assert _post(client, raw, TICKET).status_code == 401


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": "x", "from_email": "a@example.com"}, "subject"),
        ({**TICKET, "subject": "   "}, "subject"),
        ({**TICKET, "from_email": "not-an-email"}, "from_email"),
        ({**TICKET, "metadata": ["not", "an", "object"]}, "metadata"),
        ({**TICKET, "subject": "x" * 501}, "subject"),
    ],
)
def test_bad_input_gets_a_clear_400_and_writes_nothing(client: Client, api_key: str, payload: Any,
                                                       field: str) -> None:
    response = _post(client, api_key, payload)
    assert response.status_code == 400
    data = response.json()
    assert data["detail"] == "invalid request"
    assert field in {e["field"] for e in data["errors"]}
    assert Ticket.objects.count() == 0


def test_a_body_that_is_not_json_gets_a_400(client: Client, api_key: str) -> None:
    response = _post(client, api_key, "{not json")
    assert response.status_code == 400
    assert Ticket.objects.count() == 0


def test_the_same_idempotency_key_and_body_return_the_same_ticket(client: Client, api_key: str) -> None:
    first = _post(client, api_key, TICKET, **{"Idempotency-Key": "abc-1"})
    again = _post(client, api_key, TICKET, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert Ticket.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_is_refused(client: Client, api_key: str) -> None:
    first = _post(client, api_key, TICKET, **{"Idempotency-Key": "abc-2"})
    other = _post(client, api_key, {**TICKET, "body": "Something else"}, **{"Idempotency-Key": "abc-2"})
    assert other.status_code == 422
    assert other.json()["ticket_id"] == first.json()["id"]
    assert Ticket.objects.count() == 1


def test_idempotency_keys_are_per_client(client: Client, api_key: str) -> None:
    other_key = services.api_key_create(name="other")[1]
    a = _post(client, api_key, TICKET, **{"Idempotency-Key": "shared"})
    b = _post(client, other_key, TICKET, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_get_returns_the_ticket_and_404s_for_an_unknown_one(client: Client, api_key: str) -> None:
    created = _post(client, api_key, TICKET).json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    assert client.get(f"{URL}/{created['id']}", **auth).json()["subject"] == TICKET["subject"]
    missing = client.get(f"{URL}/999999", **auth)
    assert missing.status_code == 404 and missing.json()["detail"] == "ticket not found"


def test_the_list_filters_and_searches(client: Client, api_key: str) -> None:
    refund = Intent.objects.create(name="get_refund")
    _post(client, api_key, {**TICKET, "subject": "Refund please", "body": "The jacket is torn"})
    _post(client, api_key, {**TICKET, "subject": "Password", "body": "I forgot my password"})
    Ticket.objects.filter(subject="Refund please").update(intent=refund, urgency="high", lane="large",
                                                          status="awaiting_review")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}

    def ids(query: str) -> list[str]:
        response = client.get(f"{URL}?{query}", **auth)
        assert response.status_code == 200, response.content
        return [t["subject"] for t in response.json()["results"]]

    assert ids("") == ["Password", "Refund please"]
    assert ids("intent=get_refund") == ["Refund please"]
    assert ids("urgency=high&lane=large&status=awaiting_review") == ["Refund please"]
    assert ids("search=torn jacket") == ["Refund please"]
    assert ids("search=forgot") == ["Password"]
    assert client.get(f"{URL}?limit=0", **auth).status_code == 400
    assert client.get(f"{URL}?status=bogus", **auth).status_code == 400


def test_the_openapi_document_and_docs_are_served(client: Client) -> None:
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/tickets"])
    assert client.get("/api/v1/docs").status_code == 200


def test_intake_runs_a_fixed_small_number_of_queries(client: Client, api_key: str,
                                                     django_assert_num_queries: Any) -> None:
    _post(client, api_key, TICKET)  # the key's "last used" write happens once a minute, not every time
    # key lookup, customer lookup, ticket insert: one INSERT needs no BEGIN and COMMIT around it (the SLA
    # policy is read once per 30 s)
    with django_assert_num_queries(3):
        assert _post(client, api_key, {**TICKET, "subject": "Another"}).status_code == 201
