"""Property-based tests: malformed, oversized, duplicated and mixed batches thrown at the real handler."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairos_local.embedded import auth_header, embedded_aws
from tests.helpers import now

_RUNTIME = {}


def _runtime():
    # One embedded AWS for all examples (moto setup costs ~0.5 s); examples use fresh customer ids.
    if "rt" not in _RUNTIME:
        ctx = embedded_aws(api_key="prop-key")
        _RUNTIME["ctx"] = ctx
        _RUNTIME["rt"] = ctx.__enter__()
    return _RUNTIME["rt"]


def teardown_module() -> None:
    if "ctx" in _RUNTIME:
        _RUNTIME["ctx"].__exit__(None, None, None)
        _RUNTIME.clear()


TYPES = [
    "session",
    "message_open",
    "message_click",
    "purchase",
    "cart_add",
    "cart_abandon",
    "product_view",
    "message_inbound",
    "unsubscribe",
]


@st.composite
def valid_event(draw, prefix: str) -> dict:
    ev = {
        "event_id": f"e{draw(st.integers(0, 40))}",
        "customer_id": f"{prefix}-c{draw(st.integers(0, 4))}",
        "type": draw(st.sampled_from(TYPES)),
        "timestamp": (now() - timedelta(minutes=draw(st.integers(1, 60 * 24 * 30))))
        .astimezone(draw(st.sampled_from([None])))
        .isoformat(),
    }
    if draw(st.booleans()):
        ev["product_id"] = f"P{draw(st.integers(0, 9))}"
        ev["amount"] = draw(st.floats(0, 1000, allow_nan=False).map(lambda x: round(x, 2)))
    if draw(st.booleans()):
        ev["channel"] = draw(st.sampled_from(["email", "sms", "push", "messenger"]))
    return ev


CORRUPTIONS = {
    "type": lambda ev: {**ev, "type": "Teleport!"},  # not a type name (a shop may name its own in snake_case)
    "timestamp": lambda ev: {**ev, "timestamp": "yesterday"},
    "future": lambda ev: {**ev, "timestamp": (now() + timedelta(days=2)).isoformat()},
    "naive": lambda ev: {**ev, "timestamp": "2026-01-01T10:00:00"},
    "customer_id": lambda ev: {k: v for k, v in ev.items() if k != "customer_id"},
    "event_id": lambda ev: {**ev, "event_id": "has spaces in it"},
    "amount": lambda ev: {**ev, "amount": "lots"},
    "extra": lambda ev: {**ev, "surprise": 1},
    "currency": lambda ev: {**ev, "currency": "pounds"},
    "not_object": lambda ev: [ev],
}


@st.composite
def mixed_batch(draw) -> tuple[list, set[int]]:
    prefix = uuid.uuid4().hex[:8]
    n = draw(st.integers(1, 60))
    events, bad = [], set()
    for i in range(n):
        ev = draw(valid_event(prefix))
        if draw(st.integers(0, 3)) == 0:
            ev = CORRUPTIONS[draw(st.sampled_from(sorted(CORRUPTIONS)))](ev)
            bad.add(i)
        events.append(ev)
    # Re-send a slice of the batch inside itself, as a retrying client might.
    if events and draw(st.booleans()):
        start = draw(st.integers(0, len(events) - 1))
        extra = events[start : start + draw(st.integers(1, 10))]
        bad |= {len(events) + j for j, _ in enumerate(extra) if start + j in bad}
        events += extra
    return events, bad


def _stored(rt, customer_ids) -> set[tuple[str, str]]:
    ddb = rt.session.client("dynamodb")
    out = set()
    for cid in customer_ids:
        items = ddb.query(
            TableName=rt.dep.physical["EventsTable"],
            KeyConditionExpression="customer_id = :c AND begins_with(sk, :e)",
            ExpressionAttributeValues={":c": {"S": cid}, ":e": {"S": "e#"}},
        )["Items"]
        out |= {(cid, i["sk"]["S"][2:]) for i in items}
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mixed_batch(), st.booleans())
def test_ingest_any_batch_stores_each_valid_event_once_and_reports_each_invalid(case, send_twice):
    # GIVEN a batch of valid, corrupt and repeated events
    events, bad = case
    rt = _runtime()
    headers = auth_header(rt)
    # WHEN it is posted (and maybe re-sent as a client retry)
    responses = [rt.http("POST", "/v1/events", headers, json.dumps({"events": events}))]
    if send_twice:
        responses.append(rt.http("POST", "/v1/events", headers, json.dumps({"events": events})))
    # THEN no 5xx, each invalid event is reported by index, and each valid one stored once
    for resp in responses:
        assert resp.status == 200, resp.body
    first = responses[0].json()
    assert {r["index"] for r in first["rejected"]} == bad
    assert all(r["field"] and r["reason"] for r in first["rejected"])
    valid_keys = {(e["customer_id"], e["event_id"]) for i, e in enumerate(events) if i not in bad}
    assert first["accepted"] == len(valid_keys)
    assert first["accepted"] + first["duplicates"] + len(first["rejected"]) == len(events)
    if send_twice:
        second = responses[1].json()
        assert second["accepted"] == 0 and second["duplicates"] == len(events) - len(bad)
    customers = {c for c, _ in valid_keys}
    assert _stored(rt, customers) == valid_keys
    # AND every aggregate counts each engagement moment of the stored events exactly once
    kept: dict[tuple[str, str], dict] = {}
    for i, e in enumerate(events):
        if i not in bad:
            kept.setdefault((e["customer_id"], e["event_id"]), e)
    for cid in customers:
        agg = json.loads(rt.http("GET", f"/v1/customers/{cid}", headers).body)["aggregates"]
        from datetime import datetime

        hours = {
            int(datetime.fromisoformat(e["timestamp"]).timestamp()) // 3600
            for (c, _), e in kept.items()
            if c == cid and e["type"] in ("session", "message_open", "message_click", "purchase")
        }
        assert agg["engagement_moments"] == len(hours)
        assert sum(agg["hour_of_week_counts"]) == len(hours)


@settings(max_examples=15, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200), st.integers(501, 700)))
def test_ingest_garbage_or_oversized_body_is_a_4xx(garbage):
    # GIVEN a body that is not JSON, not the right shape, or over 500 events
    rt = _runtime()
    if isinstance(garbage, int):
        body = json.dumps({"events": [{"event_id": f"e{i}"} for i in range(garbage)]})
    else:
        body = garbage
    # WHEN posted THEN it is refused whole with a 4xx and a message
    resp = rt.http("POST", "/v1/events", auth_header(rt), body)
    assert 400 <= resp.status < 500, (resp.status, resp.body)
    assert resp.json()["message"]
