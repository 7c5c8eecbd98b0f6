"""Score customers with the current model and keep the answers on their profiles.

Scoring all customers is a parallel scan: each shard is scored page by page and hands back a cursor
before the function's time runs out, so a Step Functions loop (``statemachine/score_all.asl.json``) can
resume it; a re-run of a page writes the same answers again, so resuming is safe.

A scoring run also recomputes RFM (``kairos.insights.measures``): its first step counts every purchaser's
recency, frequency and monetary value into quintile thresholds (:func:`prepare_rfm`), each shard scores
its customers against them and stores its part of the run's summary, and ``kairos.insights.analyses.rfm_report``
adds the parts.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import parse_ts
from kairos.customers.aggregates import CustomerAggregates
from kairos.insights import measures as insights
from kairos.insights.measures import RFM_KIND
from kairos.models.recommendations import POPULATION_KEY, SEGMENT_KEY_PREFIX
from kairos.models.rfm_pass import merge_rfm, rfm_pass
from kairos.models.serving import CustomerInput, KairosModel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.insights.measures import RfmSummary, RfmThresholds
    from kairos.insights.ports import InsightStore
    from kairos.models.ports import ProductCatalogue

SCORE_CHUNK = 1000
RFM_KEPT = timedelta(days=400)
WRITE_THREADS = 8
# LightGBM threads per predict call. One: a score function of 2,048 MB has about 1.2 vCPUs (1,769 MB is one, per
# Lambda's memory and computing power docs), the nightly run scales out by shards instead, and OpenMP's workers
# spin between calls on the same CPU quota. bench/score.py times this path against the raw predict calls.
SCORE_THREADS = 1
# The nightly run's fan-out: about 4.7 ms of CPU per customer, Scan decoding and the RFM pass included
# (bench/score_run.py), puts 250,000 at about 20 minutes of one Lambda, and 40 shards at once score 10 million
# within an hour (fewer minutes when most have nothing new).
CUSTOMERS_PER_SHARD = 250_000
MAX_SCORE_SHARDS = 40
# A customer with nothing new is scored again after this long anyway (recency moves their product answers).
RESCORE_AFTER = timedelta(days=7)


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


class ConsumableFlags:
    """The catalogue's ``consumable`` flag of the products customers bought, looked up once per product a run."""

    def __init__(self, catalogue: ProductCatalogue | None) -> None:
        self.catalogue = catalogue
        self.looked_up: set[str] = set()
        self.flags: dict[str, bool] = {}

    def of(self, records: Iterable[CustomerRecord]) -> dict[str, bool] | None:
        """Flags of every product the catalogue knows among those ``records`` bought (``None``: no catalogue)."""
        if self.catalogue is None:
            return None
        wanted = {p for r in records for p in r.aggregates.product_purchases} - self.looked_up
        if wanted:
            found = self.catalogue.get_products(wanted)
            self.flags.update({p: bool(doc.get("consumable")) for p, doc in found.items()})
            self.looked_up |= wanted
        return self.flags


def unchanged_since_scored(record: CustomerRecord, model: KairosModel, as_of: datetime) -> bool:
    """Whether the customer's last answer still holds: made by this model, less than ``RESCORE_AFTER`` ago, and
    nothing learnt about them since (no event, no profile change). Such a customer is not scored again; only
    their RFM scores, which move with time, are brought up to date."""
    previous = record.recommendation or {}
    if previous.get("model_version") != model.version or not previous.get("as_of") or not record.updated_at:
        return False
    scored_at = parse_ts(previous["as_of"])
    return parse_ts(record.updated_at) < scored_at and as_of - scored_at < RESCORE_AFTER


def score_records(
    records: list[CustomerRecord],
    store: CustomerStore,
    model: KairosModel,
    as_of: datetime,
    model_source: str | None = None,
    rfm: tuple[RfmThresholds, RfmSummary] | None = None,
    skip_unchanged: bool = False,
    consumables: ConsumableFlags | None = None,
) -> int:
    """Recommend for ``records`` in chunks (one booster call per chunk) and write the answers in parallel.

    With ``rfm`` (the run's thresholds and the summary to add to), each purchaser's RFM scores are written with
    the recommendation; without it, the RFM of the customer's previous answer is kept. With ``skip_unchanged``
    (the nightly run), a customer :func:`unchanged_since_scored` keeps their answer, and it is written again
    only when their RFM scores moved. ``consumables`` gives the catalogue's flags the next purchase dates of the
    lifecycle answer follow. Returns the customers handled.
    """
    written = 0
    for start in range(0, len(records), SCORE_CHUNK):
        chunk = records[start : start + SCORE_CHUNK]
        fresh = [r for r in chunk if skip_unchanged and unchanged_since_scored(r, model, as_of)]
        kept = {r.customer_id for r in fresh}
        stale = [r for r in chunk if r.customer_id not in kept]
        flags = consumables.of(stale) if consumables is not None and stale else None
        recs = model.recommend(_inputs(stale), as_of, threads=SCORE_THREADS, consumable=flags) if stale else []
        answers = {r.customer_id: _payload(rec, as_of, model_source) for r, rec in zip(stale, recs, strict=True)}
        payloads = []
        for record in chunk:
            previous = (record.recommendation or {}).get("rfm")
            payload = answers.get(record.customer_id) or dict(record.recommendation or {})
            if rfm is None:
                if previous:
                    payload["rfm"] = previous
            elif (values := insights.rfm_values(record.aggregates, as_of)) is not None:
                payload["rfm"] = insights.rfm_score(values, rfm[0])
                rfm[1].add(payload["rfm"], insights.rfm_group_of(previous))
            if record.customer_id in kept and _same_rfm(payload.get("rfm"), previous):
                continue  # nothing changed: no write
            payloads.append((record.customer_id, payload))
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(lambda cp: store.put_recommendation(*cp), payloads))
        written += len(chunk)
    return written


