"""GET /v1/customers/{id}/events: the customer's stored events, newest first, and nothing once they are erased."""

from __future__ import annotations


def _events(client, customer_id: str, **query: object):
    path = f"/v1/customers/{customer_id}/events"
    return client.runtime.http("GET", path, client.headers, query={k: str(v) for k, v in query.items()})


def _event(event_id: str, kind: str, at: str, **extra: object) -> dict:
    return {"event_id": event_id, "customer_id": "ann", "type": kind, "timestamp": at, **extra}


def test_a_customers_events_come_newest_first_with_their_total(client):
    # GIVEN three events of Ann sent out of order, one with its own offset, and one of another customer
    client.post_events(
        [
            _event("s-2", "session", "2026-11-21T08:30:00Z"),
            _event("p-1", "purchase", "2026-11-20T12:04:00+01:00", product_id="SKU-7", amount=19.8, currency="EUR"),
            _event("o-3", "order_shipped", "2026-11-21T09:00:00Z", properties={"carrier": "DHL"}),
            {**_event("x", "session", "2026-11-22T08:00:00Z"), "customer_id": "bob"},
        ]
    )
    # WHEN her two newest are asked for
    resp = _events(client, "ann", limit=2)
    # THEN they come newest first, as sent, with how many she has
    assert resp.status == 200, resp.body
    page = resp.json()
    assert page["total"] == 3 and [e["event_id"] for e in page["events"]] == ["o-3", "s-2"]
    assert page["events"][0]["properties"] == {"carrier": "DHL"}
    everything = _events(client, "ann").json()["events"]
    assert [e["event_id"] for e in everything] == ["o-3", "s-2", "p-1"]
    assert everything[2]["timestamp"] == "2026-11-20T12:04:00+01:00" and everything[2]["amount"] == 19.8


def test_limits_are_checked_and_an_erased_customer_has_no_events(client):
    client.post_events([_event("s-1", "session", "2026-11-21T08:30:00Z")])
    # THEN a limit out of range is a 400 naming it
    for bad in (0, 501, "x"):
        resp = _events(client, "ann", limit=bad)
        assert resp.status == 400 and "limit" in resp.body, resp.body
    # AND once erased, her events are gone from the timeline, as from every store
    assert client.request("DELETE", "/v1/customers/ann").status == 200
    page = _events(client, "ann").json()
    assert page == {"customer_id": "ann", "events": [], "total": 0}
