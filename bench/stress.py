"""Stress the whole product at once, then check every store for what it lost, duplicated or brought back.

For ``--seconds`` (default 180) of real time, at once: ingest workers post batches of events (client retries of
whole batches, and events repeated inside a batch, included), some of them ``cart_abandon`` events that enter
customers into a triggered journey (an email, a two-hour delay the journey timer ends, a second email); the
product's own clock and schedules run the timer every simulated minute and the state machines the steps; and an
eraser erases customers (``DELETE /v1/customers/{id}``) one after the other while their events are still
arriving: a burst of theirs during the erasure, and afterwards events dated before it (which the product must
refuse). No event dated after an erasure is ever sent for an erased id, so anything of an erased customer found
at the end came back; it never legitimately belongs to a new customer of the same id.

Then it lets the product settle (streams delivered, executions ended) and checks:

- **lost**: an event the API accepted (not rejected in a 200 answer) with no item in the events table; a stored
  event not counted in its customer's ``event_counts``; a stored event missing from the archive bucket;
- **duplicated**: an event counted twice, or archived twice; a journey email the provider got twice;
- **resurrected**: anything of an erased customer in the customers table (its item; the tombstone is keyed by a
  hash), the events table, any archive object (events, messages, decisions), the message log, the journey paths,
  or an email the provider got after the erasure.

Its last line is ``lost N · duplicated N · resurrected N``; it exits 1 when any is not 0.

By default it starts the product in this process, as ``make serve`` does (:class:`kairos_local.server.LocalProduct`)
and reads the stores in its embedded AWS. ``--url`` and ``--key`` drive a running ``make serve`` instead; the
stores are then out of reach, and the checks are those the API and ``/_local/outbox`` answer (counts per customer,
erased customers gone, messages, provider sends).

    python bench/stress.py [--seconds 180] [--speed 3600] [--port 0] [--workers 3] [--seed 1]
    python bench/stress.py --url http://127.0.0.1:8787 --key kairos-local-dev-key
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JOURNEY = {
    "name": "Stress: abandoned cart",
    "entry": {"event": "cart_abandon", "where": [{"field": "amount", "op": "gt", "value": 0}]},
    "reentry": {"mode": "once"},
    "control_share": 0.0,
    "start": "first",
    "nodes": {
        "first": {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "Stress: your cart", "text": "Your cart is waiting."}},
            "next": "later",
        },
        "later": {"type": "delay", "hours": 2, "next": "second"},
        "second": {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "Stress: still there?", "text": "Your cart is still waiting."}},
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}
TYPES = ("session", "product_view", "purchase", "message_open", "cart_abandon")
WEIGHTS = (5, 4, 1, 1, 1)
BURST_S = 1.5  # real seconds an erased customer's events keep arriving, from just before the erasure
SHOWN = 5  # examples printed per finding
URL_SETTLE_S = 10.0  # real seconds a running make serve is left to finish what the load started, before the checks
log = logging.getLogger("stress")


class Api:
    """A client of the product's HTTP API (and its local endpoints)."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base.rstrip("/"), key
        self.statuses: Counter[int] = Counter()

    def call(self, method: str, path: str, body: Any = None, timeout_s: float = 120.0) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the product under test
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            status, raw = 599, json.dumps({"message": str(err)}).encode()
        self.statuses[status] += 1
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"message": raw[:200].decode(errors="replace")}

    def now(self) -> datetime:
        """The product's now (its clock runs faster than real time)."""
        status, doc = self.call("GET", "/_local/clock")
        return datetime.fromisoformat(doc["now"]) if status == 200 else datetime.now(UTC)


