"""The closed loop on embedded AWS: ingest, train, score, launch three arms, respond, retrain, launch again.

``make demo`` runs this. Everything goes through the deployed template in moto: the HTTP API (a real
socket on 127.0.0.1), the archive stream, the models bucket, the score-all, launch and journey state
machines (moto's ASL interpreter, Lambdas in-process, time compressed by a discrete-event clock) and the
send function with its providers (SES v2, SNS, End User Messaging SMS through SNS, all in moto).

The simulated population (``kairos_local.simulation``) is drawn from real Online Retail II customers. Each
round:

1. the model is trained on the archive (``s3://<archive>/events/``) with ``training`` and published to the
   models bucket; the score-all state machine scores every customer;
2. two campaigns start through ``POST /v1/campaigns``: arm *optimized* (Kairos picks each customer's hour;
   its campaign holds out a third of its audience as the *control* group) and arm *fixed* (everyone at the
   population's best local hour). The arms are profile attributes drawn at random;
3. journeys run: email, then push, then SMS, 24 h apart, until the customer engages or the offer expires;
   every ``sent`` message is read by the simulated customer, who may open, click and buy at the simulated
   minute they would (``respond``), through ``POST /v1/events``; organic purchases happen too, for every arm;
4. engagement by arm is read back from the stores (message log, events) and compared.

After round 1 the model is retrained on the archive, which now holds the campaign's opens, clicks and
purchases, and round 2 runs the same arms again.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.core.timeutil import utc_iso
from kairos_local.embedded import embedded_aws
from kairos_local.server import make_server
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions

if TYPE_CHECKING:
    from kairos_local.runtime import LocalRuntime
    from kairos_local.simulation import SimCustomer
    from kairos_local.stepfunctions import StepFunctionsRunner

CHANNELS = ("email", "push", "sms")
ARMS = ("optimized", "fixed", "control")
HISTORY_WEEKS = 26
CAMPAIGN_DAYS = 5
ROUND_DAYS = 7  # rounds start a week apart, on the same weekday
DEFAULT_START = datetime(2026, 12, 2, 8, tzinfo=UTC)  # a Wednesday; campaigns launch an hour later
WITHIN_HOURS = 72  # how far ahead the optimized arm looks for each customer's best hour
QUIET = ("21:00", "08:00")


def _progress(iterable: Any = None, **kw: Any) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, leave=False, **kw)


@dataclass
class Api:
    """A client of the local HTTP API."""

    base: str
    key: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:  # noqa: S310 - our own loopback server
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, out = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {out}")
        return out

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, int]:
        totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
        for i in range(0, len(events), 500):
            out = self.ok("POST", "/v1/events", {"events": events[i : i + 500]})
            totals["accepted"] += out["accepted"]
            totals["duplicates"] += out["duplicates"]
            totals["rejected"] += len(out["rejected"])
        return totals


@dataclass
class Config:
    customers: int = 150
    seed: int = 7
    rounds: int = 2
    out: Path = Path("out/demo")
    time_rounds: int = 150
    port: int = 0
    # Simulated "now" of the first round (``None``: the current hour). Fixed by default, because the launch
    # weekday matters: a fresh clone prints the table docs/running-locally.md shows.
    start: datetime | None = DEFAULT_START


@dataclass
class Loop:
    """State of one demo run."""

    cfg: Config
    runtime: LocalRuntime
    sfn: StepFunctionsRunner
    clock: SimulatedClock
    api: Api
    population: list[SimCustomer]
    responses: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def by_id(self) -> dict[str, SimCustomer]:
        return {c.customer_id: c for c in self.population}


def profile_body(c: SimCustomer, arm_group: str) -> dict[str, Any]:
    profile = dict(c.profile)
    attributes = {**(profile.get("attributes") or {}), "demo_group": arm_group}
    return {**profile, "timezone": c.timezone, "attributes": attributes}


def _arm_groups(population: list[SimCustomer], seed: int) -> dict[str, str]:
    """Group ``a`` (60%: optimized, whose campaign holds a third out as control) or ``b`` (40%: fixed)."""
    rng = np.random.default_rng(seed + 1)
    return {c.customer_id: ("a" if rng.random() < 0.6 else "b") for c in population}


def train_and_publish(loop: Loop, as_of: datetime, version: str) -> dict[str, Any]:
    """Train on the S3 archive as a data scientist would, publish to the models bucket, score everyone."""
    from kairos.models.adapters.model_store import publish_model
    from training.fit import TrainConfig, fit
    from training.history import History
    from training.io import load_table, message_training_rows, read_messages
    from training.response import learn_from_messages

    rt = loop.runtime
    rt.pump_streams()
    s3 = rt.session.client("s3")
    archive = rt.dep.physical["ArchiveBucket"]
    with tempfile.TemporaryDirectory(prefix="kairos-demo-") as tmp:
        profiles = Path(tmp) / "profiles.jsonl"
        profiles.write_text(
            "".join(
                json.dumps(
                    {"customer_id": c.customer_id, "timezone": c.timezone, "attributes": c.profile["attributes"]}
                )
                + "\n"
                for c in loop.population
            )
        )
        t0 = time.perf_counter()
        data = load_table([f"s3://{archive}/events/"], str(profiles), s3_client=s3)
        history = History(data.table, data.profiles)
        cfg = TrainConfig(time_rounds=loop.cfg.time_rounds, product_rounds=80, max_snapshots=6)
        model = fit(history, as_of, cfg)
        # The loop closes here: the sends of earlier rounds and their opens teach the channel response
        # rates and decision windows, and say what other send-time policies would have achieved.
        messages = read_messages([f"s3://{archive}/messages/"], s3_client=s3)
        learn_from_messages(model, message_training_rows(messages, history.message_events()), history)
        model_dir = Path(tmp) / "model"
        model.save(model_dir)
        publish_model(model_dir, rt.dep.physical["ModelsBucket"], version, client=s3)
        trained_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    desc = loop.sfn.run("ScoreAllStateMachine", {"total_shards": 2}, timeout_s=600)
    if desc["status"] != "SUCCEEDED":
        raise RuntimeError(f"score-all ended {desc['status']}: {desc.get('error')} {desc.get('cause')}")
    return {
        "events": len(data.table),
        "train_seconds": round(trained_s, 1),
        "score_seconds": round(time.perf_counter() - t0, 1),
        "model_version": model.version,
        "population_best_hour": int(np.argmax(_day_window_hod(model.priors.population_dist))),
        "calibration": model.metadata.get("calibration"),
        "off_policy": model.metadata.get("off_policy"),
    }


def _day_window_hod(dist168: np.ndarray) -> np.ndarray:
    hod = np.asarray(dist168).reshape(7, 24).sum(axis=0)
    win = hod.copy()
    win[1:] += hod[:-1]
    win[:-1] += hod[1:]
    return win


def campaign_body(name: str, group: str, mode: str, start: datetime, fixed_hour: int, control: float) -> dict:
    # A 5-day offer with three steps a day apart: the optimizer may wait up to 3 days for a customer's best hour
    # and still leave room for both follow-ups (the product default looks 24 hours ahead).
    send_time: dict[str, Any] = {"mode": mode, "explore_share": 0.1, "within_hours": WITHIN_HOURS}
    if mode == "fixed":
        send_time = {"mode": "fixed", "local_time": f"{fixed_hour:02d}:00"}
    return {
        "name": name,
        "audience": {"filters": [{"field": "attributes.demo_group", "op": "eq", "value": group}]},
        "messages": {
            "email": {
                "subject": "{{first_name}}, something for you",
                "text": "Hello {{first_name}}, we picked {{next_product}} for you.",
            },
            "push": {"title": "Picked for you", "body": "{{next_product}} is waiting"},
            "sms": {"text": "Kairos demo: {{next_product}} for you. Reply STOP to opt out."},
        },
        "channels": list(CHANNELS),
        "wait_hours": [24.0],
        "attribution_days": CAMPAIGN_DAYS,  # the product's results measure purchases in the round's window
        "starts_at": utc_iso(start),
        "expires_at": utc_iso(start + timedelta(days=CAMPAIGN_DAYS)),
        "quiet_hours": {"start": QUIET[0], "end": QUIET[1]},
        "frequency_cap": {"max_messages": 3, "per_days": 7},
        "control_share": control,
        "send_time": send_time,
    }


def _install_responder(loop: Loop) -> None:
    """Simulated customers read what the send function sent, at the simulated minute it arrived."""
    from kairos.messaging.adapters.messages import DynamoMessageLog
    from kairos_local.simulation import respond

    rt = loop.runtime
    original = rt.invoke
    by_id = loop.by_id
    log = DynamoMessageLog(
        rt.dep.physical["MessagesTable"], rt.dep.physical["ArchiveBucket"], dynamodb=rt.session.client("dynamodb")
    )
    seen: set[str] = set()

    def invoke(logical_id: str, event: dict[str, Any]) -> Any:
        result = original(logical_id, event)
        cust = by_id.get(str(event.get("customer_id")))
        if logical_id != "AdvanceFunction" or cust is None:
            return result
        # What this step sent: the customer's messages sent and not answered yet.
        for m in log.for_customer(cust.customer_id):
            if m.get("status") != "sent" or m["message_id"] in seen:
                continue
            seen.add(m["message_id"])
            answers = respond(cust, m["message_id"], m["channel"], loop.clock.now(), loop.cfg.seed)
            with loop.lock:
                loop.responses += [
                    {**a, "step": m.get("step"), "channel": m["channel"], "campaign_id": m["campaign_id"]}
                    for a in answers
                ]
            for a in answers:
                when = datetime.fromisoformat(a["timestamp"])
                loop.clock.call_at(when, lambda a=a: loop.api.ok("POST", "/v1/events", {"events": [a]}))
        return result

    rt.invoke = invoke  # type: ignore[method-assign]


def _schedule_organic(loop: Loop, start: datetime, end: datetime, seed: int) -> list[dict[str, Any]]:
    """Organic activity of every customer during the campaign, posted at the simulated time it happens."""
    from kairos_local.simulation import history_events

    events = history_events(loop.population, start, end, seed)
    by_hour: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        # By UTC hour (timestamps carry each customer's own offset), posted when the batch's last one has
        # happened: an event from the future would be refused.
        at = datetime.fromisoformat(e["timestamp"]).astimezone(UTC)
        by_hour[at.replace(minute=0, second=0, microsecond=0)].append(e)
    for batch in by_hour.values():
        when = max(datetime.fromisoformat(e["timestamp"]) for e in batch)
        loop.clock.call_at(when, lambda b=batch: loop.api.post_events(b))
    return events


TIMER_MINUTES = 15  # EventBridge runs the timer every minute; every 15 simulated minutes keeps the demo quick


def _schedule_timer(loop: Loop, start: datetime, end: datetime) -> None:
    """The journey timer on the simulated clock: entries (the campaigns' audiences) and due steps."""
    rt = loop.runtime

    def tick(at: datetime) -> None:
        rt.pump_streams()  # the trigger wakes paths an open or a purchase concerns; the archive keeps events
        rt.invoke("TimerFunction", {})
        following = at + timedelta(minutes=TIMER_MINUTES)
        if following <= end:
            loop.clock.call_at(following, lambda: tick(following))

    loop.clock.call_at(start, lambda: tick(start))


def _running(loop: Loop) -> int:
    sfn = loop.runtime.session.client("stepfunctions")
    total = 0
    for lid in ("JourneyStepStateMachine",):
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=loop.runtime.dep.physical[lid], statusFilter="RUNNING"
        )
        total += sum(len(p["executions"]) for p in pages)
    return total


