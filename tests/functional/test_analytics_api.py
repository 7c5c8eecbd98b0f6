"""Archive questions through the real API handler on embedded AWS: 202 and a Location to poll, 200 with the same
answer the customers' aggregates give, the cache per archive state, a new answer after new archive data, a failed
query, and what the OpenAPI document says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kairos import wiring
from kairos.core.config import Settings
from kairos.insights.measures import cohort_matrix
from kairos_local.embedded import embedded_aws
from tests.conftest import Client
from tests.functional.test_insights_api import NOW, _buy


@pytest.fixture(scope="module")
def client():
    with embedded_aws(api_key="test-key", parameters={"EventRetentionDays": "800"}) as rt:
        yield Client(rt)


@pytest.fixture(scope="module")
def shop(client):
    """12 buyers, first buying between a year and a month ago, coming back monthly; archived by the stream."""
    events = []
    for i in range(12):
        cid = f"c{i:02d}"
        events += [_buy(cid, 30 + i * 30 - k * 31, 20.0 + i, k) for k in range(i % 4 + 1)]
    resp = client.post_events(events)
    assert resp.status == 200 and not resp.json()["rejected"], resp.body
    client.runtime.pump_streams()
    return events


def _get(client, path: str, **query: str):
    return client.runtime.http("GET", path, client.headers, query=query or None)


def _matrix_from_aggregates(client) -> dict:
    """The matrix the customers' stored aggregates give (``measures.cohort_matrix``), read from embedded AWS."""
    store = wiring.customer_store(Settings.from_env(client.runtime.dep.function_environment("ApiFunction")))
    ids = [f"c{i:02d}" for i in range(12)] + ["n0"]
    aggs = [(r.aggregates, r.attributes) for r in store.get_customers(ids).values()]
    return cohort_matrix(aggs, "first_purchase_month", "retention", 24, datetime.now(UTC).date())


def test_cohorts_answer_202_then_the_poll_answers_200_with_the_aggregates_matrix_then_the_cache(client, shop):
    # GIVEN the shop's purchases in the archive
    # WHEN cohorts are asked
    first = client.request("GET", "/v1/insights/cohorts")
    # THEN the query starts: 202, a Location to poll (also in the body) and a Retry-After
    assert first.status == 202, first.body
    accepted = first.json()
    location = first.headers["Location"]
    assert location == accepted["location"] == f"/v1/insights/queries/{accepted['query_id']}"
    assert int(first.headers["Retry-After"]) == accepted["retry_after"] > 0
    assert accepted["analysis"] == "cohorts" and accepted["status"] == "running"
    # WHEN the Location is polled
    done = client.request("GET", location)
    # THEN it answers the cohort matrix the customers' aggregates give, with the query that computed it
    assert done.status == 200, done.body
    matrix = done.json()
    expected = _matrix_from_aggregates(client)
    assert {k: matrix[k] for k in ("by", "metric", "periods", "cohorts")} == expected
    assert matrix["customers"] == sum(c["size"] for c in expected["cohorts"]) >= 12
    assert matrix["query"]["engine"] == "duckdb"
    assert matrix["query"]["query_id"] == accepted["query_id"] and matrix["query"]["bytes_scanned"] > 0
    # AND the same question over the same archive answers 200 at once, from the cache
    again = client.request("GET", "/v1/insights/cohorts")
    assert again.status == 200 and again.json() == matrix
    # AND another question (revenue) is another query
    revenue = _get(client, "/v1/insights/cohorts", metric="revenue")
    assert revenue.status == 202 and revenue.json()["query_id"] != accepted["query_id"]


def test_new_archive_data_gives_a_new_query_and_a_new_answer(client, shop):
    # GIVEN an answer cached over the archive as it is
    first = client.request("GET", "/v1/insights/cohorts")
    if first.status == 202:
        first = client.request("GET", first.headers["Location"])
    before = first.json()
    # WHEN a new customer's first purchase is archived
    assert client.post_events([_buy("n0", 1, 99.0, 0)]).status == 200
    client.runtime.pump_streams()
    asked = client.request("GET", "/v1/insights/cohorts")
    # THEN the question is asked anew, and its answer counts the new customer
    assert asked.status == 202, asked.body
    assert asked.json()["query_id"] != before["query"]["query_id"]
    after = client.request("GET", asked.headers["Location"]).json()
    month = (NOW - timedelta(days=1)).strftime("%Y-%m")
    size = {c["cohort"]: c["size"] for c in after["cohorts"]}
    assert size[month] == {c["cohort"]: c["size"] for c in before["cohorts"]}.get(month, 0) + 1
    assert after["query"]["data_version"] != before["query"]["data_version"]


