"""Promo codes and a content test, end to end against a running Kairos (``make serve``), checked from outside.

    make serve                                      # in one terminal
    python examples/promo_codes_and_variants.py     # in another: a few minutes for 1,000 customers

1. uploads 1,200 codes to a pool (``PUT /v1/promo-pools/{name}/codes``) with a low-water mark of 300;
2. saves a journey entered on the shop's own ``promo_requested`` event whose email node has two variants
   (two subject lines, weights 1:1) and takes a code of the pool for each path;
3. makes ``--customers`` customers (1,000) and posts all their events at once from 8 threads, so the entries
   and their code takes run concurrently;
4. reads every email from the local outbox (``GET /_local/outbox``): one per customer, each with a code, no
   code twice, and the pool's counts agree (1,000 taken, 200 left);
5. opens a third of variant A's emails and a tenth of B's, then reads the journey's results: sends, opens and
   open rates with 95% intervals per variant, and promotes the better one by hand.

It exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import sys
import time

from kairos_client import Api

CODE = re.compile(r"code (\S+) ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8787")
    parser.add_argument("--key", default="kairos-local-dev-key")
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args(argv)
    api, n, run = Api(args.api, args.key, timeout_s=120), args.customers, str(int(time.time()))
    pool, domain = f"spring-{run}", f"run{run}.example.com"
    checks: dict[str, bool] = {}

    # 1. The pool.
    codes = [f"SPRING-{run[-4:]}-{i:05d}" for i in range(n + n // 5)]
    added = api.call("PUT", f"/v1/promo-pools/{pool}/codes", {"codes": codes, "low_water": 300})
    print("pool:", added)

    # 2. The journey: an email with two subject lines, a code per path.
    text = "Your code {{ promo.code }} takes 20% off until Sunday."
    journey = {
        "name": f"Spring promo {run}",
        "entry": {"event": "promo_requested", "where": [{"field": "properties.run", "op": "eq", "value": run}]},
        "reentry": {"mode": "once"},
        "topic": "offers",
        "start": "mail",
        "nodes": {
            "mail": {
                "type": "message",
                "channel": "email",
                "promo_pool": pool,
                "variants": [
                    {"name": "A", "content": {"email": {"subject": "20% off, just for you", "text": text}}},
                    {"name": "B", "content": {"email": {"subject": "Spring is here", "text": text}}},
                ],
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    }
    jid = api.call("POST", "/v1/journeys", journey)["journey_id"]
    api.call("POST", f"/v1/journeys/{jid}/status", {"status": "active"})

    # 3. The customers, then all their events at once. Email may go at night: no quiet hours to wait for.
    ids = [f"promo-{run}-{i:05d}" for i in range(n)]
    profile = {"timezone": "Europe/London", "consent": {"email": True}}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool_ex:
        list(
            pool_ex.map(
                lambda c: api.call("PUT", f"/v1/customers/{c}", {**profile, "contact": {"email": f"{c}@{domain}"}}),
                ids,
            )
        )
        now = api.now().isoformat()
        batches = [ids[i : i + 25] for i in range(0, n, 25)]
        events = [
            [
                {
                    "event_id": f"req-{c}",
                    "customer_id": c,
                    "type": "promo_requested",
                    "timestamp": now,
                    "properties": {"run": run},
                }
                for c in batch
            ]
            for batch in batches
        ]
        list(pool_ex.map(lambda evs: api.call("POST", "/v1/events", {"events": evs}), events))
    print(f"{n} customers and their events in {time.monotonic() - t0:.1f} s")

    # 4. The outbox.
    deadline = time.monotonic() + max(120.0, n * 0.5)
    while True:
        mails = [m for m in api.outbox() if m["to"][0].endswith(domain)]
        if len(mails) >= n or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"{len(mails)} emails after {time.monotonic() - t0:.1f} s")
    got = {m["to"][0].split("@")[0]: CODE.search(m["text"] or "") for m in mails}
    found = {c: m.group(1) for c, m in got.items() if m}
    counts = api.call("GET", f"/v1/promo-pools/{pool}")
    print("pool now:", counts)
    checks["one email per customer"] = len(mails) == n and set(got) == set(ids)
    checks["every email carries a code of the pool"] = len(found) == n and set(found.values()) <= set(codes)
    checks["no code went to two customers"] = len(set(found.values())) == len(found)
    checks["the pool counts what it gave"] = counts["taken"] == n and counts["available"] == len(codes) - n

    # 5. Opens: a third of A's, a tenth of B's; then the results per variant.
    subjects = {"20% off, just for you": "A", "Spring is here": "B"}
    messages: dict[str, str] = {}
    for c in ids:
        for m in api.call("GET", f"/v1/customers/{c}/messages")["messages"]:
            if m["campaign_id"] == jid and m["status"] == "sent":
                messages[c] = m["message_id"]
    by_variant = {m["to"][0].split("@")[0]: subjects.get(m["subject"]) for m in mails}  # what the customer saw
    opens = []
    for i, c in enumerate(sorted(messages)):
        share = 3 if by_variant.get(c) == "A" else 10
        if i % share == 0:
            opens.append(
                {
                    "event_id": f"open-{c}",
                    "customer_id": c,
                    "type": "message_open",
                    "channel": "email",
                    "message_id": messages[c],
                    "timestamp": api.now().isoformat(),
                }
            )
    for i in range(0, len(opens), 500):
        api.call("POST", "/v1/events", {"events": opens[i : i + 500]})
    results = api.call("GET", f"/v1/journeys/{jid}/results")
    node = results["variants_by_node"]["mail"]
    print(json.dumps(node, indent=2))
    a, b = node["variants"]["A"], node["variants"]["B"]
    checks["results count every send per variant"] = a["sends"] + b["sends"] == n and min(a["sends"], b["sends"]) > 0
    checks["results count the opens per variant"] = a["opens"] + b["opens"] == len(opens)
    checks["each rate has a 95% interval around it"] = all(
        v["open_rate"]["low"] <= v["open_rate"]["value"] <= v["open_rate"]["high"] for v in (a, b)
    )
    best = "A" if a["open_rate"]["value"] > b["open_rate"]["value"] else "B"
    promoted = api.call("POST", f"/v1/journeys/{jid}/nodes/mail/promote", {"variant": best})
    checks["the better variant can be promoted"] = promoted["promoted"] == {"mail": best} and best == "A"
    print(f"finished at {api.now():%Y-%m-%d %H:%M:%S} product time")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
