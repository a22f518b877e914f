"""The team's dashboard: every series for a chosen period, computed in PostgreSQL.

Each series is one aggregate query over the period, however many rows it covers, so the page costs the
same seven queries at a hundred tickets or a hundred thousand. The SQL that decides what an outcome is (a
draft approved unchanged, a correction within five minutes, an SLA met) is written here once and /metrics
uses the same SQL, so a scraper and the page never disagree on a definition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from triage.errors import ApplicationError
from triage.llm.tiers import cost_usd
from triage.models import URGENCY_ORDER
from triage.vocabulary import LANES, TIERS

PRESET_DAYS = {"7d": 7, "30d": 30, "90d": 90}
PRESETS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days"}
DEFAULT_PRESET = "7d"
MAX_DAYS = 366
HOURLY_UP_TO_DAYS = 2  # a period of up to two days is drawn by the hour, a longer one by the day
FAST_CORRECTION_S = 300

OUTCOMES = ("approved_unchanged", "edited", "rejected")
NO_LANE, NO_INTENT, NO_URGENCY = "(not routed)", "(no intent)", "(not set)"

# Reason codes that say why a ticket was *not* escalated; the escalation chart leaves them out.
NOT_ESCALATION_REASONS = ("within_contract",)
_NOT_ESCALATION_SQL = ", ".join(f"'{reason}'" for reason in NOT_ESCALATION_REASONS)


def draft_outcomes_source(where: str = "TRUE") -> str:
    """Agents' decisions on drafts as rows of (intent, lane, outcome, edit_distance).

    The intent is the ticket's, after any correction; the lane is the one whose route decision the draft
    came from (the ticket's lane for a decision taken without a draft). Regenerate and escalate decide
    nothing and are left out.
    """
    return ("SELECT coalesce(i.name, '') AS intent, coalesce(nullif(rd.lane, ''), t.lane) AS lane, "
            "CASE ra.action WHEN 'approve' THEN 'approved_unchanged' WHEN 'edit_approve' THEN 'edited' "
            "ELSE 'rejected' END AS outcome, ra.edit_distance "
            "FROM triage_reviewaction ra JOIN triage_ticket t ON t.id = ra.ticket_id "
            "LEFT JOIN triage_intent i ON i.id = t.intent_id "
            "LEFT JOIN triage_draft d ON d.id = ra.draft_id "
            "LEFT JOIN triage_routedecision rd ON rd.id = d.route_decision_id "
            f"WHERE ra.action IN ('approve', 'edit_approve', 'reject') AND ({where})")


def corrections_source(where: str = "TRUE") -> str:
    """Corrections as rows of (field, intent, fast): the intent the model gave, fast if within five minutes.

    A correction with no recorded time since triage is not counted as fast.
    """
    return ("SELECT c.field, coalesce(ri.name, ti.name, '') AS intent, "
            f"coalesce(c.seconds_since_triage <= {FAST_CORRECTION_S}, false) AS fast "
            "FROM triage_correction c JOIN triage_ticket t ON t.id = c.ticket_id "
            "LEFT JOIN triage_triagerun r ON r.id = c.triage_run_id "
            "LEFT JOIN triage_intent ri ON ri.id = r.intent_id "
            "LEFT JOIN triage_intent ti ON ti.id = t.intent_id "
            f"WHERE {where}")


def escalation_reasons_source(where: str = "TRUE") -> str:
    """Each reason code on each route decision that sent a ticket to large or a person, as (lane, reason)."""
    return ("SELECT d.lane, r.reason FROM triage_routedecision d CROSS JOIN LATERAL jsonb_array_elements_text("
            "CASE WHEN jsonb_typeof(d.reasons) = 'array' THEN d.reasons ELSE '[]'::jsonb END) AS r(reason) "
            f"WHERE d.lane <> 'mini' AND r.reason NOT IN ({_NOT_ESCALATION_SQL}) "
            f"AND ({where})")


def sla_result_sql(now: str) -> str:
    """met: answered by the due time; missed: answered late, or unanswered once past due; open: not yet due."""
    return ("CASE WHEN first_response_at IS NULL THEN "
            f"(CASE WHEN sla_due_at <= {now} THEN 'missed' ELSE 'open' END) "
            "WHEN first_response_at <= sla_due_at THEN 'met' ELSE 'missed' END")


# --- The period --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, drawn in buckets of `unit` (hour or day) of the configured time zone."""

    start: dt.datetime
    end: dt.datetime
    unit: str
    tz: str
    preset: str  # "" for chosen dates
    first_day: dt.date
    last_day: dt.date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def title(self) -> str:
        if self.preset:
            return PRESETS[self.preset]
        first = f"{self.first_day:%-d %b %Y}"
        return first if self.days == 1 else f"{first} to {self.last_day:%-d %b %Y}"

    def bucket_keys(self) -> list[dt.datetime]:
        """Every bucket of the period as PostgreSQL's date_trunc names it: a naive local time."""
        zone = ZoneInfo(self.tz)
        if self.unit == "day":
            return [dt.datetime.combine(self.first_day + dt.timedelta(days=i), dt.time()) for i in range(self.days)]
        keys: list[dt.datetime] = []
        moment = self.start
        while moment < self.end:
            key = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0, tzinfo=None)
            if not keys or keys[-1] != key:  # the hour a clock goes back is one bucket, as in SQL
                keys.append(key)
            moment += dt.timedelta(hours=1)
        return keys

    def bucket_label(self, key: dt.datetime) -> str:
        if self.unit == "hour":
            return f"{key:%a %H:%M}"
        same_year = self.first_day.year == self.last_day.year
        return f"{key:%a %-d %b}" if same_year else f"{key:%-d %b %Y}"


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def _parse_date(raw: str, name: str) -> dt.date:
    try:
        value = dt.date.fromisoformat(raw)
    except ValueError:
        raise ApplicationError(f"the {name} date “{raw[:40]}” is not a date; use YYYY-MM-DD") from None
    if not 1900 <= value.year <= 9000:
        raise ApplicationError(f"the {name} date {value} is outside the years the dashboard can show")
    return value