def test_forecast_and_rfm_thresholds_of_everybody_run_on_the_archive(client, shop):
    # GIVEN the shop
    start = NOW.date() + timedelta(days=1)
    body = {"start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat()}
    # WHEN the forecast of every customer and the RFM thresholds are asked and polled
    answers = {}
    for name, resp in (
        ("forecast", client.request("POST", "/v1/insights/forecast", body)),
        ("rfm", client.request("GET", "/v1/insights/rfm/thresholds")),
    ):
        assert resp.status == 202, resp.body
        answers[name] = client.request("GET", resp.headers["Location"])
    # THEN both answer 200 in the shapes of the synchronous answers
    forecast = answers["forecast"].json()
    assert answers["forecast"].status == 200 and forecast["audience"] >= 12 and forecast["periods"]
    assert forecast["pessimistic"]["conversions"] <= forecast["optimistic"]["conversions"]
    rfm = answers["rfm"].json()
    assert rfm["customers"] >= 12 and len(rfm["recency_days"]) == 4 == len(rfm["monetary"])
    # AND a forecast of filters reads the customers, at once, saying it read them all
    filtered = client.request(
        "POST", "/v1/insights/forecast", {**body, "filters": [{"field": "orders.max_amount", "op": "gte", "value": 1}]}
    )
    assert filtered.status == 200 and filtered.json()["sampled"] is False


def test_a_poll_of_an_unknown_or_malformed_query_is_404_or_400(client):
    assert client.request("GET", "/v1/insights/queries/" + "0" * 32).status == 404
    assert client.request("GET", "/v1/insights/queries/nope").status == 400


def test_a_failed_query_answers_502_with_its_reason_and_asking_again_starts_anew(client, shop, monkeypatch):
    # GIVEN an engine whose query fails (DuckDB cannot read the archive's copy)
    from kairos.core.errors import StoreError
    from kairos.insights.adapters.duckdb_engine import DuckDbArchive

    def broken(self, sql, **_):
        raise StoreError("analytics: cannot read the archive")

    monkeypatch.setattr(DuckDbArchive, "run", broken)
    asked = _get(client, "/v1/insights/cohorts", max_periods="3")
    assert asked.status == 202
    # WHEN polled THEN 502 names the reason
    failed = client.request("GET", asked.headers["Location"])
    assert failed.status == 502, failed.body
    assert "cannot read the archive" in failed.json()["message"]
    assert failed.json()["errors"][0]["type"] == "query_failed"
    # AND once the engine works again, asking again starts a new query that answers
    monkeypatch.undo()
    again = _get(client, "/v1/insights/cohorts", max_periods="3")
    assert again.status == 202
    assert client.request("GET", again.headers["Location"]).status == 200


def test_the_openapi_document_states_the_202_its_location_and_the_poll_route(client):
    doc = json.loads(client.request("GET", "/v1/openapi.json").body)
    for path, method in (
        ("/v1/insights/cohorts", "get"),
        ("/v1/insights/forecast", "post"),
        ("/v1/insights/rfm/thresholds", "get"),
        ("/v1/insights/queries/{query_id}", "get"),
    ):
        responses = doc["paths"][path][method]["responses"]
        assert {"200", "202", "502"} <= set(responses), path
        assert {"Location", "Retry-After"} <= set(responses["202"]["headers"]), path
    poll = doc["paths"]["/v1/insights/queries/{query_id}"]["get"]
    assert poll["parameters"][0]["schema"]["pattern"] == "^[0-9a-f]{32}$"
    assert "404" in poll["responses"]
    preview = doc["components"]["schemas"]["SegmentPreview"]["properties"]
    assert {"sampled", "sample_size", "estimate"} <= set(preview)
