"""In chromium, under the Content-Security-Policy every page is served with: an admin walks the main pages and
uses what runs script on them (htmx polling and swaps, charts, selects that submit, the alert's dismiss button,
the composer's macro picker and blank highlighting, the markdown preview, the password reset pages, the Django admin, the API docs), and the browser reports no
violation and no error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from kb.services import article_create
from tests.browser.conftest import sign_in
from tests.support import builders, history
from triage import services
from triage.models import Draft, EvalRun, Intent, Macro, Message, RouteDecision, Ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "ada-pass-7730"

# Reports every violation to the test, from every document the page loads (the binding outlives navigation).
LISTEN = """document.addEventListener("securitypolicyviolation", (e) => window.__cspViolation({
  page: document.location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI,
  source: `${e.sourceFile}:${e.lineNumber}`, sample: e.sample,
}));"""


class Watch:
    """Everything the browser says went wrong: CSP violations, console errors and warnings, uncaught errors."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.expose_function("__cspViolation", lambda v: self.problems.append(f"violation {v}"))
        page.add_init_script(LISTEN)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught on {page.url}: {e}"))
        self.page = page

    def _console(self, message: Any) -> None:
        # Chromium logs every 4xx answer as "Failed to load resource" (the 409 below is meant, and the favicon
        # it asks for on its own does not exist); what a page's script or the policy did wrong is anything else.
        if message.type in ("error", "warning") and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console {message.type} on {self.page.url}: {message.text}")

    @contextmanager
    def step(self, where: str) -> Iterator[None]:
        """A step of the walk: it must work, and leave the browser with nothing to report."""
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"{where} did not work; the browser reported {self.problems}") from exc
        assert not self.problems, f"{where}: {self.problems}"


def _ticket(ada: User) -> Ticket:
    intent = Intent.objects.create(name="track_order")
    Intent.objects.create(name="get_refund")
    ticket = builders.ticket(subject="Where is my parcel?", body="It has not arrived.",
                                   from_email="casey@example.com", from_name="Casey", status="awaiting_review",
                                   intent=intent, lane="mini", engine="local", confidence=0.9)
    Message.objects.create(ticket=ticket, direction=Message.Direction.INBOUND, message_id="csp-1@example.com",
                           from_email="casey@example.com", text="It has not arrived.",
                           html="<p>It has <strong>not</strong> arrived.</p>")
    decision = RouteDecision.objects.create(ticket=ticket, lane="mini", reasons=["within_contract"])
    Draft.objects.create(ticket=ticket, route_decision=decision, tier="mini", engine="local", model="m",
                         body="Hi Casey,\n\nIt left our warehouse yesterday.\n\nKind regards", grounded=True)
    return ticket


def _eval_run() -> EvalRun:
    f1 = {"track_order": 0.9, "get_refund": 0.8}
    report = {
        "n": 100, "accuracy": 0.85, "macro_f1": 0.85, "other_rate": 0.0, "cost_usd": 0.0, "failed": 0,
        "per_label": {k: {"precision": v, "recall": v, "f1": v, "support": 50} for k, v in f1.items()},
        "confusion": {"labels": list(f1), "matrix": [[45, 5], [10, 40]]},
        "latency_ms": {"p50": 3.0, "p95": 9.0}, "engine": "local", "model": "m",
    }
    return EvalRun.objects.create(kind="triage", name="baseline", tier="local", engine="local", model="m",
                                  dataset="holdout.csv", report=report)


