"""Journey cost benchmark: Step Functions state transitions per message, a campaign and a triggered journey, both on
the one journey engine, and how fast a scheduled entry lets a large audience in.

Both run on embedded AWS with the template's real state machines in moto's interpreter and simulated time, for
the same scenario: each customer gets an email; a share of them opens it; the others get an SMS a day later.

- triggered: ``examples/journeys/abandoned_cart.json``, entered through one ``POST /v1/events`` batch of
  ``cart_abandon`` events (the trigger function takes the whole batch in one invocation);
- campaign: the same two channels as a campaign (launch, then one journey execution per customer).

Transitions are counted from the execution histories (every state entered is a billed transition, retries
included); a channel step is a message that went out. Standard workflows bill $0.025 per 1,000 transitions.

    python bench/journey_cost.py [--customers 100] [--open-share 0.3]

The last line is ``transitions per channel step: X`` for the triggered journey.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from kairos_local.embedded import auth_header, embedded_aws  # noqa: E402
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
PRICE_PER_TRANSITION = 0.025 / 1000


def transitions(sfn: Any, machine_arn: str) -> tuple[int, int]:
    """(executions, states entered) over every execution of a state machine."""
    runs, entered = 0, 0
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
        for ex in page["executions"]:
            runs += 1
            for hpage in sfn.get_paginator("get_execution_history").paginate(executionArn=ex["executionArn"]):
                entered += sum(1 for e in hpage["events"] if e["type"].endswith("StateEntered"))
    return runs, entered


def wait_all(sfn: Any, runner: Any, machine_arn: str) -> None:
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
        for ex in page["executions"]:
            runner.wait(ex["executionArn"], timeout_s=300)


def customers(rt: Any, headers: dict[str, str], n: int, tag: str) -> list[str]:
    ids = [f"{tag}{i}" for i in range(n)]
    for cid in ids:
        body = {
            "timezone": "Europe/London",
            "contact": {"email": f"{cid}@example.com", "phone": "+447700900123"},
            "consent": {"email": True, "sms": True},
        }
        assert rt.http("PUT", f"/v1/customers/{cid}", headers, json.dumps(body)).status == 200
    return ids


def sent(rt: Any, headers: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    """Every sent message of the customers, each with its customer's id."""
    out = []
    for cid in ids:
        msgs = json.loads(rt.http("GET", f"/v1/customers/{cid}/messages", headers, None).body)["messages"]
        out += [{**m, "customer_id": cid} for m in msgs if m["status"] == "sent"]
    return out


def open_events(msgs: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"open-{m['message_id']}",
            "customer_id": m["customer_id"],
            "type": "message_open",
            "channel": "email",
            "message_id": m["message_id"],
            "timestamp": at.isoformat(),
        }
        for m in msgs
    ]


def triggered(n: int, open_share: float, rng: random.Random) -> dict[str, Any]:
    with embedded_aws(api_key="bench") as rt:
        headers = auth_header(rt)
        clock = SimulatedClock(START)
        with local_stepfunctions(rt, clock) as runner:
            sfn = rt.session.client("stepfunctions")
            machine = rt.dep.physical["JourneyStepStateMachine"]
            body = json.loads((ROOT / "examples" / "journeys" / "abandoned_cart.json").read_text())
            jid = json.loads(rt.http("POST", "/v1/journeys", headers, json.dumps(body)).body)["journey_id"]
            rt.http("POST", f"/v1/journeys/{jid}/status", headers, json.dumps({"status": "active"}))
            ids = customers(rt, headers, n, "t")
            batch = [
                {
                    "event_id": f"cart-{cid}",
                    "customer_id": cid,
                    "type": "cart_abandon",
                    "amount": 5000,
                    "timestamp": clock.now().isoformat(),
                }
                for cid in ids
            ]
            calls = {"trigger": 0}
            invoke = rt.invoke

            def counting(lid: str, event: dict[str, Any]) -> Any:
                if lid == "TriggerFunction":
                    calls["trigger"] += 1
                return invoke(lid, event)

            rt.invoke = counting  # type: ignore[method-assign]
            t0 = time.perf_counter()
            _post_all(rt, headers, batch)
            with clock.busy():
                rt.pump_streams()
            wait_all(sfn, runner, machine)
            trigger_s = time.perf_counter() - t0
            rt.invoke = invoke  # type: ignore[method-assign]
            emails = sent(rt, headers, ids)
            opened = [m for m in emails if rng.random() < open_share]
            clock.advance(2 * 3600)
            events = open_events(opened, clock.now())
            _post_all(rt, headers, events)
            with clock.busy():
                rt.pump_streams()
            wait_all(sfn, runner, machine)
            clock.advance(23 * 3600)
            with clock.busy():
                rt.invoke("TimerFunction", {})
            wait_all(sfn, runner, machine)
            steps = len(sent(rt, headers, ids))
            runs, entered = transitions(sfn, machine)
            return {
                "customers": n,
                "messages": steps,
                "executions": runs,
                "transitions": entered,
                "trigger_invocations": calls["trigger"],
                "trigger_s": trigger_s,
                "open_executions_while_waiting": 0,
            }


