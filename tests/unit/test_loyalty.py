"""Loyalty points and funnel stages, folded from events into the customer's aggregates."""

from __future__ import annotations

from datetime import timedelta

from kairos.audiences.domain import Filter
from kairos.audiences.matching import matches, next_change
from kairos.customers.loyalty_domain import summary
from tests.unit.conftest import NOW, make_event


def _points(event_id: str, kind: str, points: int, days_ago: float = 1, **props: object) -> dict:
    return make_event(event_id, "c1", kind, ts=NOW - timedelta(days=days_ago), properties={"points": points, **props})


def test_spending_takes_the_points_that_expire_first_and_expiry_needs_no_event(ingest, customers):
    # GIVEN 100 points expiring in 10 days and 50 that never expire
    expires = (NOW + timedelta(days=10)).isoformat()
    result = ingest([_points("e1", "points_earned", 100, 3, expires_at=expires), _points("e2", "points_earned", 50, 2)])
    assert result.accepted == 2
    # WHEN 80 are spent
    assert ingest([_points("s1", "points_spent", 80)]).accepted == 1
    agg = customers.get_customer("c1").aggregates
    # THEN they came from the expiring lot: 20 of it are left to expire, and 50 that never do
    now_s = int(NOW.timestamp())
    assert summary(agg, now_s) == {
        "balance": 70,
        "earned": 150,
        "spent": 80,
        "expired": 0,
        "next_expiry_at": expires,
        "next_expiry_points": 20,
    }
    # AND when the day comes, the 20 are gone from the balance with no event
    later = int((NOW + timedelta(days=11)).timestamp())
    assert summary(agg, later)["balance"] == 50 and summary(agg, later)["expired"] == 20


def test_the_ledger_never_goes_negative_and_counts_each_event_once(ingest, customers):
    assert ingest([_points("e1", "points_earned", 30, 2)]).accepted == 1
    # WHEN a spend of more than the customer holds arrives, with a valid one in the same batch
    result = ingest([_points("s1", "points_spent", 40), _points("s2", "points_spent", 10, 0.5)])
    # THEN the overdraft is refused by its index, naming the field; the other is taken
    assert result.accepted == 1
    assert [(r.index, r.field) for r in result.rejected] == [(0, "properties.points")]
    assert "holds 30 points" in result.rejected[0].reason
    # AND the same spend sent again is a duplicate, not a second spend
    again = ingest([_points("s2", "points_spent", 10, 0.5)])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert summary(customers.get_customer("c1").aggregates, int(NOW.timestamp()))["balance"] == 20


def test_points_events_need_whole_positive_points_and_a_dated_expiry(ingest):
    bad = [
        _points("b1", "points_earned", 0),
        make_event("b2", "c1", "points_earned", properties={"points": 1.5}),
        make_event("b3", "c1", "points_spent"),
        _points("b4", "points_earned", 10, expires_at="next week"),
    ]
    result = ingest(bad)
    assert result.accepted == 0
    assert [r.field for r in result.rejected] == ["properties.points"] * 3 + ["properties.expires_at"]


def test_segments_see_the_balance_and_the_days_before_points_expire(ingest, customers):
    expires = NOW + timedelta(days=10)
    ingest([_points("e1", "points_earned", 100, 1, expires_at=expires.isoformat())])
    record = customers.get_customer("c1")
    soon = [Filter.model_validate({"field": "points.days_to_expiry", "op": "lte", "value": 7})]
    held = [Filter.model_validate({"field": "points.balance", "op": "gt", "value": 0})]
    # THEN "points expire within 7 days" starts to hold 7 days before the expiry, and that is when to look again
    assert not matches(record, soon, NOW) and matches(record, held, NOW)
    at = next_change(record, soon, NOW)
    assert at == expires - timedelta(days=7) + timedelta(seconds=1)
    assert matches(record, soon, at)
    # AND the balance filter changes when the points expire
    assert next_change(record, held, NOW) == expires + timedelta(seconds=1)
    assert not matches(record, held, expires + timedelta(seconds=1))


def test_the_stage_is_the_latest_event_naming_one_and_since_when(ingest, customers):
    at = NOW - timedelta(days=20)
    ingest([make_event("q1", "c1", "message_inbound", ts=at, text="hi", properties={"stage": "question"})])
    ingest([make_event("q2", "c1", "message_inbound", ts=at + timedelta(days=1), properties={"stage": "question"})])
    ingest([make_event("p1", "c1", "message_inbound", ts=at + timedelta(days=15), properties={"stage": "ready"})])
    # An older event arriving late does not move the customer back
    ingest([make_event("q0", "c1", "message_inbound", ts=at - timedelta(days=1), properties={"stage": "intro"})])
    agg = customers.get_customer("c1").aggregates
    assert (agg.stage, agg.previous_stage) == ("ready", "question")
    assert agg.stage_at == int((at + timedelta(days=15)).timestamp())
    record = customers.get_customer("c1")
    stuck = [
        Filter.model_validate({"field": "stage", "op": "eq", "value": "ready"}),
        Filter.model_validate({"field": "days_in_stage", "op": "gte", "value": 7}),
    ]
    assert not matches(record, stuck, NOW)
    assert next_change(record, stuck, NOW) == at + timedelta(days=22, seconds=1)
