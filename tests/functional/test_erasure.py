"""Erasure on the real template in moto: exact, complete, safe to retry and to race, and final."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kairos.core.errors import StoreError
from kairos.customers.adapters.archive import S3Archive, encode_lines
from kairos.customers.adapters.dynamo import DynamoStore
from kairos.messaging.adapters.messages import DynamoMessageLog
from kairos.messaging.domain import encode_tag
from tests.functional.test_ingest_api import _stored_event_ids
from tests.helpers import event

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


def _store(runtime) -> DynamoStore:
    return DynamoStore(
        runtime.dep.physical["EventsTable"], runtime.dep.physical["CustomersTable"], runtime.session.client("dynamodb")
    )


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
    item = runtime.session.client("dynamodb").get_item(
        TableName=runtime.dep.physical["CustomersTable"], Key={"customer_id": {"S": customer_id}}
    )
    assert "Item" not in item
