"""Insights and segments through the local API: RFM after a scoring run, cohorts, previews, deletion, forecasts,
the global control group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kairos.models.timing import stable_unit
from kairos_local.embedded import embedded_aws
from kairos_local.stepfunctions import local_stepfunctions
from tests.conftest import Client

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def client():
    parameters = {"EventRetentionDays": "800", "GlobalControlShare": "0.3"}
    with embedded_aws(api_key="test-key", parameters=parameters) as rt:
        yield Client(rt)


def _get(client, path: str, **query: str):
    return client.runtime.http("GET", path, client.headers, query=query)


def _answered(client, resp):
    """Follow a 202's Location until the archive query answers (the local engine is done at the first poll)."""
    for _ in range(5):
        if resp.status != 202:
            return resp
        resp = client.request("GET", resp.headers["Location"])
    raise AssertionError(f"still running: {resp.body}")


def _buy(cid: str, days_ago: float, amount: float, n: int) -> dict:
    at = NOW - timedelta(days=days_ago)
    return {
        "event_id": f"{cid}-{n}",
        "customer_id": cid,
        "type": "purchase",
        "timestamp": at.isoformat(),
        "amount": amount,
    }


@pytest.fixture(scope="module")
def shop(client):
    """20 buyers acquired by a contest or by search ads, buying from weekly to once a year ago, and 3 browsers."""
    events = []
    for i in range(20):
        cid = f"c{i:02d}"
        source = "contest" if i % 2 else "search ads"
        client.request("PUT", f"/v1/customers/{cid}", {"timezone": "UTC", "attributes": {"source": source}})
        orders = 20 - i  # c00 buys most, most recently
        events += [_buy(cid, 2 + 7 * k + i * 15, 50.0 + 10 * (20 - i), k) for k in range(orders)]
    for i in range(3):
        client.request("PUT", f"/v1/customers/b{i}", {"timezone": "UTC", "attributes": {"source": "contest"}})
        events.append({"event_id": f"s{i}", "customer_id": f"b{i}", "type": "session", "timestamp": NOW.isoformat()})
    for start in range(0, len(events), 500):
        resp = client.post_events(events[start : start + 500])
        assert resp.status == 200 and not resp.json()["rejected"], resp.body
    return events


def test_rfm_after_a_scoring_run_counts_the_buyers_and_names_the_champion(client, shop):
    # GIVEN the shop (one deployment for this module's tests); RFM is there only after a scoring run
    if client.request("GET", "/v1/insights/rfm").status != 200:
        assert client.request("GET", "/v1/insights/rfm").json()["message"] == "no scoring run has computed RFM yet"
    # WHEN the scoring run of the template runs
    with local_stepfunctions(client.runtime) as sfn:
        desc = sfn.run("ScoreAllStateMachine", {"total_shards": 2}, timeout_s=300)
    assert desc["status"] == "SUCCEEDED", desc
    rfm = client.request("GET", "/v1/insights/rfm").json()
    # THEN the RFM group counts add up to the customers with purchases, and the grid too
    assert rfm["customers"] == 20 == sum(g["customers"] for g in rfm["groups"])
    assert sum(c["customers"] for c in rfm["grid"]) == 20
    assert rfm["movement"] == {"none": {g["group"]: g["customers"] for g in rfm["groups"] if g["customers"]}}
    # AND the most frequent, most recent big spender is a champion, in their profile and in a segment filter
    rec = client.request("GET", "/v1/customers/c00/recommendation").json()
    assert rec["scored"] is True
    preview = client.request(
        "POST", "/v1/segments/preview", {"filters": [{"field": "rfm.group", "value": "champions"}]}
    ).json()
    assert "c00" in preview["sample"] and "c19" not in preview["sample"]


def test_a_filter_on_rfm_segment_is_400_saying_to_use_rfm_group(client):
    # GIVEN a client still filtering on the RFM group under its former field name
    old = {"field": "rfm.segment", "value": "champions"}
    # WHEN it previews or saves a segment with it
    preview = client.request("POST", "/v1/segments/preview", {"filters": [old]})
    put = client.request("PUT", "/v1/segments/winners", {"filters": [{"any": [old]}]})
    # THEN both are 400 naming the filter and the field to use, and nothing is saved
    for resp in (preview, put):
        assert resp.status == 400, resp.body
        message = resp.json()["message"]
        assert message.startswith("filters.0") and "use 'rfm.group'" in message, message
    assert client.request("GET", "/v1/segments/winners").status == 404


