"""Segments in time: what it costs to keep a "no purchase for 90 days" segment journey current without events.

On embedded AWS (the real template, the real timer function): ``--customers`` customers, each with one purchase
spread over the past year, then a win-back journey on entering the segment is activated. Measured from the
DynamoDB requests the timer makes:

- the activation scan (once per activation or change of the journey): every customer read once, a membership
  marker written for those in the segment or whom time will bring in;
- a day later: the timer looks again only at the customers whose 90th day came (their markers are due), not at
  everybody.

Capacity is counted per request by DynamoDB's rules for these items (a customer or marker read is one 4 KB
strongly consistent read, 1 RCU; a marker write is under 1 KB, 1 WCU; a scan page 0.5 RCU per 4 KB read;
a query of the wake index 1 RCU per shard), at on-demand prices ($0.25 per million RCU, $1.25 per million WCU).

    python bench/segments_in_time.py [--customers 2000]

The last line is the daily cost of keeping the segment current for 1 million customers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.client import BaseClient

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from kairos.core import timeutil  # noqa: E402
from kairos_local.embedded import auth_header, embedded_aws  # noqa: E402

RCU, WCU = 0.25 / 1e6, 1.25 / 1e6
CORE_KB = 0.6  # a customer's core item as a scan reads it (bench/ingest.py: 0.52-0.63 KB)


class Calls:
    """DynamoDB requests of the product's handlers, by operation and table, while counting."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.scanned = 0
        self.batch_rcu = 0.0
        self._real = BaseClient._make_api_call

    def __enter__(self) -> Calls:
        real, counts = self._real, self.counts

        def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
            out = real(client, operation, params)
            if client.meta.service_model.service_name == "dynamodb":
                tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
                key = (operation, ",".join(t.rsplit("-", 1)[-1] for t in tables))
                counts[key] = counts.get(key, 0) + 1
                if operation == "Scan":
                    self.scanned += len(out.get("Items", []))
                if operation == "BatchGetItem":
                    for req in params["RequestItems"].values():
                        self.batch_rcu += len(req["Keys"]) * (1 if req.get("ConsistentRead") else 0.5)
            return out

        BaseClient._make_api_call = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        BaseClient._make_api_call = self._real  # type: ignore[method-assign]

    def cost(self) -> tuple[float, float]:
        """(RCU, WCU) of the requests counted."""
        rcu = wcu = 0.0
        for (op, _), n in self.counts.items():
            if op in ("GetItem", "Query"):
                rcu += n
            elif op in ("PutItem", "UpdateItem", "DeleteItem"):
                wcu += n
        rcu += self.scanned * CORE_KB / 4 / 2 + self.batch_rcu
        return rcu, wcu

    def table(self) -> str:
        return ", ".join(f"{op} {table.removesuffix('Table')}: {n}" for (op, table), n in sorted(self.counts.items()))


def run(n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    timeutil.set_clock(lambda: now)
    try:
        with embedded_aws(api_key="bench") as rt:
            headers = {**auth_header(rt), "Content-Type": "application/json"}

            def call(method: str, path: str, body: Any = None) -> Any:
                resp = rt.http(method, path, headers, json.dumps(body) if body is not None else None)
                assert resp.status < 300, (path, resp.status, resp.body)
                return json.loads(resp.body) if resp.body else None

            days_ago = [rng.uniform(0, 365) for _ in range(n)]
            events = [
                {
                    "event_id": f"p{i}",
                    "customer_id": f"c{i:07d}",
                    "type": "purchase",
                    "timestamp": (now - timedelta(days=d)).isoformat(),
                    "amount": 10,
                }
                for i, d in enumerate(days_ago)
            ]
            for start in range(0, n, 500):
                assert call("POST", "/v1/events", {"events": events[start : start + 500]})["accepted"] > 0
            rt.pump_streams()
            call(
                "PUT",
                "/v1/segments/lapsed",
                {"filters": [{"field": "days_since_last_purchase", "op": "gte", "value": 90}]},
            )
            journey = {
                "name": "win back",
                "entry": {"segment": "lapsed", "on": "enter"},
                "reentry": {"mode": "once"},
                "start": "done",
                "nodes": {"done": {"type": "exit"}},
            }
            jid = call("POST", "/v1/journeys", journey)["journey_id"]
            call("POST", f"/v1/journeys/{jid}/status", {"status": "active"})
            # The activation scan: timer ticks until it is done.
            with Calls() as scan:
                ticks = 0
                while True:
                    out = rt.invoke("TimerFunction", {})
                    ticks += 1
                    if out.get("scanned", 0) == 0 or ticks > 100:
                        break
            past = sum(1 for d in days_ago if d >= 90)
            coming = sum(1 for d in days_ago if d < 90)
            # A day later: only the customers whose 90th day came are looked at.
            with Calls() as idle:  # what every tick costs with nothing due (the wake index, the active journeys)
                rt.invoke("TimerFunction", {})
            later = now + timedelta(days=1)
            timeutil.set_clock(lambda: later)
            with Calls() as day:
                out = rt.invoke("TimerFunction", {})
            due = sum(1 for d in days_ago if 89 <= d < 90)
            results = call("GET", f"/v1/journeys/{jid}/results")
            return {
                "customers": n,
                "lapsed": past,
                "coming": coming,
                "scan": scan,
                "ticks": ticks,
                "day": day,
                "idle": idle,
                "rechecked": out.get("segment_rechecked", 0),
                "entered_day": out.get("segment_entered", 0),
                "due": due,
                "entries": results["entries"],
            }
    finally:
        timeutil.set_clock(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    r = run(args.customers, args.seed)
    n = r["customers"]
    s_rcu, s_wcu = r["scan"].cost()
    d_rcu, d_wcu = r["day"].cost()
    scan_per = (s_rcu * RCU + s_wcu * WCU) / n
    print(f"customers {n}: {r['lapsed']} past day 90 at activation, {r['coming']} still to reach it")
    print(f"activation scan ({r['ticks']} timer ticks): {r['scan'].table()}")
    print(
        f"  {s_rcu / n:.2f} RCU and {s_wcu / n:.2f} WCU per customer: ${scan_per * 1e6:.2f} per million customers, once"
    )
    i_rcu, i_wcu = r["idle"].cost()
    print(f"a tick with nothing due: {r['idle'].table()} ({i_rcu:.1f} RCU, every minute whatever the segments)")
    print(
        f"a day later: {r['rechecked']} customers looked at again (expected {r['due']}: those whose day 90 came), "
        f"{r['entered_day']} entered"
    )
    print(f"  {r['day'].table()}")
    looked = max(1, r["rechecked"])
    d_rcu, d_wcu = d_rcu - i_rcu, d_wcu - i_wcu
    per_recheck = (d_rcu * RCU + d_wcu * WCU) / looked
    print(
        f"  beyond the idle tick: {d_rcu / looked:.1f} RCU and {d_wcu / looked:.1f} WCU per customer looked at "
        f"(its entry included): ${per_recheck * 1e6:.2f} per million re-evaluations"
    )
    print(f"journey entries: {r['entries']} (each customer past day 90 once)")
    daily = 1_000_000 / 365 * per_recheck
    print(f"daily cost to keep a 90-day segment current for 1 million customers: ${daily:.4f}")


if __name__ == "__main__":
    main()
