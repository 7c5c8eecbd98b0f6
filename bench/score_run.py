"""The nightly scoring run, measured on a local run over ``--customers`` (100,000) customers, and its estimate
for 10 million in AWS.

    python bench/score_run.py [--customers 100000] [--changed 0.1]

Customers are the committed Online Retail cut (``tests/data``) folded into aggregates, repeated under new ids
to the count, in the in-memory store. The run's own code runs as the state machine runs it: the plan, the RFM
pass over the shards and the merge, then the scoring shards; twice: a first night (everybody scored), and a
second night where a ``--changed`` share of the customers did something since (the others keep their answer).
Each phase's CPU time per customer is measured here, and so is decoding a customer as a scan reads it (which the
in-memory store skips); the estimate for 10 million customers divides the work over the run's shards (40 at once)
and adds what DynamoDB bills for the scans and writes at the sizes of these customers' items (a compressed core on
the customers table, the parts beside the events). This machine's cores are slower than Lambda's arm64 ones at
1,769 MB or more only by a small factor, and other work shares them: read the minutes as an order of magnitude,
the shares as measured.
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


def parse_cost(store, as_of) -> tuple[float, float, float]:
    """CPU ms to decode one customer as a scan reads it (its item from a Scan page, its parts from a BatchGetItem
    answer: JSON, typed values, decompression), which the in-memory store skips; and the RCU per customer of a scan
    and the WCU of storing one recommendation, by the sizes DynamoDB bills for these customers' items."""
    import base64
    import json

    from boto3.dynamodb.types import TypeSerializer

    from kairos.core.aws import to_dynamo
    from kairos.customers.adapters import layout
    from kairos.customers.adapters.dynamo import DynamoStore

    ser = TypeSerializer()
    items, parts = [], []
    for rec in list(store.customers.values())[:400]:
        names = [layout.PROFILE, layout.RECOMMENDATION, *layout.AGGREGATE_PARTS]
        items.append(
            {
                "customer_id": {"S": rec.customer_id},
                "version": {"N": "7"},
                "updated_at": {"S": rec.updated_at or ""},
                "core": {"B": layout.encode_core(rec.aggregates, layout.Core())},
                "parts": {"SS": names},
            }
        )
        mine = {
            layout.PROFILE: {"profile": ser.serialize(to_dynamo(rec.profile or {}))},
            layout.RECOMMENDATION: {"data": {"B": layout.pack(rec.recommendation or {})}},
            **{n: {"data": {"B": layout.encode_part(rec.aggregates, n)}} for n in layout.AGGREGATE_PARTS},
        }
        parts.append({n: {"customer_id": {"S": rec.customer_id}, "sk": {"S": f"a#{n}"}, **v} for n, v in mine.items()})

    def b64(doc):  # the wire form: binary values as base64 in JSON
        return json.dumps(doc, default=lambda b: base64.b64encode(b).decode())

    page, answer = b64({"Items": items}), b64({"Responses": {"events": [i for p in parts for i in p.values()]}})
    reader = DynamoStore("events", "customers", client=object())
    t0 = time.process_time()
    for _ in range(5):
        raws = json.loads(page)["Items"]
        got = json.loads(answer)["Responses"]["events"]
        by_customer: dict[str, dict] = {}
        for item in got:
            by_customer.setdefault(item["customer_id"]["S"], {})[item["sk"]["S"][2:]] = item
        for raw in raws:
            raw["core"]["B"] = base64.b64decode(raw["core"]["B"])
            for item in by_customer[raw["customer_id"]["S"]].values():
                if "data" in item:
                    item["data"]["B"] = base64.b64decode(item["data"]["B"])
            reader._record(raw, by_customer[raw["customer_id"]["S"]])
    per = (time.process_time() - t0) / (5 * len(items)) * 1e3

    def size(item: dict) -> int:
        return sum(len(k) + (len(v["B"]) if "B" in v else len(json.dumps(v))) for k, v in item.items())

    core_kb = sum(size(i) for i in items) / len(items) / 1024
    # a scan reads the item (eventually consistent: 0.5 RCU per 4 KB of the page) and asks for each part (at least
    # 0.5 RCU a key); storing a recommendation updates the item and puts the part, in a transaction (2 WCU per KB)
    rcu = core_kb / 4 * 0.5 + sum(0.5 * max(1, math.ceil(size(i) / 4096)) for p in parts for i in p.values()) / len(
        parts
    )
    rec_kb = sum(math.ceil(size(p[layout.RECOMMENDATION]) / 1024) for p in parts) / len(parts)
    wcu = 2 * math.ceil(core_kb) + 2 * rec_kb
    print(
        f"a customer as a scan reads it: core {core_kb:.2f} KB and {len(parts[0])} parts, {per:.3f} ms to decode, "
        f"{rcu:.2f} RCU; a recommendation stored: {wcu:.1f} WCU"
    )
    return per, rcu, wcu


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
    decode_ms, rcu_per_customer, wcu_per_answer = parse_cost(store, tomorrow)
    print(f"{'night':<7} {'RFM pass ms/customer':>21} {'score ms/customer':>18} {'items written':>14}")
    for name, r in (("first", first), ("second", second)):
        print(f"{name:<7} {r['rfm'] * 1e3 / n:>21.3f} {r['score'] * 1e3 / n:>18.3f} {r['writes']:>14}")
    # 10 million customers in AWS: the same per-customer CPU, over the run's shards.
    shards_10m = MAX_SCORE_SHARDS
    for name, r in (("first night (everybody scored)", first), ("a night where 10% changed", second)):
        cpu = (r["rfm"] + r["score"]) / n * TARGET + 2 * decode_ms / 1e3 * TARGET  # two scans
        minutes = cpu / shards_10m / 60
        lam = cpu * LAMBDA_GB * LAMBDA_GB_S
        reads = 2 * TARGET * rcu_per_customer * RCU_PRICE  # two eventually consistent scans
        writes = r["writes"] / n * TARGET * wcu_per_answer * WCU_PRICE
        print(
            f"10M, {name}: {cpu / 3600:.1f} CPU-hours, about {minutes:.0f} min on {shards_10m} shards; "
            f"Lambda ${lam:.2f}, scans ${reads:.2f}, writes ${writes:.2f}"
        )
    cpu = (first["rfm"] + first["score"]) / n * TARGET + 2 * decode_ms / 1e3 * TARGET
    print(f"scoring run for 10 million customers (estimate): {cpu / shards_10m / 60:.0f} min on {shards_10m} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