@dataclass
class Ledger:
    """What the load sent and what the product answered, shared by the workers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))  # cid -> id -> ev
    accepted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # taken in a 200 answer
    rejected: Counter[str] = field(default_factory=Counter)  # reason (its start) -> events
    batches: Counter[str] = field(default_factory=Counter)  # "200", "retry", "repeat"...
    erasing: dict[str, datetime] = field(default_factory=dict)  # cid -> product time its erasure began
    erased: dict[str, datetime] = field(default_factory=dict)  # cid -> product time its erasure answered 200
    sends_at_erasure: dict[str, int] = field(default_factory=dict)  # cid -> provider emails when it was erased
    failed_erasures: dict[str, str] = field(default_factory=dict)
    removed: Counter[str] = field(default_factory=Counter)  # what the erasures' reports say they removed
    erasure_s: list[float] = field(default_factory=list)  # real seconds each successful DELETE took

    def record(self, events: list[dict[str, Any]], status: int, doc: Any) -> None:
        with self.lock:
            for ev in events:
                self.sent[ev["customer_id"]].setdefault(ev["event_id"], ev)
            self.batches[str(status)] += 1
            if status != 200:
                return
            refused = {r["index"]: r for r in doc["rejected"]}
            for i, ev in enumerate(events):
                if i in refused:
                    self.rejected[refused[i]["reason"].split(" at ")[0][:60]] += 1
                else:
                    self.accepted[ev["customer_id"]].add(ev["event_id"])


class Load:
    """The workers: ingest, and the eraser with its bursts."""

    def __init__(self, api: Api, ledger: Ledger, now: Any, args: argparse.Namespace) -> None:
        self.api, self.ledger, self.now, self.args = api, ledger, now, args
        self.live = [f"s{i:03d}" for i in range(args.customers)]
        self.doomed = [f"x{i:03d}" for i in range(args.erase)]
        self.stop = threading.Event()
        self._seq = 0
        self._seq_lock = threading.Lock()

    def next_id(self, tag: str) -> str:
        with self._seq_lock:
            self._seq += 1
            return f"{tag}{self._seq:07d}"

    def event(self, cid: str, rng: random.Random, tag: str, now: datetime) -> dict[str, Any]:
        """An event of ``cid`` dated ``now`` (the product's) or earlier; for an erased id, before its erasure."""
        kind = rng.choices(TYPES, WEIGHTS)[0]
        latest = self.ledger.erasing.get(cid) or now
        ts = latest - timedelta(seconds=rng.uniform(60 if cid in self.ledger.erasing else 0, 2 * 86400))
        ev: dict[str, Any] = {"event_id": self.next_id(tag), "customer_id": cid, "type": kind}
        ev["timestamp"] = ts.isoformat()
        if kind in ("purchase", "product_view"):
            ev["product_id"] = f"P{rng.randrange(40)}"
        if kind in ("purchase", "cart_abandon"):
            ev["amount"] = round(rng.uniform(5, 200), 2)
        return ev

    def post(self, events: list[dict[str, Any]], attempts: int = 5) -> None:
        """Post a batch as a client would: retried whole after a failed answer."""
        for attempt in range(attempts):
            status, doc = self.api.call("POST", "/v1/events", {"events": events})
            self.ledger.record(events, status, doc)
            if status == 200:
                return
            self.ledger.batches["retry"] += 1
            time.sleep(0.05 * 2**attempt)

    def ingest(self, worker: int) -> None:
        rng = random.Random(self.args.seed * 100 + worker)
        previous: list[dict[str, Any]] = []
        while not self.stop.is_set():
            if previous and rng.random() < 0.15:  # a client that lost the answer sends the batch again
                self.ledger.batches["repeat"] += 1
                self.post(previous)
                continue
            customers, now = self.live + self.doomed, self.now()
            batch = [self.event(rng.choice(customers), rng, f"w{worker}-", now) for _ in range(rng.randint(1, 25))]
            if rng.random() < 0.1:  # the same event twice in one batch
                batch.append(dict(rng.choice(batch)))
            self.post(batch)
            previous = batch

    def erase_all(self) -> None:
        """Erase the doomed customers one after another over the run (from a tenth of it to nine tenths), each
        while its events arrive; an erasure that took longer than its share starts the next at once."""
        started = time.monotonic()
        gap = self.args.seconds * 0.8 / max(1, len(self.doomed))
        for i, cid in enumerate(self.doomed):
            self.stop.wait(max(0.0, started + self.args.seconds * 0.1 + i * gap - time.monotonic()))
            if self.stop.is_set():
                return
            self.erase(cid)

    def erase(self, cid: str) -> None:
        burst_stop = threading.Event()
        rng = random.Random(cid)

        def burst() -> None:  # the customer's events, still arriving while the erasure runs
            while not burst_stop.is_set():
                now = self.now()
                self.post([self.event(cid, rng, "b-", now) for _ in range(rng.randint(1, 5))], attempts=2)

        thread = threading.Thread(target=burst, name=f"burst-{cid}", daemon=True)
        thread.start()
        time.sleep(0.2)
        self.ledger.erasing[cid] = self.now()  # from here, only events dated before this are sent for cid
        for attempt in range(8):
            began = time.monotonic()
            status, doc = self.api.call("DELETE", f"/v1/customers/{cid}")
            if status == 200:
                self.ledger.erasure_s.append(time.monotonic() - began)
                self.ledger.erased[cid] = self.now()
                self.ledger.removed.update({k: v for k, v in doc.items() if isinstance(v, int) and v > 0})
                self.ledger.sends_at_erasure[cid] = len(provider_emails(self.api, cid))
                break
            self.ledger.failed_erasures[cid] = f"HTTP {status} {doc}"
            time.sleep(0.1 * 2**attempt)
        else:
            log.error("erasure of %s failed: %s", cid, self.ledger.failed_erasures[cid])
        if cid in self.ledger.erased:
            self.ledger.failed_erasures.pop(cid, None)
        time.sleep(BURST_S)
        burst_stop.set()
        thread.join()

    def run(self) -> None:
        threads = [
            threading.Thread(target=self.ingest, args=(i,), name=f"ingest-{i}") for i in range(self.args.workers)
        ]
        threads.append(threading.Thread(target=self.erase_all, name="eraser"))
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.args.seconds
        while time.monotonic() < deadline and all(t.is_alive() for t in threads[:-1]):
            time.sleep(1)
        self.stop.set()
        for t in threads:
            t.join()


def provider_emails(api: Api, cid: str | None = None) -> list[dict[str, Any]]:
    """The emails the embedded provider got (to ``cid`` only, when given)."""
    status, doc = api.call("GET", "/_local/outbox")
    emails = [m for m in (doc or {}).get("messages", []) if m["channel"] == "email"] if status == 200 else []
    return [m for m in emails if cid is None or f"{cid}@example.com" in m["to"]]


# ---------------------------------------------------------------------- checks


@dataclass
class Findings:
    """What the checks found, by kind, with a few examples each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    checked: Counter[str] = field(default_factory=Counter)  # what the checks read, so a 0 means something

    def add(self, kind: str, what: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.counts[kind] += n
        if len(self.examples[kind]) < SHOWN:
            self.examples[kind].append(f"{what}" + (f" (x{n})" if n > 1 else ""))


def check_outbox(api: Api, ledger: Ledger, found: Findings) -> None:
    """Journey emails the provider got twice, and emails to erased customers after their erasure."""
    emails = provider_emails(api)
    found.checked["provider emails"] = len(emails)
    by_step = Counter((to, m["subject"]) for m in emails for to in m["to"] if m["subject"].startswith("Stress:"))
    for (to, subject), n in by_step.items():
        found.add("duplicated", f"the provider got {subject!r} for {to} {n} times", n - 1)
    for cid in ledger.erased:
        # Counted from when the erasure answered: a send racing the erasure is no resurrection (its record in the
        # message log, if written after the purge, is one: check_stores).
        after = len([m for m in emails if f"{cid}@example.com" in m["to"]]) - ledger.sends_at_erasure[cid]
        found.add("resurrected", f"{cid}: emails sent after its erasure", after)


def check_api(api: Api, ledger: Ledger, found: Findings) -> None:
    """What the API answers: each live customer's counts against what it accepted; erased customers gone."""
    for cid, ids in sorted(ledger.accepted.items()):
        if cid in ledger.erasing:
            continue
        status, doc = api.call("GET", f"/v1/customers/{cid}")
        found.checked["customers read"] += 1
        counted = sum(((doc or {}).get("aggregates") or {}).get("event_counts", {}).values()) if status == 200 else 0
        # Events whose batch got no 200 may have been stored: counted between accepted and sent is fine.
        found.add("lost", f"{cid}: {len(ids)} events accepted, {counted} counted", len(ids) - counted)
        found.add(
            "duplicated",
            f"{cid}: {counted} events counted of {len(ledger.sent[cid])} sent",
            counted - len(ledger.sent[cid]),
        )
    for cid in ledger.erased:
        status, _ = api.call("GET", f"/v1/customers/{cid}")
        found.add("resurrected", f"{cid}: GET /v1/customers answers {status} after its erasure", int(status != 404))
        status, doc = api.call("GET", f"/v1/customers/{cid}/messages")
        found.add("resurrected", f"{cid}: messages in the log after its erasure", len((doc or {}).get("messages", [])))


def check_stores(product: Any, api: Api, ledger: Ledger, found: Findings) -> None:
    """Every store of the embedded deployment, read directly."""
    session, names = product.runtime.session, product.runtime.dep.physical
    ddb, s3 = session.client("dynamodb"), session.client("s3")

    def scan(table: str) -> list[dict[str, Any]]:
        items, kwargs = [], {"TableName": names[table]}
        while True:
            page = ddb.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    stored: dict[str, dict[str, str]] = defaultdict(dict)  # cid -> event id -> type
    events_items: Counter[str] = Counter()
    for item in scan("EventsTable"):
        cid, sk = item["customer_id"]["S"], item["sk"]["S"]
        events_items[cid] += 1
        if sk.startswith("e#"):
            stored[cid][sk[2:]] = item["type"]["S"]
    archived: dict[str, Counter[str]] = defaultdict(Counter)  # cid -> event id -> lines (events/ objects)
    archive_lines: Counter[str] = Counter()  # cid -> lines in any archive object
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=names["ArchiveBucket"]):
        for obj in page.get("Contents", []):
            for line in _lines(s3.get_object(Bucket=names["ArchiveBucket"], Key=obj["Key"])["Body"].read()):
                cid = line.get("customer_id")
                archive_lines[cid] += 1
                if obj["Key"].startswith("events/") and "event_id" in line:
                    archived[cid][line["event_id"]] += 1
    customers = {i["customer_id"]["S"] for i in scan("CustomersTable")}
    messages = Counter(i["customer_id"]["S"] for i in scan("MessagesTable") if "customer_id" in i)
    paths = Counter(i["customer_id"]["S"] for i in scan("JourneyPathsTable"))
    found.checked.update(
        {
            "stored events": sum(len(v) for v in stored.values()),
            "archive lines": sum(archive_lines.values()),
            "message records": sum(messages.values()),
            "journey paths": sum(paths.values()),
        }
    )

    for cid, ids in sorted(ledger.accepted.items()):
        if cid in ledger.erasing:
            continue
        missing = ids - stored[cid].keys()
        found.add("lost", f"{cid}: accepted but not in the events table: {sorted(missing)[:3]}", len(missing))
        status, doc = api.call("GET", f"/v1/customers/{cid}")
        counts = ((doc or {}).get("aggregates") or {}).get("event_counts", {}) if status == 200 else {}
        by_type = Counter(stored[cid].values())
        for kind in set(by_type) | set(counts):
            diff = counts.get(kind, 0) - by_type[kind]
            found.add("lost", f"{cid}: {by_type[kind]} {kind} events stored, {counts.get(kind, 0)} counted", -diff)
            found.add("duplicated", f"{cid}: {by_type[kind]} {kind} events stored, {counts.get(kind, 0)} counted", diff)
        unarchived = stored[cid].keys() - archived[cid].keys()
        found.add("lost", f"{cid}: stored but not archived: {sorted(unarchived)[:3]}", len(unarchived))
        twice = {e: n for e, n in archived[cid].items() if n > 1}
        found.add(
            "duplicated", f"{cid}: archived more than once: {sorted(twice)[:3]}", sum(twice.values()) - len(twice)
        )
    for cid in ledger.erased:
        found.add("resurrected", f"{cid}: its item in the customers table", int(cid in customers))
        found.add("resurrected", f"{cid}: items in the events table", events_items[cid])
        found.add("resurrected", f"{cid}: lines in archive objects", archive_lines[cid])
        found.add("resurrected", f"{cid}: records in the message log", messages[cid])
        found.add("resurrected", f"{cid}: paths through journeys", paths[cid])


