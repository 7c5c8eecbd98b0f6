"""Reading events: JSON Lines (plain, gzip), Parquet, directories, S3 archive prefixes."""

import gzip
import json

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from training.io import load_events, load_profiles

EVENTS = [
    {
        "event_id": "e1",
        "customer_id": "c1",
        "type": "purchase",
        "timestamp": "2011-06-01T12:05:00+01:00",
        "product_id": "p1",
    },
    {
        "event_id": "e2",
        "customer_id": "c1",
        "type": "message_open",
        "timestamp": "2011-06-02T09:00:00Z",
        "channel": "email",
    },
    {"event_id": "e1", "customer_id": "c2", "type": "session", "timestamp": "2011-06-03T18:30:00-04:00"},
]


def _jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_load_events_reads_nested_dirs_of_jsonl_gzip_and_parquet(tmp_path):
    # GIVEN an archive-like tree with a .jsonl.gz, a .jsonl and a .parquet file, plus noise
    part = tmp_path / "events" / "dt=2011-06-01"
    part.mkdir(parents=True)
    (part / "a.jsonl.gz").write_bytes(gzip.compress(_jsonl(EVENTS[:1])))
    (tmp_path / "events" / "b.jsonl").write_bytes(_jsonl(EVENTS[1:2]))
    pq.write_table(pa.Table.from_pylist(EVENTS[2:]), tmp_path / "c.parquet")
    (tmp_path / "notes.txt").write_text("not events")
    # WHEN
    data = load_events([str(tmp_path)])
    # THEN all three events are read and validated
    assert sorted((e.customer_id, e.event_id) for e in data.events) == [("c1", "e1"), ("c1", "e2"), ("c2", "e1")]
    assert data.rejected == 0


def test_load_events_rejects_invalid_and_deduplicates(tmp_path):
    # GIVEN a file with a duplicate and an event without a UTC offset
    bad = {"event_id": "x", "customer_id": "c3", "type": "purchase", "timestamp": "2011-06-01T12:00:00"}
    path = tmp_path / "e.jsonl"
    path.write_bytes(_jsonl([*EVENTS, EVENTS[0], bad]))
    # WHEN
    data = load_events([str(path)])
    # THEN
    assert len(data.events) == 3
    assert data.rejected == 1


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket="arch", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def test_load_events_reads_s3_archive_prefix(s3):
    # GIVEN the archive layout events/dt=YYYY-MM-DD/<object>.jsonl.gz
    s3.put_object(Bucket="arch", Key="events/dt=2011-06-01/x.jsonl.gz", Body=gzip.compress(_jsonl(EVENTS[:2])))
    s3.put_object(Bucket="arch", Key="events/dt=2011-06-03/y.jsonl.gz", Body=gzip.compress(_jsonl(EVENTS[2:])))
    s3.put_object(Bucket="arch", Key="other/z.jsonl.gz", Body=gzip.compress(_jsonl(EVENTS)))
    # WHEN reading the prefix
    data = load_events(["s3://arch/events/"], s3_client=s3)
    # THEN only objects under it are read
    assert len(data.events) == 3


def test_load_profiles_reads_timezone_and_attributes(tmp_path):
    # GIVEN
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"customer_id": "c1", "timezone": "Europe/Paris", "attributes": {"country": "France"}}) + "\n"
    )
    # WHEN
    profiles = load_profiles(str(path))
    # THEN
    assert profiles["c1"].timezone == "Europe/Paris"
    assert profiles["c1"].attributes == {"country": "France"}