def _same_rfm(new: dict[str, Any] | None, old: dict[str, Any] | None) -> bool:
    """The same scores and group (the values and the run's date may move without changing them)."""
    keys = ("r", "f", "m", "group")
    return (new is None and old is None) or (
        new is not None and old is not None and all(new.get(k) == old.get(k) for k in keys)
    )


def plan_shards(store: CustomerStore, min_shards: int) -> dict[str, Any]:
    """How many scan shards the nightly run uses: one per ``CUSTOMERS_PER_SHARD`` customers (so a shard's share
    takes about a quarter of an hour of one Lambda), at least ``min_shards``, at most ``MAX_SCORE_SHARDS`` (the
    run's concurrency)."""
    customers = store.approximate_count()
    wanted = math.ceil((customers or 0) / CUSTOMERS_PER_SHARD)
    return {"total_shards": max(1, min(MAX_SCORE_SHARDS, max(min_shards, wanted))), "customers": customers}


def score_customers(
    customer_ids: list[str],
    store: CustomerStore,
    model: KairosModel,
    as_of: datetime,
    model_source: str | None = None,
    catalogue: ProductCatalogue | None = None,
) -> dict[str, Any]:
    """Score the given customers; report which of them do not exist."""
    found = store.get_customers(customer_ids)
    records = [found[c] for c in customer_ids if c in found]
    scored = score_records(records, store, model, as_of, model_source, consumables=ConsumableFlags(catalogue))
    return {"scored": scored, "missing": sorted(set(customer_ids) - set(found))}


def score_shard(
    store: CustomerStore,
    model: KairosModel,
    as_of: datetime,
    shard: int,
    total_shards: int,
    cursor: str | None,
    time_left_ms: Callable[[], int],
    page_size: int = 500,
    reserve_ms: int = 60_000,
    model_source: str | None = None,
    insight_store: InsightStore | None = None,
    catalogue: ProductCatalogue | None = None,
) -> dict[str, Any]:
    """Score one scan shard from ``cursor`` until it ends or the time left falls under ``reserve_ms``.

    With ``insight_store`` and the run's RFM thresholds in it (:func:`prepare_rfm`), purchasers get their RFM
    scores and this invocation's part of the run's RFM summary is stored. With ``catalogue``, its ``consumable``
    flags decide which products get a next purchase date.
    """
    scored = 0
    start_cursor = cursor
    thresholds = rfm_thresholds_of(insight_store, as_of)
    rfm = (thresholds, insights.RfmSummary()) if thresholds is not None else None
    consumables = ConsumableFlags(catalogue)
    while True:
        records, cursor = store.scan_customers(shard, total_shards, cursor, page_size)
        scored += score_records(records, store, model, as_of, model_source, rfm, True, consumables)
        if cursor is None or time_left_ms() < reserve_ms:
            break
    if rfm is not None and insight_store is not None:
        part = hashlib.sha256((start_cursor or "").encode()).hexdigest()[:12]
        insight_store.put(RFM_KIND, f"part#{as_of.isoformat()}#{shard:05d}#{part}", rfm[1].to_dict(), _expiry(as_of))
    return {
        "shard": shard,
        "total_shards": total_shards,
        "cursor": cursor,
        "scored": scored,
        "done": cursor is None,
    }


def rfm_thresholds_of(insight_store: InsightStore | None, as_of: datetime) -> RfmThresholds | None:
    """The RFM thresholds of the scoring run at ``as_of`` (``None``: that run computes no RFM)."""
    if insight_store is None:
        return None
    doc = insight_store.get(RFM_KIND, f"run#{as_of.isoformat()}")
    return insights.RfmThresholds.from_dict(doc) if doc else None


def prepare_rfm(store: CustomerStore, insight_store: InsightStore, as_of: datetime, page_size: int = 1000) -> int:
    """The run's RFM cut points in one process (tests, a small shop): one shard passed to its end, then merged.
    The scoring run does the same in parallel shards (:mod:`kairos.models.rfm_pass`). Returns the purchasers."""
    cursor: str | None = None
    while True:
        cursor = rfm_pass(store, insight_store, as_of, 0, 1, cursor, lambda: 1 << 30, page_size)["cursor"]
        if cursor is None:
            return merge_rfm(insight_store, as_of)


def _expiry(as_of: datetime) -> int:
    return int((as_of + RFM_KEPT).timestamp())


def store_fallbacks(store: CustomerStore, model: KairosModel, as_of: datetime, model_source: str | None = None) -> int:
    """Store the population answer and one per known segment, for customers not scored yet."""
    attribute = model.priors.segment_attribute
    inputs = [CustomerInput(POPULATION_KEY, CustomerAggregates())]
    inputs += [
        CustomerInput(f"{SEGMENT_KEY_PREFIX}{seg}", CustomerAggregates(), {attribute: seg})
        for seg in sorted(model.priors.segments)
    ]
    recs = model.recommend(inputs, as_of, threads=SCORE_THREADS)
    for rec in recs:
        payload = _payload(rec, as_of, model_source)
        payload["segment_attribute"] = attribute
        store.put_fallback(rec.customer_id, payload)
    return len(recs)


__all__ = [
    "plan_shards",
    "prepare_rfm",
    "rfm_thresholds_of",
    "score_customers",
    "score_records",
    "score_shard",
    "store_fallbacks",
]
