"""A campaign to a saved segment, end to end against a running Kairos (``make serve``), as a client would do it.

50 consenting customers in the segment ``gold`` (and 5 outside it) get a campaign: an email at each customer's
best hour within a day, then an SMS a day later to those who did not open it, with 30% held out as control.
A third of the emailed customers open their email; one control customer buys. When the offer has expired,
the campaign's results must count the sends, the opens and the control group's purchase.

    KAIROS_CLOCK_SPEED=3600 make serve          # up to an hour of product time per second
    python examples/campaign_to_a_segment.py    # a few minutes at that speed

The local clock stands still while the work due at a time is handled, so at any speed each email goes within
the minute of the hour chosen for its customer (the journey timer runs every minute), however long the sends
take in real time. The script reads the product's clock (``GET /_local/clock``) to stamp its events, so it
works at any speed; against a deployed stack give ``--api`` and ``--key`` (the wall clock is used there). It
exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import kairos_client

GOLD, OTHERS, CONTROL_SHARE = 50, 5, 0.3


class Api(kairos_client.Api):
    def emails(self, customer_id: str, campaign_id: str) -> list[dict[str, Any]]:
        msgs = self.call("GET", f"/v1/customers/{customer_id}/messages")["messages"]
        return [m for m in msgs if m.get("campaign_id") == campaign_id]


def lateness(message: dict[str, Any]) -> timedelta | None:
    """How long after the hour the model chose for this customer the message went (``None``: no hour chosen)."""
    if message.get("policy") not in ("optimized", "explore") or not message.get("send_at"):
        return None
    sent, decided = (datetime.fromisoformat(message[k].replace("Z", "+00:00")) for k in ("sent_at", "send_at"))
    return sent - decided


def wait_until(api: Api, when: datetime, poll_s: float = 1.0) -> None:
    while api.now() < when:
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8787")
    parser.add_argument("--key", default="kairos-local-dev-key")
    args = parser.parse_args(argv)
    api = Api(args.api, args.key)
    run = f"{int(time.time())}"
    start = api.now()

    # 1. The customers: 50 in the segment, 5 outside it, all with email and SMS consent.
    ids = [f"gold-{run}-{i:02d}" for i in range(GOLD)] + [f"other-{run}-{i}" for i in range(OTHERS)]
    for cid in ids:
        tier = "gold" if cid.startswith("gold") else "silver"
        profile = {
            "timezone": "Europe/London",
            "contact": {"email": f"{cid}@example.com", "phone": "+447700900123"},
            "consent": {"email": True, "sms": True},
            "attributes": {"first_name": "Ana", "tier": tier, "run": run},
        }
        api.call("PUT", f"/v1/customers/{cid}", profile)
    segment = f"gold-{run}"
    filters = [
        {"field": "attributes.tier", "op": "eq", "value": "gold"},
        {"field": "attributes.run", "op": "eq", "value": run},
    ]
    api.call("PUT", f"/v1/segments/{segment}", {"filters": filters})

    # 2. The campaign: best hour within a day, email then SMS a day later, 30% control, three days to act.
    campaign = api.call(
        "POST",
        "/v1/campaigns",
        {
            "name": f"gold offer {run}",
            "audience": {"segment": segment},
            "messages": {
                "email": {"subject": "{{first_name}}, something for you", "text": "Hello {{first_name}}"},
                "sms": {"text": "Something for you. Reply STOP to opt out"},
            },
            "channels": ["email", "sms"],
            "wait_hours": [24],
            "control_share": CONTROL_SHARE,
            "send_time": {"mode": "optimized", "within_hours": 24},
            "starts_at": start.isoformat(),
            "expires_at": (start + timedelta(days=3)).isoformat(),
            "attribution_days": 3,
        },
    )
    cid = campaign["campaign_id"]
    print(f"campaign {cid}: {campaign['status']}")

    # 3. The audience enters at the timer's next run; everybody emailed within the day.
    while (api.call("GET", f"/v1/campaigns/{cid}").get("launch") or {}).get("scheduled") is None:
        time.sleep(0.5)
    launch = api.call("GET", f"/v1/campaigns/{cid}")["launch"]
    print(f"audience entered: {launch}")
    # A third of the customers open their email the moment it arrives (before any SMS could be due).
    emails: dict[str, dict[str, Any]] = {}
    openers: list[str] = []
    while api.now() < start + timedelta(hours=25):
        for c in ids:
            if c in emails:
                continue
            for m in api.emails(c, cid):
                if m["channel"] != "email":
                    continue
                emails[c] = m
                if ids.index(c) % 3 == 0:
                    openers.append(c)
                    event = {"event_id": f"open-{c}", "customer_id": c, "type": "message_open", "channel": "email"}
                    event |= {"message_id": m["message_id"], "timestamp": api.now().isoformat()}
                    api.call("POST", "/v1/events", {"events": [event]})
        time.sleep(0.5)
    print(f"{len(emails)} emails sent, {len(openers)} opened")
    control = sorted(c for c in ids[:GOLD] if c not in emails)
    buy = {"event_id": f"buy-{control[0]}", "customer_id": control[0], "type": "purchase", "amount": 42.0}
    api.call("POST", "/v1/events", {"events": [buy | {"timestamp": api.now().isoformat()}]})

    # 4. After the expiry: the results.
    wait_until(api, start + timedelta(days=3, hours=1))
    texted = sorted(c for c in ids for m in api.emails(c, cid) if m["channel"] == "sms")
    results = api.call("GET", f"/v1/campaigns/{cid}/results")
    steps = {s["channel"]: s for s in results["steps"]}
    print(json.dumps({k: results[k] for k in ("status", "audience", "treatment", "control", "uplift")}, indent=2))
    print(json.dumps(results["steps"], indent=2))
    # The timer starts the steps due every minute, and the local clock stands while they run: within two minutes.
    tolerance = timedelta(minutes=2)
    late = sorted(d for d in (lateness(m) for m in emails.values()) if d is not None)
    if late:
        print(f"emails after the chosen hour: median {late[len(late) // 2]}, at most {late[-1]} (allowed {tolerance})")
    checks = {
        "one email per treated customer": len(emails) == launch["scheduled"] and len(emails) > 0,
        "nobody outside the segment messaged": not any(c in emails for c in ids[GOLD:]),
        "the control group held out": len(control) == GOLD - launch["scheduled"] and control != [],
        "an SMS to each who did not open, once": texted == sorted(set(emails) - set(openers)),
        "each email at the hour chosen for the customer": len(late) == len(emails)
        and all(timedelta(0) <= d < tolerance for d in late),
        "results count the emails": steps["email"]["sent"] == len(emails),
        "results count the opens": steps["email"]["opened"] == len(openers),
        "results count the SMS": steps.get("sms", {}).get("sent", 0) == len(texted),
        "results count the control purchase": results["control"]["converted"] == 1,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
