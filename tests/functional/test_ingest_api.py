"""The ingest API end to end: local API Gateway + authorizer + handler + DynamoDB/S3 from template.yaml."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

from kairos.customers.schemas import Event
from kairos_local.template import load_template
from tests.helpers import event, now


def _stored_event_ids(runtime, customer_id: str) -> list[str]:
    ddb = runtime.session.client("dynamodb")
    items = ddb.query(
        TableName=runtime.dep.physical["EventsTable"],
        KeyConditionExpression="customer_id = :c AND begins_with(sk, :e)",
        ExpressionAttributeValues={":c": {"S": customer_id}, ":e": {"S": "e#"}},
    )["Items"]
    return sorted(i["sk"]["S"][2:] for i in items)


def _archived(runtime) -> list[dict]:
    s3 = runtime.session.client("s3")
    bucket = runtime.dep.physical["ArchiveBucket"]
    lines = []
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        lines += [json.loads(x) for x in body.decode().splitlines()]
    return lines


def test_tables_created_from_template_keys(runtime):
    # GIVEN the real template
    tpl = load_template()
    ddb = runtime.session.client("dynamodb")
    # WHEN the tables are described in embedded AWS
    for lid in ("EventsTable", "CustomersTable", "ApiKeysTable"):
        desc = ddb.describe_table(TableName=runtime.dep.physical[lid])["Table"]
        # THEN their keys are the template's
        assert desc["KeySchema"] == tpl["Resources"][lid]["Properties"]["KeySchema"]


def test_post_events_stores_valid_and_reports_invalid_by_index_and_field(client, runtime):
    # GIVEN a batch with valid and invalid events
    batch = [
        event("e1", amount=12.5, product_id="P1"),
        event("e2", type="Bogus type"),
        event("e3", ts=now() + timedelta(hours=2)),
        {"event_id": "e4", "customer_id": "c1", "type": "session", "timestamp": "2024-01-01T10:00:00"},
        event("e5", type="session"),
        "not an object",
        event("e6", ts=now() - timedelta(days=5000)),
        event("e7", phone="+44"),
    ]
    # WHEN it is posted
    resp = client.post_events(batch)
    # THEN valid events are stored and each invalid one is named
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    rejected = {r["index"]: r for r in body["rejected"]}
    assert set(rejected) == {1, 2, 3, 5, 6, 7}
    assert rejected[1]["field"] == "type"
    assert rejected[2]["field"] == "timestamp" and "future" in rejected[2]["reason"]
    assert rejected[3]["field"] == "timestamp" and "offset" in rejected[3]["reason"]
    assert rejected[5]["field"] == "(event)"
    assert rejected[6]["field"] == "timestamp" and "retention" in rejected[6]["reason"]
    assert rejected[7]["field"] == "phone"
    assert _stored_event_ids(runtime, "c1") == ["e1", "e5"]


def test_post_events_resent_batch_stores_and_counts_nothing_twice(client):
    # GIVEN a batch already accepted
    t = now() - timedelta(hours=3)
    batch = [event(f"e{i}", ts=t + timedelta(minutes=i), product_id="P1", amount=2) for i in range(30)]
    first = client.post_events(batch).json()
    before = client.request("GET", "/v1/customers/c1").json()["aggregates"]
    # WHEN the client retries it, with a duplicate inside the batch too
    second = client.post_events(batch + [batch[0]]).json()
    after = client.request("GET", "/v1/customers/c1").json()["aggregates"]
    # THEN nothing is stored or counted twice
    assert first == {"accepted": 30, "duplicates": 0, "rejected": []}
    assert second == {"accepted": 0, "duplicates": 31, "rejected": []}
    assert after == before
    assert after["purchase_count"] == len({(t + timedelta(minutes=i)).replace(minute=0) for i in range(30)})
    assert after["monetary_total"] == 60


def test_post_events_invoice_lines_are_one_engagement_moment(client):
    # GIVEN a 20-line invoice at one minute and a session in the same hour
    t = now().replace(minute=5, second=0) - timedelta(hours=5)
    lines = [event(f"inv1-{i}", ts=t, product_id=f"P{i}", quantity=2, amount=1.5) for i in range(20)]
    client.post_events(lines[:7])
    client.post_events(lines[7:] + [event("s1", type="session", ts=t + timedelta(minutes=20))])
    # WHEN the aggregates are read
    agg = client.request("GET", "/v1/customers/c1").json()["aggregates"]
    # THEN it is one engagement moment and one purchase, in the UTC hour of week
    assert agg["engagement_moments"] == 1 and agg["purchase_count"] == 1
    assert sum(agg["hour_of_week_counts"]) == 1
    assert agg["hour_of_week_counts"][t.weekday() * 24 + t.hour] == 1
    assert agg["event_counts"] == {"purchase": 20, "session": 1}
    assert agg["monetary_total"] == 30.0


def test_post_events_large_batch_over_many_customers(client, runtime):
    # GIVEN 500 events over 7 customers (one customer has 300: more than one transaction)
    t = now() - timedelta(days=10)
    batch = [event(f"b{i}", customer_id="big", type="session", ts=t + timedelta(minutes=7 * i)) for i in range(300)]
    batch += [event(f"s{i}", customer_id=f"c{i % 6}", ts=t + timedelta(hours=i)) for i in range(200)]
    # WHEN posted
    body = client.post_events(batch).json()
    # THEN all are stored, the big customer counts each distinct hour once
    assert body == {"accepted": 500, "duplicates": 0, "rejected": []}
    agg = client.request("GET", "/v1/customers/big").json()["aggregates"]
    assert agg["engagement_moments"] == len({(t + timedelta(minutes=7 * i)).replace(minute=0) for i in range(300)})
    assert len(_stored_event_ids(runtime, "big")) == 300


def test_post_events_over_500_is_413_and_stores_nothing(client, runtime):
    # GIVEN 501 events
    batch = [event(f"e{i}") for i in range(501)]
    # WHEN posted
    resp = client.post_events(batch)
    # THEN the whole request is refused with a message naming the field
    assert resp.status == 413
    assert resp.json()["message"].startswith("events:")
    assert _stored_event_ids(runtime, "c1") == []


def test_post_events_bad_bodies_are_400(client):
    assert client.request("POST", "/v1/events", raw="{nope").status == 400
    assert client.request("POST", "/v1/events", {"events": []}).json()["message"].startswith("events:")
    resp = client.request("POST", "/v1/events", {"evnts": [event("e1")]})
    assert resp.status == 400 and "events" in resp.json()["message"]


def test_every_route_but_openapi_needs_a_valid_key(client, runtime):
    # GIVEN no key, a wrong key, and a malformed header
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC1rZXk="}):
        # WHEN a protected route is called THEN 401
        assert client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=headers).status == 401
        assert client.request("GET", "/v1/customers/c1", headers=headers).status == 401
    # AND the OpenAPI document is public and generated from the code
    doc = client.request("GET", "/v1/openapi.json", headers={}).json()
    assert {"/v1/events", "/v1/customers/{customer_id}"} <= set(doc["paths"])
    assert "EventBatch" in doc["components"]["schemas"]


def test_revoked_key_stops_working_after_cache(runtime, client):
    # GIVEN a second app key that works
    from kairos.http.adapters.api_keys import DynamoApiKeyStore

    keys = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb"))
    key_id, key = keys.create("other-app")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.request("GET", "/v1/openapi.json", headers=headers).status == 200
    assert client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=headers).status == 200
    # WHEN it is revoked and the authorizer cache expires
    keys.revoke(key_id)
    runtime._auth_cache.clear()
    # THEN it is refused, and only its hash was ever stored
    assert client.request("POST", "/v1/events", {"events": [event("e2")]}, headers=headers).status == 401
    items = runtime.session.client("dynamodb").scan(TableName=runtime.dep.physical["ApiKeysTable"])["Items"]
    assert all(key not in json.dumps(i) for i in items)


def test_put_customer_validates_fields(client):
    cases = {
        "timezone": {"timezone": "Mars/Olympus"},
        "contact.phone": {"contact": {"phone": "07700 900123"}},
        "contact.email": {"contact": {"email": "not-an-email"}},
        "consent.sms": {"consent": {"sms": "maybe"}},
        "nickname": {"nickname": "x"},
    }
    for field, body in cases.items():
        resp = client.request("PUT", "/v1/customers/c1", body)
        assert resp.status == 400, (field, resp.body)
        assert resp.json()["message"].startswith(field), (field, resp.body)
    assert client.request("PUT", "/v1/customers/bad%20id", {}).status in (400, 404)
    assert client.request("GET", "/v1/customers/nobody").status == 404


def test_put_customer_rebuckets_hour_counts_when_timezone_arrives(client):
    # GIVEN engagements counted in UTC before the customer's zone is known
    t = now().replace(minute=10) - timedelta(days=1)
    client.post_events([event("e1", type="session", ts=t), event("e2", type="message_open", ts=t + timedelta(hours=3))])
    utc = client.request("GET", "/v1/customers/c1").json()["aggregates"]["hour_of_week_counts"]
    # WHEN the profile sets Asia/Tokyo (UTC+9, no daylight saving)
    resp = client.request(
        "PUT",
        "/v1/customers/c1",
        {"timezone": "Asia/Tokyo", "contact": {"phone": "+818012345678"}, "consent": {"sms": True}},
    )
    # THEN the counts are those of Tokyo local time, and later events use Tokyo too
    assert resp.status == 200, resp.body
    tokyo = resp.json()["aggregates"]["hour_of_week_counts"]
    assert tokyo == utc[-9:] + utc[:-9]
    client.post_events([event("e3", type="session", ts=t + timedelta(hours=6))])
    after = client.request("GET", "/v1/customers/c1").json()
    assert sum(after["aggregates"]["hour_of_week_counts"]) == 3
    assert after["profile"]["consent"]["sms"] is True


def test_archive_holds_every_accepted_event_in_api_schema(client, runtime):
    # GIVEN accepted events over two days, one of them re-sent
    t = now() - timedelta(days=3)
    batch = [
        event(
            f"e{i}",
            customer_id=f"c{i % 3}",
            ts=t + timedelta(hours=5 * i),
            product_id="P9",
            amount=1.25,
            properties={"k": i},
        )
        for i in range(8)
    ]
    client.post_events(batch)
    client.post_events(batch[:3])
    # WHEN the archive is read
    lines = _archived(runtime)
    # THEN each accepted event is there once, readable with the API's own schema
    assert sorted(r["event_id"] for r in lines) == sorted(e["event_id"] for e in batch)
    assert all(Event.model_validate(r) for r in lines)
    keys = [
        o["Key"]
        for o in runtime.session.client("s3").list_objects_v2(Bucket=runtime.dep.physical["ArchiveBucket"])["Contents"]
    ]
    assert all(k.startswith("events/dt=") and k.endswith(".jsonl.gz") for k in keys)


def test_delete_customer_erases_profile_events_aggregates_and_archive(client, runtime):
    # GIVEN two customers with events and a profile
    client.post_events(
        [
            event("a1", customer_id="gone"),
            event("a2", customer_id="gone", type="session"),
            event("b1", customer_id="stays"),
        ]
    )
    client.request("PUT", "/v1/customers/gone", {"timezone": "Europe/Paris"})
    # WHEN one is erased
    resp = client.request("DELETE", "/v1/customers/gone")
    # THEN it says what it erased, and nothing of it is left anywhere
    assert resp.status == 200, resp.body
    report = resp.json()
    assert report["profile"] and report["aggregates"] and report["events"] == 2
    assert report["archive_lines_removed"] == 2
    assert client.request("GET", "/v1/customers/gone").status == 404
    assert _stored_event_ids(runtime, "gone") == []
    runtime.pump_streams()
    assert {r["customer_id"] for r in _archived(runtime)} == {"stays"}
    # AND asking again is safe: it finishes nothing new and says when the first erasure happened
    again = client.request("DELETE", "/v1/customers/gone")
    assert again.status == 200, again.body
    assert again.json()["erased_before"] and again.json()["events"] == 0
    assert client.request("DELETE", "/v1/customers/never-was").status == 404
