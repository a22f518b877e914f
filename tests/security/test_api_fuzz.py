"""The API fuzzed from its own OpenAPI document (schemathesis): valid and invalid requests alike never get a
5xx, every answer matches the document, and every refusal is JSON with a `detail` message."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from triage import services
from triage.wsgi import application

pytestmark = pytest.mark.django_db

# Hypothesis keeps what it learns outside the checkout (as tests/triage/intake/test_mime.py does).
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "tierdesk-hypothesis"))

# Enough to find what the API mishandles, bounded so the suite stays quick: examples per operation.
MAX_EXAMPLES = 60


# The document as the running application serves it (read once, when the tests are collected).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    # Calls go straight into the WSGI application, in this thread and this test's transaction. Django would
    # close the connection at the end of each request, as the test client prevents it from doing.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def refusals_are_json_with_a_detail(ctx: Any, response: Any, case: Any) -> bool | None:
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise AssertionError(
                f"{response.status_code} answer is not JSON: {response.content[:200]!r}"
            ) from exc
        detail = body.get("detail") if isinstance(body, dict) else None
        assert isinstance(detail, str) and detail.strip(), (
            f"{response.status_code} answer has no detail: {body}"
        )
    return None


_current_key: dict[str, str] = {}


@schema.auth(refresh_interval=None)
class BearerKey:
    """The test's API key, given the way schemathesis expects auth: so a case that leaves the key out on
    purpose (to see the 401) is sent without it."""

    def get(self, case: Any, ctx: Any) -> str:
        # Asked once while tests are collected too, before any test has a key: any key is refused then.
        return _current_key.get("raw", "tdk_none-yet")

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def api_key() -> Iterator[str]:
    _current_key["raw"] = services.api_key_create(name="fuzz")[1]
    yield _current_key["raw"]
    _current_key.clear()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_answers_every_generated_request_without_a_server_error(
    case: Any, api_key: str, in_process_requests: None
) -> None:
    case.call_and_validate(additional_checks=[refusals_are_json_with_a_detail])
