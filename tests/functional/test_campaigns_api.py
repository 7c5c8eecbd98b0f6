"""Campaigns and segments through the local API: create, read, list, cancel; invalid definitions name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def _campaign(**over):
    body = {
        "name": "winback",
        "audience": {"segment": "loyal"},
        "messages": {
            "email": {"subject": "Hi {{first_name}}", "text": "Look: {{product_id}}"},
            "sms": {"text": "Offer inside"},
        },
        "channels": ["email", "sms"],
        "wait_hours": [24, 48],
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "frequency_cap": {"max_messages": 2, "per_days": 7},
        "control_share": 0.2,
        "send_time": {"mode": "optimized", "explore_share": 0.1},
    }
    body.update(over)
    return body


def test_campaigns_create_read_list_cancel(client):
    # GIVEN a saved segment
    seg = {
        "filters": [{"field": "purchase_count", "op": "gt", "value": 3}, {"field": "bought_product", "value": "SKU-1"}],
    }
    resp = client.request("PUT", "/v1/segments/loyal", seg)
    assert resp.status == 200, resp.body
    assert client.request("GET", "/v1/segments").json()["segments"][0]["name"] == "loyal"
    # WHEN two campaigns are created
    first = client.request("POST", "/v1/campaigns", _campaign())
    second = client.request("POST", "/v1/campaigns", _campaign(name="second"))
    # THEN they are stored, scheduled, readable and listed page by page
    assert first.status == 201, first.body
    cid = first.json()["campaign_id"]
    got = client.request("GET", f"/v1/campaigns/{cid}").json()
    assert got["status"] == "running" and got["definition"]["channels"] == ["email", "sms"]
    page = client.request("GET", "/v1/campaigns?limit=1")
    assert page.status == 200
    ids = {c["campaign_id"] for c in page.json()["campaigns"]}
    token = page.json()["next_token"]
    while token:
        nxt = client.runtime.http("GET", "/v1/campaigns", client.headers, query={"limit": "1", "next_token": token})
        ids |= {c["campaign_id"] for c in nxt.json()["campaigns"]}
        token = nxt.json()["next_token"]
    assert ids == {cid, second.json()["campaign_id"]}
    # AND a cancel stops it once; a second cancel is refused with the field named
    assert client.request("POST", f"/v1/campaigns/{cid}/cancel").json()["status"] == "cancelled"
    again = client.request("POST", f"/v1/campaigns/{cid}/cancel")
    assert again.status == 400 and again.json()["message"].startswith("status")
    assert client.request("GET", f"/v1/campaigns/{'0' * 32}").status == 404


def test_campaigns_invalid_definitions_are_400_naming_the_field(client):
    client.request("PUT", "/v1/segments/loyal", {"filters": []})
    cases = {
        "audience.segment": _campaign(audience={"segment": "nobody"}),
        "expires_at": _campaign(expires_at="2020-01-01T00:00:00+00:00"),
        "control_share": _campaign(control_share=2),
        "channels": _campaign(channels=["email", "email"]),
        "send_time": _campaign(send_time={"mode": "fixed"}),
        "quiet_hours": _campaign(quiet_hours={"start": "nine", "end": "08:00"}),
    }
    for field, body in cases.items():
        resp = client.request("POST", "/v1/campaigns", body)
        assert resp.status == 400, (field, resp.body)
        assert resp.json()["message"].startswith(field), (field, resp.json()["message"])
    assert client.request("PUT", "/v1/segments/x", {"name": "y", "filters": []}).json()["message"].startswith("name")
    bad = client.request("PUT", "/v1/segments/x", {"filters": [{"field": "shoe_size"}]})
    assert bad.status == 400 and "filters.0" in bad.json()["message"]
