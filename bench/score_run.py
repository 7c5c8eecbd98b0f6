"""The nightly scoring run, measured on a local run over ``--customers`` (100,000) customers, and its estimate
for 10 million in AWS.

    python bench/score_run.py [--customers 100000] [--changed 0.1]

Customers are the committed Online Retail cut (``tests/data``) folded into aggregates, repeated under new ids
to the count, in the in-memory store. The run's own code runs as the state machine runs it: the plan, the RFM
pass over the shards and the merge, then the scoring shards; twice: a first night (everybody scored), and a
second night where a ``--changed`` share of the customers did something since (the others keep their answer).
Each phase's CPU time per customer is measured here, and so is decoding a customer from a DynamoDB Scan page
(which the in-memory store skips); the estimate for 10 million customers divides the work
over the run's shards (40 at once) and adds what DynamoDB bills for the scans and writes at the item sizes
``bench/ingest.py`` measures (about 9 KB per customer). This machine's cores are slower than Lambda's arm64
ones at 1,769 MB or more only by a small factor, and other work shares them: read the minutes as an order of
magnitude, the shares as measured.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos.customers.domain import CustomerRecord  # noqa: E402
from kairos.models.rfm_pass import merge_rfm, rfm_pass  # noqa: E402
from kairos.models.scoring import MAX_SCORE_SHARDS, plan_shards, score_shard  # noqa: E402
from kairos.models.serving import KairosModel  # noqa: E402
from tests.fakes import InMemoryCustomerStore, InMemoryInsightStore  # noqa: E402
from training.history import Folder, History  # noqa: E402
from training.io import load_events  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "online_retail_sample.csv.gz"
TARGET = 10_000_000
ITEM_KB = 9  # a customer item with 1,000 events and a recommendation (bench/ingest.py)
RCU_PRICE, WCU_PRICE = 0.25e-6, 1.25e-6
LAMBDA_GB_S = 0.0000133334  # arm64
LAMBDA_GB = 1.769


def build(n: int) -> tuple[InMemoryCustomerStore, object]:
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    as_of = history.end + timedelta(hours=1)
    aggs = Folder(history).advance(as_of)
    base = [(c, aggs[c], history.attributes(c)) for c in history.customers]
    store = InMemoryCustomerStore()
    updated = (as_of - timedelta(days=1)).isoformat()
    for i in range(n):
        cid, agg, attributes = base[i % len(base)]
        store.customers[f"{cid}-{i}"] = CustomerRecord(
            f"{cid}-{i}", exists=True, aggregates=agg, profile={"attributes": attributes or {}}, updated_at=updated
        )
    return store, as_of


def parse_cost(store, as_of) -> float:
    """CPU ms to decode one customer of a DynamoDB Scan page (JSON, then typed values), which the in-memory
    store does not pay: measured on a 1 MB page of these customers' items with their recommendations."""
    import json

    from boto3.dynamodb.types import TypeSerializer

    from kairos.core.aws import from_item, to_dynamo

    ser = TypeSerializer()
    items = []
    for rec in list(store.customers.values())[:400]:
        doc = {
            "customer_id": rec.customer_id,
            "version": 7,
            "agg": rec.aggregates.to_dict(),
            "profile": rec.profile,
            "recommendation": rec.recommendation or {},
        }
        items.append({k: ser.serialize(to_dynamo(v)) for k, v in doc.items()})
    page = json.dumps({"Items": items, "Count": len(items)})
    t0 = time.process_time()
    for _ in range(5):
        for raw in json.loads(page)["Items"]:
            from_item(raw)
    per = (time.process_time() - t0) / (5 * len(items)) * 1e3
    print(f"a Scan page of {len(items)} customers: {len(page) / 1024:.0f} KB, {per:.3f} ms per customer to decode")
    return per


def night(store, insights, model, as_of, shards: int) -> dict[str, float]:
    """One run, phase by phase, as the state machine runs it; CPU seconds per phase."""
    out = {}
    t0 = time.process_time()
    for shard in range(shards):
        cursor = None
        while True:
            step = rfm_pass(store, insights, as_of, shard, shards, cursor, lambda: 10**9, page_size=1000)
            cursor = step["cursor"]
            if step["done"]:
                break
    merge_rfm(insights, as_of)
    out["rfm"] = time.process_time() - t0
    writes = [0]
    put = store.put_recommendation

    def counted(cid, rec):
        writes[0] += 1
        put(cid, rec)

    store.put_recommendation = counted
    t0 = time.process_time()
    for shard in range(shards):
        cursor = None
        while True:
            step = score_shard(
                store, model, as_of, shard, shards, cursor, lambda: 10**9, page_size=1000, insight_store=insights
            )
            cursor = step["cursor"]
            if step["done"]:
                break
    out["score"] = time.process_time() - t0
    out["writes"] = writes[0]
    store.put_recommendation = put
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.1, help="share of customers with news on night two")
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    args = parser.parse_args()
    n = args.customers
    model = KairosModel.load(args.model)
    t0 = time.perf_counter()
    store, as_of = build(n)
    print(f"{n} customers built in {time.perf_counter() - t0:.0f} s")
    shards = plan_shards(store, 4)["total_shards"]
    insights = InMemoryInsightStore()
    first = night(store, insights, model, as_of, shards)
    # Night two: a share of the customers did something since the first night.
    tomorrow = as_of + timedelta(days=1)
    step = max(1, round(1 / args.changed)) if args.changed > 0 else 0
    for i, cid in enumerate(sorted(store.customers)):
        if step and i % step == 0:
            store.customers[cid] = replace(store.customers[cid], updated_at=(as_of + timedelta(hours=2)).isoformat())
    second = night(store, insights, model, tomorrow, shards)
    decode_ms = parse_cost(store, tomorrow)
    print(f"{'night':<7} {'RFM pass ms/customer':>21} {'score ms/customer':>18} {'items written':>14}")
    for name, r in (("first", first), ("second", second)):
        print(f"{name:<7} {r['rfm'] * 1e3 / n:>21.3f} {r['score'] * 1e3 / n:>18.3f} {r['writes']:>14}")
    # 10 million customers in AWS: the same per-customer CPU, over the run's shards.
    shards_10m = MAX_SCORE_SHARDS
    for name, r in (("first night (everybody scored)", first), ("a night where 10% changed", second)):
        cpu = (r["rfm"] + r["score"]) / n * TARGET + 2 * decode_ms / 1e3 * TARGET  # two scans
        minutes = cpu / shards_10m / 60
        lam = cpu * LAMBDA_GB * LAMBDA_GB_S
        reads = 2 * TARGET * math.ceil(ITEM_KB / 4) * 0.5 * RCU_PRICE  # two eventually consistent scans
        writes = r["writes"] / n * TARGET * ITEM_KB * WCU_PRICE
        print(
            f"10M, {name}: {cpu / 3600:.1f} CPU-hours, about {minutes:.0f} min on {shards_10m} shards; "
            f"Lambda ${lam:.2f}, scans ${reads:.2f}, writes ${writes:.2f}"
        )
    cpu = (first["rfm"] + first["score"]) / n * TARGET + 2 * decode_ms / 1e3 * TARGET
    print(f"scoring run for 10 million customers (estimate): {cpu / shards_10m / 60:.0f} min on {shards_10m} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
