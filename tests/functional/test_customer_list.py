"""GET /v1/customers: customers a page at a time, each request one bounded read of the customers table."""

from __future__ import annotations

import time

from kairos.customers.aggregates import CustomerAggregates
from tests.helpers import store_bulk_customers

MANY = 10_000


def _list(client, **query: object):
    return client.runtime.http("GET", "/v1/customers", client.headers, query={k: str(v) for k, v in query.items()})


def test_customer_list_pages_through_every_customer_with_a_cursor(client):
    # GIVEN 7 customers, one of them erased
    for i in range(7):
        assert client.request("PUT", f"/v1/customers/c{i}", {"timezone": "Europe/Paris"}).status == 200
    client.post_events(
        [
            {
                "event_id": "p1",
                "customer_id": "c3",
                "type": "purchase",
                "product_id": "SKU-7",
                "amount": 12.5,
                "currency": "EUR",
                "timestamp": "2026-11-20T12:00:00Z",
            }
        ]
    )
    assert client.request("DELETE", "/v1/customers/c6").status == 200
    # WHEN they are listed one item a page, following the cursor (past the erased one's tombstone, a reserved key)
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        resp = _list(client, limit=1, **({"cursor": cursor} if cursor else {}))
        assert resp.status == 200, resp.body
        page = resp.json()
        assert len(page["customers"]) <= 1
        seen += page["customers"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # THEN every customer but the erased one is listed once, with the figures of its core
    assert sorted(c["customer_id"] for c in seen) == [f"c{i}" for i in range(6)]
    buyer = next(c for c in seen if c["customer_id"] == "c3")
    assert buyer["purchase_count"] == 1 and buyer["monetary_total"] == 12.5
    assert buyer["last_purchase_at"].startswith("2026-11-20T12:00")
    assert pages >= 7


def test_customer_list_refuses_a_bad_limit_or_cursor(client):
    assert _list(client, limit=0).status == 400
    assert _list(client, limit=101).status == 400
    assert _list(client, cursor="/..").status == 400
    assert _list(client, cursor="abc").status == 400
    # a made-up cursor of the right form resumes somewhere, as any key does
    assert _list(client, cursor="ffff").status == 200


def test_customer_list_first_page_of_ten_thousand_answers_at_once(runtime, client):
    # GIVEN 10,000 customers in the store
    store_bulk_customers(runtime, MANY, CustomerAggregates(purchase_count=2, monetary_total=30.0))
    # WHEN the console's first page (50) is asked for
    started = time.perf_counter()
    resp = _list(client, limit=50)
    seconds = time.perf_counter() - started
    print(f"GET /v1/customers?limit=50 over {MANY} customers: {seconds:.3f} s")
    # THEN it holds 50 of them and a cursor, well within API Gateway's 29 s (one page read, not the table)
    assert resp.status == 200, resp.body
    page = resp.json()
    assert len(page["customers"]) == 50 and page["next_cursor"]
    assert seconds < 2.0
    # AND the next page goes on from the cursor, just as fast
    started = time.perf_counter()
    following = _list(client, limit=50, cursor=page["next_cursor"]).json()
    assert time.perf_counter() - started < 2.0
    assert not {c["customer_id"] for c in following["customers"]} & {c["customer_id"] for c in page["customers"]}
