"""Ingestion on the in-memory store: each valid event stored and counted once, whatever the batch shape or races."""

from __future__ import annotations

from datetime import timedelta

from kairos.aggregates import CustomerAggregates, fold_events
from kairos.logic.ingest import ingest_events
from kairos.schemas import Event
from tests.fakes import InMemoryCustomerStore
from tests.unit.conftest import NOW, RETENTION, SKEW, make_event


def _folded(raw: list[dict], tz: str = "UTC") -> CustomerAggregates:
    """What the aggregates must be: one fold of the same events in time order."""
    events = sorted((Event.model_validate(r) for r in raw), key=lambda e: e.timestamp)
    agg, _ = fold_events(CustomerAggregates(timezone=tz), events, set())
    return agg


def _history(customer_id: str, n: int) -> list[dict]:
    """``n`` events over ``n`` distinct hours: sessions, with a purchase of a product every third hour."""
    out = []
    for i in range(n):
        ts = NOW - timedelta(hours=2 + i)
        if i % 3 == 0:
            out.append(
                make_event(f"{customer_id}-p{i}", customer_id, "purchase", ts, product_id=f"SKU{i % 4}", amount=10.5)
            )
        else:
            out.append(make_event(f"{customer_id}-s{i}", customer_id, "session", ts))
    return out


def test_ingest_events_stores_and_counts_each_valid_event_once(customers, ingest):
    # GIVEN two customers' events, two of them in the same clock hour
    t = NOW - timedelta(hours=3)
    raw = [
        make_event("e1", "c1", "session", t),
        make_event("e2", "c1", "purchase", t + timedelta(minutes=10), product_id="SKU1", amount=20),
        make_event("e3", "c2", "message_open", t, channel="email", message_id="camp.c2.0"),
    ]
    # WHEN they are ingested
    result = ingest(raw)
    # THEN all are accepted, each stored once under its customer
    assert (result.accepted, result.duplicates, result.rejected) == (3, 0, [])
    assert set(customers.events["c1"]) == {"e1", "e2"}
    assert set(customers.events["c2"]) == {"e3"}
    # AND the shared hour is one engagement moment for c1, plus one purchase moment
    assert customers.moments["c1"] == {f"m#{int(t.timestamp()) // 3600}", f"p#{int(t.timestamp()) // 3600}"}
    assert customers.get_customer("c1").aggregates.engagement_moments == 1
    assert customers.get_customer("c1").aggregates.purchase_count == 1


def test_ingest_events_rejects_bad_events_by_index_and_field(customers, ingest):
    # GIVEN a batch with one valid event and one of every kind of bad event
    raw = [
        make_event("ok", "c1"),
        {**make_event("no-offset", "c1"), "timestamp": "2026-03-02T10:00:00"},
        make_event("teleport", "c1", "teleport"),
        make_event("future", "c1", ts=NOW + SKEW + timedelta(minutes=1)),
        make_event("ancient", "c1", ts=NOW - RETENTION - timedelta(days=1)),
        "not an event",
        ["also", "not"],
    ]
    # WHEN it is ingested
    result = ingest(raw)
    # THEN the valid event is stored, and each bad one is named by its index and field
    assert (result.accepted, result.duplicates) == (1, 0)
    assert set(customers.events["c1"]) == {"ok"}
    assert [(r.index, r.field) for r in result.rejected] == [
        (1, "timestamp"),
        (2, "type"),
        (3, "timestamp"),
        (4, "timestamp"),
        (5, "(event)"),
        (6, "(event)"),
    ]
    reasons = {r.index: r.reason for r in result.rejected}
    assert "UTC offset" in reasons[1]
    assert "future" in reasons[3]
    assert "retention" in reasons[4]


def test_ingest_events_counts_in_batch_duplicates_and_keeps_the_first(customers, ingest):
    # GIVEN a batch holding the same event id twice for c1, and the same id for another customer
    raw = [
        make_event("e1", "c1", "purchase", amount=5),
        make_event("e1", "c1", "purchase", amount=999),
        make_event("e1", "c2", "purchase", amount=7),
    ]
    # WHEN it is ingested
    result = ingest(raw)
    # THEN the repeat is a duplicate, the first occurrence is what is stored and counted; ids are per customer
    assert (result.accepted, result.duplicates) == (2, 1)
    assert customers.events["c1"]["e1"]["record"]["amount"] == 5
    assert customers.get_customer("c1").aggregates.monetary_total == 5
    assert customers.get_customer("c2").aggregates.monetary_total == 7


