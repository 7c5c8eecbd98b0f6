"""The HTTP API against hostile input and store faults: limits, strict JSON, media types, scopes, the document.

Each test drives the local API (API Gateway emulation, authorizer, handler, DynamoDB on moto from template.yaml).
Store faults moto cannot make are injected on the API function's own DynamoDB client with a botocore hook.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from kairos.admin import main as admin
from kairos.core.constants import EVENT_TYPE_PATTERN
from kairos.core.errors import ConflictError, InvalidInputError, StoreError, ThrottledError
from kairos.customers.adapters import layout
from kairos.customers.adapters.dynamo import DynamoStore
from kairos.customers.adapters.dynamo_base import _Stored
from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.domain import CustomerRecord, CustomerWrite
from kairos.customers.schemas import IANA_ZONE_PATTERN, MAX_BODY_BYTES, SCOPES, Event, validate_timezone
from kairos.http.adapters.api_keys import DynamoApiKeyStore, hash_key
from kairos.http.api import is_transient
from tests.helpers import event, now

if TYPE_CHECKING:
    from collections.abc import Callable


def _stored_event_ids(runtime, customer_id: str) -> list[str]:
    items = runtime.session.client("dynamodb").query(
        TableName=runtime.dep.physical["EventsTable"],
        KeyConditionExpression="customer_id = :c AND begins_with(sk, :e)",
        ExpressionAttributeValues={":c": {"S": customer_id}, ":e": {"S": "e#"}},
    )["Items"]
    return sorted(i["sk"]["S"][2:] for i in items)


def _key(runtime, *scopes: str) -> dict[str, str]:
    _, key = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb")).create(
        "scoped-app", scopes=scopes
    )
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _api_store(client) -> DynamoStore:
    """The API function's own store, its DynamoDB client created by a first request."""
    client.post_events([event("warm-up", customer_id="warm-up")])
    handler = client.runtime.handler("ApiFunction")
    return sys.modules[handler.__module__].DEPS.customers()


def _fail_transactions_of(store: DynamoStore, customer_id: str, code: str, status: int) -> Callable[..., Any]:
    """Make DynamoDB answer ``code`` to every transaction that writes ``customer_id``, as a real table might."""

    def hook(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        items = json.loads(params["body"])["TransactItems"]
        keys = [next(iter(op.values())).get("Item", next(iter(op.values())).get("Key")) for op in items]
        if not any(k["customer_id"]["S"] == customer_id for k in keys):
            return None
        body = {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("https://dynamodb", status, {}, None), body

    store.client.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    return hook


# ---------------------------------------------------------------------- defect 1: one bad event, one bad customer


def test_post_events_oversized_event_is_rejected_by_index_and_the_others_stored_once(client, runtime):
    # GIVEN 499 valid events and, at index 250, one whose properties weigh 450 KB
    t = now() - timedelta(hours=2)
    batch = [event(f"e{i}", customer_id=f"c{i % 7}", ts=t + timedelta(seconds=i)) for i in range(499)]
    batch.insert(250, event("huge", customer_id="c0", properties={"blob": ["x" * 4000] * 112}))
    # WHEN it is posted, and posted again as a retrying client would
    first = client.post_events(batch)
    second = client.post_events(batch)
    # THEN the oversized event alone is rejected, by index and field, and every other event is stored once
    assert first.status == 200, first.body
    assert first.json()["accepted"] == 499 and first.json()["duplicates"] == 0
    (rejection,) = first.json()["rejected"]
    assert rejection["index"] == 250 and rejection["field"] == "properties"
    assert "at most 16384" in rejection["reason"]
    assert second.json() == {"accepted": 0, "duplicates": 499, "rejected": [rejection]}
    assert sum(len(_stored_event_ids(runtime, f"c{c}")) for c in range(7)) == 499
    assert "huge" not in _stored_event_ids(runtime, "c0")


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"properties": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "properties.a.b.c.d.e", "deeper than 5"),
        ({"properties": {"": 1}}, "properties", "names must be 1 to 128"),
        ({"properties": {"n": 10**40}}, "properties.n", "38 digits"),
        ({"properties": {"s": "x" * 5000}}, "properties.s", "4096 characters"),
        ({"properties": {f"p{i}": i for i in range(51)}}, "properties", "at most 50"),
        (
            {"text": "\U0001f600" * 4096, "properties": {"a": "€" * 2700, "b": "€" * 2700, "c": "€" * 50}},
            "(event)",
            "32768",
        ),
        ({"quantity": True}, "quantity", "integer"),
        ({"amount": "12.50"}, "amount", "JSON number"),
        ({"amount": False}, "amount", "JSON number"),
        ({"timestamp": 1_780_000_000}, "timestamp", "ISO 8601 string"),
        ({"timestamp": "1780000000"}, "timestamp", "ISO 8601 string"),
    ],
)
def test_post_events_event_over_a_limit_is_rejected_by_index_naming_the_field(client, runtime, extra, field, reason):
    # GIVEN a valid event and, after it, one that breaks a documented limit
    batch = [event("ok"), {**event("bad"), **extra}]
    # WHEN the batch is posted
    resp = client.post_events(batch)
    # THEN the valid event is stored and the other rejected by its index, naming the field and the limit
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, field)], body
    assert reason in body["rejected"][0]["reason"]
    assert _stored_event_ids(runtime, "c1") == ["ok"]


