"""In chromium: an agent opens the dashboard over three weeks of history, reads every chart and its numbers, and
changes the period."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_in
from tests.support import history
from triage import dashboard

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHARTS = ("lanes", "reasons", "schema", "latency", "cost", "cost-per-ticket", "outcomes-intent", "outcomes-lane",
          "corrections", "sla")

# For one chart: how many datasets, and the sum of every number drawn (null gaps count as 0).
DRAWN = """id => {
  const chart = Chart.getChart(document.getElementById(id));
  if (!chart) return null;
  const values = chart.data.datasets.flatMap(d => d.data).map(v => v === null ? 0 : Number(v));
  return {type: chart.config.type, datasets: chart.data.datasets.length, labels: chart.data.labels.length,
          sum: values.reduce((a, b) => a + b, 0)};
}"""


def _screenshot_path() -> Path:
    # The committed screenshot in docs/ is refreshed only on request; ordinary runs keep theirs as an artifact.
    if os.environ.get("TIERDESK_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS / "dashboard.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / "dashboard.png"


def _wait_for_charts(page: Any) -> None:
    for chart in CHARTS:
        page.locator(f"canvas[data-testid=chart-{chart}][data-rendered=true]").wait_for()


def _wait_for_every_canvas(page: Any) -> None:
    """After a swap: every chart the period has data for is drawn (a short period may lack some)."""
    page.locator("canvas[data-chart]").first.wait_for()
    expect(page.locator("canvas[data-chart]:not([data-rendered=true])")).to_have_count(0)


def _open_tables(page: Any) -> None:
    for summary in page.locator("details > summary").all():
        summary.click()


def test_an_agent_reads_every_chart_and_its_numbers_and_changes_the_period(live_server: Any, page: Any) -> None:
    agent = User.objects.create_user("ines", password="ines-pass-6204")
    agent.groups.add(Group.objects.get_or_create(name="agents")[0])
    history.populate(tickets=1500, days=21, now=timezone.now(), user=agent)
    week = dashboard.dashboard_for(period=dashboard.period_parse(query={"period": "7d"}))
    assert week.lanes.total > 300 and week.corrections.within_5_min > 0  # enough history to draw every chart

    sign_in(page, live_server.url, "ines", "ines-pass-6204")
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    _wait_for_charts(page)
    drawn = {chart: page.evaluate(DRAWN, f"chart-{chart}") for chart in CHARTS}
    for chart, figures in drawn.items():
        assert figures is not None and figures["datasets"] > 0 and figures["sum"] > 0, chart
    # What is drawn is what the tables say.
    assert drawn["lanes"]["labels"] == 7 and drawn["lanes"]["sum"] == week.lanes.total
    assert drawn["reasons"]["sum"] == sum(r.total for r in week.escalations.reasons)
    assert drawn["sla"]["sum"] == week.sla.overall.met + week.sla.overall.missed + week.sla.overall.open
    assert drawn["outcomes-lane"]["sum"] == week.outcomes.overall.total
    assert drawn["corrections"]["sum"] == week.corrections.within_5_min
    assert drawn["cost"]["type"] == "bar" and drawn["cost-per-ticket"]["datasets"] == len(week.tiers) + 1

    _open_tables(page)
    lanes = page.get_by_test_id("table-lanes")
    assert lanes.is_visible()
    assert lanes.locator("tfoot td").last.inner_text() == str(week.lanes.total)
    sla_total = page.get_by_test_id("table-sla").locator("tfoot td")
    assert sla_total.nth(0).inner_text() == str(week.sla.overall.met)
    assert sla_total.nth(1).inner_text() == str(week.sla.overall.missed)
    nano = page.get_by_test_id("table-schema").locator("tbody tr").first.locator("td")
    tier = week.tiers[0]
    assert [nano.nth(i).inner_text() for i in range(3)] == ["nano", str(tier.classify_calls), str(tier.classify_valid)]
    outcomes = page.get_by_test_id("table-outcomes-intent").locator("tfoot td")
    assert outcomes.nth(0).inner_text() == str(week.outcomes.overall.approved_unchanged)
    assert outcomes.nth(4).inner_text() == str(week.outcomes.overall.rejected)
    page.screenshot(path=str(_screenshot_path()), full_page=True)

    # Another period: htmx swaps the body, the address follows, the charts are drawn again by the hour.
    page.get_by_role("link", name="Last 24 hours").click()
    page.get_by_test_id("period").get_by_text("Last 24 hours").wait_for()
    _wait_for_every_canvas(page)
    assert page.url.endswith("/dashboard?period=24h")
    day = dashboard.dashboard_for(period=dashboard.period_parse(query={"period": "24h"}))
    lanes_drawn = page.evaluate(DRAWN, "chart-lanes")
    assert lanes_drawn["labels"] == 24 and lanes_drawn["sum"] == day.lanes.total < week.lanes.total
    page.get_by_test_id("card-lanes").locator("summary").click()
    assert page.get_by_test_id("table-lanes").locator("tfoot td").last.inner_text() == str(day.lanes.total)

    # A refused period says why, in place of the charts.
    page.get_by_label("From").fill("2026-03-09")
    page.get_by_label("To").fill("2026-03-02")
    page.get_by_role("button", name="Show").click()
    error = page.get_by_test_id("period-error")
    error.wait_for()
    assert error.inner_text() == "the from date (2026-03-09) is after the to date (2026-03-02)"
    assert page.locator("canvas").count() == 0

    page.get_by_role("link", name="Last 30 days").click()
    page.get_by_test_id("period").get_by_text("Last 30 days").wait_for()
    _wait_for_charts(page)
    assert page.evaluate(DRAWN, "chart-lanes")["labels"] == 30
    assert page.get_by_test_id("period-error").count() == 0

    # Back to the last 24 hours: the restored page draws its charts again.
    page.go_back()
    page.go_back()
    page.get_by_test_id("period").get_by_text("Last 24 hours").wait_for()
    _wait_for_every_canvas(page)
    assert page.evaluate(DRAWN, "chart-lanes")["labels"] == 24