def test_ingest_events_resent_batch_is_all_duplicates_and_changes_nothing(customers, ingest):
    # GIVEN a batch already ingested
    raw = _history("c1", 6)
    assert ingest(raw).accepted == 6
    before = customers.get_customer("c1")
    # WHEN the client sends it again (a retry after a lost response)
    again = ingest(raw)
    # THEN every event is a duplicate and the customer is untouched
    assert (again.accepted, again.duplicates, again.rejected) == (0, 6, [])
    after = customers.get_customer("c1")
    assert after.version == before.version
    assert after.aggregates == before.aggregates


def test_ingest_events_splits_a_large_customer_across_transactions(ingest):
    # GIVEN a store whose transactions hold 10 items, and 25 events of c1 (each 2 or 3 items) plus 2 of c2
    store = InMemoryCustomerStore(max_transaction_items=10)
    raw = _history("c1", 25) + _history("c2", 2)
    # WHEN they are ingested (the fake refuses any transaction over 10 items)
    result = ingest_events(raw, store, NOW, RETENTION, SKEW)
    # THEN it took several transactions, and every event is stored and counted once
    assert (result.accepted, result.duplicates) == (27, 0)
    assert store.commits > 5
    assert len(store.events["c1"]) == 25 and len(store.events["c2"]) == 2
    assert store.get_customer("c1").aggregates == _folded(_history("c1", 25))
    assert store.get_customer("c2").aggregates == _folded(_history("c2", 2))
    # AND c1's version went up once per piece, each piece on top of the previous one
    assert store.get_customer("c1").version > 1


def test_ingest_events_retries_conflicts_without_losing_or_double_counting(ingest):
    # GIVEN a small-transaction store whose next two commits conflict (a concurrent writer won the race)
    store = InMemoryCustomerStore(max_transaction_items=10)
    store.fail_next_commits = 2
    raw = _history("c1", 12) + _history("c2", 3)
    # WHEN a batch is ingested
    result = ingest_events(raw, store, NOW, RETENTION, SKEW)
    # THEN the conflicts were retried: everything accepted once, nothing reported as duplicate
    assert store.fail_next_commits == 0
    assert (result.accepted, result.duplicates) == (15, 0)
    assert len(store.events["c1"]) == 12 and len(store.events["c2"]) == 3
    # AND the aggregates count each event once
    assert store.get_customer("c1").aggregates == _folded(_history("c1", 12))
    assert store.get_customer("c2").aggregates == _folded(_history("c2", 3))


def test_ingest_events_aggregates_equal_one_fold_of_all_batches(customers, ingest):
    # GIVEN a rich history (engagement, purchases, carts, products, an unsubscribe), sent in two batches,
    # the later events first, with two events sharing an hour across the batches
    t = NOW - timedelta(days=3)
    raw = [
        make_event("s1", "c1", "session", t),
        make_event("o1", "c1", "message_open", t + timedelta(minutes=20), channel="email", message_id="k.c1.0"),
        make_event("v1", "c1", "product_view", t + timedelta(hours=1), product_id="SKU1"),
        make_event("a1", "c1", "cart_add", t + timedelta(hours=1, minutes=5), product_id="SKU1", quantity=2),
        make_event("ab", "c1", "cart_abandon", t + timedelta(hours=2), amount=40),
        make_event("p1", "c1", "purchase", t + timedelta(days=1), product_id="SKU1", quantity=2, amount=39.99),
        make_event("p2", "c1", "purchase", t + timedelta(days=1, minutes=1), product_id="SKU2", amount=5),
        make_event("c1", "c1", "message_click", t + timedelta(days=2), channel="sms", message_id="k.c1.1"),
        make_event("u1", "c1", "unsubscribe", t + timedelta(days=2, hours=1), channel="sms"),
    ]
    # WHEN the later half arrives before the earlier half
    first = ingest(raw[4:])
    second = ingest(raw[:4] + [make_event("s2", "c1", "session", t + timedelta(days=1, minutes=30))])
    # THEN the stored aggregates are exactly one fold of every event in time order
    assert (first.accepted, second.accepted) == (5, 5)
    expected = _folded(raw + [make_event("s2", "c1", "session", t + timedelta(days=1, minutes=30))])
    agg = customers.get_customer("c1").aggregates
    assert agg == expected
    # AND the hour shared by p1, p2 and s2 is one engagement moment and one purchase moment
    assert agg.engagement_moments == 3 and agg.purchase_count == 1
    assert agg.unsubscribed == {"sms": int((t + timedelta(days=2, hours=1)).timestamp())}
