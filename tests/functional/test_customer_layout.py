"""The customer split into a small core and parts, on DynamoDB (moto): what an event rewrites stays small, moments
counted long ago still count once, a write cut between folding and storing is finished by the retry, and customers
stored before the split are read and moved."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from kairos.core.aws import to_dynamo
from kairos.core.errors import StoreError
from kairos.customers.adapters import layout
from kairos.customers.adapters.dynamo import DynamoStore
from kairos.customers.aggregates import CustomerAggregates, fold_events, moment_key
from kairos.customers.ingest import ingest_events
from kairos.customers.schemas import Event
from tests.fakes import InMemoryCustomerStore
from tests.helpers import event, now, runtime_store

RETENTION, SKEW = timedelta(days=400), timedelta(minutes=5)
TYPES = ["session", "message_open", "product_view", "cart_add", "purchase"]


def _store(runtime, cls=DynamoStore, **kw):
    return runtime_store(runtime, cls, **kw)


def _history(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    t = now()
    out = []
    for i in range(n):
        kind = rng.choice(TYPES)
        extra = {"product_id": f"P{rng.randrange(200)}", "amount": 12.5} if kind in TYPES[2:] else {}
        out.append(event(f"h{i}", type=kind, ts=t - timedelta(minutes=rng.randint(10, 60 * 24 * 90)), **extra))
    return out


def _items(runtime, customer_id: str) -> dict[str, dict]:
    ddb = runtime.session.client("dynamodb")
    resp = ddb.query(
        TableName=runtime.dep.physical["EventsTable"],
        KeyConditionExpression="customer_id = :c",
        ExpressionAttributeValues={":c": {"S": customer_id}},
    )
    return {i["sk"]["S"]: i for i in resp["Items"]}


def _customer_item(runtime, customer_id: str) -> dict:
    ddb = runtime.session.client("dynamodb")
    return ddb.get_item(TableName=runtime.dep.physical["CustomersTable"], Key={"customer_id": {"S": customer_id}})[
        "Item"
    ]


def test_a_long_history_keeps_the_core_small_and_reads_back_whole(runtime):
    # GIVEN a thousand events of every kind, ingested in batches, and the same into an in-memory store
    history = _history(1000)
    store, memory = _store(runtime), InMemoryCustomerStore()
    for i in range(0, len(history), 250):
        ingest_events(history[i : i + 250], store, now(), RETENTION, SKEW)
        ingest_events(history[i : i + 250], memory, now(), RETENTION, SKEW)
    # THEN the aggregates read back are exactly what one item would have held
    assert store.get_customer("c1").aggregates == memory.get_customer("c1").aggregates
    # AND the item every event rewrites stays under a kilobyte; the history lives in parts
    core = _customer_item(runtime, "c1")
    size = sum(len(k) + len(v["B"]) if "B" in v else len(k) + len(json.dumps(v)) for k, v in core.items())
    assert size < 1024, size
    assert {"a#recent", "a#bought", "a#days"} <= set(_items(runtime, "c1"))


def test_moments_moved_to_month_markers_still_count_once_and_erasure_removes_everything(runtime):
    # GIVEN sessions in 70 distinct hours, one request each: more than the core keeps before it flushes
    store = _store(runtime)
    t = now().replace(minute=0) - timedelta(days=20)
    hours = [t + timedelta(hours=5 * i) for i in range(70)]
    for i, h in enumerate(hours):
        ingest_events([event(f"s{i}", type="session", ts=h)], store, now(), RETENTION, SKEW)
    months = [sk for sk in _items(runtime, "c1") if sk.startswith(layout.MONTH_PREFIX)]
    assert months, "the oldest moments went to month markers"
    # WHEN other events arrive in the same hours, the oldest first
    result = ingest_events(
        [event(f"o{i}", type="message_open", ts=h + timedelta(minutes=20)) for i, h in enumerate(hours)],
        store,
        now(),
        RETENTION,
        SKEW,
    )
    # THEN they are stored, but no hour is counted twice
    assert result.accepted == 70
    agg = store.get_customer("c1").aggregates
    assert agg.engagement_moments == 70 == sum(agg.how_counts)
    assert store.engagement_moments("c1") == sorted(int(h.timestamp()) // 3600 for h in hours)
    # WHEN the customer is erased, every moment is accounted for and nothing of them is left in the events table
    store.tombstone("c1", now())
    assert store.erasure_inventory("c1")["engagement_moments"] == 70
    store.delete_customer_items("c1")
    assert _items(runtime, "c1") == {}


class StopsBeforeStoring(DynamoStore):
    """A Lambda that times out after writing the customer's core, before the events' items."""

    def _batch_write(self, table, requests, mapped=False):
        if mapped:  # the events' items
            raise StoreError("timed out")
        return super()._batch_write(table, requests, mapped)


def test_a_write_cut_between_folding_and_storing_is_finished_by_the_retry(runtime):
    batch = [event(f"e{i}", type="session", ts=now() - timedelta(hours=3 * i + 1)) for i in range(4)]
    # GIVEN a request that folded its events into the customer, then stopped
    with pytest.raises(StoreError):
        ingest_events(batch, _store(runtime, StopsBeforeStoring), now(), RETENTION, SKEW)
    assert not [sk for sk in _items(runtime, "c1") if sk.startswith("e#")]
    assert _store(runtime).get_customer("c1").aggregates.engagement_moments == 4
    # WHEN the client retries the same batch (on a fresh container)
    result = ingest_events(batch, _store(runtime), now(), RETENTION, SKEW)
    # THEN the events are stored now, and counted once
    assert (result.accepted, result.duplicates) == (0, 4)
    assert {f"e#e{i}" for i in range(4)} <= set(_items(runtime, "c1"))
    assert _store(runtime).get_customer("c1").aggregates.engagement_moments == 4
    # AND the next event clears the journal of events now seen stored
    ingest_events([event("later", type="session")], _store(runtime), now(), RETENTION, SKEW)
    _, state = layout.decode_core(_customer_item(runtime, "c1")["core"]["B"])
    assert [e[0] for e in state.journal] == ["later"]


def test_a_customer_stored_before_the_split_is_read_and_moved_on_its_next_write(runtime):
    # GIVEN a customer written by an earlier version: one item, moments as their own markers
    t = now().replace(minute=0) - timedelta(days=2)
    old = [Event.model_validate(event(f"o{i}", type="session", ts=t + timedelta(hours=i))) for i in range(3)]
    agg, keys = fold_events(CustomerAggregates(), old, set())
    ddb = runtime.session.client("dynamodb")
    ser = TypeSerializer()
    doc = {
        "customer_id": "c1",
        "version": 3,
        "agg": agg.to_dict(),
        "profile": {"timezone": None, "attributes": {"tier": "gold"}},
        "recommendation": {"best_hour_of_week": 42, "model_version": "v1"},
    }
    ddb.put_item(
        TableName=runtime.dep.physical["CustomersTable"], Item={k: ser.serialize(to_dynamo(v)) for k, v in doc.items()}
    )
    for k in keys:
        ddb.put_item(TableName=runtime.dep.physical["EventsTable"], Item={"customer_id": {"S": "c1"}, "sk": {"S": k}})
    store = _store(runtime)
    assert store.get_customer("c1").aggregates == agg
    # WHEN an event arrives in an hour counted before, and one in a new hour
    again = event("again", type="message_open", ts=t + timedelta(minutes=10))
    new = event("new", type="session", ts=t + timedelta(hours=10))
    assert ingest_events([again, new], _store(runtime), now(), RETENTION, SKEW).accepted == 2
    # THEN only the new hour counts, the profile and the recommendation are kept, and the item has moved
    rec = _store(runtime).get_customer("c1")
    assert rec.aggregates.engagement_moments == 4
    assert rec.profile["attributes"] == {"tier": "gold"}
    assert rec.recommendation["best_hour_of_week"] == 42
    item = _customer_item(runtime, "c1")
    assert "core" in item and not {"agg", "profile", "recommendation"} & set(item)
    # AND a later event in an hour counted before the split still counts once
    ingest_events([event("late", type="session", ts=t + timedelta(hours=1, minutes=5))], store, now(), RETENTION, SKEW)
    assert _store(runtime).get_customer("c1").aggregates.engagement_moments == 4
    assert moment_key("m", int((t + timedelta(hours=1)).timestamp()) // 3600) in _items(runtime, "c1")
