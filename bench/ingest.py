"""Ingestion benchmark: events/s through the real handler, DynamoDB requests per event by batch size, and the
write and read capacity one event costs by the sizes DynamoDB bills, for a customer with 10, 100 and 1,000
prior events.

Runs on embedded AWS (moto), so absolute events/s measure our code plus moto, not DynamoDB; the requests
per event and the capacity units are what DynamoDB would bill and throttle on (item sizes by DynamoDB's
rules: attribute names plus values, numbers by their significant digits; a write costs 1 WCU per KB of the
larger of the item before and after, twice inside a transaction; a strongly consistent read 1 RCU per 4 KB,
at least 1 per key asked for). Batch sizes are measured side by side in one run.

    python bench/ingest.py [--events 3000] [--customers 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3

from kairos_local.embedded import auth_header, embedded_aws

TYPES = ["session", "message_open", "message_click", "purchase", "product_view", "cart_add"]


def make_events(n: int, customers: int, tag: str, rng: random.Random) -> list[dict]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        ts = now - timedelta(minutes=rng.randint(10, 60 * 24 * 60))
        ev = {
            "event_id": f"{tag}-{i}",
            "customer_id": f"{tag}-c{rng.randrange(customers)}",
            "type": rng.choice(TYPES),
            "timestamp": ts.isoformat(),
        }
        if ev["type"] in ("purchase", "product_view", "cart_add"):
            ev["product_id"] = f"P{rng.randrange(300)}"
            ev["amount"] = round(rng.uniform(1, 80), 2)
        out.append(ev)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capacity-only", action="store_true", help="only the capacity per event")
    args = parser.parse_args()
    rng = random.Random(1)
    calls: Counter[str] = Counter()
    with embedded_aws(api_key="bench") as rt:
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
        seen: list[tuple[str, dict]] = []  # the requests of the event being costed
        boto3.DEFAULT_SESSION.events.register(
            "before-parameter-build.dynamodb", lambda model, params, **_: seen.append((model.name, dict(params)))
        )
        headers = auth_header(rt)
        rows = []
        for rep in range(0 if args.capacity_only else args.repeat):
            for size in (1, 25, 500):
                n = min(args.events, 300) if size == 1 else args.events
                events = make_events(n, args.customers, f"r{rep}b{size}", rng)
                calls.clear()
                started = time.perf_counter()
                for i in range(0, n, size):
                    body = json.dumps({"events": events[i : i + size]})
                    resp = rt.invoke("ApiFunction", _apigw_event(body, headers))
                    assert resp["statusCode"] == 200, resp
                elapsed = time.perf_counter() - started
                rows.append((size, rep, n / elapsed, sum(calls.values()) / n, dict(calls)))
        if rows:
            print_throughput(rows)
        print(
            f"{'prior events':>12} {'customer KB':>12} {'parts KB':>9} {'WCU session':>12} {'WCU view':>9} "
            f"{'WCU purchase':>13} {'RCU session':>12}"
        )
        caps = {}
        for prior in (10, 100, 1000):
            caps[prior] = c = capacity_per_event(rt, headers, prior, rng, seen)
            print(
                f"{prior:>12} {c['item_kb']:>12} {c['parts_kb']:>9} {c['session']:>12.2f} {c['product_view']:>9.2f} "
                f"{c['purchase']:>13.2f} {c['session_rcu']:>12.2f}"
            )
        print("(floor: 1 WCU for the event itself; $1.25 per million WCU on demand)")
        print(f"WCU per event at 1000 prior events: {caps[1000]['session']:.2f}")


def print_throughput(rows: list[tuple]) -> None:
    print(f"{'batch':>6} {'events/s (median)':>18} {'min..max':>16} {'DynamoDB req/event':>19}  calls (last run)")
    for size in (1, 25, 500):
        mine = [r for r in rows if r[0] == size]
        rates = [r[2] for r in mine]
        print(
            f"{size:>6} {statistics.median(rates):>18.1f} {min(rates):>7.1f}..{max(rates):<8.1f}"
            f" {statistics.median(r[3] for r in mine):>19.3f}  {mine[-1][4]}"
        )
    base = statistics.median(r[2] for r in rows if r[0] == 1)
    print(
        "throughput relative to batch 1: "
        + ", ".join(f"batch {s}: {statistics.median(r[2] for r in rows if r[0] == s) / base:.1f}x" for s in (25, 500))
    )
    print()


def value_bytes(value: dict) -> int:
    """Bytes DynamoDB counts for one typed attribute value."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_bytes(x) for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_bytes(x) for k, x in v.items())
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(value_bytes({"N": x}) for x in v)
    raise ValueError(kind)


def item_bytes(item: dict) -> int:
    return sum(len(k.encode()) + value_bytes(v) for k, v in item.items())


def kb(n: int, unit: int = 1024) -> int:
    return max(1, math.ceil(n / unit))


def _snapshot(ddb, cfg, cid: str) -> dict[tuple[str, str], dict]:
    """Every item of one customer in both tables, by (table, sort key or "")."""
    out = {}
    item = ddb.get_item(TableName=cfg.customers_table, Key={"customer_id": {"S": cid}}).get("Item")
    if item:
        out[(cfg.customers_table, "")] = item
    kwargs = {
        "TableName": cfg.events_table,
        "KeyConditionExpression": "customer_id = :c",
        "ExpressionAttributeValues": {":c": {"S": cid}},
    }
    while True:
        resp = ddb.query(**kwargs)
        out.update({(cfg.events_table, i["sk"]["S"]): i for i in resp["Items"]})
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _key(table: str, key: dict) -> tuple[str, str]:
    return (table, key["sk"]["S"] if "sk" in key else "")


