"""Ingestion benchmark: events/s through the real handler and DynamoDB requests per event, by batch size.

Runs on embedded AWS (moto), so absolute events/s measure our code plus moto, not DynamoDB; the requests
per event are what DynamoDB would bill and throttle on. Batch sizes are measured side by side in one run.

    python bench/ingest.py [--events 3000] [--customers 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()
    rng = random.Random(1)
    calls: Counter[str] = Counter()
    with embedded_aws(api_key="bench") as rt:
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
        headers = auth_header(rt)
        rows = []
        for rep in range(args.repeat):
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
            + ", ".join(
                f"batch {s}: {statistics.median(r[2] for r in rows if r[0] == s) / base:.1f}x" for s in (25, 500)
            )
        )


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