def period_parse(*, query: Mapping[str, str], now: dt.datetime | None = None) -> Period:
    """The period a request asks for: `period=24h|7d|30d|90d`, or `from` and `to` dates (both included)."""
    now = now or timezone.now()
    tz = settings.TIME_ZONE
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    raw_from, raw_to = (query.get("from") or "").strip(), (query.get("to") or "").strip()
    if raw_from or raw_to:
        if not (raw_from and raw_to):
            raise ApplicationError("choose both a from date and a to date")
        first, last = _parse_date(raw_from, "from"), _parse_date(raw_to, "to")
        if first > last:
            raise ApplicationError(f"the from date ({first}) is after the to date ({last})")
        days = (last - first).days + 1
        if days > MAX_DAYS:
            raise ApplicationError(f"a period can be at most {MAX_DAYS} days; {first} to {last} is {days} days")
        return Period(start=_midnight(first, zone), end=_midnight(last + dt.timedelta(days=1), zone),
                      unit="hour" if days <= HOURLY_UP_TO_DAYS else "day", tz=tz, preset="",
                      first_day=first, last_day=last)
    preset = (query.get("period") or DEFAULT_PRESET).strip()
    if preset == "24h":
        # The 24 whole hours ending with the current one.
        hour = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        end = hour.astimezone(dt.UTC) + dt.timedelta(hours=1)
        start = end - dt.timedelta(hours=24)
        return Period(start=start, end=end, unit="hour", tz=tz, preset=preset,
                      first_day=start.astimezone(zone).date(), last_day=today)
    if preset not in PRESET_DAYS:
        raise ApplicationError("choose a period: the last 24 hours, 7, 30 or 90 days, or from and to dates")
    first = today - dt.timedelta(days=PRESET_DAYS[preset] - 1)
    return Period(start=_midnight(first, zone), end=_midnight(today + dt.timedelta(days=1), zone), unit="day",
                  tz=tz, preset=preset, first_day=first, last_day=today)


# --- The series ---------------------------------------------------------------------------------

def _share(part: int | Decimal, whole: int | Decimal) -> float | None:
    return float(part) / float(whole) if whole else None