def test_cohorts_first_column_is_each_cohorts_size(client, shop):
    by_month = _answered(client, client.request("GET", "/v1/insights/cohorts")).json()
    firsts = {}
    for e in shop:
        if e["type"] == "purchase":
            month = e["timestamp"][:7]
            firsts[e["customer_id"]] = min(firsts.get(e["customer_id"], month), month)
    expected = {}
    for month in firsts.values():
        expected[month] = expected.get(month, 0) + 1
    assert {c["cohort"]: c["size"] for c in by_month["cohorts"]} == expected
    assert all(c["values"][0] == c["size"] for c in by_month["cohorts"])
    by_source = _get(client, "/v1/insights/cohorts", by="attributes.source", metric="revenue").json()
    assert {c["cohort"]: c["size"] for c in by_source["cohorts"]} == {"contest": 10, "search ads": 10}
    bad = _get(client, "/v1/insights/cohorts", by="shoe_size")
    assert bad.status == 400 and bad.json()["message"].startswith("by")


def test_preview_or_group_counts_the_union_and_segments_delete(client, shop):
    contest = {"field": "attributes.source", "value": "contest"}
    big = {"field": "orders.max_amount", "op": "gte", "value": 200}
    counts = {
        name: client.request("POST", "/v1/segments/preview", {"filters": [f]}).json()["count"]
        for name, f in (("contest", contest), ("big", big))
    }
    both = client.request("POST", "/v1/segments/preview", {"filters": [contest, big]}).json()["count"]
    union = client.request("POST", "/v1/segments/preview", {"filters": [{"any": [contest, big]}]}).json()
    assert union["count"] == counts["contest"] + counts["big"] - both
    assert counts["contest"] == 13  # ten buyers and three browsers
    # a saved segment previews by name and deletes once; a bad group names the field
    client.request("PUT", "/v1/segments/either", {"filters": [{"any": [contest, big]}]})
    by_name = client.request("POST", "/v1/segments/preview", {"segment": "either"}).json()
    assert by_name["count"] == union["count"]
    deleted = client.request("DELETE", "/v1/segments/either")
    assert deleted.status == 204 and deleted.body == "" and "Content-Type" not in deleted.headers
    assert client.request("DELETE", "/v1/segments/either").status == 404
    bad = client.request("POST", "/v1/segments/preview", {"filters": [{"any": [contest], "not": big}]})
    assert bad.status == 400 and bad.json()["message"].startswith("filters.0")


def test_forecast_gives_three_cases_from_comparable_periods(client, shop):
    start = NOW.date() + timedelta(days=1)
    body = {"filters": [], "start": start.isoformat(), "end": (start + timedelta(days=14)).isoformat()}
    out = _answered(client, client.request("POST", "/v1/insights/forecast", body))
    assert out.status == 200, out.body
    f = out.json()
    assert f["audience"] == 23 and f["periods"]
    assert f["pessimistic"]["conversions"] <= f["neutral"]["conversions"] <= f["optimistic"]["conversions"]
    assert f["optimistic"]["conversions"] > 0
    backwards = client.request("POST", "/v1/insights/forecast", {**body, "end": body["start"]})
    assert backwards.status == 400


def test_the_global_control_group_is_never_messaged_and_its_revenue_is_compared(client, shop):
    resp = _get(client, "/v1/insights/global-control", days="365")
    assert resp.status == 200, resp.body
    report = resp.json()
    in_group = {f"c{i:02d}" for i in range(20)} | {f"b{i}" for i in range(3)}
    held = {c for c in in_group if stable_unit("global-control", c) < 0.3}
    assert report["control"]["customers"] == len(held)
    assert report["treatment"]["customers"] == len(in_group) - len(held)
    assert "incremental_revenue" in report
