"""S3 archive of accepted events: gzip JSON Lines, one object per stream batch and date.

Layout: ``s3://<bucket>/events/dt=YYYY-MM-DD/<batch id>.jsonl.gz``, the date being the event's UTC date.
Lines are the API's event schema (``Event.to_record()``), so ``training/`` reads the archive as it reads
any export. The batch id is derived from the stream records, so a retried batch overwrites its own objects
instead of adding copies.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections import defaultdict
from datetime import UTC
from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call
from kairos.core.constants import ARCHIVE_EVENTS_PREFIX
from kairos.core.errors import ConflictError, NotFoundError, StoreError
from kairos.core.timeutil import parse_ts
from kairos.customers.ports import DecisionLog, EventArchive

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mypy_boto3_s3 import S3Client


def event_date(record: dict[str, Any]) -> str:
    """The archive partition of a record: the UTC date of its timestamp."""
    return parse_ts(record["timestamp"]).astimezone(UTC).strftime("%Y-%m-%d")


CONDITIONAL_ATTEMPTS = 10


def encode_lines(records: Iterable[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in records)
    # mtime=0 keeps the bytes of an object a pure function of its records (retries write identical objects).
    return gzip.compress(text.encode(), mtime=0)


def decode_lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).decode().splitlines() if line.strip()]


class S3Archive(EventArchive):
    """Writes and purges archived events.

    Parameters
    ----------
    bucket
        The archive bucket name.
    client
        A boto3 S3 client; created lazily when omitted.
    """

    client = LazyClient("s3", STORE_RETRIES)

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client = client

    def write_batch(self, records: Iterable[dict[str, Any]], batch_id: str) -> list[str]:
        """Archive records, one object per UTC date; return the keys written."""
        by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_date[event_date(r)].append(r)
        keys = []
        for date, recs in sorted(by_date.items()):
            key = f"{ARCHIVE_EVENTS_PREFIX}/dt={date}/{batch_id}.jsonl.gz"
            call(
                self.client,
                "put_object",
                "archive",
                Bucket=self.bucket,
                Key=key,
                Body=encode_lines(recs),
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )
            keys.append(key)
        return keys

    def purge_customer(self, customer_id: str, dates: Iterable[str], until: str | None = None) -> tuple[int, int]:
        """Remove a customer's lines from the archive objects of the given dates (see :func:`remove_lines`).

        Returns
        -------
        tuple
            (objects rewritten or deleted, lines removed)
        """
        cutoff = parse_ts(until).timestamp() if until else None

        def erased(record: dict[str, Any]) -> bool:
            if record.get("customer_id") != customer_id:
                return False
            return cutoff is None or parse_ts(record["timestamp"]).timestamp() <= cutoff

        objects, lines = 0, 0
        paginator = self.client.get_paginator("list_objects_v2")
        for date in sorted(set(dates)):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{ARCHIVE_EVENTS_PREFIX}/dt={date}/"):
                for obj in page.get("Contents", []):
                    removed = remove_lines(self.client, self.bucket, obj["Key"], erased, "archive")
                    objects += removed > 0
                    lines += removed
        return objects, lines


def remove_lines(client: Any, bucket: str, key: str, drop: Callable[[dict[str, Any]], bool], what: str) -> int:
    """Rewrite one gzip JSON Lines object without the records ``drop`` selects; return how many went.

    The rewrite is conditional on the object being the version that was read (``If-Match`` on its ETag), and
    is redone from a fresh read when another writer got there first, so two erasures purging one object at
    the same time cannot put back each other's lines. An object left empty is deleted (also conditionally).
    """
    for attempt in range(1, CONDITIONAL_ATTEMPTS + 1):
        try:
            got = call(client, "get_object", what, Bucket=bucket, Key=key)
        except NotFoundError:
            return 0
        records = decode_lines(got["Body"].read())
        kept = [r for r in records if not drop(r)]
        if len(kept) == len(records):
            return 0
        try:
            if kept:
                call(client, "put_object", what, Bucket=bucket, Key=key, Body=encode_lines(kept), IfMatch=got["ETag"])
            else:
                call(client, "delete_object", what, Bucket=bucket, Key=key, IfMatch=got["ETag"])
        except (ConflictError, NotFoundError):
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
            continue
        return len(records) - len(kept)
    raise StoreError(f"{what}: {key} kept changing while it was purged")


class S3DecisionLog(DecisionLog):
    """Launch decisions that earlier versions archived under ``decisions/`` (they expire with the bucket's
    lifecycle rule): an erasure removes the customer's lines from the objects noted for them."""

    client = LazyClient("s3", STORE_RETRIES)

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client = client

    def purge_customer(self, customer_id: str, objects: Iterable[str]) -> tuple[int, int]:
        count, lines = 0, 0
        for key in sorted(set(objects)):
            removed = remove_lines(
                self.client, self.bucket, key, lambda r: r.get("customer_id") == customer_id, "decision log"
            )
            count += removed > 0
            lines += removed
        return count, lines
