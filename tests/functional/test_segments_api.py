"""Saving a segment through the local API: the path names it (the body holds its filters only), fields by their
reference names or the customer view's."""

from __future__ import annotations


def test_segments_put_without_a_name_in_the_body_saves_under_the_path(client):
    # WHEN a segment is saved with filters only
    resp = client.request(
        "PUT", "/v1/segments/vip", {"filters": [{"field": "purchase_count", "op": "gte", "value": 1}]}
    )
    # THEN it is saved under the path's name
    assert resp.status == 200, resp.body
    assert resp.json()["name"] == "vip"
    assert client.request("GET", "/v1/segments/vip").json()["name"] == "vip"


def test_segments_put_with_a_name_in_the_body_is_400_naming_it(client):
    # WHEN the body names the segment too (even as the path does)
    for name in ("vip", "gold"):
        resp = client.request("PUT", "/v1/segments/vip", {"name": name, "filters": []})
        # THEN it is refused naming the field, and nothing is saved
        assert resp.status == 400
        assert resp.json()["message"].startswith("name:") and resp.json()["errors"][0]["field"] == "name"
    assert client.request("GET", "/v1/segments/vip").status == 404


def test_segments_aggregates_alias_is_read_and_an_unknown_field_lists_the_fields(client):
    # GIVEN a buyer
    event = {"event_id": "o-1", "customer_id": "c-1", "type": "purchase", "timestamp": "2026-11-20T12:00:00Z"}
    client.post_events([{**event, "amount": 5}])
    # WHEN a segment names the field as the customer view shows it
    body = {"filters": [{"field": "aggregates.purchase_count", "op": "gte", "value": 1}]}
    saved = client.request("PUT", "/v1/segments/buyers", body)
    # THEN it is saved under the reference name
    assert saved.status == 200, saved.body
    assert saved.json()["filters"][0]["field"] == "purchase_count"
    # AND an unknown field is a 400 naming the filter and listing the fields
    bad = client.request("PUT", "/v1/segments/buyers", {"filters": [{"field": "aggregates.shoe_size", "value": 1}]})
    assert bad.status == 400
    assert bad.json()["message"].startswith("filters.0") and "purchase_count" in bad.json()["message"]


def test_segments_openapi_says_the_body_holds_no_name(client):
    doc = client.request("GET", "/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/v1/segments/{name}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    segment_body = schemas[body["$ref"].rsplit("/", 1)[-1]]
    assert set(segment_body["properties"]) == {"filters"} and segment_body["additionalProperties"] is False