@dataclass(frozen=True)
class LaneSeries:
    labels: list[str]
    lanes: list[str]
    counts: dict[str, list[int]]

    @property
    def totals(self) -> list[int]:
        return [sum(c[i] for c in self.counts.values()) for i in range(len(self.labels))]

    @property
    def total(self) -> int:
        return sum(self.totals)

    @property
    def by_lane(self) -> list[tuple[str, int]]:
        return [(lane, sum(self.counts[lane])) for lane in self.lanes]

    @property
    def rows(self) -> list[tuple[str, list[int], int]]:
        return [(label, [self.counts[lane][i] for lane in self.lanes], total)
                for i, (label, total) in enumerate(zip(self.labels, self.totals, strict=True))]


@dataclass(frozen=True)
class ReasonRow:
    reason: str
    large: int
    human: int

    @property
    def total(self) -> int:
        return self.large + self.human


@dataclass(frozen=True)
class Escalations:
    decisions: int
    to_large: int
    to_human: int
    reasons: list[ReasonRow]

    @property
    def escalated(self) -> int:
        return self.to_large + self.to_human

    @property
    def rate(self) -> float | None:
        return _share(self.escalated, self.decisions)


@dataclass(frozen=True)
class TierRow:
    tier: str
    calls: int
    classify_calls: int
    classify_valid: int
    p50_ms: float | None
    p95_ms: float | None
    cost: Decimal
    baseline: Decimal
    tokens_in: int
    tokens_out: int

    @property
    def pass_rate(self) -> float | None:
        return _share(self.classify_valid, self.classify_calls)


@dataclass(frozen=True)
class CostSummary:
    calls: int
    tickets: int
    cost: Decimal
    baseline: Decimal

    @property
    def per_ticket(self) -> Decimal | None:
        return self.cost / self.tickets if self.tickets else None

    @property
    def baseline_per_ticket(self) -> Decimal | None:
        return self.baseline / self.tickets if self.tickets else None

    @property
    def saving(self) -> float | None:
        """Share of the all-large cost not spent."""
        return 1 - float(self.cost) / float(self.baseline) if self.baseline else None


@dataclass(frozen=True)
class CostSeries:
    labels: list[str]
    tiers: list[str]
    by_tier: dict[str, list[Decimal]]
    baseline: list[Decimal]

    @property
    def totals(self) -> list[Decimal]:
        return [sum((v[i] for v in self.by_tier.values()), Decimal(0)) for i in range(len(self.labels))]

    @property
    def rows(self) -> list[tuple[str, list[Decimal], Decimal, Decimal]]:
        totals = self.totals
        return [(label, [self.by_tier[t][i] for t in self.tiers], totals[i], self.baseline[i])
                for i, label in enumerate(self.labels)]


@dataclass(frozen=True)
class OutcomeRow:
    key: str
    approved_unchanged: int
    edited: int
    rejected: int
    edit_mean: float | None
    edit_median: float | None

    @property
    def total(self) -> int:
        return self.approved_unchanged + self.edited + self.rejected

    @property
    def unchanged_share(self) -> float | None:
        return _share(self.approved_unchanged, self.total)


@dataclass(frozen=True)
class Outcomes:
    by_intent: list[OutcomeRow]
    by_lane: list[OutcomeRow]
    overall: OutcomeRow


@dataclass(frozen=True)
class CorrectionRow:
    field: str
    intent: str
    within_5_min: int
    total: int


@dataclass(frozen=True)
class Corrections:
    rows: list[CorrectionRow]  # by field and intent
    by_field: list[CorrectionRow]
    within_5_min: int
    total: int

    @property
    def fields(self) -> list[str]:
        return [r.field for r in self.by_field]

    @property
    def intents(self) -> list[str]:
        seen: dict[str, int] = {}
        for r in self.rows:
            seen[r.intent] = seen.get(r.intent, 0) + r.within_5_min
        return sorted(seen, key=lambda i: (-seen[i], i))


@dataclass(frozen=True)
class SlaRow:
    urgency: str
    met: int
    missed: int
    open: int

    @property
    def due(self) -> int:
        return self.met + self.missed

    @property
    def attainment(self) -> float | None:
        return _share(self.met, self.due)


@dataclass(frozen=True)
class Sla:
    rows: list[SlaRow]
    overall: SlaRow


