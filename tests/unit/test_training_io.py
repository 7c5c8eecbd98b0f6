"""Reading events: JSON Lines (plain, gzip), Parquet, directories, S3 archive prefixes."""

import gzip
import json

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from training.io import load_events, load_profiles, load_table

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


def _facts(events):
    return sorted(
        (
            e.customer_id,
            e.timestamp.isoformat(),
            e.type,
            e.channel,
            e.product_id,
            e.quantity or None,
            None if e.amount is None else float(e.amount),
        )
        for e in events
    )


def test_the_columnar_reader_keeps_what_the_object_reader_keeps(tmp_path):
    # GIVEN the same tree of JSON Lines (plain and gzip) and Parquet, with a duplicate and invalid records
    part = tmp_path / "events" / "dt=2011-06-01"
    part.mkdir(parents=True)
    bad = [
        {"event_id": "x1", "customer_id": "c3", "type": "purchase", "timestamp": "2011-06-01T12:00:00"},
        {"event_id": "x2", "customer_id": "c3", "type": "Tele port!", "timestamp": "2011-06-01T12:00:00Z"},
        {"event_id": "x5", "customer_id": "c3", "type": "order_shipped", "timestamp": "2011-06-01T12:00:00Z"},
        {"event_id": "x3", "customer_id": "bad id", "type": "session", "timestamp": "2011-06-01T12:00:00Z"},
        {
            "event_id": "x4",
            "customer_id": "c3",
            "type": "purchase",
            "timestamp": "2011-06-01T12:00:00Z",
            "quantity": 1.5,
        },
    ]
    (part / "a.jsonl.gz").write_bytes(gzip.compress(_jsonl([*EVENTS[:2], EVENTS[0], *bad])))
    pq.write_table(pa.Table.from_pylist(EVENTS[2:]), tmp_path / "c.parquet")
    # WHEN read both ways
    objects = load_events([str(tmp_path)])
    columns = load_table([str(tmp_path)])
    # THEN the same events survive (the duplicate once, a shop's own type left out) and the same are rejected
    assert _facts(columns.table.all_events()) == _facts(objects.events)
    assert len(columns.table) == 3 and columns.rejected == objects.rejected == 4


def test_a_file_arrow_cannot_read_whole_is_read_line_by_line(tmp_path):
    # GIVEN a customer id written as a number on one line (Arrow's schema refuses the whole file)
    odd = {"event_id": "n1", "customer_id": 42, "type": "session", "timestamp": "2011-06-03T18:30:00Z"}
    (tmp_path / "e.jsonl").write_bytes(_jsonl([*EVENTS, odd]) + b"{not json\n")
    # WHEN
    columns = load_table([str(tmp_path)])
    # THEN the valid events are kept and the two bad lines rejected, as the API would
    assert len(columns.table) == 3 and columns.rejected == 2


def test_history_from_columns_folds_to_the_same_aggregates_as_from_objects():
    from pathlib import Path

    from training.history import Folder, History

    sample = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
    objects = load_events([str(sample)])
    columns = load_table([str(sample)])
    a, b = History(objects.events, objects.profiles), History(columns.table, columns.profiles)
    assert list(a.customers) == list(b.customers) and a.start == b.start and a.end == b.end
    assert Folder(a).advance(a.end) == Folder(b).advance(b.end)