def test_post_events_customer_the_store_refuses_is_rejected_and_the_others_stored(client, runtime):
    # GIVEN a table that refuses, for good, any write of one customer (as DynamoDB does with an item over 400 KB)
    _fail_transactions_of(_api_store(client), "fat", "ValidationException", 400)
    batch = [event(f"f{i}", customer_id="fat") for i in range(3)]
    batch += [event(f"o{i}", customer_id=f"ok{i % 3}") for i in range(6)]
    # WHEN a batch mixing that customer and others is posted
    resp = client.post_events(batch)
    # THEN the refused customer's events are rejected by index with the store's reason, the others stored
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["accepted"] == 6
    assert [r["index"] for r in body["rejected"]] == [0, 1, 2]
    assert all("could not be stored" in r["reason"] for r in body["rejected"])
    assert [_stored_event_ids(runtime, f"ok{c}") for c in range(3)] == [["o0", "o3"], ["o1", "o4"], ["o2", "o5"]]
    assert _stored_event_ids(runtime, "fat") == []


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalServerError", 500)])
def test_post_events_transient_store_failure_is_503_after_storing_the_others(client, runtime, code, status):
    # GIVEN a table that throttles (or fails with a 5xx) every write of one customer
    store = _api_store(client)
    hook = _fail_transactions_of(store, "slow", code, status)
    batch = [event("s1", customer_id="slow")] + [event(f"o{i}", customer_id=f"ok{i}") for i in range(4)]
    # WHEN the batch is posted, then retried once the store recovers
    failed = client.post_events(batch)
    store.client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", hook)
    retried = client.post_events(batch)
    # THEN the first answer is a retryable 503, and the retry completes the batch, each event stored once
    assert failed.status == 503, failed.body
    assert failed.headers.get("Retry-After") == "1"
    assert "retry" in failed.json()["message"]
    assert retried.status == 200 and retried.json()["rejected"] == []
    assert retried.json()["accepted"] + retried.json()["duplicates"] == 5
    assert retried.json()["accepted"] >= 1  # the throttled customer's event
    assert [_stored_event_ids(runtime, f"ok{i}") for i in range(4)] == [[f"o{i}"] for i in range(4)]
    assert _stored_event_ids(runtime, "slow") == ["s1"]


# ---------------------------------------------------------------------- defect 2: hostile bodies are 4xx


def test_list_campaigns_bad_next_token_is_400_naming_it(client):
    resp = client.runtime.http("GET", "/v1/campaigns", client.headers, query={"next_token": "x"})
    assert resp.status == 400 and resp.json()["message"].startswith("next_token")


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "text/plain"],
)
def test_body_that_is_not_json_is_415(client, runtime, content_type):
    # GIVEN a valid batch sent with another media type
    headers = {**client.headers, "Content-Type": content_type}
    # WHEN it is posted
    resp = client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=headers)
    # THEN 415 names the header, and nothing is stored
    assert resp.status == 415, resp.body
    assert resp.json()["message"].startswith("Content-Type")
    assert _stored_event_ids(runtime, "c1") == []