def run_round(loop: Loop, round_no: int, start: datetime, fixed_hour: int) -> dict[str, Any]:
    """Launch both campaigns at ``start``, run every journey to its end, and measure the arms."""
    api = loop.api
    opt = api.ok("POST", "/v1/campaigns", campaign_body(f"r{round_no} optimized", "a", "optimized", start, 0, 1 / 3))
    fixed = api.ok("POST", "/v1/campaigns", campaign_body(f"r{round_no} fixed", "b", "fixed", start, fixed_hour, 0.0))
    end = start + timedelta(days=CAMPAIGN_DAYS)
    organic = _schedule_organic(loop, start, end, loop.cfg.seed * 1000 + round_no)
    loop.clock.call_at(end, lambda: None)  # the clock always reaches the end of the campaign window
    _schedule_timer(loop, start, end + timedelta(hours=1))
    bar = _progress(total=CAMPAIGN_DAYS * 24, desc=f"round {round_no}: simulated hours", unit="h")
    t0 = time.perf_counter()
    while True:
        time.sleep(0.5)
        hours = int((loop.clock.now() - start).total_seconds() // 3600)
        bar.n = max(0, min(hours, CAMPAIGN_DAYS * 24))
        bar.refresh()
        if loop.clock.now() >= end and _running(loop) == 0:
            break
    bar.close()
    return {
        "campaigns": {"optimized": opt["campaign_id"], "fixed": fixed["campaign_id"]},
        "seconds": round(time.perf_counter() - t0, 1),
        **measure(loop, opt["campaign_id"], fixed["campaign_id"], start, end, organic),
        # What a marketer sees: the product's own results of each campaign, against its control group.
        "results": {
            "optimized": api.ok("GET", f"/v1/campaigns/{opt['campaign_id']}/results"),
            "fixed": api.ok("GET", f"/v1/campaigns/{fixed['campaign_id']}/results"),
        },
    }


def measure(
    loop: Loop, opt_id: str, fixed_id: str, start: datetime, end: datetime, organic: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per arm: customers, messaged, and the share that opened, clicked and purchased in the window."""
    from kairos_local.simulation import expected_open_probability, true_best_hour

    rt = loop.runtime
    window_oracle = window_oracle_factory(start)
    from kairos.journeys.adapters.journey_store import DynamoJourneyStore

    paths = DynamoJourneyStore(
        rt.dep.physical["JourneysTable"], rt.dep.physical["JourneyPathsTable"], client=rt.session.client("dynamodb")
    )
    # Each customer's path through either campaign: held out (control), or sent at the hour it decided.
    decisions: dict[str, dict[str, Any]] = {}
    arm_of = {}
    for campaign_id, arm in ((opt_id, "optimized"), (fixed_id, "fixed")):
        for p in paths.journey_paths(campaign_id):
            decided = list((p.get("decisions") or {}).values())
            decisions[p["customer_id"]] = {"decision": decided[0] if decided else None}
            arm_of[p["customer_id"]] = "control" if p.get("status") == "control" else arm
    with loop.lock:
        answers = [a for a in loop.responses if a["campaign_id"] in (opt_id, fixed_id)]
    opened = {a["customer_id"] for a in answers if a["type"] == "message_open"}
    clicked = {a["customer_id"] for a in answers if a["type"] == "message_click"}
    # Purchases in the round's window (a response may come after it), as the campaign's results count them.
    bought = {
        e["customer_id"]
        for e in [*answers, *organic]
        if e["type"] == "purchase" and start <= datetime.fromisoformat(e["timestamp"]) < end
    }
    opened_on: dict[str, set[str]] = defaultdict(set)
    for a in answers:
        if a["type"] == "message_open":
            opened_on[a["customer_id"]].add(str(a.get("channel")))
    messages = _message_log(loop, (opt_id, fixed_id))
    messaged = {m["customer_id"] for m in messages if m.get("status") == "sent"}
    by_id = loop.by_id
    arms: dict[str, Any] = {}
    for arm in ARMS:
        members = [c for c, a in arm_of.items() if a == arm]
        n = len(members)
        steps = {}
        for ch in CHANNELS:
            sent = {m["customer_id"] for m in messages if m.get("status") == "sent" and m.get("channel") == ch}
            sent &= set(members)
            opened_here = {c for c in sent if ch in opened_on.get(c, set())}
            steps[ch] = {"sent": len(sent), "opened": len(opened_here)}
        expected = []
        for c in members:
            d = decisions[c].get("decision") or {}
            if d.get("hour_of_week") is not None:
                expected.append(expected_open_probability(by_id[c], "email", int(d["hour_of_week"])))
        arms[arm] = {
            "oracle_first_open": _mean([window_oracle(by_id[c]) for c in members]),
            "customers": n,
            "messaged": len(set(members) & messaged),
            "opened": len(set(members) & opened),
            "clicked": len(set(members) & clicked),
            "purchased": len(set(members) & bought),
            "by_step": steps,
            "expected_first_open": float(np.mean(expected)) if expected else None,
        }
    messaged_members = [c for c, a in arm_of.items() if a != "control"]
    anywhere = [expected_open_probability(by_id[c], "email", true_best_hour(by_id[c])) for c in messaged_members]
    fair = _mean([window_oracle(by_id[c]) for c in messaged_members])
    opt, fixed, fair_opt = (
        arms["optimized"]["expected_first_open"],
        arms["fixed"]["expected_first_open"],
        arms["optimized"]["oracle_first_open"],
    )
    captured = None
    if None not in (opt, fixed, fair_opt) and fair_opt - fixed > 1e-9:
        captured = (opt - fixed) / (fair_opt - fixed)
    return {
        "arms": arms,
        # The oracle sends each customer at their true best hour among the hours the optimizer could choose
        # (the same window and quiet hours); "any hour" lets it pick any hour of the week, which no launch can.
        "oracle_first_open": fair,
        "oracle_any_hour_first_open": _mean(anywhere),
        "captured_oracle_gain": captured,
    }


def window_oracle_factory(start: datetime) -> Any:
    """The best true open probability of a customer among the hours the optimized arm could send at."""
    from datetime import time as dtime

    from kairos.core.timeutil import zone
    from kairos.models.timing import QuietHours, candidate_hours
    from kairos_local.simulation import expected_open_probability

    quiet = QuietHours(dtime.fromisoformat(QUIET[0]), dtime.fromisoformat(QUIET[1]))
    end = min(start + timedelta(days=CAMPAIGN_DAYS), start + timedelta(hours=WITHIN_HOURS))

    def best(c: Any) -> float:
        info = zone(c.timezone)
        cands = candidate_hours(start, c.timezone, end, quiet, start)
        hows = {t.astimezone(info).weekday() * 24 + t.astimezone(info).hour for t in cands}
        return max((expected_open_probability(c, "email", h) for h in hows), default=0.0)

    return best


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _message_log(loop: Loop, campaign_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    from kairos.core.aws import from_item

    rt = loop.runtime
    ddb = rt.session.client("dynamodb")
    table = rt.dep.physical["MessagesTable"]
    out = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            rec = from_item(item)
            if rec.get("campaign_id") in campaign_ids:
                out.append(rec)
    return out


def run(cfg: Config) -> dict[str, Any]:
    """The whole loop; returns the results the report is made of."""
    from kairos_local.report import format_table, write_report
    from kairos_local.simulation import build_population, history_events

    key = os.environ.get("KAIROS_API_KEY") or "kairos-local-dev-key"
    sim_now = (cfg.start or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    t_start = time.perf_counter()
    print(f"Drawing {cfg.customers} simulated customers from Online Retail II...", file=sys.stderr)
    population = build_population(cfg.customers, cfg.seed)
    groups = _arm_groups(population, cfg.seed)
    history = history_events(population, sim_now - timedelta(weeks=HISTORY_WEEKS), sim_now, cfg.seed)
    # The whole configuration, so a report can be reproduced from report.json alone.
    config = {
        "customers": cfg.customers,
        "seed": cfg.seed,
        "rounds": cfg.rounds,
        "time_rounds": cfg.time_rounds,
        "start": sim_now.isoformat(),
        "history_weeks": HISTORY_WEEKS,
        "campaign_days": CAMPAIGN_DAYS,
        "round_days": ROUND_DAYS,
        "within_hours": WITHIN_HOURS,
        "quiet_hours": list(QUIET),
        "channels": list(CHANNELS),
        "arms": list(ARMS),
    }
    results: dict[str, Any] = {"config": config, "rounds": []}
    clock = SimulatedClock(sim_now)
    with (
        embedded_aws(api_key=key, parameters={"EventRetentionDays": "800"}, log_level="ERROR") as runtime,
        local_stepfunctions(runtime, clock) as sfn,
    ):
        server = make_server(runtime, "127.0.0.1", cfg.port)
        server.RequestHandlerClass.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = Api(f"http://127.0.0.1:{server.server_address[1]}", key)
        loop = Loop(cfg, runtime, sfn, clock, api, population)
        _install_responder(loop)
        with clock.busy():
            for c in _progress(population, desc="PUT profiles", unit="customer"):
                api.ok("PUT", f"/v1/customers/{c.customer_id}", profile_body(c, groups[c.customer_id]))
            # a backfill goes customer by customer: a batch then touches few customers (few transactions)
            history.sort(key=lambda e: (e["customer_id"], e["timestamp"]))
            ingest = {"accepted": 0, "duplicates": 0, "rejected": 0}
            for i in _progress(range(0, len(history), 500), desc="POST history", unit="batch"):
                for k, v in api.post_events(history[i : i + 500]).items():
                    ingest[k] += v
        results["ingest"] = {"events": len(history), **ingest}
        start = sim_now
        for r in range(1, cfg.rounds + 1):
            # Every round launches on the same weekday and hour as the first, a week later: a fixed hour and
            # the optimizer are compared under the same weekly rhythm in each round.
            train_at = sim_now + timedelta(days=ROUND_DAYS * (r - 1))
            if clock.now() < train_at:
                clock.advance((train_at - clock.now()).total_seconds())
            print(f"Round {r}: training on the archive, scoring, launching...", file=sys.stderr)
            with clock.busy():
                model = train_and_publish(loop, clock.now(), f"{clock.now():%Y%m%dT%H%M%SZ}-round{r}")
            fixed_hour = model["population_best_hour"]
            start = clock.now() + timedelta(hours=1)
            outcome = run_round(loop, r, start, fixed_hour)
            results["rounds"].append({"name": f"round {r}", "model": model, "fixed_hour": fixed_hour, **outcome})
        results["customers"] = _learned_vs_true(loop)
        server.shutdown()
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    cfg.out.mkdir(parents=True, exist_ok=True)
    print(format_table(results))
    html = write_report(results, cfg.out / "report.html")
    print(f"\nReport: {html}  (numbers: {cfg.out / 'report.json'})")
    return results


def _learned_vs_true(loop: Loop, k: int = 4) -> list[dict[str, Any]]:
    """A few customers' learned hour scores next to their true rhythm (the busiest customers)."""
    picks = sorted(loop.population, key=lambda c: -c.activity)[:k]
    out = []
    for c in picks:
        rec = loop.api.ok("GET", f"/v1/customers/{c.customer_id}/recommendation")
        out.append(
            {
                "customer_id": c.customer_id,
                "timezone": c.timezone,
                "true_rhythm": [float(x) for x in c.rhythm],
                "learned": [float(x) for x in rec["hour_scores"]],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="make demo ARGS=...", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=Config.customers, help="simulated customers (default 150)")
    parser.add_argument("--rounds", type=int, default=Config.rounds, help="campaign rounds, retraining between")
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--out", type=Path, default=Config.out, help="report directory")
    parser.add_argument("--time-rounds", type=int, default=Config.time_rounds, help="boosting rounds, send time")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=DEFAULT_START,
        help=f"simulated start, ISO 8601 with offset (default {DEFAULT_START.isoformat()}: the documented run)",
    )
    when.add_argument("--now", action="store_true", help="start at the current hour instead")
    args = parser.parse_args(argv)
    start = None if args.now else args.start
    cfg = Config(args.customers, args.seed, args.rounds, args.out, args.time_rounds, start=start)
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
