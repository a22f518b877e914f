"""Knowledge gaps: weak-retrieval tickets grouped by intent, the biggest gap first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kb.gaps import UNCLASSIFIED, WeakTicket, article_prefill, group_gaps, route_rows
from tests.support import builders
from triage.models import Intent, RouteDecision


def row(n: int, intent: str, similarity: float | None, subject: str = "s", body: str = "") -> WeakTicket:
    return WeakTicket(ticket_id=n, subject=subject, body=body, intent=intent, top_similarity=similarity)


def test_gaps_group_weak_tickets_by_intent_biggest_first() -> None:
    rows = [
        row(1, "gift_card", 0.41, "Gift card balance", "How do I check my gift card balance?"),
        row(2, "gift_card", None, "Gift card expired", "My gift card expired, can I still use it?"),
        row(3, "gift_card", 0.62, "Gift card in store", "Can I use the gift card in a store?"),
        row(4, "track_order", 0.55, "Where is my parcel", "Tracking shows nothing"),
        row(5, "track_order", 0.93, "Late order", "It is late"),  # well grounded: not a gap
        row(6, "track_order", 0.91, "Late again", "still late"),
    ]
    gaps = group_gaps(rows, threshold=0.8)
    assert [(g.intent, g.tickets, g.of_intent) for g in gaps] == [("gift_card", 3, 3), ("track_order", 1, 3)]
    gift = gaps[0]
    assert gift.terms[:2] == (("card", 3), ("gift", 3))
    assert gift.examples == ((3, "Gift card in store"), (2, "Gift card expired"), (1, "Gift card balance"))
    assert gift.best_similarity == 0.62
    assert gaps[1].share == pytest.approx(1 / 3)


def test_the_threshold_decides_what_is_weak() -> None:
    rows = [row(1, "a", 0.7), row(2, "b", 0.75)]
    assert [g.intent for g in group_gaps(rows, threshold=0.72)] == ["a"]
    assert group_gaps(rows, threshold=0.5) == []


def test_stop_words_and_support_pleasantries_are_not_terms() -> None:
    [gap] = group_gaps([row(1, "x", 0.1, "Hello, please help", "Thanks! I need the warranty for my kettle")],
                       threshold=0.8)
    assert {t for t, _ in gap.terms} == {"warranty", "kettle"}


def test_the_prefill_names_the_intent_and_lists_what_customers_asked() -> None:
    [gap] = group_gaps([row(1, "gift_card", None, "Gift card expired")], threshold=0.8)
    values = article_prefill(gap)
    assert values["title"] == "Gift card"
    assert "- Gift card expired" in values["body"] and "gift_card gap (1 tickets)" in values["change_note"]


@pytest.mark.django_db
def test_route_rows_reads_each_tickets_latest_decision_in_the_period(django_assert_num_queries: object) -> None:
    intent = Intent.objects.create(name="gift_card")
    rerouted = builders.ticket(subject="Gift card", body="b", from_email="a@example.com", intent=intent)
    RouteDecision.objects.create(ticket=rerouted, lane="large", top_similarity=0.3)
    RouteDecision.objects.create(ticket=rerouted, lane="mini", top_similarity=0.9)  # after an article was written
    unclassified = builders.ticket(subject="???", body="b", from_email="b@example.com")
    RouteDecision.objects.create(ticket=unclassified, lane="human", top_similarity=None)
    old = builders.ticket(subject="Old", body="b", from_email="c@example.com", intent=intent)
    RouteDecision.objects.filter(pk=RouteDecision.objects.create(ticket=old, lane="large", top_similarity=0.1).pk
                                 ).update(created_at=timezone.now() - timedelta(days=40))
    with django_assert_num_queries(1):  # type: ignore[operator]
        rows = route_rows(since=timezone.now() - timedelta(days=30))
    assert {(r.ticket_id, r.intent, r.top_similarity) for r in rows} == {
        (rerouted.pk, "gift_card", 0.9), (unclassified.pk, UNCLASSIFIED, None)}
