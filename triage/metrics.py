"""Prometheus metrics, read from the database at scrape time.

Counters come from the stored records (model calls, route decisions, reviews, corrections), so every web
process reports the same totals and a restart loses nothing; they only go down if records are deleted. The
dashboard's series are here too, over all time, defined by the same SQL (triage.dashboard) as the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from triage.dashboard import (
    corrections_source,
    draft_outcomes_source,
    escalation_reasons_source,
    sla_result_sql,
)
from triage.llm.tiers import cost_usd

# Model-call latency buckets, seconds: the local engine answers in milliseconds, a large model in tens of seconds.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Characters agents change in a draft before approving it: a typo fix to a rewrite.
EDIT_DISTANCE_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500)


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


class TierdeskCollector(Collector):
    def collect(self) -> Iterator[Any]:
        tickets = GaugeMetricFamily("tierdesk_tickets", "Tickets by status and lane", labels=["status", "lane"])
        for status, lane, n in _rows("SELECT status, lane, count(*) FROM triage_ticket GROUP BY 1, 2"):
            tickets.add_metric([status, lane or "none"], n)
        yield tickets

        calls = CounterMetricFamily("tierdesk_model_calls", "Model calls by step, tier, engine and outcome",
                                    labels=["step", "tier", "engine", "outcome"])
        tokens = CounterMetricFamily("tierdesk_model_tokens", "Tokens by tier, engine and direction",
                                     labels=["tier", "engine", "direction"])
        cost = CounterMetricFamily("tierdesk_model_cost_usd", "Model spend in USD by tier and engine",
                                   labels=["tier", "engine"])
        all_large = CounterMetricFamily("tierdesk_model_cost_all_large_usd",
                                        "The same calls' tokens priced at the large tier's rates, in USD",
                                        labels=["tier", "engine"])
        outcome = ("CASE WHEN error <> '' AND schema_valid IS DISTINCT FROM false THEN 'error' "
                   "WHEN schema_valid = false THEN 'schema_invalid' ELSE 'ok' END")
        for step, tier, engine, result, n in _rows(
                f"SELECT step, tier, engine, {outcome}, count(*) FROM triage_modelcall GROUP BY 1, 2, 3, 4"):
            calls.add_metric([step, tier, engine, result], n)
        spend: dict[tuple[str, str], list[float]] = {}
        for tier, engine, tokens_in, tokens_out, usd in _rows(
                "SELECT tier, engine, sum(tokens_in), sum(tokens_out), sum(cost_usd) FROM triage_modelcall "
                "GROUP BY 1, 2"):
            tokens.add_metric([tier, engine, "in"], int(tokens_in or 0))
            tokens.add_metric([tier, engine, "out"], int(tokens_out or 0))
            spend[(tier, engine)] = [float(usd or 0), float(cost_usd("large", int(tokens_in or 0), int(tokens_out or 0)))]
        for (tier, engine), (usd, baseline) in spend.items():
            cost.add_metric([tier, engine], usd)
            all_large.add_metric([tier, engine], baseline)
        yield calls
        yield tokens
        yield cost
        yield all_large

        latency = HistogramMetricFamily("tierdesk_model_call_latency_seconds", "Model call latency by tier and engine",
                                        labels=["tier", "engine"])
        bucket_sql = ", ".join(f"count(*) FILTER (WHERE latency_ms <= {int(b * 1000)})" for b in LATENCY_BUCKETS)
        for row in _rows(f"SELECT tier, engine, {bucket_sql}, count(*), coalesce(sum(latency_ms), 0) "
                         "FROM triage_modelcall GROUP BY 1, 2"):
            tier, engine, *counts = row
            *cumulative, total, total_ms = counts
            buckets = [(str(b), c) for b, c in zip(LATENCY_BUCKETS, cumulative, strict=True)] + [("+Inf", total)]
            latency.add_metric([tier, engine], buckets, float(total_ms) / 1000)
        yield latency

        routes = CounterMetricFamily("tierdesk_route_decisions", "Route decisions by lane", labels=["lane"])
        for lane, n in _rows("SELECT lane, count(*) FROM triage_routedecision GROUP BY 1"):
            routes.add_metric([lane], n)
        yield routes
        reasons = CounterMetricFamily("tierdesk_route_reasons", "Reason codes on route decisions", labels=["reason"])
        for reason, n in _rows("SELECT r, count(*) FROM triage_routedecision, "
                               "jsonb_array_elements_text(reasons) AS r GROUP BY 1"):
            reasons.add_metric([reason], n)
        yield reasons
        escalations = CounterMetricFamily(
            "tierdesk_escalations", "Route decisions sent to large or a person, counted under each reason code",
            labels=["lane", "reason"])
        for lane, reason, n in _rows(f"SELECT lane, reason, count(*) FROM ({escalation_reasons_source()}) e "
                                     "GROUP BY 1, 2"):
            escalations.add_metric([lane, reason], n)
        yield escalations

        reviews = CounterMetricFamily("tierdesk_reviews", "Agents' decisions on drafts", labels=["action"])
        for action, n in _rows("SELECT action, count(*) FROM triage_reviewaction GROUP BY 1"):
            reviews.add_metric([action], n)
        yield reviews

        outcomes = CounterMetricFamily(
            "tierdesk_draft_outcomes", "Drafts approved unchanged, edited then approved, or rejected, by the "
            "ticket's intent and the lane that drafted", labels=["outcome", "intent", "lane"])
        edits = HistogramMetricFamily("tierdesk_draft_edit_distance_chars",
                                      "Characters changed in drafts edited then approved, by lane", labels=["lane"])
        for outcome, intent, lane, n in _rows(f"SELECT outcome, intent, lane, count(*) FROM "
                                              f"({draft_outcomes_source()}) o GROUP BY 1, 2, 3"):
            outcomes.add_metric([outcome, intent or "none", lane or "none"], n)
        edit_sql = ", ".join(f"count(*) FILTER (WHERE edit_distance <= {b})" for b in EDIT_DISTANCE_BUCKETS)
        for lane, *counts in _rows(f"SELECT lane, {edit_sql}, count(*), coalesce(sum(edit_distance), 0) "
                                   f"FROM ({draft_outcomes_source()}) o WHERE outcome = 'edited' GROUP BY 1"):
            *cumulative, total, chars = counts
            buckets = [(str(float(b)), c) for b, c in zip(EDIT_DISTANCE_BUCKETS, cumulative, strict=True)]
            buckets.append(("+Inf", total))
            edits.add_metric([lane or "none"], buckets, float(chars))
        yield outcomes
        yield edits

        corrections = CounterMetricFamily(
            "tierdesk_corrections", "Agents' corrections of the classification, by field and the intent the "
            "model gave", labels=["field", "intent", "within_5_minutes"])
        for field, intent, fast, n in _rows(f"SELECT field, intent, fast, count(*) FROM ({corrections_source()}) c "
                                            "GROUP BY 1, 2, 3"):
            corrections.add_metric([field, intent or "none", "true" if fast else "false"], n)
        yield corrections

        sla = CounterMetricFamily("tierdesk_sla_first_responses",
                                  "Tickets whose first answer has fallen due, by urgency: met in time or missed",
                                  labels=["urgency", "result"])
        sla_open = GaugeMetricFamily("tierdesk_sla_open_tickets", "Unanswered tickets not yet due, by urgency",
                                     labels=["urgency"])
        for urgency, result, n in _rows(f"SELECT urgency, {sla_result_sql('statement_timestamp()')}, count(*) "
                                        "FROM triage_ticket WHERE status <> 'ignored' GROUP BY 1, 2"):
            if result == "open":
                sla_open.add_metric([urgency or "none"], n)
            else:
                sla.add_metric([urgency or "none", result], n)
        yield sla
        yield sla_open

        gates = CounterMetricFamily("tierdesk_gate_results", "Policy gate results by tier", labels=["tier", "gate", "passed"])
        for tier, gate, passed, n in _rows("SELECT tier, gate, passed, count(*) FROM triage_gateresult GROUP BY 1, 2, 3"):
            gates.add_metric([tier, gate, "true" if passed else "false"], n)
        yield gates
