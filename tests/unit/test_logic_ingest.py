"""Ingestion on the in-memory store: each valid event stored and counted once, whatever the batch shape or races."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kairos.core.errors import InvalidInputError, StoreError, ThrottledError
from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.ingest import MAX_ATTEMPTS, ingest_events
from kairos.customers.schemas import Event
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
        make_event("teleport", "c1", "Teleport!"),
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
    # AND the hour shared by p1, p2 and s2 is one engagement moment and one purchase moment; the open and the
    # click name a message (its answer, not a moment of the customer's own) and count for their channels only
    assert agg.engagement_moments == 2 and agg.purchase_count == 1
    assert agg.channel_engagements == {"email": 1, "sms": 1}
    assert agg.unsubscribed == {"sms": int((t + timedelta(days=2, hours=1)).timestamp())}


def test_ingest_events_customer_the_store_refuses_is_rejected_by_index_and_the_others_stored(customers, ingest):
    # GIVEN a store that refuses, for good, every write of one customer (an item over DynamoDB's 400 KB)
    customers.commit_errors["fat"] = InvalidInputError("(event)", "the store refused the write: item too large")
    raw = [make_event("f1", "fat"), *_history("c1", 3), make_event("f2", "fat"), *_history("c2", 2)]
    # WHEN a batch mixing it with others is ingested
    result = ingest(raw)
    # THEN the refused customer's events are rejected by their indexes, with the store's reason
    assert [(r.index, r.field) for r in result.rejected] == [(0, "(event)"), (4, "(event)")]
    assert all("item too large" in r.reason for r in result.rejected)
    # AND every other event is stored and counted once
    assert (result.accepted, result.duplicates) == (5, 0)
    assert "fat" not in customers.events
    assert customers.get_customer("c1").aggregates == _folded(_history("c1", 3))
    assert customers.get_customer("c2").aggregates == _folded(_history("c2", 2))


def test_ingest_events_refused_later_piece_rejects_only_what_was_not_stored():
    # GIVEN small transactions: c1's 12 events take several pieces, and the store refuses c1 after the first
    store = InMemoryCustomerStore(max_transaction_items=10)
    raw = _history("c1", 12)
    real_commit = store.commit_ingest

    def commit(writes, now):
        real_commit(writes, now)
        store.commit_errors["c1"] = InvalidInputError("(event)", "item too large")

    store.commit_ingest = commit
    # WHEN the batch is ingested
    result = ingest_events(raw, store, NOW, RETENTION, SKEW)
    # THEN what the first piece stored is accepted, every other event of c1 rejected, none lost or doubled
    stored = set(store.events["c1"])
    assert result.accepted == len(stored) > 0
    assert {raw[r.index]["event_id"] for r in result.rejected} == {e["event_id"] for e in raw} - stored


@pytest.mark.parametrize("error", [ThrottledError("throttled"), StoreError("DynamoDB 500")])
def test_ingest_events_transient_failure_raises_after_storing_the_others_and_a_retry_completes(error):
    # GIVEN a store failing transiently for c2 only, with each customer in its own transaction
    store = InMemoryCustomerStore(max_transaction_items=4)
    store.commit_errors["c2"] = error
    raw = _history("c1", 2) + _history("c2", 2) + _history("c3", 2)
    # WHEN the batch is ingested THEN the transient error reaches the caller (a 503: retry the same batch)...
    with pytest.raises(type(error)):
        ingest_events(raw, store, NOW, RETENTION, SKEW)
    # ... after the other customers were stored
    assert set(store.events) == {"c1", "c3"}
    # AND the client's retry, once the store recovered, stores the rest, each event once
    del store.commit_errors["c2"]
    again = ingest_events(raw, store, NOW, RETENTION, SKEW)
    assert (again.accepted, again.duplicates, again.rejected) == (2, 4, [])
    assert store.get_customer("c2").aggregates == _folded(_history("c2", 2))


def test_ingest_events_conflicts_that_never_end_are_a_store_error(monkeypatch):
    # GIVEN a store whose every commit loses a race (and no real time spent backing off)
    monkeypatch.setattr("kairos.customers.ingest.time.sleep", lambda s: None)
    store = InMemoryCustomerStore()
    store.fail_next_commits = MAX_ATTEMPTS + 1
    # WHEN a batch is ingested THEN it gives up with a (transient) store error instead of looping
    with pytest.raises(StoreError, match="repeated conflicts"):
        ingest_events(_history("c1", 2), store, NOW, RETENTION, SKEW)


def test_ingest_events_rejects_strict_types_and_sizes_by_index(customers, ingest):
    # GIVEN events a lax parser would have coerced: a boolean quantity, a unix timestamp, a string amount
    raw = [
        make_event("ok", "c1"),
        make_event("b", "c1", "cart_add", quantity=True),
        {**make_event("u", "c1"), "timestamp": int(NOW.timestamp())},
        make_event("s", "c1", "purchase", amount="12.5"),
        make_event("p", "c1", properties={"blob": ["x" * 4000] * 5}),
    ]
    # WHEN they are ingested THEN only the valid event is stored, each other named by index and field
    result = ingest(raw)
    assert result.accepted == 1
    assert [(r.index, r.field) for r in result.rejected] == [
        (1, "quantity"),
        (2, "timestamp"),
        (3, "amount"),
        (4, "properties"),
    ]
