"""Erasure on the real template in moto: exact, complete, safe to retry and to race, and final."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kairos.core.errors import StoreError
from kairos.customers.adapters.archive import S3Archive, encode_lines
from kairos.customers.adapters.dynamo import DynamoStore
from kairos.customers.ingest import ingest_events
from kairos.messaging.adapters.messages import DynamoMessageLog
from kairos.messaging.domain import encode_tag
from tests.functional.test_ingest_api import _stored_event_ids
from tests.functional.test_ingest_concurrency import RETENTION, SKEW, RacingStore
from tests.helpers import event, runtime_store

SES_OPEN = json.loads((Path(__file__).resolve().parents[2] / "events" / "ses_open.json").read_text())


def _bucket(runtime) -> str:
    return runtime.dep.physical["ArchiveBucket"]


def _objects(runtime, prefix: str) -> dict[str, list[dict]]:
    s3 = runtime.session.client("s3")
    out = {}
    for obj in s3.list_objects_v2(Bucket=_bucket(runtime), Prefix=prefix).get("Contents", []):
        body = gzip.decompress(s3.get_object(Bucket=_bucket(runtime), Key=obj["Key"])["Body"].read())
        out[obj["Key"]] = [json.loads(x) for x in body.decode().splitlines()]
    return out


def _message_log(runtime) -> DynamoMessageLog:
    return DynamoMessageLog(
        runtime.dep.physical["MessagesTable"],
        _bucket(runtime),
        dynamodb=runtime.session.client("dynamodb"),
        s3=runtime.session.client("s3"),
    )


def _store(runtime, cls=DynamoStore, **kw):
    return runtime_store(runtime, cls, **kw)


def _log_message(log: DynamoMessageLog, customer_id: str, step: int = 0) -> str:
    now = datetime.now(UTC).isoformat()
    message_id = f"camp.{customer_id}.{step}"
    record = {
        "message_id": message_id,
        "customer_id": customer_id,
        "campaign_id": "camp",
        "channel": "email",
        "status": "sending",
        "claimed_at": now,
    }
    assert log.claim(record)[0]
    log.finish({**record, "status": "sent", "finished_at": now})
    return message_id


def test_erasing_c_leaves_customer_c0_whole(runtime, client):
    # GIVEN customers "c" and "c.0", whose ids and message ids prefix each other, with events and messages
    client.post_events([event("c-1", customer_id="c"), event("c0-1", customer_id="c.0")])
    runtime.pump_streams()
    log = _message_log(runtime)
    _log_message(log, "c")
    kept_message = _log_message(log, "c.0")
    # WHEN "c" is erased
    resp = client.request("DELETE", "/v1/customers/c")
    assert resp.status == 200, resp.body
    assert resp.json()["messages"] == 1 and resp.json()["message_archive_objects"] == 1
    # THEN "c.0" keeps its events, archive lines, message record and archived message
    assert _stored_event_ids(runtime, "c.0") == ["c0-1"]
    assert _stored_event_ids(runtime, "c") == []
    archived = [r["customer_id"] for lines in _objects(runtime, "events/").values() for r in lines]
    assert archived == ["c.0"]
    assert [m["message_id"] for m in log.for_customer("c.0")] == [kept_message]
    assert log.for_customer("c") == []
    (key,) = _objects(runtime, "messages/")
    assert key.endswith(f"/{kept_message}.1.jsonl.gz")
    assert client.request("GET", "/v1/customers/c.0").status == 200


class _RacingS3:
    """An S3 client whose first read of ``key`` lets another erasure finish before the read is answered."""

    def __init__(self, real, key: str, meanwhile) -> None:
        self.real, self.key, self.meanwhile = real, key, meanwhile

    def __getattr__(self, name):
        return getattr(self.real, name)

    def get_object(self, **kwargs):
        resp = self.real.get_object(**kwargs)
        if kwargs["Key"] == self.key and self.meanwhile:
            run, self.meanwhile = self.meanwhile, None
            run()
        return resp


def test_two_erasures_purging_one_archive_object_at_once_resurrect_nothing(runtime):
    # GIVEN one archive object holding lines of a, b and x
    s3 = runtime.session.client("s3")
    key = "events/dt=2026-03-02/shard-0000.jsonl.gz"
    lines = [
        {"event_id": f"{c}1", "customer_id": c, "timestamp": "2026-03-02T10:00:00+00:00", "type": "session"}
        for c in ("a", "b", "x")
    ]
    s3.put_object(Bucket=_bucket(runtime), Key=key, Body=encode_lines(lines))
    # WHEN the erasure of a reads the object, and the erasure of b rewrites it before a writes
    other = S3Archive(_bucket(runtime), client=s3)
    racing = _RacingS3(s3, key, lambda: other.purge_customer("b", ["2026-03-02"]))
    first = S3Archive(_bucket(runtime), client=racing)
    assert first.purge_customer("a", ["2026-03-02"]) == (1, 1)
    # THEN neither erasure put the other's customer back
    assert [r["customer_id"] for r in _objects(runtime, "events/")[key]] == ["x"]


def test_an_erasure_that_fails_half_way_is_finished_by_the_retry(runtime, client, monkeypatch):
    # GIVEN a customer with two messages, each archived
    client.post_events([event("h1", customer_id="half")])
    runtime.pump_streams()
    log = _message_log(runtime)
    _log_message(log, "half", 0)
    _log_message(log, "half", 1)
    # WHEN the message archive fails after the first message is gone
    real = DynamoMessageLog._delete_archived
    calls = {"n": 0}

    def flaky(self, rec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("message archive: SlowDown")
        return real(self, rec)

    monkeypatch.setattr(DynamoMessageLog, "_delete_archived", flaky)
    failed = client.request("DELETE", "/v1/customers/half")
    # THEN the request says to retry, the customer is already invisible ...
    assert failed.status == 503, failed.body
    assert client.request("GET", "/v1/customers/half").status == 404
    # ... AND the retried DELETE removes what is left, everywhere
    retried = client.request("DELETE", "/v1/customers/half")
    assert retried.status == 200, retried.body
    assert retried.json()["messages"] == 1 and retried.json()["message_archive_objects"] == 1
    assert log.for_customer("half") == [] and _objects(runtime, "messages/") == {}
    assert _stored_event_ids(runtime, "half") == []
    assert _objects(runtime, "events/") == {}


def test_a_late_ses_open_after_erasure_does_not_bring_the_customer_back(runtime, client):
    # GIVEN c1 got an email (the SES sample, sent 2026-03-02 09:00) and was erased afterwards
    client.request("PUT", "/v1/customers/c1", {"timezone": "UTC", "contact": {"email": "c1@example.com"}})
    assert client.request("DELETE", "/v1/customers/c1").status == 200
    # WHEN SES reports the open late (EventBridge may deliver it days later, and more than once)
    late = copy.deepcopy(SES_OPEN)
    late["detail"]["open"]["timestamp"] = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    late["detail"]["mail"]["tags"]["kairos_customer_id"] = [encode_tag("c1")]
    for _ in range(2):
        assert runtime.invoke("FeedbackFunction", late)["accepted"] == 0
    runtime.pump_streams()
    # THEN the customer stays gone: no profile, no events, nothing archived
    assert client.request("GET", "/v1/customers/c1").status == 404
    assert _stored_event_ids(runtime, "c1") == []
    assert _objects(runtime, "events/") == {}


def test_engagement_posted_after_an_erasure_naming_an_earlier_message_is_refused(runtime, client):
    # GIVEN c1 was messaged, then erased, then came back and was messaged again
    log = _message_log(runtime)
    old = _log_message(log, "c1", 0)
    client.request("PUT", "/v1/customers/c1", {"timezone": "UTC", "contact": {"email": "c1@example.com"}})
    assert client.request("DELETE", "/v1/customers/c1").status == 200
    new = _log_message(log, "c1", 1)
    later = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    # WHEN an app posts opens of both, dated after the erasure
    opens = [
        {"event_id": f"open-{mid}", "customer_id": "c1", "type": "message_open", "timestamp": later, "message_id": mid}
        for mid in (old, new)
    ]
    body = client.post_events(opens).json()
    # THEN the open of the message that went with the erasure is refused by its index, the new one counts
    assert body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "message_id")]
    assert _stored_event_ids(runtime, "c1") == [f"open-{new}"]


def test_an_erasure_removes_the_customer_from_decisions_archived_by_earlier_versions(runtime, client):
    # GIVEN a decision object an earlier version archived for c1 and c2, noted on each customer
    for cid in ("c1", "c2"):
        client.post_events([event(f"{cid}-e", customer_id=cid)])
    key = "decisions/dt=2026-01-01/camp/0-0.jsonl.gz"
    lines = [{"customer_id": "c1", "outcome": "scheduled"}, {"customer_id": "c2", "outcome": "control"}]
    runtime.session.client("s3").put_object(Bucket=_bucket(runtime), Key=key, Body=encode_lines(lines))
    table = runtime.dep.physical["EventsTable"]
    for cid in ("c1", "c2"):
        item = {"customer_id": {"S": cid}, "sk": {"S": f"d#{key}"}, "expires_at": {"N": "4102444800"}}
        runtime.session.client("dynamodb").put_item(TableName=table, Item=item)
    # WHEN c1 is erased
    resp = client.request("DELETE", "/v1/customers/c1")
    assert resp.status == 200, resp.body
    # THEN the decision object no longer names c1, and still holds c2
    assert resp.json()["decision_lines_removed"] == 1
    assert [r["customer_id"] for r in _objects(runtime, "decisions/")[key]] == ["c2"]


@pytest.mark.parametrize("customer_id", ["never-seen"])
def test_erasing_an_unknown_customer_is_a_404_that_leaves_no_tombstone(runtime, client, customer_id):
    assert client.request("DELETE", f"/v1/customers/{customer_id}").status == 404
    assert _items(runtime, "CustomersTable") == []


def _items(runtime, table: str) -> list[dict]:
    ddb = runtime.session.client("dynamodb")
    return [
        i for page in ddb.get_paginator("scan").paginate(TableName=runtime.dep.physical[table]) for i in page["Items"]
    ]


def test_a_tombstone_holds_a_keyed_hash_of_the_id_never_the_id(runtime, client):
    # GIVEN a customer whose id is an email address, with a profile and events
    cid = "ann@example.com"
    client.request("PUT", f"/v1/customers/{cid}", {"timezone": "UTC", "contact": {"email": cid}})
    client.post_events([event("a1", customer_id=cid, type="session")])
    runtime.pump_streams()
    # WHEN the customer is erased
    assert client.request("DELETE", f"/v1/customers/{cid}").status == 200
    # THEN no item of any table names the id: the tombstone's key is an HMAC of it, not a plain hash
    stored = json.dumps([_items(runtime, t) for t in ("CustomersTable", "EventsTable", "MessagesTable")])
    assert cid not in stored
    (tombstone,) = _items(runtime, "CustomersTable")
    key = tombstone["customer_id"]["S"]
    assert re.fullmatch(r"__erased#[0-9a-f]{64}", key)
    assert key[len("__erased#") :] != hashlib.sha256(cid.encode()).hexdigest()
    # AND it still does its work: an event from before the erasure is refused, one after brings the customer back
    before = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    after = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body = client.post_events(
        [
            {"event_id": "a2", "customer_id": cid, "type": "session", "timestamp": before},
            {"event_id": "a3", "customer_id": cid, "type": "session", "timestamp": after},
        ]
    ).json()
    assert body["accepted"] == 1 and [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "customer_id")]
    assert client.request("GET", f"/v1/customers/{cid}").status == 200
    # AND once back, the earlier events stay refused
    again = client.post_events([{"event_id": "a4", "customer_id": cid, "type": "session", "timestamp": before}])
    assert again.json()["accepted"] == 0
    assert _stored_event_ids(runtime, cid) == ["a3"]


def test_a_first_write_racing_an_erasure_reads_again_and_keeps_only_what_came_after(runtime):
    # GIVEN an ingestion that read an id as never stored, and an erasure of that id landing before it writes
    t = datetime.now(UTC).replace(microsecond=0)
    racer = _store(runtime)
    store = _store(runtime, RacingStore, race=lambda: racer.tombstone("r1", t))
    batch = [event("r-old", customer_id="r1", ts=t - timedelta(hours=2), type="session")]
    # WHEN it commits
    result = ingest_events(batch, store, t, RETENTION, SKEW)
    # THEN the tombstone it did not see failed the write, and read again the event from before the erasure is refused
    assert store.loads == 2
    assert result.accepted == 0 and [r.field for r in result.rejected] == ["customer_id"]
    assert _items(runtime, "EventsTable") == []


def _lifecycle_expiry(created: datetime, days: int) -> datetime:
    """When S3 expires an object: its creation plus the days, rounded up to the next midnight UTC."""
    at = created + timedelta(days=days)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == at else midnight + timedelta(days=1)


def _expire(runtime, at: datetime) -> None:
    """What DynamoDB's TTL and the bucket's lifecycle rules (as deployed from the template) have removed by ``at``."""
    ddb, s3 = runtime.session.client("dynamodb"), runtime.session.client("s3")
    for table in ("EventsTable", "MessagesTable", "CustomersTable"):
        for item in _items(runtime, table):
            if "expires_at" in item and int(item["expires_at"]["N"]) < at.timestamp():
                keys = {k: item[k] for k in ("customer_id", "sk", "message_id") if k in item}
                ddb.delete_item(TableName=runtime.dep.physical[table], Key=keys)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=_bucket(runtime))["Rules"]
    for obj in s3.list_objects_v2(Bucket=_bucket(runtime)).get("Contents", []):
        for rule in rules:
            prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
            if (
                obj["Key"].startswith(prefix)
                and _lifecycle_expiry(obj["LastModified"], rule["Expiration"]["Days"]) <= at
            ):
                s3.delete_object(Bucket=_bucket(runtime), Key=obj["Key"])


def _lines_of(runtime, customer_id: str) -> list[str]:
    return sorted(
        key
        for prefix in ("events/", "messages/")
        for key, lines in _objects(runtime, prefix).items()
        if any(r.get("customer_id") == customer_id for r in lines)
    )


@pytest.mark.parametrize("days_later", [11, 399, 400.01, 401, 403])
def test_a_backfilled_event_and_a_message_are_erased_from_the_archive_whenever_the_erasure_comes(
    runtime, client, days_later
):
    # GIVEN a purchase backfilled 390 days back, and a message sent now, each archived
    t0 = datetime.now(UTC)
    old = {**event("ttl1-p", customer_id="ttl1", ts=t0 - timedelta(days=390)), "properties": {"amount": 42}}
    assert client.post_events([old]).json()["accepted"] == 1
    runtime.pump_streams()
    _log_message(_message_log(runtime), "ttl1")
    assert len(_lines_of(runtime, "ttl1")) == 2
    # WHEN the table's expiry and the bucket's lifecycle have run until some day later, and the customer is erased
    _expire(runtime, t0 + timedelta(days=days_later))
    left = _lines_of(runtime, "ttl1")
    resp = client.request("DELETE", "/v1/customers/ttl1")
    # THEN whatever the archive still held of the customer was found and removed
    assert resp.status == 200, resp.body
    assert _lines_of(runtime, "ttl1") == []
    body = resp.json()
    assert body["archive_lines_removed"] + body["message_archive_objects"] == len(left)