def _post_all(rt: Any, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 500):
        resp = rt.http("POST", "/v1/events", headers, json.dumps({"events": events[start : start + 500]}))
        assert resp.status == 200, resp.body


def _campaign_body(mode: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "cart reminder",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "Your cart", "text": "..."}, "sms": {"text": "Your cart"}},
        "channels": ["email", "sms"],
        "wait_hours": [24],
        "expires_at": (START + timedelta(days=3)).isoformat(),
        "control_share": 0,
        "send_time": mode,
    }


def _tick(rt: Any, clock: Any) -> None:
    """One run of the timer: due steps start, scheduled entries go on."""
    with clock.busy():
        rt.invoke("TimerFunction", {})


def campaign(n: int, open_share: float, rng: random.Random) -> dict[str, Any]:
    """A campaign on the journey engine: its audience enters at the timer, the email goes, the SMS a day later
    to those who did not open, and each path ends when the offer expires."""
    with embedded_aws(api_key="bench") as rt:
        headers = auth_header(rt)
        clock = SimulatedClock(START)
        with local_stepfunctions(rt, clock) as runner:
            sfn = rt.session.client("stepfunctions")
            machine = rt.dep.physical["JourneyStepStateMachine"]
            ids = customers(rt, headers, n, "k")
            resp = rt.http("POST", "/v1/campaigns", headers, json.dumps(_campaign_body({"mode": "immediate"})))
            assert resp.status == 201, resp.body
            _tick(rt, clock)
            wait_all(sfn, runner, machine)
            emails = sent(rt, headers, ids)
            opened = [m for m in emails if rng.random() < open_share]
            clock.advance(3600)
            _post_all(rt, headers, open_events(opened, clock.now()))
            with clock.busy():
                rt.pump_streams()
            wait_all(sfn, runner, machine)
            for _ in range(3):  # the SMS a day later, then the end of every path at the expiry
                clock.advance(24 * 3600)
                _tick(rt, clock)
                wait_all(sfn, runner, machine)
            steps = len(sent(rt, headers, ids))
            runs, entered = transitions(sfn, machine)
            return {
                "customers": n,
                "messages": steps,
                "executions": runs,
                "transitions": entered,
                "open_executions_while_waiting": 0,
            }


def entry(n: int) -> dict[str, Any]:
    """A scheduled entry for ``n`` customers (a fixed local time, so nobody is due yet): one timer invocation
    after another until the entry is done, timed per customer."""
    from kairos.core.aws import to_item
    from kairos.journeys.adapters.journey_store import DynamoJourneyStore

    def profile(i: int) -> dict[str, Any]:
        return {"timezone": "Europe/London", "contact": {"email": f"e{i}@example.com"}, "consent": {"email": True}}

    with embedded_aws(api_key="bench") as rt:
        headers = auth_header(rt)
        ddb = rt.session.client("dynamodb")
        table = rt.dep.physical["CustomersTable"]
        # Customers written straight to the table (the API's profile path is measured elsewhere).
        for start in range(0, n, 25):
            ddb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": to_item({"customer_id": f"e{i:07d}", "profile": profile(i)})}}
                        for i in range(start, min(n, start + 25))
                    ]
                }
            )
        body = _campaign_body({"mode": "fixed", "local_time": "18:00"})
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()  # this entry runs on the wall clock
        resp = rt.http("POST", "/v1/campaigns", headers, json.dumps(body))
        assert resp.status == 201, resp.body
        cid = json.loads(resp.body)["campaign_id"]
        store = DynamoJourneyStore(rt.dep.physical["JourneysTable"], rt.dep.physical["JourneyPathsTable"], client=ddb)
        calls: dict[str, int] = {}
        real_call = BaseClient._make_api_call

        def counting(self: Any, operation: str, params: dict[str, Any]) -> Any:
            if self.meta.service_model.service_name == "dynamodb":
                calls[operation] = calls.get(operation, 0) + 1
            return real_call(self, operation, params)

        BaseClient._make_api_call = counting  # type: ignore[method-assign]
        t0, cpu0, ticks = time.perf_counter(), time.process_time(), 0
        try:
            while not (store.get_scan(cid) or {}).get("done") and ticks < 1000:
                rt.invoke("TimerFunction", {})
                ticks += 1
        finally:
            BaseClient._make_api_call = real_call  # type: ignore[method-assign]
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        counts = (store.get_scan(cid) or {}).get("counts") or {}
        return {
            "customers": n,
            "entered": counts.get("entered", 0),
            "ticks": ticks,
            "seconds": seconds,
            "cpu_s": cpu,
            "calls": calls,
        }