@dataclass(frozen=True)
class Dashboard:
    period: Period
    lanes: LaneSeries
    escalations: Escalations
    tiers: list[TierRow]
    cost_summary: CostSummary
    cost: CostSeries
    outcomes: Outcomes
    corrections: Corrections
    sla: Sla


def _rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _ordered(keys: Any, order: tuple[str, ...]) -> list[str]:
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def _lanes(period: Period, params: dict[str, Any]) -> LaneSeries:
    rows = _rows(
        "SELECT date_trunc(%(unit)s, created_at AT TIME ZONE %(tz)s), lane, count(*) FROM triage_ticket "
        "WHERE created_at >= %(start)s AND created_at < %(end)s AND status <> 'ignored' GROUP BY 1, 2",
        params,
    )
    keys = period.bucket_keys()
    index = {k: i for i, k in enumerate(keys)}
    lanes = _ordered({lane or NO_LANE for _, lane, _ in rows} | set(LANES), (*LANES, NO_LANE))
    counts = {lane: [0] * len(keys) for lane in lanes}
    for bucket, lane, n in rows:
        counts[lane or NO_LANE][index[bucket]] += n
    return LaneSeries(labels=[period.bucket_label(k) for k in keys], lanes=lanes, counts=counts)


def _escalations(params: dict[str, Any]) -> Escalations:
    in_period = "d.created_at >= %(start)s AND d.created_at < %(end)s"
    rows = _rows(
        f"SELECT NULL, d.lane, count(*) FROM triage_routedecision d WHERE {in_period} GROUP BY d.lane "
        f"UNION ALL SELECT e.reason, e.lane, count(*) FROM ({escalation_reasons_source(in_period)}) e GROUP BY 1, 2",
        params,
    )
    by_lane = {lane: n for reason, lane, n in rows if reason is None}
    reasons: dict[str, dict[str, int]] = {}
    for reason, lane, n in rows:
        if reason is not None:
            reasons.setdefault(reason, {})[lane] = n
    reason_rows = [ReasonRow(reason, c.get("large", 0), c.get("human", 0)) for reason, c in reasons.items()]
    reason_rows.sort(key=lambda r: (-r.total, r.reason))
    return Escalations(decisions=sum(by_lane.values()), to_large=by_lane.get("large", 0),
                       to_human=by_lane.get("human", 0), reasons=reason_rows)


def _tiers(params: dict[str, Any]) -> tuple[list[TierRow], CostSummary]:
    # Grouped by tier alone, without grouping sets, so PostgreSQL sorts each tier's latencies once; the
    # period's totals are the tiers' sums, and the tickets the calls served are counted by the subquery.
    rows = _rows(
        "SELECT tier, count(*), count(*) FILTER (WHERE classify), count(*) FILTER (WHERE classify AND schema_valid), "
        "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms), "
        "coalesce(sum(cost_usd), 0), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
        "(SELECT count(DISTINCT ticket_id) FROM triage_modelcall "
        " WHERE created_at >= %(start)s AND created_at < %(end)s) "
        "FROM (SELECT tier, step = 'classify' AS classify, schema_valid, latency_ms, cost_usd, tokens_in, tokens_out "
        "      FROM triage_modelcall WHERE created_at >= %(start)s AND created_at < %(end)s) m "
        "GROUP BY tier",
        params,
    )
    tiers = [TierRow(tier=tier, calls=calls, classify_calls=classify, classify_valid=valid, p50_ms=p50_p95[0],
                     p95_ms=p50_p95[1], cost=Decimal(cost), baseline=cost_usd("large", int(t_in), int(t_out)),
                     tokens_in=int(t_in), tokens_out=int(t_out))
             for tier, calls, classify, valid, p50_p95, cost, t_in, t_out, _ in rows]
    tiers.sort(key=lambda r: (TIERS.index(r.tier) if r.tier in TIERS else len(TIERS), r.tier))
    summary = CostSummary(
        calls=sum(r.calls for r in tiers), tickets=rows[0][-1] if rows else 0,
        cost=sum((r.cost for r in tiers), Decimal(0)),
        # The tokens of every call priced together at large rates, not the sum of rounded per-tier figures.
        baseline=cost_usd("large", sum(r.tokens_in for r in tiers), sum(r.tokens_out for r in tiers)),
    )
    return tiers, summary


