"""The DynamoDB customer store on embedded AWS: what a scan page carries."""

from __future__ import annotations

from kairos.customers.adapters.dynamo import DynamoStore
from tests.helpers import runtime_store


def _store(runtime, cls=DynamoStore, **kw):
    return runtime_store(runtime, cls, **kw)


def test_scan_page_carries_each_customers_recommendation(runtime, client):
    # GIVEN a customer with a profile and a scored recommendation, and a reserved fallback row
    client.request("PUT", "/v1/customers/c1", {"timezone": "UTC", "consent": {"email": True}})
    store = _store(runtime)
    rec = {"best_hours": [{"hour_of_week": 10, "score": 0.5}], "next_products": [{"product_id": "SKU1"}]}
    store.put_recommendation("c1", rec)
    store.put_fallback("__population", {"best_hours": []})
    # WHEN the launch scans the table
    records, last = store.scan_customers(0, 1)
    # THEN the customer arrives with the recommendation a launch schedules by, and the fallback is skipped
    assert [r.customer_id for r in records] == ["c1"] and last is None
    assert records[0].recommendation["next_products"] == [{"product_id": "SKU1"}]
