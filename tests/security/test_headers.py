"""Every HTML page comes with a strict Content-Security-Policy and the other browser-hardening headers, and no
template carries the inline script or style the policy would refuse (the browser walk in
tests/browser/test_content_security_policy.py shows chromium agrees)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.security.conftest import Cast
from tests.security.test_outsider_walk import ADMIN, ADMIN_OR_SCRAPER, AGENT, PUBLIC, read, routes_in

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def assert_hardened(response: Any, where: str) -> None:
    assert directives(response["Content-Security-Policy"]) == POLICY, where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert response["Referrer-Policy"] == "same-origin", where
    assert response["X-Frame-Options"] == "DENY", where
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", where
    assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]


def test_the_policy_allows_no_inline_or_evaluated_script() -> None:
    from csp.utils import build_policy

    header = build_policy()
    assert directives(header) == POLICY
    assert "unsafe" not in header and "*" not in header and "data:" not in header


def test_every_html_page_an_admin_opens_carries_the_headers(client: Client, cast: Cast, samples: dict[str, str]) -> None:
    client.force_login(cast.alice)
    pages = 0
    for route in routes_in(AGENT | ADMIN | ADMIN_OR_SCRAPER | PUBLIC):
        response = client.get(route.path(samples))
        read(response)
        if response.get("Content-Type", "").startswith("text/html") and response.status_code == 200:
            assert_hardened(response, route.pattern)
            pages += 1
    assert pages >= 20


def test_pages_for_visitors_refusals_and_the_django_admin_carry_them_too(client: Client, cast: Cast) -> None:
    for path in ("/login/", "/no-such-page", "/tickets/1/"):
        assert_hardened(client.get(path), path)
    client.force_login(cast.charlie)  # an outsider's 404
    assert_hardened(client.get("/dashboard"), "outsider's 404")
    cast.alice.is_staff = cast.alice.is_superuser = True
    cast.alice.save()
    client.force_login(cast.alice)
    for path in ("/admin/", f"/admin/auth/user/{cast.bob.pk}/change/", "/api/v1/docs"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_hardened(response, path)


TEMPLATES = Path(settings.BASE_DIR) / "templates"
# What the policy refuses in markup: a <script> without src (json_script's data is rendered, not written
# here), on*= handlers, htmx's hx-on (evaluated as code, like event filters: below), style attributes and
# <style> blocks, javascript: URLs.
INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE), "inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "an on*= event handler"),
    (re.compile(r"\shx-on(:|-|=)", re.IGNORECASE), "hx-on"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "a style attribute"),
    (re.compile(r"<style", re.IGNORECASE), "a <style> block"),
    (re.compile(r"javascript:", re.IGNORECASE), "a javascript: URL"),
]


def has_event_filter(text: str) -> bool:
    """An hx-trigger with a [filter] after an event; a from:selector[attr] is CSS, not code."""
    return any("[" in re.sub(r"from:\S+", "", spec) for spec in re.findall(r"hx-trigger=\"([^\"]*)\"", text))


def test_no_template_has_inline_script_or_style() -> None:
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        found += [f"{template.relative_to(TEMPLATES)}: {what}" for pattern, what in INLINE if pattern.search(text)]
        if has_event_filter(text):
            found.append(f"{template.relative_to(TEMPLATES)}: an hx-trigger event filter")
    assert not found, found
    assert len(list(TEMPLATES.rglob("*.html"))) > 20