def _cost(period: Period, params: dict[str, Any]) -> CostSeries:
    rows = _rows(
        "SELECT date_trunc(%(unit)s, created_at AT TIME ZONE %(tz)s), tier, sum(cost_usd), sum(tokens_in), "
        "sum(tokens_out) FROM triage_modelcall WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY 1, 2",
        params,
    )
    keys = period.bucket_keys()
    index = {k: i for i, k in enumerate(keys)}
    tiers = _ordered({tier for _, tier, *_ in rows}, TIERS)
    by_tier = {tier: [Decimal(0)] * len(keys) for tier in tiers}
    tokens = [[0, 0] for _ in keys]
    for bucket, tier, cost, t_in, t_out in rows:
        i = index[bucket]
        by_tier[tier][i] = Decimal(cost)
        tokens[i][0] += int(t_in)
        tokens[i][1] += int(t_out)
    return CostSeries(labels=[period.bucket_label(k) for k in keys], tiers=tiers, by_tier=by_tier,
                      baseline=[cost_usd("large", t_in, t_out) for t_in, t_out in tokens])


def _outcomes(params: dict[str, Any]) -> Outcomes:
    rows = _rows(
        "SELECT intent, lane, GROUPING(intent) = 0, GROUPING(lane) = 0, "
        "count(*) FILTER (WHERE outcome = 'approved_unchanged'), count(*) FILTER (WHERE outcome = 'edited'), "
        "count(*) FILTER (WHERE outcome = 'rejected'), avg(edit_distance) FILTER (WHERE outcome = 'edited'), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY edit_distance) FILTER (WHERE outcome = 'edited') "
        f"FROM ({draft_outcomes_source('ra.created_at >= %(start)s AND ra.created_at < %(end)s')}) o "
        "GROUP BY GROUPING SETS ((intent), (lane), ())",
        params,
    )
    by_intent, by_lane = [], []
    overall = OutcomeRow("all", 0, 0, 0, None, None)
    for intent, lane, per_intent, per_lane, approved, edited, rejected, mean, median in rows:
        figures = (approved, edited, rejected, float(mean) if mean is not None else None, median)
        if per_intent:
            by_intent.append(OutcomeRow(intent or NO_INTENT, *figures))
        elif per_lane:
            by_lane.append(OutcomeRow(lane or NO_LANE, *figures))
        else:
            overall = OutcomeRow("all", *figures)
    by_intent.sort(key=lambda r: (-r.total, r.key))
    by_lane.sort(key=lambda r: ((*LANES, NO_LANE).index(r.key) if r.key in (*LANES, NO_LANE) else 9, r.key))
    return Outcomes(by_intent=by_intent, by_lane=by_lane, overall=overall)


def _corrections(params: dict[str, Any]) -> Corrections:
    rows = _rows(
        "SELECT field, intent, GROUPING(field) = 1, GROUPING(intent) = 1, count(*) FILTER (WHERE fast), count(*) "
        f"FROM ({corrections_source('c.created_at >= %(start)s AND c.created_at < %(end)s')}) x "
        "GROUP BY GROUPING SETS ((field, intent), (field), ())",
        params,
    )
    detail, by_field = [], []
    within, total = 0, 0
    for field_name, intent, all_fields, all_intents, fast, n in rows:
        if all_fields:
            within, total = fast, n
        elif all_intents:
            by_field.append(CorrectionRow(field_name, "", fast, n))
        else:
            detail.append(CorrectionRow(field_name, intent or NO_INTENT, fast, n))
    order = ("intent", "urgency", "sentiment")
    detail.sort(key=lambda r: (-r.within_5_min, -r.total, r.field, r.intent))
    by_field.sort(key=lambda r: (order.index(r.field) if r.field in order else 9, r.field))
    return Corrections(rows=detail, by_field=by_field, within_5_min=within, total=total)


