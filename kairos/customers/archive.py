"""DynamoDB stream of the events table -> S3 archive (and erasures -> archive purge).

Each accepted event is inserted once in the events table, so each INSERT of an ``e#`` item is archived
once. The object key is made from the stream batch, so a retried batch overwrites its own objects.
A REMOVE made by a user (an erasure, not a TTL expiry) purges that customer's lines from the archive.
The catalogue of event types is counted here too, once per stream batch rather than once per ingest request.
After writing, the batch's customers are checked for tombstones: an event accepted just before an erasure
and archived after the erasure purged the archive is removed again, so it cannot come back.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kairos.core.timeutil import parse_ts

if TYPE_CHECKING:
    from kairos.customers.ports import CustomerStore, EventArchive, EventTypeCatalogue


def _utc_date(timestamp: str) -> str:
    return parse_ts(timestamp).astimezone(UTC).strftime("%Y-%m-%d")


def _ttl_expiry(record: dict) -> bool:
    identity = record.get("userIdentity") or {}
    return identity.get("principalId") == "dynamodb.amazonaws.com"


def archive_stream_records(
    records: list[dict],
    store: EventArchive,
    customers: CustomerStore,
    catalogue: EventTypeCatalogue | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Archive INSERTed events and purge user-removed or erased ones, count the types inserted; return counts."""
    inserted: list[dict] = []
    erased: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        ddb = rec.get("dynamodb", {})
        keys = ddb.get("Keys", {})
        sk = keys.get("sk", {}).get("S", "")
        if not sk.startswith("e#"):
            continue
        if rec.get("eventName") == "INSERT":
            inserted.append(json.loads(ddb["NewImage"]["record"]["S"]))
        elif rec.get("eventName") == "REMOVE" and not _ttl_expiry(rec):
            old = ddb.get("OldImage", {})
            if "ts" in old:
                erased[keys["customer_id"]["S"]].add(time.strftime("%Y-%m-%d", time.gmtime(int(old["ts"]["N"]))))
    written = 0
    if inserted:
        first = records[0].get("dynamodb", {}).get("SequenceNumber", "")
        last = records[-1].get("dynamodb", {}).get("SequenceNumber", "")
        source = records[0].get("eventSourceARN", "")
        batch_id = hashlib.sha256(f"{source}|{first}|{last}".encode()).hexdigest()[:32]
        store.write_batch(inserted, batch_id)
        written = len(inserted)
    if inserted and catalogue is not None:
        catalogue.note(record_types(inserted), now or datetime.now(UTC))
    purged = 0
    if inserted:
        tombstones = customers.erased_at({r["customer_id"] for r in inserted})
        for customer_id, erased_at in tombstones.items():
            dates = {_utc_date(r["timestamp"]) for r in inserted if r["customer_id"] == customer_id}
            # only what happened before the erasure: a customer who came back keeps their new events
            purged += store.purge_customer(customer_id, dates, until=erased_at)[1]
    for customer_id, dates in erased.items():
        purged += store.purge_customer(customer_id, dates)[1]
    return {"archived": written, "purged_lines": purged}


def record_types(records: list[dict]) -> dict[str, tuple[int, set[str]]]:
    """How many records of each type, and the names of the properties they carried (``type -> (count, names)``)."""
    out: dict[str, tuple[int, set[str]]] = {}
    for r in records:
        count, names = out.get(r["type"], (0, set()))
        out[r["type"]] = (count + 1, names | set(r.get("properties") or {}))
    return out
