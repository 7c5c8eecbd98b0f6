"""``make demo``: Kairos on embedded AWS, fed with real shop history through its HTTP API.

It deploys ``template.yaml`` into moto, starts the local API on 127.0.0.1, and sends a sample of Online
Retail II customers (profiles, then their purchase history) through ``PUT /v1/customers`` and
``POST /v1/events`` exactly as an app would. The history is moved forward by whole weeks, keeping each
purchase's local weekday and hour, so that it falls inside the event retention.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import zone
from kairos_local.embedded import embedded_aws
from kairos_local.server import make_server
from kairos_local.template import ROOT

if TYPE_CHECKING:
    from pathlib import Path

DATA_DIR = ROOT.parent / "shared" / "data" / "online_retail_ii"
SAMPLE = ROOT / "tests" / "data"


def _progress(iterable: Any, **kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kw)


def load_sample(customers: int, seed: int, data_dir: Path = DATA_DIR) -> tuple[list[dict], list[dict]]:
    """Events and profiles of a random sample of customers, shifted forward by whole weeks to end yesterday."""
    from training.adapters import find_online_retail_files, online_retail_records

    files = find_online_retail_files([data_dir]) or find_online_retail_files([SAMPLE])
    if not files:
        raise SystemExit(f"no Online Retail II files under {data_dir} or {SAMPLE}")
    events, profiles = online_retail_records(files)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_customer[e["customer_id"]].append(e)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(by_customer), min(customers, len(by_customer))))
    last = max(datetime.fromisoformat(e["timestamp"]) for c in chosen for e in by_customer[c])
    weeks = (datetime.now(UTC) - last).days // 7
    london = zone("Europe/London")

    def shift(ts: str) -> str:
        # Keep the local wall-clock time (weekday and hour) and re-derive the UTC offset for the new date.
        local = datetime.fromisoformat(ts).astimezone(london).replace(tzinfo=None) + timedelta(weeks=weeks)
        return local.replace(tzinfo=london).isoformat()

    out = [{**e, "timestamp": shift(e["timestamp"])} for c in chosen for e in by_customer[c]]
    keep = set(chosen)
    return out, [p for p in profiles if p["customer_id"] in keep]


def _call(base: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - our own loopback server
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def run(customers: int, seed: int, port: int, serve: bool) -> dict[str, Any]:
    print(f"Loading Online Retail II and sampling {customers} customers...", file=sys.stderr)
    events, profiles = load_sample(customers, seed)
    key = os.environ.get("KAIROS_API_KEY") or "kairos-local-dev-key"
    with embedded_aws(api_key=key, parameters={"EventRetentionDays": "800"}) as runtime:
        server = make_server(runtime, "127.0.0.1", port)
        server.RequestHandlerClass.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        print(f"Kairos API listening on {base} (API key: {key})", file=sys.stderr)

        for p in _progress(profiles, desc="PUT profiles", unit="customer"):
            status, body = _call(
                base,
                key,
                "PUT",
                f"/v1/customers/{p['customer_id']}",
                {"timezone": p["timezone"], "attributes": p["attributes"], "consent": {"email": True}},
            )
            assert status == 200, body
        totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
        events.sort(key=lambda e: e["timestamp"])
        started = time.perf_counter()
        batches = [events[i : i + 500] for i in range(0, len(events), 500)]
        for batch in _progress(batches, desc="POST events", unit="batch"):
            status, body = _call(base, key, "POST", "/v1/events", {"events": batch})
            assert status == 200, body
            totals["accepted"] += body["accepted"]
            totals["duplicates"] += body["duplicates"]
            totals["rejected"] += len(body["rejected"])
        elapsed = time.perf_counter() - started
        # A client retry of the first batch: everything comes back as a duplicate.
        _, retry = _call(base, key, "POST", "/v1/events", {"events": batches[0]})

        s3 = runtime.session.client("s3")
        bucket = runtime.dep.physical["ArchiveBucket"]
        objects = sum(
            len(pg.get("Contents", []))
            for pg in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/")
        )
        busiest = max(profiles, key=lambda p: sum(1 for e in events if e["customer_id"] == p["customer_id"]))
        _, view = _call(base, key, "GET", f"/v1/customers/{busiest['customer_id']}")
        summary = {
            "customers": len(profiles),
            "events_sent": len(events),
            **totals,
            "retry_of_first_batch": retry,
            "events_per_second_over_http": round(len(events) / elapsed, 1),
            "archive_objects": objects,
            "sample_customer": busiest["customer_id"],
        }
        _print_summary(summary, view, base, key)
        if serve:
            print("Serving until Ctrl-C.", file=sys.stderr)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        server.shutdown()
        return summary


def _print_summary(summary: dict[str, Any], view: dict[str, Any], base: str, key: str) -> None:
    agg = view["aggregates"]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    top = sorted(range(168), key=lambda h: -agg["hour_of_week_counts"][h])[:3]
    print()
    print("Kairos local demo: ingestion")
    print("-" * 60)
    for k in (
        "customers",
        "events_sent",
        "accepted",
        "duplicates",
        "rejected",
        "events_per_second_over_http",
        "archive_objects",
    ):
        print(f"{k:<32}{summary[k]:>20}")
    r = summary["retry_of_first_batch"]
    print(f"{'retry of batch 1 (acc/dup)':<32}{str(r['accepted']) + '/' + str(r['duplicates']):>20}")
    print("-" * 60)
    print(
        f"customer {view['customer_id']} ({view['profile']['attributes'].get('country')}, "
        f"{agg['timezone']}): {agg['engagement_moments']} purchase moments, "
        f"total {agg['monetary_total']:.2f} GBP"
    )
    print(
        "  busiest local hours: "
        + ", ".join(f"{days[h // 24]} {h % 24:02d}:00 ({agg['hour_of_week_counts'][h]})" for h in top)
    )
    print()
    print("Try it:")
    print(f"  curl {base}/v1/openapi.json")
    print(f"  curl -H 'Authorization: Bearer {key}' {base}/v1/customers/{view['customer_id']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300, help="how many real customers to load")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8787")))
    parser.add_argument("--serve", action="store_true", help="keep serving the API after the demo")
    args = parser.parse_args(argv)
    run(args.customers, args.seed, args.port, args.serve)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