def test_json_with_another_charset_is_415_and_utf8_in_any_case_is_fine(client):
    ok = {**client.headers, "Content-Type": "application/json; charset=UTF-8"}
    upper = {**client.headers, "Content-Type": "Application/JSON"}
    latin = {**client.headers, "Content-Type": "application/json; charset=latin-1"}
    assert client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=ok).status == 200
    assert client.request("POST", "/v1/events", {"events": [event("e2")]}, headers=upper).status == 200
    assert client.request("POST", "/v1/events", {"events": [event("e3")]}, headers=latin).status == 415


def test_body_that_is_a_json_array_is_400_not_read_as_its_first_item(client):
    # GIVEN bodies that are arrays holding a valid body (Powertools reads a list value as its first item)
    for method, path in (("PUT", "/v1/policy"), ("POST", "/v1/segments/preview"), ("PUT", "/v1/customers/c1")):
        # WHEN one is sent THEN it is refused: every body of the API is an object
        resp = client.request(method, path, [{}])
        assert resp.status == 400 and resp.json()["message"] == "(body): must be a JSON object", (path, resp.body)
    assert client.request("GET", "/v1/customers/c1").status == 404


def test_body_over_the_limit_is_413(client):
    # GIVEN a body one byte over the documented limit
    raw = json.dumps({"events": [event("e1", text="x")]})
    raw = raw[:-1] + " " * (MAX_BODY_BYTES + 1 - len(raw)) + "}"
    # WHEN it is posted THEN 413 names the body and the limit
    resp = client.request("POST", "/v1/events", raw=raw)
    assert resp.status == 413, resp.body[:200]
    assert resp.json()["message"].startswith("(body)") and str(MAX_BODY_BYTES) in resp.json()["message"]


def test_properties_nested_2000_deep_is_400_naming_the_field(client):
    # GIVEN properties nested 2,000 levels deep (deeper than Python's JSON parser may recurse)
    raw = json.dumps({"events": [event("e1")]})[:-3] + ', "properties": ' + '{"a":' * 2000 + "1" + "}" * 2000 + "}]}"
    # WHEN posted THEN 400 names the path down to where it got too deep
    resp = client.request("POST", "/v1/events", raw=raw)
    assert resp.status == 400, resp.body
    assert resp.json()["message"].startswith("events.0.properties.a")
    assert "deeper than 32" in resp.json()["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"attributes": {"score": NaN}}', "attributes.score"),
        ('{"attributes": {"score": Infinity}}', "attributes.score"),
        ('{"attributes": {"score": -Infinity}}', "attributes.score"),
        ('{"attributes": {"score": 1e400}}', "attributes.score"),
        ('{"attributes": {"big": ' + "9" * 40 + "}}", "attributes.big"),
        ('{"attributes": {"big": 1e200}}', "attributes.big"),
        ('{"attributes": {"big": 1e38}}', "attributes.big"),
        ('{"attributes": {"tiny": 1e-200}}', "attributes.tiny"),
        ('{"attributes": {"": "empty name"}}', "attributes"),
        ('{"attributes": {"deep": ' + "[" * 40 + "]" * 40 + "}}", "attributes.deep.0.0.0.0"),
        ('{"attributes": {"n": ' + "1" * 5000 + "}}", "attributes.n"),
    ],
)
def test_put_customer_unstorable_attribute_is_400_naming_it(client, raw, field):
    # GIVEN a profile whose attributes JSON or DynamoDB cannot hold
    # WHEN it is put
    resp = client.request("PUT", "/v1/customers/c1", raw=raw)
    # THEN 400 names the attribute, and no profile was stored
    assert resp.status == 400, resp.body
    assert resp.json()["message"].startswith(field), resp.json()["message"]
    assert client.request("GET", "/v1/customers/c1").status == 404