def _lines(body: bytes) -> list[dict[str, Any]]:
    try:
        text = gzip.decompress(body).decode()
    except (OSError, EOFError):
        text = body.decode(errors="replace")
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


# ---------------------------------------------------------------------- the run


def settle(product: Any, quiet_s: float = 3.0, timeout_s: float = 120.0) -> None:
    """Wait until the streams have nothing left to deliver and no state machine execution runs."""
    from kairos_local.stepfunctions import _running_executions

    running = _running_executions(product.runtime)
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        busy = product.runtime.pump_streams() > 0 or running() > 0
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)
    log.warning("the product did not settle within %s s", timeout_s)


def prepare(api: Api, load: Load) -> str:
    """The customers' profiles (email, with consent) and the journey, active."""
    for cid in load.live + load.doomed:
        profile = {"timezone": "UTC", "contact": {"email": f"{cid}@example.com"}, "consent": {"email": True}}
        status, doc = api.call("PUT", f"/v1/customers/{cid}", profile)
        if status != 200:
            raise RuntimeError(f"PUT /v1/customers/{cid}: HTTP {status} {doc}")
    status, doc = api.call("POST", "/v1/journeys", JOURNEY)
    if status != 201:
        raise RuntimeError(f"POST /v1/journeys: HTTP {status} {doc}")
    journey_id = doc["journey_id"]
    status, doc = api.call("POST", f"/v1/journeys/{journey_id}/status", {"status": "active"})
    if status != 200:
        raise RuntimeError(f"activating the journey: HTTP {status} {doc}")
    return str(journey_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="real seconds of load (default 180)")
    parser.add_argument("--speed", type=float, default=3600.0, help="the product's clock speed (in-process)")
    parser.add_argument("--port", type=int, default=0, help="where the in-process product listens (0: any)")
    parser.add_argument("--url", help="a running make serve instead of an in-process product")
    parser.add_argument("--key", default="kairos-local-dev-key", help="its API key (with --url)")
    parser.add_argument("--workers", type=int, default=3, help="ingest workers")
    parser.add_argument("--customers", type=int, default=60, help="customers who stay")
    parser.add_argument("--erase", type=int, default=20, help="customers erased during the run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with ExitStack() as stack:
        product = None
        if args.url:
            api = Api(args.url, args.key)
            clock = api.now
        else:
            from kairos_local.server import LocalProduct

            product = stack.enter_context(
                LocalProduct(port=args.port, speed=args.speed, api_key="stress", score_at_start=False)
            )
            product.server.RequestHandlerClass.log_message = lambda *a, **k: None  # type: ignore[method-assign]
            api = Api(product.url, "stress")
            clock = product.clock.now
        ledger = Ledger()
        load = Load(api, ledger, clock, args)
        journey_id = prepare(api, load)
        started = time.monotonic()
        print(f"load for {args.seconds:g} s on {api.base} (journey {journey_id})...", flush=True)
        load.run()
        print(f"load done in {time.monotonic() - started:.0f} s; settling...", flush=True)
        if product is not None:
            settle(product)
        else:  # the stores are out of reach: give the streams and the steps under way a few seconds
            time.sleep(URL_SETTLE_S)
        found = Findings()
        check_outbox(api, ledger, found)
        if product is not None:
            check_stores(product, api, ledger, found)
            invocations = dict(sorted(product.runtime.invocations.items()))
            peaks = dict(sorted(product.runtime.peaks.items()))
        else:
            check_api(api, ledger, found)
            invocations, peaks = {}, {}
    sent = sum(len(v) for v in ledger.sent.values())
    accepted = sum(len(v) for v in ledger.accepted.values())
    print(f"events sent {sent} (distinct ids), accepted {accepted}; batches {dict(ledger.batches)}")
    print(f"rejected: {dict(ledger.rejected)}")
    print(f"HTTP answers: {dict(sorted(api.statuses.items()))}")
    print(f"erased {len(ledger.erased)} of {args.erase} customers; failed: {ledger.failed_erasures or 'none'}")
    took = sorted(ledger.erasure_s) or [0.0]
    print(f"the erasures took {took[len(took) // 2]:.1f} s (median), {took[-1]:.1f} s at most")
    print(f"the erasures removed {dict(ledger.removed)}")
    print(f"checked: {dict(found.checked)}")
    if invocations:
        print(f"invocations: {invocations}")
        print(f"most at once: {peaks}")
    for kind in ("lost", "duplicated", "resurrected"):
        for example in found.examples.get(kind, []):
            print(f"  {kind}: {example}")
    counts = found.counts
    print(f"lost {counts['lost']} · duplicated {counts['duplicated']} · resurrected {counts['resurrected']}")
    return 1 if sum(found.counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