def _sla(params: dict[str, Any]) -> Sla:
    rows = _rows(
        f"SELECT urgency, {sla_result_sql('%(now)s')}, count(*) FROM triage_ticket "
        "WHERE sla_due_at >= %(start)s AND sla_due_at < %(end)s AND status <> 'ignored' GROUP BY 1, 2",
        params,
    )
    counts: dict[str, dict[str, int]] = {}
    for urgency, result, n in rows:
        counts.setdefault(urgency or NO_URGENCY, {})[result] = n
    order = sorted(counts, key=lambda u: (-URGENCY_ORDER.get(u, -1), u))
    sla_rows = [SlaRow(u, counts[u].get("met", 0), counts[u].get("missed", 0), counts[u].get("open", 0))
                for u in order]
    overall = SlaRow("all", sum(r.met for r in sla_rows), sum(r.missed for r in sla_rows),
                     sum(r.open for r in sla_rows))
    return Sla(rows=sla_rows, overall=overall)


def dashboard_for(*, period: Period, now: dt.datetime | None = None) -> Dashboard:
    """Every series of the dashboard for `period`, in seven queries whatever the amount of data."""
    params = {"start": period.start, "end": period.end, "unit": period.unit, "tz": period.tz,
              "now": now or timezone.now()}
    tiers, summary = _tiers(params)
    return Dashboard(
        period=period, lanes=_lanes(period, params), escalations=_escalations(params), tiers=tiers,
        cost_summary=summary, cost=_cost(period, params), outcomes=_outcomes(params),
        corrections=_corrections(params), sla=_sla(params),
    )


# --- What the page's charts draw ---------------------------------------------------------------

def _num(value: Decimal | float | None, places: int = 6) -> float | None:
    return None if value is None else round(float(value), places)


def chart_data(board: Dashboard) -> dict[str, Any]:
    """The series as plain numbers for the page's JSON (Decimals become floats; the tables keep exact values)."""
    lanes, esc, cost, out, corr = board.lanes, board.escalations, board.cost, board.outcomes, board.corrections
    return {
        "unit": board.period.unit,
        "lanes": {"labels": lanes.labels, "series": [{"name": lane, "data": lanes.counts[lane]}
                                                     for lane in lanes.lanes]},
        "reasons": {"labels": [r.reason for r in esc.reasons],
                    "series": [{"name": "large", "data": [r.large for r in esc.reasons]},
                               {"name": "human", "data": [r.human for r in esc.reasons]}]},
        "schema": {"labels": [t.tier for t in board.tiers],
                   "data": [_num(100 * t.pass_rate, 2) if t.pass_rate is not None else None for t in board.tiers]},
        "latency": {"labels": [t.tier for t in board.tiers],
                    "p50": [_num(t.p50_ms, 1) for t in board.tiers], "p95": [_num(t.p95_ms, 1) for t in board.tiers]},
        "cost": {"labels": cost.labels, "series": [{"name": t, "data": [_num(v) for v in cost.by_tier[t]]}
                                                   for t in cost.tiers],
                 "baseline": [_num(v) for v in cost.baseline]},
        "cost_per_ticket": _per_ticket_chart(board),
        "outcomes_intent": _outcome_chart(out.by_intent),
        "outcomes_lane": _outcome_chart(out.by_lane),
        "corrections": {"labels": corr.intents,
                        "series": [{"name": f, "data": [next((r.within_5_min for r in corr.rows
                                                              if r.field == f and r.intent == i), 0)
                                                        for i in corr.intents]} for f in corr.fields]},
        "sla": {"labels": [r.urgency for r in board.sla.rows],
                "met": [r.met for r in board.sla.rows], "missed": [r.missed for r in board.sla.rows],
                "open": [r.open for r in board.sla.rows]},
    }


def _per_ticket_chart(board: Dashboard) -> dict[str, Any]:
    """Two bars: what a ticket cost, split by tier, and what it would have cost with every call at large."""
    tickets = board.cost_summary.tickets

    def per(value: Decimal) -> float | None:
        return _num(value / tickets, 8) if tickets else None

    return {"labels": ["actual", "all large"],
            "series": [{"name": t.tier, "data": [per(t.cost), None]} for t in board.tiers],
            "baseline": per(board.cost_summary.baseline)}


def _outcome_chart(rows: list[OutcomeRow]) -> dict[str, Any]:
    return {"labels": [r.key for r in rows],
            "series": [{"name": name, "data": [getattr(r, name) for r in rows]} for name in OUTCOMES]}