def test_post_events_nan_in_a_body_is_400_naming_its_path(client, runtime):
    raw = json.dumps({"events": [event("e1"), event("e2", quantity=1)]}).replace('"quantity": 1', '"quantity": NaN')
    resp = client.request("POST", "/v1/events", raw=raw)
    assert resp.status == 400 and resp.json()["message"].startswith("events.1.quantity"), resp.body
    assert _stored_event_ids(runtime, "c1") == []


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"": 1}, "filters.0.value"),
        ("x" * 5000, "filters.0.value"),
        ([[[[[[1]]]]]], "filters.0.value.0.0.0.0.0"),
        ({"n": 10**40}, "filters.0.value.n"),
    ],
)
def test_segment_filter_value_the_store_cannot_hold_is_400_naming_it(client, value, field):
    # GIVEN a segment and a campaign whose filter value breaks the attributes' limits
    segment = {"filters": [{"field": "attributes.tier", "value": value}]}
    campaign = {
        "name": "c",
        "audience": {"filters": [{"field": "attributes.tier", "value": value}]},
        "messages": {"sms": {"text": "hi"}},
        "channels": ["sms"],
        "expires_at": (now() + timedelta(days=2)).isoformat(),
    }
    # WHEN they are saved THEN 400 names the value, and nothing unreadable was stored
    put = client.request("PUT", "/v1/segments/s", segment)
    assert put.status == 400 and put.json()["message"].startswith(field), put.body
    post = client.request("POST", "/v1/campaigns", campaign)
    assert post.status == 400 and post.json()["message"].startswith(f"audience.{field}"), post.body
    assert client.request("GET", "/v1/segments").json() == {"segments": []}


def test_segment_filter_number_out_of_dynamodb_range_is_400(client):
    raw = '{"filters": [{"field": "attributes.score", "op": "gt", "value": 1e200}]}'
    resp = client.request("PUT", "/v1/segments/s", raw=raw)
    assert resp.status == 400 and resp.json()["message"].startswith("filters.0.value"), resp.body


def test_attributes_within_limits_round_trip(client):
    # GIVEN attributes at the documented limits: 100 names, 5 levels, 38-digit integers, the smallest magnitude
    attrs = {f"a{i}": i for i in range(97)}
    attrs |= {"deep": {"b": {"c": {"d": {"e": 1}}}}, "big": -int("9" * 38), "range": [1e-130, -0.5, 0.0]}
    # WHEN they are put and read back THEN they are kept as sent
    assert client.request("PUT", "/v1/customers/c1", {"attributes": attrs}).status == 200
    assert client.request("GET", "/v1/customers/c1").json()["profile"]["attributes"] == attrs
    # AND the largest float is stored and read back (whole-valued, as an integer of 38 digits)
    assert client.request("PUT", "/v1/customers/c2", {"attributes": {"huge": 9.9e37}}).status == 200
    assert client.request("GET", "/v1/customers/c2").json()["profile"]["attributes"]["huge"] == 99 * 10**36


# ---------------------------------------------------------------------- defect 3: scopes


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("POST", "/v1/events", {"events": []}, "ingest"),
        ("PUT", "/v1/customers/c1", {}, "profiles"),
        ("GET", "/v1/customers/c1", None, "read"),
        ("GET", "/v1/customers/c1/recommendation", None, "read"),
        ("GET", "/v1/customers/c1/events", None, "read"),
        ("GET", "/v1/customers", None, "read"),
        ("GET", "/v1/models/current", None, "read"),
        ("GET", "/v1/campaigns", None, "read"),
        ("GET", "/v1/segments", None, "read"),
        ("PUT", "/v1/segments/loyal", {"filters": []}, "manage"),
        ("POST", "/v1/campaigns", {}, "manage"),
        ("POST", f"/v1/campaigns/{'0' * 32}/cancel", None, "manage"),
        ("DELETE", "/v1/customers/c1", None, "erase"),
    ],
)
def test_route_without_its_scope_is_403_naming_the_scope(client, runtime, method, path, body, scope):
    # GIVEN a key with every scope but the one the route needs
    headers = _key(runtime, *(s for s in SCOPES if s != scope))
    # WHEN the route is called (even with a body it would refuse)
    resp = client.request(method, path, body, headers=headers)
    # THEN 403 names the missing scope, before the body is looked at
    assert resp.status == 403, resp.body
    assert resp.json()["message"].startswith(f"missing scope '{scope}'")