def billed(requests: list[tuple[str, dict]], before: dict, after: dict) -> tuple[float, float]:
    """WCU and RCU of the requests, by the sizes of the items before and after them (DynamoDB's rules)."""

    def size(table: str, key: dict) -> int:
        k = _key(table, key)
        return max(item_bytes(before.get(k, {})), item_bytes(after.get(k, {})))

    wcu = rcu = 0.0
    for name, params in requests:
        if name == "TransactWriteItems":
            for op in params["TransactItems"]:
                ((kind, body),) = op.items()
                key = body.get("Key") or {k: v for k, v in body["Item"].items() if k in ("customer_id", "sk")}
                wcu += 2 * kb(size(body["TableName"], key))
        elif name == "BatchWriteItem":
            for table, reqs in params["RequestItems"].items():
                for req in reqs:
                    ((kind, body),) = req.items()
                    key = body.get("Key") or {k: v for k, v in body["Item"].items() if k in ("customer_id", "sk")}
                    wcu += kb(size(table, key))
        elif name in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or {k: v for k, v in params["Item"].items() if k in ("customer_id", "sk")}
            wcu += kb(size(params["TableName"], key))
        elif name == "BatchGetItem":
            for table, req in params["RequestItems"].items():
                unit = 4096 if req.get("ConsistentRead") else 8192
                for key in req["Keys"]:
                    rcu += kb(item_bytes(before.get(_key(table, key), {})), unit)
        elif name == "GetItem":
            rcu += kb(item_bytes(before.get(_key(params["TableName"], params["Key"]), {})), 4096)
        elif name == "Query":
            rcu += 1
    return wcu, rcu


KINDS = ("session", "product_view", "purchase")


def capacity_per_event(
    rt, headers: dict[str, str], prior: int, rng: random.Random, seen: list[tuple[str, dict]], events: int = 24
) -> dict[str, float]:
    """Mean WCU and RCU of one more event (a session in a new hour, a product view, a one-line purchase), each sent
    alone, for a customer with ``prior`` events, a profile and a stored recommendation, from the requests the handler
    made and the sizes of the items they touched. The mean over ``events`` events of each kind counts the writes a
    store spreads over many events (moments gathered, then written to their months together)."""
    from kairos.core.config import Settings

    cfg = Settings.from_env(rt.dep.function_environment("ApiFunction"))
    ddb = rt.session.client("dynamodb")
    cid = f"cap-{prior}"
    profile = {
        "timezone": "Europe/London",
        "contact": {"email": f"{cid}@example.com"},
        "consent": {"email": True},
        "attributes": {"first_name": "Ana", "tier": "gold"},
    }
    rt.http("PUT", f"/v1/customers/{cid}", {**headers, "Content-Type": "application/json"}, json.dumps(profile))
    history = make_events(prior, 1, cid, rng)
    for ev in history:
        ev["customer_id"] = cid
    for i in range(0, prior, 500):
        body = json.dumps({"events": history[i : i + 500]})
        assert rt.invoke("ApiFunction", _apigw_event(body, headers))["statusCode"] == 200
    # A recommendation as scoring stores it: 168 hour scores, next products, channel ranking.
    rec = {
        "hour_scores": [round(rng.random(), 6) for _ in range(168)],
        "best_hour_of_week": 42,
        "next_products": [{"product_id": f"P{i}", "score": round(rng.random(), 6)} for i in range(10)],
        "channel_ranking": ["email", "push", "sms", "messenger"],
        "model_version": "bench",
        "confidence": 0.8,
        "scored_at": datetime.now(UTC).isoformat(),
    }
    from kairos.customers.adapters.dynamo import DynamoStore

    DynamoStore(cfg.events_table, cfg.customers_table, client=ddb).put_recommendation(cid, rec)
    used = {datetime.fromisoformat(e["timestamp"]).replace(minute=0, second=0, microsecond=0) for e in history}
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    free = (top - timedelta(hours=k) for k in range(24 * 59))
    out: dict[str, float] = {}
    for kind in KINDS:
        wcu = rcu = 0.0
        for n in range(events):
            hour = next(h for h in free if h not in used)  # a session there starts a new engagement moment
            ev = {"event_id": f"{cid}-{kind}-{n}", "customer_id": cid, "type": kind, "timestamp": hour.isoformat()}
            if kind != "session":
                ev["product_id"] = f"P{rng.randrange(300)}"
            if kind == "purchase":
                ev["amount"] = 12.5
            before = _snapshot(ddb, cfg, cid)
            seen.clear()
            resp = rt.invoke("ApiFunction", _apigw_event(json.dumps({"events": [ev]}), headers))
            assert resp["statusCode"] == 200 and json.loads(resp["body"])["accepted"] == 1, resp
            w, r = billed(list(seen), before, _snapshot(ddb, cfg, cid))
            wcu, rcu = wcu + w, rcu + r
        out[kind], out[f"{kind}_rcu"] = wcu / events, rcu / events
    after = _snapshot(ddb, cfg, cid)
    out["item_kb"] = round(item_bytes(after[(cfg.customers_table, "")]) / 1024, 2)
    out["parts_kb"] = round(sum(item_bytes(i) for (t, sk), i in after.items() if sk.startswith("a#")) / 1024, 1)
    return out


def _apigw_event(body: str, headers: dict[str, str]) -> dict:
    return {
        "resource": "/v1/events",
        "path": "/v1/events",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {"resourcePath": "/v1/events", "httpMethod": "POST", "stage": "prod", "requestId": "bench"},
        "body": body,
        "isBase64Encoded": False,
    }


if __name__ == "__main__":
    main()
