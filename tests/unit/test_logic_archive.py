"""The events table's stream into the archive: inserts archived once per batch, erasures purged, TTL kept."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from kairos.core.timeutil import parse_ts
from kairos.customers.archive import archive_stream_records
from tests.unit.conftest import NOW

SOURCE = "arn:aws:dynamodb:eu-west-1:123456789012:table/events/stream/2026-01-01T00:00:00.000"
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def _record(customer_id: str, event_id: str, days_ago: int) -> dict[str, Any]:
    ts = NOW - timedelta(days=days_ago)
    return {"event_id": event_id, "customer_id": customer_id, "type": "session", "timestamp": ts.isoformat()}


def _insert(seq: int, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventName": "INSERT",
        "eventSourceARN": SOURCE,
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"customer_id": {"S": record["customer_id"]}, "sk": {"S": f"e#{record['event_id']}"}},
            "NewImage": {"record": {"S": json.dumps(record)}},
        },
    }


def _moment_insert(seq: int, customer_id: str) -> dict[str, Any]:
    return {
        "eventName": "INSERT",
        "eventSourceARN": SOURCE,
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"customer_id": {"S": customer_id}, "sk": {"S": "m#493000"}},
            "NewImage": {"customer_id": {"S": customer_id}},
        },
    }


def _remove(seq: int, record: dict[str, Any], ttl: bool = False) -> dict[str, Any]:
    ts = int(parse_ts(record["timestamp"]).timestamp())
    out: dict[str, Any] = {
        "eventName": "REMOVE",
        "eventSourceARN": SOURCE,
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"customer_id": {"S": record["customer_id"]}, "sk": {"S": f"e#{record['event_id']}"}},
            "OldImage": {"ts": {"N": str(ts)}},
        },
    }
    if ttl:
        out["userIdentity"] = TTL_IDENTITY
    return out


def test_archive_stream_records_archives_inserted_events_once_per_batch(archive, customers):
    # GIVEN a stream batch with three event inserts on two dates and a moment marker
    records = [_record("c1", "e1", 0), _record("c1", "e2", 3), _record("c2", "e3", 0)]
    batch = [_insert(1, records[0]), _moment_insert(2, "c1"), _insert(3, records[1]), _insert(4, records[2])]
    # WHEN it is archived, then delivered again (Lambda retries a stream batch)
    first = archive_stream_records(batch, archive, customers)
    keys = set(archive.objects)
    again = archive_stream_records(batch, archive, customers)
    # THEN each event is archived once, one object per date, named by the batch: the retry overwrote them
    assert first == again == {"archived": 3, "purged_lines": 0}
    assert set(archive.objects) == keys and len(keys) == 2
    assert sorted(archive.records(), key=lambda r: r["event_id"]) == records
    dates = {k.split("/")[1] for k in keys}
    assert dates == {f"dt={NOW:%Y-%m-%d}", f"dt={NOW - timedelta(days=3):%Y-%m-%d}"}
    assert len({k.rsplit("/", 1)[1] for k in keys}) == 1  # one batch id


def test_archive_stream_records_names_other_batches_differently(archive, customers):
    # GIVEN two different stream batches of the same date
    a = [_insert(1, _record("c1", "e1", 0))]
    b = [_insert(2, _record("c1", "e2", 0))]
    # WHEN both are archived
    archive_stream_records(a, archive, customers)
    archive_stream_records(b, archive, customers)
    # THEN neither overwrote the other
    assert len(archive.objects) == 2
    assert {r["event_id"] for r in archive.records()} == {"e1", "e2"}


def test_archive_stream_records_user_remove_purges_the_customers_lines(archive, customers):
    # GIVEN c1's and c2's events archived on two dates
    c1 = [_record("c1", "e1", 0), _record("c1", "e2", 3)]
    c2 = [_record("c2", "e3", 0), _record("c2", "e4", 3)]
    archive_stream_records([_insert(i, r) for i, r in enumerate(c1 + c2)], archive, customers)
    # WHEN an erasure deletes c1's events (REMOVE records made by a user)
    result = archive_stream_records([_remove(10, c1[0]), _remove(11, c1[1])], archive, customers)
    # THEN c1's lines are purged from both dates, c2's stay
    assert result == {"archived": 0, "purged_lines": 2}
    assert sorted(r["event_id"] for r in archive.records()) == ["e3", "e4"]


def test_archive_stream_records_purges_an_event_inserted_in_the_same_batch(archive, customers):
    # GIVEN an event still in flight when its customer is erased: insert and remove in one batch
    rec = _record("c1", "e1", 0)
    # WHEN the batch is archived
    result = archive_stream_records([_insert(1, rec), _remove(2, rec)], archive, customers)
    # THEN the line does not survive in the archive
    assert result == {"archived": 1, "purged_lines": 1}
    assert archive.records() == []


def test_archive_stream_records_ttl_remove_keeps_the_archive(archive, customers):
    # GIVEN archived events of c1
    recs = [_record("c1", "e1", 0), _record("c1", "e2", 3)]
    archive_stream_records([_insert(i, r) for i, r in enumerate(recs)], archive, customers)
    # WHEN the table's TTL expires them (REMOVE by dynamodb.amazonaws.com)
    result = archive_stream_records(
        [_remove(10, recs[0], ttl=True), _remove(11, recs[1], ttl=True)], archive, customers
    )
    # THEN the archive keeps them: expiry from the table is not erasure
    assert result == {"archived": 0, "purged_lines": 0}
    assert len(archive.records()) == 2