def test_ingest_only_key_sends_events_and_reads_nothing(client, runtime):
    headers = _key(runtime, "ingest")
    assert client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=headers).status == 200
    assert client.request("GET", "/v1/customers/c1", headers=headers).status == 403
    assert client.request("GET", "/v1/customers/c1").status == 200  # the all-scope key reads it


def test_key_made_before_scopes_keeps_every_scope(client, runtime):
    # GIVEN a key item as written before scopes existed (no scopes attribute)
    keys = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb"))
    keys.create("legacy", api_key="legacy-key")
    runtime.session.client("dynamodb").update_item(
        TableName=runtime.dep.physical["ApiKeysTable"],
        Key={"key_hash": {"S": hash_key("legacy-key")}},
        UpdateExpression="REMOVE scopes",
    )
    headers = {"Authorization": "Bearer legacy-key", "Content-Type": "application/json"}
    # WHEN it calls routes of every scope THEN none is refused for a scope
    assert keys.lookup("legacy-key")["scopes"] == sorted(SCOPES)
    assert client.request("POST", "/v1/events", {"events": [event("e1")]}, headers=headers).status == 200
    assert client.request("GET", "/v1/customers/c1", headers=headers).status == 200
    assert client.request("PUT", "/v1/customers/c1", {}, headers=headers).status == 200


def test_authorizer_puts_key_id_and_scopes_in_the_context(runtime):
    # GIVEN a key with two scopes
    keys = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb"))
    key_id, key = keys.create("reader", scopes=["read", "ingest"])
    arn = "arn:aws:execute-api:eu-west-1:123456789012:abc/v1/GET/v1/customers/c1"
    # WHEN the authorizer runs
    policy = runtime.invoke(
        "AuthorizerFunction", {"type": "TOKEN", "authorizationToken": f"Bearer {key}", "methodArn": arn}
    )
    # THEN its context names the key and its scopes (API Gateway passes them to the API function)
    assert policy["context"] == {"app_id": "reader", "key_id": key_id, "scopes": "ingest read"}


def test_api_keys_refuse_unknown_or_no_scopes(runtime):
    keys = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb"))
    with pytest.raises(ValueError, match="scopes must be among"):
        keys.create("x", scopes=["admin"])
    with pytest.raises(ValueError, match="scopes must be among"):
        keys.create("x", scopes=[])


def test_admin_create_key_with_scopes(runtime, capsys):
    # GIVEN the operator CLI against the keys table
    table = runtime.dep.physical["ApiKeysTable"]
    # WHEN a key is created with two scopes (one repeated, comma-separated)
    assert (
        admin(["create-key", "--app", "tracker", "--scope", "ingest", "--scope", "ingest,read", "--table", table]) == 0
    )
    out = capsys.readouterr().out
    key = out.split("api key: ")[1].split()[0]
    # THEN the key holds exactly those scopes, and a scope is required
    keys = DynamoApiKeyStore(table, runtime.session.client("dynamodb"))
    assert keys.lookup(key)["scopes"] == ["ingest", "read"]
    assert "scopes: ingest read" in out
    with pytest.raises(SystemExit):
        admin(["create-key", "--app", "tracker", "--table", table])
    with pytest.raises(SystemExit):
        admin(["create-key", "--app", "tracker", "--scope", "superuser", "--table", table])
    assert admin(["create-key", "--app", "ops", "--scope", "all", "--table", table]) == 0
    assert "scopes: erase ingest manage profiles read" in capsys.readouterr().out


def test_erasure_is_logged_with_the_key_that_asked(client, runtime, caplog):
    # GIVEN a key allowed to erase, and a customer
    client.post_events([event("e1", customer_id="gone")])
    key_id, key = DynamoApiKeyStore(runtime.dep.physical["ApiKeysTable"], runtime.session.client("dynamodb")).create(
        "privacy-desk", scopes=["erase"]
    )
    # WHEN it erases the customer
    with caplog.at_level(logging.INFO, logger="kairos"):
        resp = client.request("DELETE", "/v1/customers/gone", headers={"Authorization": f"Bearer {key}"})
    # THEN the request was not refused, and the structured log names the key and the app that asked
    assert resp.status != 403, resp.body
    asked = [r for r in caplog.records if r.getMessage() == "customer erasure requested"]
    assert [(r.customer_id, r.key_id, r.app_id) for r in asked] == [("gone", key_id, "privacy-desk")]


