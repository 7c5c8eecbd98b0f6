"""Score customers with the current model and keep the answers on their profiles.

Scoring all customers is a parallel scan: each segment is scored page by page and hands back a cursor
before the function's time runs out, so a Step Functions loop (``statemachine/score_all.asl.json``) can
resume it; a re-run of a page writes the same answers again, so resuming is safe.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kairos.aggregates import CustomerAggregates
from kairos.logic.recommendations import POPULATION_KEY, SEGMENT_KEY_PREFIX
from kairos.serving import CustomerInput, KairosModel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from kairos.domain.customers import CustomerRecord
    from kairos.ports import CustomerStore

SCORE_CHUNK = 1000
WRITE_THREADS = 8


def _inputs(records: Iterable[CustomerRecord]) -> list[CustomerInput]:
    return [
        CustomerInput(r.customer_id, r.aggregates, ((r.profile or {}).get("attributes") or None), r.channel_sends)
        for r in records
    ]


def _payload(rec: Any, as_of: datetime, model_source: str | None) -> dict[str, Any]:
    out = rec.to_dict()
    out.pop("customer_id", None)
    out["as_of"] = as_of.isoformat()
    out["model_source"] = model_source
    return out


def score_records(
    records: list[CustomerRecord],
    store: CustomerStore,
    model: KairosModel,
    as_of: datetime,
    model_source: str | None = None,
) -> int:
    """Recommend for ``records`` in chunks (one booster call per chunk) and write the answers in parallel."""
    written = 0
    for start in range(0, len(records), SCORE_CHUNK):
        recs = model.recommend(_inputs(records[start : start + SCORE_CHUNK]), as_of)
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(lambda r: store.put_recommendation(r.customer_id, _payload(r, as_of, model_source)), recs))
        written += len(recs)
    return written


def score_customers(
    customer_ids: list[str], store: CustomerStore, model: KairosModel, as_of: datetime, model_source: str | None = None
) -> dict[str, Any]:
    """Score the given customers; report which of them do not exist."""
    found = store.get_customers(customer_ids)
    scored = score_records([found[c] for c in customer_ids if c in found], store, model, as_of, model_source)
    return {"scored": scored, "missing": sorted(set(customer_ids) - set(found))}


def score_segment(
    store: CustomerStore,
    model: KairosModel,
    as_of: datetime,
    segment: int,
    total_segments: int,
    cursor: str | None,
    time_left_ms: Callable[[], int],
    page_size: int = 500,
    reserve_ms: int = 60_000,
    model_source: str | None = None,
) -> dict[str, Any]:
    """Score one scan segment from ``cursor`` until it ends or the time left falls under ``reserve_ms``."""
    scored = 0
    while True:
        records, cursor = store.scan_customers(segment, total_segments, cursor, page_size)
        scored += score_records(records, store, model, as_of, model_source)
        if cursor is None or time_left_ms() < reserve_ms:
            break
    return {
        "segment": segment,
        "total_segments": total_segments,
        "cursor": cursor,
        "scored": scored,
        "done": cursor is None,
    }


def store_fallbacks(store: CustomerStore, model: KairosModel, as_of: datetime, model_source: str | None = None) -> int:
    """Store the population answer and one per known segment, for customers not scored yet."""
    attribute = model.priors.segment_attribute
    inputs = [CustomerInput(POPULATION_KEY, CustomerAggregates())]
    inputs += [
        CustomerInput(f"{SEGMENT_KEY_PREFIX}{seg}", CustomerAggregates(), {attribute: seg})
        for seg in sorted(model.priors.segments)
    ]
    recs = model.recommend(inputs, as_of)
    for rec in recs:
        payload = _payload(rec, as_of, model_source)
        payload["segment_attribute"] = attribute
        store.put_fallback(rec.customer_id, payload)
    return len(recs)


__all__ = ["score_customers", "score_records", "score_segment", "store_fallbacks"]