def test_no_page_breaks_the_content_security_policy(live_server: Any, page: Any) -> None:
    ada = User.objects.create_user("ada", password=PASSWORD, is_staff=True, is_superuser=True)
    ada.groups.add(Group.objects.get_or_create(name="admins")[0])
    bob = User.objects.create_user("bob", password="bob-pass-7730")
    bob.groups.add(Group.objects.get_or_create(name="agents")[0])
    ticket = _ticket(ada)
    history.populate(tickets=200, days=7, now=timezone.now(), user=ada)
    article = article_create(actor=ada, title="Returns", body="Send it back within **30 days**.", publish=True)
    run = _eval_run()
    url = live_server.url
    watch = Watch(page)

    with watch.step("password reset pages"):
        page.goto(f"{url}/login/")
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_label("Email").fill("nobody@example.com")
        page.get_by_role("button", name="Send the link").click()
        page.get_by_test_id("reset-sent").wait_for()
        page.goto(f"{url}/password/reset/MQ/not-a-reset-token/")
        page.get_by_test_id("reset-link-invalid").wait_for()

    with watch.step("sign-in page"):
        sign_in(page, url, "ada", PASSWORD)

    with watch.step("queue"):
        # A poll is answered and swapped in; the filters fetch rows with htmx.
        with page.expect_response(lambda r: r.request.headers.get("hx-trigger") == "queue-rows", timeout=15_000):
            pass
        page.locator("#queue-rows tr[data-ticket-id]").first.wait_for()
        page.get_by_label("Urgency").select_option("high")
        page.wait_for_url("**/?*urgency=high*")

    with watch.step("ticket"):
        page.goto(f"{url}/tickets/{ticket.pk}/")
        page.get_by_text("Show as formatted").click()
        page.frame_locator("iframe.mail-html").locator("strong").wait_for()
        # Another agent changes the ticket: approving answers with the alert, whose button dismisses it.
        services.ticket_assign(ticket_id=ticket.pk, assignee=bob, actor=bob)
        page.get_by_test_id("approve").click()
        page.get_by_test_id("ticket-alert").wait_for()
        page.get_by_role("button", name="Dismiss").click()
        page.get_by_test_id("ticket-alert").wait_for(state="detached")

    with watch.step("ticket composer"):
        Macro.objects.create(name="Order update", body="Hi {{first_name}}, order {{order_number}} is on its way.")
        page.goto(f"{url}/tickets/{ticket.pk}/")
        page.locator("h1").click()
        page.keyboard.press("?")
        page.get_by_test_id("help-dialog").wait_for()
        page.keyboard.press("Escape")
        page.get_by_test_id("composer-body").click()
        page.keyboard.press("Control+/")
        page.get_by_test_id("macro-option").wait_for()
        page.get_by_test_id("macro-search").press("Enter")
        page.get_by_test_id("composer-preview").locator("mark.blank").wait_for()
        expect(page.get_by_test_id("composer-send")).to_be_disabled()
        page.get_by_test_id("start-from-draft").click()
        page.get_by_test_id("composer-send").click()
        page.get_by_text("Reply queued for sending.").wait_for()

    with watch.step("dashboard"):
        page.goto(f"{url}/dashboard")
        drawn = page.locator("canvas[data-chart][data-rendered=true]")
        drawn.first.wait_for()
        expect(page.locator("canvas[data-chart]:not([data-rendered=true])")).to_have_count(0)
        page.get_by_role("link", name="Last 30 days").click()  # htmx swaps in another period, charts redrawn
        page.wait_for_url("**period=30d*")
        drawn.first.wait_for()
        expect(page.locator("canvas[data-chart]:not([data-rendered=true])")).to_have_count(0)

    with watch.step("routing settings"):
        page.goto(f"{url}/settings/routing")
        page.get_by_label("Contract for").select_option("track_order")  # submits itself
        page.wait_for_url("**intent=track_order")
        page.get_by_test_id("preview").click()
        page.get_by_test_id("whatif").get_by_text("Change a value or press Preview").wait_for(state="detached")
    for path in ("settings/switches", "settings/prompts", "settings/gates", "settings/shadow", "settings/audit",
                 "settings/sla", "settings/team", "settings/macros", "settings/learning", "settings/kb/index", "settings/evals"):
        with watch.step(path):
            page.goto(f"{url}/{path}")
            page.locator("h1").first.wait_for()
    with watch.step("an eval run"):
        page.goto(f"{url}/settings/evals/{run.pk}")
        shades = page.get_by_test_id("confusion").locator("td.diag").evaluate_all(
            "cells => cells.map(c => getComputedStyle(c).backgroundColor)")
        assert len(set(shades)) == 2  # 45 and 40 of 45: two shades, from classes instead of inline styles

    with watch.step("knowledge base"):
        page.goto(f"{url}/kb/")
        page.get_by_label("Status").select_option("published")  # submits itself
        page.wait_for_url("**status=published")
        page.goto(f"{url}/kb/{article.pk}/edit")
        page.get_by_label("Body").fill("A *new* paragraph.")
        page.locator("#preview em").wait_for()  # the markdown preview, rendered by the server and swapped in
        for path in (f"kb/{article.pk}/", f"kb/{article.pk}/v/1", "kb/new"):
            page.goto(f"{url}/{path}")
            page.locator("h1").first.wait_for()
        page.goto(f"{url}/kb/gaps")
        page.get_by_label("Period").select_option("90")
        page.wait_for_url("**days=90")

    with watch.step("Django admin"):
        page.goto(f"{url}/admin/")
        page.goto(f"{url}/admin/auth/user/{ada.pk}/change/")
        page.locator("#user_form").wait_for()

    with watch.step("API docs"):
        page.goto(f"{url}/api/v1/docs")
        page.locator(".swagger-ui .info").wait_for()
