"""The dashboard shows, for a chosen period, numbers worked out here by hand from a small stored history.

The period is 2026-03-02 to 2026-03-08 in Europe/Berlin (UTC+1 then), "now" is 2026-03-08 12:00 UTC, and
prices are set so every cost below can be checked with a pencil.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.test import Client

from tests.support import builders
from triage import dashboard
from triage.errors import ApplicationError
from triage.models import (
    Correction,
    Draft,
    Intent,
    ModelCall,
    ReviewAction,
    RouteDecision,
    Ticket,
    TriageRun,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
WEEK = {"from": "2026-03-02", "to": "2026-03-08"}
FAR = dt.datetime(2026, 6, 1, tzinfo=UTC)  # a due time outside the period, for tickets the SLA test ignores


@pytest.fixture(autouse=True)
def berlin_and_prices(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    # USD per million tokens, in and out.
    settings.MODEL_PRICES = {"nano": (0.20, 1.25), "mini": (0.75, 4.50), "large": (2.50, 15.00)}


def at(obj: Model, when: dt.datetime) -> Any:
    """Stored rows take their creation time from the clock; history needs its own."""
    type(obj).objects.filter(pk=obj.pk).update(created_at=when)
    obj.created_at = when  # type: ignore[attr-defined]
    return obj


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def ticket(when: dt.datetime, *, lane: str = "", intent: Intent | None = None, status: str = "awaiting_review",
           urgency: str = "normal", due: dt.datetime = FAR, answered: dt.datetime | None = None) -> Ticket:
    row = builders.ticket(subject="s", body="b", from_email="c@example.com", lane=lane, intent=intent,
                                status=status, urgency=urgency, sla_due_at=due, first_response_at=answered)
    return at(row, when)


def call(tk: Ticket, when: dt.datetime, *, step: str, tier: str, tokens: tuple[int, int], cost: str, latency: int,
         valid: bool | None = True, error: str = "") -> ModelCall:
    row = ModelCall.objects.create(ticket=tk, step=step, tier=tier, engine="openai", model="m", prompt_id=step,
                                   prompt_version=1, tokens_in=tokens[0], tokens_out=tokens[1],
                                   cost_usd=Decimal(cost), latency_ms=latency, schema_valid=valid, error=error)
    return at(row, when)


def decision(tk: Ticket, when: dt.datetime, lane: str, reasons: list[str]) -> RouteDecision:
    return at(RouteDecision.objects.create(ticket=tk, lane=lane, reasons=reasons), when)


def draft(route: RouteDecision) -> Draft:
    return Draft.objects.create(ticket=route.ticket, route_decision=route, tier=route.lane, engine="local", model="m",
                                body="hello")


def review(tk: Ticket, when: dt.datetime, action: str, *, user: User, draft: Draft | None = None,
           distance: int | None = None) -> ReviewAction:
    row = ReviewAction.objects.create(ticket=tk, draft=draft, user=user, action=action, drafted_text="hello",
                                      edit_distance=distance)
    return at(row, when)


def run(tk: Ticket, intent: Intent) -> TriageRun:
    return TriageRun.objects.create(ticket=tk, tier="nano", engine="openai", model="m", intent=intent,
                                    urgency="normal", sentiment="neutral", language="en", confidence=0.8, summary="s")


def correction(tk: Ticket, when: dt.datetime, field: str, seconds: int | None, *, user: User,
               triage_run: TriageRun | None = None) -> Correction:
    row = Correction.objects.create(ticket=tk, triage_run=triage_run, field=field, old_value="a", new_value="b",
                                    user=user, seconds_since_triage=seconds)
    return at(row, when)


def build_history() -> dict[str, Any]:
    agent = User.objects.create_user("ines", password="ines-pass-3310")
    track, refund = Intent.objects.create(name="track_order"), Intent.objects.create(name="get_refund")

    # Tickets. Berlin is UTC+1: 22:30 UTC on the 2nd is still the 2nd there, 23:30 UTC is already the 3rd.
    t1 = ticket(t(2, 10), lane="mini", intent=track)
    t2 = ticket(t(2, 22, 30), lane="large", intent=refund)
    t3 = ticket(t(2, 23, 30), lane="large", intent=track)
    t4 = ticket(t(5, 12), lane="human")
    ticket(t(5, 13))  # not routed yet
    ticket(t(5, 14), lane="mini", status="ignored")  # automatic mail: not counted
    ticket(t(1, 22, 30), lane="mini")  # 23:30 on the 1st in Berlin: before the period
    t8 = ticket(t(8, 11), lane="mini", intent=track)
    ticket(t(8, 23), lane="mini")  # midnight of the 9th in Berlin: the period has ended

    # Route decisions: five in the period, three escalated.
    d1 = decision(t1, t(2, 10, 1), "mini", ["within_contract"])
    d2 = decision(t2, t(2, 22, 31), "large", ["low_confidence", "urgency_at_or_above_contract"])
    d3 = decision(t3, t(2, 23, 31), "large", ["low_confidence"])
    decision(t4, t(5, 12, 1), "human", ["within_contract", "drafts_switched_off"])
    d6 = decision(t8, t(8, 11, 1), "mini", ["within_contract"])
    decision(t8, t(9, 9), "large", ["vip_customer"])  # after the period

    # Model calls; cost is what the tier's prices give for the tokens.
    call(t1, t(2, 10), step="classify", tier="nano", tokens=(1000, 100), cost="0.000325", latency=100)
    call(t2, t(2, 22, 40), step="classify", tier="nano", tokens=(1000, 100), cost="0.000325", latency=200,
         valid=False, error="bad json")
    call(t2, t(2, 22, 41), step="classify", tier="nano", tokens=(1000, 100), cost="0.000325", latency=300)
    call(t2, t(2, 23, 10), step="draft", tier="large", tokens=(2000, 400), cost="0.011", latency=5000)
    call(t3, t(3, 0), step="classify", tier="nano", tokens=(1000, 100), cost="0.000325", latency=400, valid=None,
         error="timed out")
    call(t3, t(3, 0, 1), step="classify", tier="mini", tokens=(1000, 100), cost="0.0012", latency=1000)
    call(t1, t(2, 10, 5), step="draft", tier="mini", tokens=(2000, 400), cost="0.0033", latency=2000)
    call(t8, t(9, 9), step="classify", tier="nano", tokens=(1000, 100), cost="0.000325", latency=99999)

    # Agents' decisions on drafts.
    dr1, dr2, dr3, dr6 = draft(d1), draft(d2), draft(d3), draft(d6)
    review(t1, t(2, 11), "approve", user=agent, draft=dr1, distance=0)
    review(t2, t(3, 9), "edit_approve", user=agent, draft=dr2, distance=10)
    review(t2, t(3, 10), "edit_approve", user=agent, draft=dr2, distance=2)
    review(t8, t(8, 11, 30), "edit_approve", user=agent, draft=dr6, distance=30)
    review(t3, t(3, 9), "reject", user=agent, draft=dr3)
    review(t4, t(5, 13), "approve", user=agent, distance=0)  # no draft: the ticket's lane
    review(t1, t(2, 10, 30), "regenerate", user=agent, draft=dr1)  # decides nothing
    review(t8, t(9, 9), "edit_approve", user=agent, draft=dr6, distance=500)  # after the period

    # Corrections, attributed to the intent the model gave (track_order for t2, since corrected to get_refund).
    r1, r2 = run(t1, track), run(t2, track)
    correction(t2, t(3, 8), "intent", 120, user=agent, triage_run=r2)
    correction(t2, t(3, 8), "urgency", 600, user=agent, triage_run=r2)
    correction(t1, t(2, 10, 10), "intent", 300, user=agent, triage_run=r1)
    correction(t4, t(5, 12, 5), "sentiment", 60, user=agent)
    correction(t1, t(2, 12), "sentiment", None, user=agent, triage_run=r1)
    correction(t1, t(9, 9), "intent", 10, user=agent, triage_run=r1)  # after the period

    # SLA: tickets that arrived before the period but fell due in it.
    before = t(1, 8)
    ticket(before, urgency="urgent", due=t(3, 10), answered=t(3, 9, 50))  # met
    ticket(before, urgency="urgent", due=t(3, 11), answered=t(3, 11, 30))  # missed: answered late
    ticket(before, urgency="urgent", due=t(4, 10))  # missed: unanswered past due
    ticket(before, urgency="high", due=t(8, 18))  # open: not due yet at 12:00
    ticket(before, urgency="high", due=t(8, 18), answered=t(8, 11))  # met before due
    ticket(before, urgency="normal", due=t(5, 10), answered=t(5, 10))  # met at the due minute
    ticket(before, urgency="normal", due=t(5, 10), status="ignored")  # automatic mail: not counted
    ticket(before, urgency="low", due=t(9, 10))  # due after the period
    ticket(before, urgency="", due=t(6, 10))  # missed, urgency never set
    return {"agent": agent}


@pytest.fixture
def history() -> dict[str, Any]:
    return build_history()


def week() -> dashboard.Period:
    return dashboard.period_parse(query=WEEK, now=NOW)


def test_tickets_per_lane_are_counted_per_local_day(history: dict[str, Any]) -> None:
    lanes = dashboard.dashboard_for(period=week(), now=NOW).lanes
    assert lanes.labels == ["Mon 2 Mar", "Tue 3 Mar", "Wed 4 Mar", "Thu 5 Mar", "Fri 6 Mar", "Sat 7 Mar", "Sun 8 Mar"]
    assert lanes.lanes == ["mini", "large", "human", "(not routed)"]
    assert lanes.counts == {
        "mini": [1, 0, 0, 0, 0, 0, 1],
        "large": [1, 1, 0, 0, 0, 0, 0],
        "human": [0, 0, 0, 1, 0, 0, 0],
        "(not routed)": [0, 0, 0, 1, 0, 0, 0],
    }
    assert lanes.total == 6


def test_escalations_count_each_reason_on_decisions_sent_to_large_or_a_person(history: dict[str, Any]) -> None:
    esc = dashboard.dashboard_for(period=week(), now=NOW).escalations
    assert (esc.decisions, esc.to_large, esc.to_human, esc.rate) == (5, 2, 1, 0.6)
    assert [(r.reason, r.large, r.human) for r in esc.reasons] == [
        ("low_confidence", 2, 0), ("drafts_switched_off", 0, 1), ("urgency_at_or_above_contract", 1, 0),
    ]


def test_schema_pass_rate_and_latency_percentiles_per_tier(history: dict[str, Any]) -> None:
    tiers = {row.tier: row for row in dashboard.dashboard_for(period=week(), now=NOW).tiers}
    assert list(tiers) == ["nano", "mini", "large"]
    # nano: 4 classify calls, 2 valid (one invalid, one that timed out before answering).
    assert (tiers["nano"].classify_calls, tiers["nano"].classify_valid, tiers["nano"].pass_rate) == (4, 2, 0.5)
    assert tiers["mini"].pass_rate == 1.0
    assert tiers["large"].classify_calls == 0 and tiers["large"].pass_rate is None
    # Latency over every call: nano 100/200/300/400 ms, p95 at 0.95 × 3 = 2.85 of the way: 300 + 0.85 × 100.
    assert (tiers["nano"].p50_ms, tiers["nano"].p95_ms) == (250, pytest.approx(385))
    assert (tiers["mini"].p50_ms, tiers["mini"].p95_ms) == (1500, pytest.approx(1950))
    assert (tiers["large"].p50_ms, tiers["large"].p95_ms) == (5000, 5000)


def test_cost_per_ticket_is_set_against_the_same_calls_priced_at_large(history: dict[str, Any]) -> None:
    board = dashboard.dashboard_for(period=week(), now=NOW)
    tiers = {row.tier: row for row in board.tiers}
    assert tiers["nano"].cost == Decimal("0.0013")
    # nano's 4,000 tokens in and 400 out at large rates: 4000 × 2.50 + 400 × 15.00 per million.
    assert tiers["nano"].baseline == Decimal("0.016")
    assert (tiers["mini"].cost, tiers["mini"].baseline) == (Decimal("0.0045"), Decimal("0.015"))
    assert tiers["large"].cost == tiers["large"].baseline == Decimal("0.011")
    summary = board.cost_summary
    assert (summary.calls, summary.tickets) == (7, 3)
    assert (summary.cost, summary.baseline) == (Decimal("0.0168"), Decimal("0.042"))
    assert (summary.per_ticket, summary.baseline_per_ticket) == (Decimal("0.0056"), Decimal("0.014"))
    assert summary.saving == pytest.approx(0.6)
    # The chart: a ticket's cost split by tier, beside the all-large bar.
    chart = dashboard.chart_data(board)["cost_per_ticket"]
    assert chart["labels"] == ["actual", "all large"]
    assert [(s["name"], s["data"]) for s in chart["series"]] == [
        ("nano", [pytest.approx(0.0013 / 3, abs=1e-8), None]), ("mini", [0.0015, None]),
        ("large", [pytest.approx(0.011 / 3, abs=1e-8), None])]
    assert chart["baseline"] == 0.014


def test_cost_per_day_by_tier_with_the_all_large_baseline(history: dict[str, Any]) -> None:
    cost = dashboard.dashboard_for(period=week(), now=NOW).cost
    assert cost.tiers == ["nano", "mini", "large"]
    zero = Decimal(0)
    assert cost.by_tier["nano"] == [Decimal("0.000975"), Decimal("0.000325"), zero, zero, zero, zero, zero]
    assert cost.by_tier["mini"] == [Decimal("0.0033"), Decimal("0.0012"), zero, zero, zero, zero, zero]
    # The large draft at 23:10 UTC on the 2nd belongs to Berlin's 3rd.
    assert cost.by_tier["large"] == [zero, Decimal("0.011"), zero, zero, zero, zero, zero]
    # 2nd: 5,000 tokens in and 700 out; 3rd: 4,000 in and 600 out, at large rates.
    assert cost.baseline == [Decimal("0.023"), Decimal("0.019"), zero, zero, zero, zero, zero]
    assert cost.totals[:2] == [Decimal("0.004275"), Decimal("0.012525")]


def test_draft_outcomes_by_intent_and_lane_with_edit_distance(history: dict[str, Any]) -> None:
    out = dashboard.dashboard_for(period=week(), now=NOW).outcomes
    figures = {r.key: (r.approved_unchanged, r.edited, r.rejected, r.edit_mean, r.edit_median) for r in out.by_intent}
    assert figures == {
        "track_order": (1, 1, 1, 30.0, 30.0),
        "get_refund": (0, 2, 0, 6.0, 6.0),
        "(no intent)": (1, 0, 0, None, None),
    }
    figures = {r.key: (r.approved_unchanged, r.edited, r.rejected, r.edit_mean, r.edit_median) for r in out.by_lane}
    assert figures == {"mini": (1, 1, 0, 30.0, 30.0), "large": (0, 2, 1, 6.0, 6.0), "human": (1, 0, 0, None, None)}
    assert [r.key for r in out.by_lane] == ["mini", "large", "human"]
    overall = out.overall
    # Edited drafts changed by 10, 2 and 30 characters: mean 14, median 10.
    assert (overall.approved_unchanged, overall.edited, overall.rejected) == (2, 3, 1)
    assert (overall.edit_mean, overall.edit_median) == (14.0, 10.0)
    assert overall.unchanged_share == pytest.approx(2 / 6)


def test_corrections_within_five_minutes_by_field_and_the_intent_the_model_gave(history: dict[str, Any]) -> None:
    corr = dashboard.dashboard_for(period=week(), now=NOW).corrections
    assert {(r.field, r.intent): (r.within_5_min, r.total) for r in corr.rows} == {
        ("intent", "track_order"): (2, 2),  # 120 s and exactly 300 s
        ("urgency", "track_order"): (0, 1),
        ("sentiment", "(no intent)"): (1, 1),
        ("sentiment", "track_order"): (0, 1),  # no time recorded: not counted as within
    }
    assert [(r.field, r.within_5_min, r.total) for r in corr.by_field] == [
        ("intent", 2, 2), ("urgency", 0, 1), ("sentiment", 1, 2)]
    assert (corr.within_5_min, corr.total) == (3, 5)


def test_sla_attainment_by_urgency_with_open_tickets_left_out(history: dict[str, Any]) -> None:
    sla = dashboard.dashboard_for(period=week(), now=NOW).sla
    assert [(r.urgency, r.met, r.missed, r.open) for r in sla.rows] == [
        ("urgent", 1, 2, 0), ("high", 1, 0, 1), ("normal", 1, 0, 0), ("(not set)", 0, 1, 0)]
    assert [r.attainment for r in sla.rows] == [pytest.approx(1 / 3), 1.0, 1.0, 0.0]
    assert (sla.overall.met, sla.overall.missed, sla.overall.open, sla.overall.attainment) == (3, 3, 1, 0.5)


def test_the_dashboard_costs_seven_queries_whatever_the_data(history: dict[str, Any],
                                                             django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(7):
        dashboard.dashboard_for(period=week(), now=NOW)
    with django_assert_num_queries(7):
        dashboard.dashboard_for(period=dashboard.period_parse(query={"period": "90d"}, now=NOW), now=NOW)


def test_an_empty_period_has_zeros_and_no_rates(history: dict[str, Any]) -> None:
    board = dashboard.dashboard_for(period=dashboard.period_parse(query={"from": "2025-01-01", "to": "2025-01-31"},
                                                                 now=NOW), now=NOW)
    assert board.lanes.total == 0 and len(board.lanes.labels) == 31
    assert board.escalations.decisions == 0 and board.escalations.rate is None
    assert board.tiers == [] and board.cost_summary.per_ticket is None and board.cost_summary.saving is None
    assert board.outcomes.overall.total == 0 and board.corrections.total == 0 and board.sla.rows == []


# --- The period ---------------------------------------------------------------------------------

def test_the_last_seven_days_are_whole_local_days_ending_today() -> None:
    period = dashboard.period_parse(query={}, now=NOW)
    assert (period.preset, period.unit, period.first_day, period.last_day) == ("7d", "day", dt.date(2026, 3, 2),
                                                                              dt.date(2026, 3, 8))
    assert (period.start, period.end) == (t(1, 23), t(8, 23))


def test_the_last_24_hours_are_24_hourly_buckets_ending_with_this_hour() -> None:
    period = dashboard.period_parse(query={"period": "24h"}, now=t(8, 12, 40))
    assert (period.start, period.end, period.unit) == (t(7, 13), t(8, 13), "hour")
    keys = period.bucket_keys()
    assert len(keys) == 24 and keys[0] == dt.datetime(2026, 3, 7, 14) and keys[-1] == dt.datetime(2026, 3, 8, 13)  # noqa: DTZ001 (wall-clock keys)
    assert period.bucket_label(keys[-1]) == "Sun 13:00"


def test_a_day_when_clocks_go_forward_has_23_hourly_buckets() -> None:
    period = dashboard.period_parse(query={"from": "2026-03-29", "to": "2026-03-29"}, now=NOW)
    assert period.unit == "hour" and len(period.bucket_keys()) == 23
    assert (period.start, period.end) == (dt.datetime(2026, 3, 28, 23, tzinfo=UTC),
                                          dt.datetime(2026, 3, 29, 22, tzinfo=UTC))


def test_three_chosen_days_are_drawn_by_the_day_and_two_by_the_hour() -> None:
    assert dashboard.period_parse(query={"from": "2026-03-01", "to": "2026-03-03"}, now=NOW).unit == "day"
    two = dashboard.period_parse(query={"from": "2026-03-01", "to": "2026-03-02"}, now=NOW)
    assert two.unit == "hour" and len(two.bucket_keys()) == 48


@pytest.mark.parametrize(("query", "message"), [
    ({"from": "2026-03-09", "to": "2026-03-02"}, "the from date (2026-03-09) is after the to date (2026-03-02)"),
    ({"from": "2026-02-30", "to": "2026-03-02"}, "the from date “2026-02-30” is not a date; use YYYY-MM-DD"),
    ({"from": "yesterday", "to": "2026-03-02"}, "the from date “yesterday” is not a date; use YYYY-MM-DD"),
    ({"from": "2025-01-01", "to": "2026-01-02"}, "a period can be at most 366 days; 2025-01-01 to 2026-01-02 is 367 days"),
    ({"from": "2026-03-02"}, "choose both a from date and a to date"),
    ({"from": "0001-01-01", "to": "0001-01-02"}, "the from date 0001-01-01 is outside the years the dashboard can show"),
    ({"period": "forever"}, "choose a period: the last 24 hours, 7, 30 or 90 days, or from and to dates"),
])
def test_a_bad_period_is_refused_with_a_clear_message(query: dict[str, str], message: str) -> None:
    with pytest.raises(ApplicationError) as refused:
        dashboard.period_parse(query=query, now=NOW)
    assert refused.value.message == message


def test_a_leap_year_of_366_days_is_allowed() -> None:
    period = dashboard.period_parse(query={"from": "2024-01-01", "to": "2024-12-31"}, now=NOW)
    assert period.days == 366 and len(period.bucket_keys()) == 366


# --- The page -----------------------------------------------------------------------------------

def _member(name: str, group: str | None) -> User:
    user = User.objects.create_user(name, password=f"{name}-pass-7702")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def agent_client(client: Client) -> Client:
    client.force_login(_member("alice", "agents"))
    return client


def _cells(html: str, testid: str) -> list[list[str]]:
    table = re.search(rf'<table class="numbers" data-testid="{testid}">(.*?)</table>', html, re.DOTALL)
    assert table, f"no table {testid}"
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.DOTALL)]


CHARTS = ("lanes", "reasons", "schema", "latency", "cost", "cost-per-ticket", "outcomes-intent", "outcomes-lane",
          "corrections", "sla")


def test_an_agent_sees_every_chart_with_the_numbers_behind_it(history: dict[str, Any], agent_client: Client) -> None:
    response = agent_client.get("/dashboard", WEEK)
    assert response.status_code == 200
    html = response.content.decode()
    for chart in CHARTS:
        assert f'data-testid="chart-{chart}"' in html
    assert 'id="dashboard-data" type="application/json"' in html
    assert "tierdesk/vendor/chart-4.6.1.umd.min.js" in html and "tierdesk/dashboard.css" in html
    assert "No data in this period." not in html
    assert _cells(html, "table-lanes")[1] == ["Mon 2 Mar", "1", "1", "0", "0", "2"]
    assert _cells(html, "table-lanes")[-1] == ["All", "2", "2", "1", "1", "6"]
    assert _cells(html, "table-reasons")[1] == ["low_confidence", "2", "0", "2"]
    assert _cells(html, "table-schema")[1] == ["nano", "4", "2", "50.0%"]
    assert _cells(html, "table-latency")[1] == ["nano", "4", "250", "385"]
    assert _cells(html, "table-cost")[2] == ["Tue 3 Mar", "$0.000325", "$0.00120", "$0.0110", "$0.0125", "$0.0190"]
    assert "$0.00560 per ticket against $0.0140 all-large (60.0% less), over 3 tickets." in html
    assert _cells(html, "table-outcomes-intent")[-1] == ["All", "2", "3", "14.0", "10.0", "1", "6"]
    assert _cells(html, "table-outcomes-lane")[2] == ["large", "0", "2", "6.0", "6.0", "1", "3"]
    assert ["intent", "track_order", "2", "2"] in _cells(html, "table-corrections")
    assert "3 of 5 corrections within 5 minutes; intent 2 of 2; urgency 0 of 1; sentiment 1 of 2." in html
    # Against today's clock every ticket due in March is past due: the high one still unanswered is missed.
    assert _cells(html, "table-sla")[2] == ["high", "1", "1", "50.0%", "0"]


def test_an_htmx_request_gets_only_the_dashboard_body(history: dict[str, Any], agent_client: Client) -> None:
    response = agent_client.get("/dashboard", WEEK, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert html.lstrip().startswith('<div id="dashboard-body"') and "<html" not in html
    assert 'data-testid="chart-sla"' in html and 'id="dashboard-data"' in html


def test_restoring_history_gets_the_whole_page(agent_client: Client) -> None:
    response = agent_client.get("/dashboard", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert response.status_code == 200 and "<html" in response.content.decode()


def test_an_empty_period_says_so_for_every_chart(agent_client: Client) -> None:
    html = agent_client.get("/dashboard", {"period": "30d"}).content.decode()
    for chart in CHARTS:
        assert f'data-testid="empty-{chart}">No data in this period.</p>' in html
    assert "<canvas" not in html


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_period_is_a_400_with_its_message(agent_client: Client, htmx: bool) -> None:
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = agent_client.get("/dashboard", {"from": "2026-03-09", "to": "2026-03-02"}, **headers)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-testid="period-error">the from date (2026-03-09) is after the to date (2026-03-02)</p>' in html
    assert 'value="2026-03-09"' in html  # the form keeps what was typed
    assert "<canvas" not in html and "dashboard-data" not in html
    response = agent_client.get("/dashboard", {"from": "2026-03-99", "to": "x"}, **headers)
    assert response.status_code == 400 and "is not a date" in response.content.decode()


def test_admins_see_the_dashboard_too(client: Client) -> None:
    client.force_login(_member("ada", "admins"))
    assert client.get("/dashboard").status_code == 200


def test_outsider_gets_404(client: Client) -> None:
    client.force_login(_member("mallory", None))
    assert client.get("/dashboard").status_code == 404
    assert client.get("/dashboard", HTTP_HX_REQUEST="true").status_code == 404


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/dashboard?period=30d")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/dashboard%3Fperiod%3D30d"


def test_the_page_costs_ten_queries_with_or_without_data(agent_client: Client, django_assert_num_queries: Any) -> None:
    # session, user, groups, then the seven series.
    with django_assert_num_queries(10):
        agent_client.get("/dashboard", WEEK)
    build_history()
    with django_assert_num_queries(10):
        agent_client.get("/dashboard", WEEK)


def test_the_nav_links_to_the_dashboard(agent_client: Client) -> None:
    assert '<a href="/dashboard">Dashboard</a>' in agent_client.get("/").content.decode()
