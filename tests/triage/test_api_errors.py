"""What the API fuzzing found, pinned: input PostgreSQL cannot take is refused (or made storable) with a
clear JSON message instead of a 500, and errors raised before an endpoint runs are JSON too."""

from __future__ import annotations

import pytest
from django.test import Client

from triage import services
from triage.models import Ticket

pytestmark = pytest.mark.django_db

TICKET = {"subject": "Where is my order?", "body": "It has not arrived.", "from_email": "ana@example.com"}


@pytest.fixture
def auth() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(name='errors')[1]}"}


@pytest.mark.parametrize("field", ["subject", "body", "from_name", "external_id"])
def test_a_nul_character_in_a_text_field_is_a_clear_400(
    client: Client, auth: dict[str, str], field: str
) -> None:
    response = client.post(
        "/api/v1/tickets", {**TICKET, field: "before\x00after"}, content_type="application/json", **auth
    )
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}
    assert Ticket.objects.count() == 0


def test_nul_characters_in_metadata_are_stored_as_replacement_characters(
    client: Client, auth: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/tickets",
        {**TICKET, "metadata": {"k\x00": ["v\x00", {"x": "\x00"}]}},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 201
    assert Ticket.objects.get().metadata == {"k\ufffd": ["v\ufffd", {"x": "\ufffd"}]}


@pytest.mark.parametrize(
    "query", ["search=a%00b", "intent=%00", "offset=99999999999999999999", "limit=201", "stauts=new", "=x"]
)
def test_list_filters_the_database_cannot_take_are_refused(
    client: Client, auth: dict[str, str], query: str
) -> None:
    response = client.get(f"/api/v1/tickets?{query}", **auth)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_an_id_beyond_the_database_range_is_refused_not_looked_up(
    client: Client, auth: dict[str, str]
) -> None:
    response = client.get(f"/api/v1/tickets/{2**64}", **auth)
    assert response.status_code == 400 and response.json()["detail"] == "invalid request"


def test_an_unknown_api_path_and_a_wrong_method_answer_in_json(client: Client, auth: dict[str, str]) -> None:
    missing = client.get("/api/v1/nothing-here", **auth)
    assert missing.status_code == 404 and missing.json()["detail"] == "no such API path"
    wrong = client.delete("/api/v1/tickets", **auth)
    assert wrong.status_code == 405
    assert "does not take DELETE" in wrong.json()["detail"] and "GET" in wrong["Allow"]
