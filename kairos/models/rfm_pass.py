"""The run's RFM cut points, over every purchaser, in parallel shards that each resume from a cursor.

The nightly scoring run first passes over the customers in ``total_shards`` scan shards: each invocation reads
pages from its cursor while it has time, and stores what it saw as a mergeable part
(:class:`kairos.insights.rfm_values.RfmValues`) under a key fixed by its shard and starting cursor, so a
retried invocation rewrites its own part and counts nobody twice. :func:`merge_rfm` then merges the parts into
the run's quintile cut points, which the scoring shards read. No step reads every customer in one invocation.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.insights.measures import RFM_KIND, rfm_values
from kairos.insights.rfm_values import RfmValues, merge_all

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.customers.ports import CustomerStore
    from kairos.insights.ports import InsightStore

RFM_KEPT = timedelta(days=400)


def _expiry(as_of: datetime) -> int:
    return int((as_of + RFM_KEPT).timestamp())


def _prefix(as_of: datetime) -> str:
    return f"pass#{as_of.isoformat()}#"


def rfm_pass(
    store: CustomerStore,
    insight_store: InsightStore,
    as_of: datetime,
    shard: int,
    total_shards: int,
    cursor: str | None,
    time_left_ms: Callable[[], int],
    page_size: int = 1000,
    reserve_ms: int = 60_000,
) -> dict[str, Any]:
    """Read one shard's purchasers from ``cursor`` while time allows; store them as this invocation's part."""
    values = RfmValues()
    start = cursor
    while True:
        records, cursor = store.scan_customers(shard, total_shards, cursor, page_size)
        for record in records:
            found = rfm_values(record.aggregates, as_of)
            if found is not None:
                values.add(found)
        if cursor is None or time_left_ms() < reserve_ms:
            break
    part = hashlib.sha256((start or "").encode()).hexdigest()[:12]
    insight_store.put(RFM_KIND, f"{_prefix(as_of)}{shard:05d}#{part}", values.to_dict(), _expiry(as_of))
    return {
        "rfm_pass": True,  # the next page of the pass asks for the same
        "shard": shard,
        "total_shards": total_shards,
        "cursor": cursor,
        "done": cursor is None,
        "purchasers": values.customers,
    }


def merge_rfm(insight_store: InsightStore, as_of: datetime) -> int:
    """Merge the run's parts into its cut points and store them; returns the purchasers counted."""
    merged = merge_all(RfmValues.from_dict(doc) for _, doc in insight_store.query(RFM_KIND, _prefix(as_of)))
    thresholds = merged.thresholds(as_of)
    insight_store.put(RFM_KIND, f"run#{as_of.isoformat()}", thresholds.to_dict(), _expiry(as_of))
    return thresholds.customers