# ---------------------------------------------------------------------- defect 4: the document says it all


def _document(client) -> dict[str, Any]:
    return client.request("GET", "/v1/openapi.json", headers={}).json()


def test_openapi_lists_every_status_scope_and_error_body_per_operation(client):
    # GIVEN the served document
    doc = _document(client)
    operations = {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}
    # THEN every operation names its scope, lists the statuses the API answers, and errors are ErrorBody
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    expected_scopes = {
        ("POST", "/v1/events"): "ingest",
        ("PUT", "/v1/customers/{customer_id}"): "profiles",
        ("DELETE", "/v1/customers/{customer_id}"): "erase",
        ("POST", "/v1/campaigns"): "manage",
        ("GET", "/v1/segments"): "read",
    }
    for key, scope in expected_scopes.items():
        assert operations[key]["security"] == [{"apiKey": [scope]}]
    for (method, path), op in operations.items():
        statuses = set(op["responses"])
        assert {"401", "403", "429", "500", "503"} <= statuses, (method, path)
        assert "422" not in statuses
        if method in ("POST", "PUT"):
            assert {"400", "413", "415"} <= statuses, (method, path)
        if "{" in path:
            assert "400" in statuses
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "201" in operations[("POST", "/v1/campaigns")]["responses"]
    assert "404" in operations[("GET", "/v1/customers/{customer_id}")]["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_openapi_documents_the_enforced_constraints(client):
    doc = _document(client)
    schemas = doc["components"]["schemas"]
    event_schema = schemas["EventBatch"]["properties"]["events"]["items"]["properties"]
    # The timestamp is a string with an offset, quantity an integer, amount a number only
    assert event_schema["timestamp"]["type"] == "string" and "pattern" in event_schema["timestamp"]
    amount = {"maximum": 1_000_000_000, "minimum": -1_000_000_000, "multipleOf": 0.0001, "type": "number"}
    assert event_schema["amount"]["anyOf"][0] == amount
    # Properties and attributes carry their count, name, size and depth limits, every level's values theirs
    props = event_schema["properties"]
    assert props["anyOf"][0]["maxProperties"] == 50
    assert props["propertyNames"] == {"minLength": 1, "maxLength": 128}
    assert props["x-max-bytes"] == 16384 and props["x-max-depth"] == 5
    assert props["additionalProperties"] == {"$ref": "#/components/schemas/FreeJsonLevel2"}
    assert {"FreeJsonLevel1", "FreeJsonLevel6"} <= set(schemas)
    attrs = schemas["CustomerProfileIn"]["properties"]["attributes"]
    assert attrs["maxProperties"] == 100 and attrs["x-max-bytes"] == 16384
    # The time zone is one of the tz database's names, the segment's name is the path's alone
    zones = schemas["CustomerProfileIn"]["properties"]["timezone"]["anyOf"][0]["enum"]
    assert "Europe/London" in zones and "EST5EDT" not in zones and all(re.match(IANA_ZONE_PATTERN, z) for z in zones)
    put_segment = doc["paths"]["/v1/segments/{name}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert "name" not in schemas[put_segment["$ref"].rsplit("/", 1)[-1]]["properties"]
    # A journey's entry is exactly one kind, and an event type follows the pattern of event types
    entry = schemas["EventEntry-Input"]
    assert {tuple(kind.get("required", ())) for kind in entry["allOf"][0]["oneOf"]} >= {("event",), ("schedule",)}
    assert schemas["WaitFor"]["properties"]["event"]["pattern"] == EVENT_TYPE_PATTERN
    # And the body limit is stated
    assert str(MAX_BODY_BYTES) in doc["info"]["description"]


def test_every_zone_the_api_accepts_matches_the_documented_pattern():
    import re
    from zoneinfo import available_timezones

    accepted = []
    for zone in available_timezones():
        try:
            accepted.append(validate_timezone(zone))
        except ValueError:
            continue
    assert accepted and all(re.match(IANA_ZONE_PATTERN, z) for z in accepted)


@pytest.mark.parametrize("zone", ["posixrules", "right/UTC", "posix/Europe/Paris", "EST5EDT", "Mars/Olympus"])
def test_names_that_load_from_system_files_but_name_no_zone_are_refused(zone):
    with pytest.raises(ValueError, match="IANA"):
        validate_timezone(zone)


# ---------------------------------------------------------------------- the adapter tells failures apart


def _write(op: str = "update_item") -> CustomerWrite:
    """A known customer's write of its core alone (one update), or a new customer's first write (a transaction,
    with the check of its tombstone and the parts a purchase changes)."""
    ev = Event.model_validate(event("e1", type="session" if op == "update_item" else "purchase", product_id="P1"))
    agg, moments = fold_events(CustomerAggregates(), [ev], set())
    record = CustomerRecord("c1", version=1, exists=True) if op == "update_item" else CustomerRecord("c1")
    return CustomerWrite(record=record, events=[ev], moments=sorted(moments), aggregates=agg)


def _store(ddb: Any) -> DynamoStore:
    """A store that read c1 at version 1 (a stubbed client answers nothing else)."""
    store = DynamoStore("events", "customers", client=ddb, erasure_key=lambda: b"k")
    store._remember("c1", 1, _Stored(layout.Core()))
    return store


def test_commit_ingest_unreachable_store_is_a_transient_store_error():
    # GIVEN a DynamoDB endpoint that never answers (after the SDK's own retries)
    from botocore.exceptions import EndpointConnectionError

    ddb = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    ddb.meta.events.register("before-call.dynamodb", unreachable)
    # WHEN events are committed THEN it is a StoreError worth retrying (a 503), not an unhandled crash
    for op in ("update_item", "transact_write_items"):
        with pytest.raises(StoreError) as raised:
            _store(ddb).commit_ingest([_write(op)], now())
        assert is_transient(raised.value)


@pytest.mark.parametrize(
    ("code", "status", "fields", "error", "transient"),
    [
        ("ValidationException", 400, {}, InvalidInputError, False),
        (
            "TransactionCanceledException",
            400,
            {"CancellationReasons": [{"Code": "ValidationError"}]},
            InvalidInputError,
            False,
        ),
        (
            "TransactionCanceledException",
            400,
            {"CancellationReasons": [{"Code": "ConditionalCheckFailed"}]},
            ConflictError,
            None,
        ),
        (
            "TransactionCanceledException",
            400,
            {"CancellationReasons": [{"Code": "TransactionConflict"}]},
            ConflictError,
            None,
        ),
        (
            "TransactionCanceledException",
            400,
            {"CancellationReasons": [{"Code": "ThrottlingError"}]},
            ThrottledError,
            True,
        ),
        ("ConditionalCheckFailedException", 400, {}, ConflictError, None),
        ("ProvisionedThroughputExceededException", 400, {}, ThrottledError, True),
        ("InternalServerError", 500, {}, StoreError, True),
        ("AccessDeniedException", 400, {}, StoreError, False),
    ],
)
@pytest.mark.parametrize("op", ["update_item", "transact_write_items"])
def test_commit_ingest_failure_is_told_apart(op, code, status, fields, error, transient):
    # GIVEN DynamoDB answering a customer's write with an error (a stubbed client: nothing leaves the process)
    if op == "update_item" and code == "TransactionCanceledException":
        pytest.skip("only a transaction is cancelled")
    ddb = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = _store(ddb)
    with Stubber(ddb) as stub:
        stub.add_client_error(op, service_error_code=code, http_status_code=status, modeled_fields=fields or None)
        # WHEN events are committed THEN the domain error says whether a retry may help
        with pytest.raises(error) as raised:
            store.commit_ingest([_write(op)], now())
    assert type(raised.value) is error
    if transient is not None:
        assert is_transient(raised.value) is transient