def entry_logic_cpu(n: int) -> float:
    """CPU seconds per customer of the entry's own work (filters, the first run, the path), on in-memory stores:
    what a timer spends per customer besides waiting on DynamoDB."""
    sys.path.insert(0, str(ROOT))
    from kairos.customers.domain import CustomerRecord
    from kairos.journeys.campaign_domain import CampaignIn
    from kairos.journeys.campaigns import create_campaign
    from kairos.journeys.domain import Journey
    from kairos.journeys.entrance import Entrance
    from kairos.journeys.entry import scan_entries
    from kairos.journeys.runner import StepDeps, first_nodes
    from tests.fakes import (
        InMemoryCustomerStore,
        InMemoryJourneyStore,
        InMemoryMessageLog,
        InMemorySegmentStore,
        RecordingJourneyStarter,
        RecordingTaskSink,
    )

    customers, journeys, segments = InMemoryCustomerStore(), InMemoryJourneyStore(), InMemorySegmentStore()
    profile = {"timezone": "Europe/London", "contact": {"email": "x@example.com"}, "consent": {"email": True}}
    for i in range(n):
        customers.customers[f"e{i:07d}"] = CustomerRecord(f"e{i:07d}", profile=profile, exists=True)
    body = _campaign_body({"mode": "optimized"})
    body["expires_at"] = (START + timedelta(days=3)).isoformat()
    create_campaign(CampaignIn.model_validate(body), journeys, segments, START)
    deps = StepDeps(customers, journeys, segments, InMemoryMessageLog(), {}, RecordingTaskSink())
    entrance = Entrance(
        customers, journeys, RecordingJourneyStarter(), first_run=lambda j, p, r, now: first_nodes(j, p, r, deps, now)
    )
    active = [Journey.from_doc(d) for d in journeys.active_journeys()]
    cpu0 = time.process_time()
    out = scan_entries(active, entrance, START)
    assert out["matched"] == n, out
    return (time.process_time() - cpu0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--open-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--audience", type=int, default=10_000, help="customers of the scheduled entry measured")
    args = parser.parse_args()
    rows = {
        "campaign journey": campaign(args.customers, args.open_share, random.Random(args.seed)),
        "triggered journey": triggered(args.customers, args.open_share, random.Random(args.seed)),
    }
    heads = ("customers", "messages", "executions", "transitions", "per step", "$/M steps")
    print(f"{'':20} " + " ".join(f"{h:>11}" for h in heads))
    for name, r in rows.items():
        per = r["transitions"] / max(1, r["messages"])
        print(
            f"{name:20} {r['customers']:>11} {r['messages']:>11} {r['executions']:>11} {r['transitions']:>11} "
            f"{per:>11.2f} {per * PRICE_PER_TRANSITION * 1e6:>11.2f}"
        )
    t = rows["triggered journey"]
    print(
        f"trigger path: {t['customers']} cart_abandon events in {t['trigger_invocations']} trigger invocation(s), "
        f"{t['trigger_s']:.1f} s to the last email (moto, in-process)"
    )
    big = entry(args.audience)
    per_ms = 1000 * big["seconds"] / max(1, big["customers"])
    cpu_ms = 1000 * entry_logic_cpu(args.audience)
    writes = sum(v for k, v in big["calls"].items() if k in ("PutItem", "UpdateItem", "TransactWriteItems"))
    reads = sum(v for k, v in big["calls"].items() if k in ("GetItem", "Query", "Scan", "BatchGetItem"))
    print(
        f"scheduled entry: {big['entered']} of {big['customers']} customers entered in {big['ticks']} timer "
        f"invocation(s), {big['seconds']:.1f} s ({per_ms:.2f} ms per customer on moto, in-process); "
        f"DynamoDB calls per customer: {writes / big['customers']:.3f} writes, {reads / big['customers']:.3f} reads "
        f"({', '.join(f'{k} {v}' for k, v in sorted(big['calls'].items()))})"
    )
    print(f"entry logic CPU per customer (in-memory stores): {cpu_ms:.3f} ms")
    print("open executions while customers wait: 0 (a path waits as a record, not as an execution)")
    c = rows["campaign journey"]
    print(f"campaign transitions per message: {c['transitions'] / max(1, c['messages']):.2f}")
    print(f"transitions per channel step: {t['transitions'] / max(1, t['messages']):.2f}")


if __name__ == "__main__":
    main()
