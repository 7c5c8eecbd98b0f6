"""``make serve`` end to end: the real server on embedded AWS, driven over HTTP as a client would.

The server runs its clock at an hour per real second, so a launch, a send and the nightly schedules happen
within seconds. What a client cannot see over HTTP (the message log, which functions ran) is read inside
the same moto.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from kairos_local.server import LocalProduct
from kairos_local.template import load_template

if TYPE_CHECKING:
    from collections.abc import Callable

API_KEY = "test-key"
SPEED = 3600.0  # an hour per real second


def call(product: LocalProduct, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {API_KEY}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(product.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def eventually(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s`` real seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.2)


@pytest.fixture
def product():
    # 03:00 UTC today: the nightly scoring (02:00) is a simulated day, some real seconds, away.
    start = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    with LocalProduct(port=0, speed=SPEED, api_key=API_KEY, start=start) as running:
        yield running


def test_serve_runs_an_immediate_campaign_to_a_sent_email_and_scores_on_demand(product):
    # GIVEN a customer with email consent and some history, over HTTP
    profile = {"timezone": "Europe/London", "contact": {"email": "ada@example.com"}, "consent": {"email": True}}
    assert call(product, "PUT", "/v1/customers/ada", profile)[0] == 200
    now = product.clock.now()
    events = [
        {
            "event_id": f"e{i}",
            "customer_id": "ada",
            "type": "session",
            "timestamp": (now - timedelta(days=i)).isoformat(),
        }
        for i in range(1, 4)
    ]
    assert call(product, "POST", "/v1/events", {"events": events}) == (
        200,
        {"accepted": 3, "duplicates": 0, "rejected": []},
    )
    # AND the scoring at start already gives a customer not scored yet the population's answer
    status, rec = call(product, "GET", "/v1/customers/ada/recommendation")
    assert status == 200 and rec["scored"] is False

    # WHEN an immediate campaign is created
    campaign = {
        "name": "welcome",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "Hello", "text": "Welcome"}},
        "channels": ["email"],
        "expires_at": (now + timedelta(days=30)).isoformat(),
        "control_share": 0.0,
        "send_time": {"mode": "immediate"},
    }
    status, created = call(product, "POST", "/v1/campaigns", campaign)
    assert status == 201, created
    campaign_id = created["campaign_id"]

    # THEN its launch runs: the campaign is running and the email is in the message log, sent
    def campaign_running() -> bool:
        return call(product, "GET", f"/v1/campaigns/{campaign_id}")[1]["status"] in ("running", "completed")

    eventually(campaign_running)
    ddb = product.runtime.session.client("dynamodb")
    table = product.runtime.dep.physical["MessagesTable"]

    def sent_messages() -> list[dict[str, Any]]:
        items = ddb.scan(TableName=table)["Items"]
        return [i for i in items if i.get("campaign_id") == {"S": campaign_id} and i.get("status") == {"S": "sent"}]

    (message,) = eventually(sent_messages)
    assert message["customer_id"]["S"] == "ada" and message["channel"]["S"] == "email"
    # AND the archive function ran on the events stream
    assert product.runtime.invocations.get("ArchiveFunction", 0) >= 1

    # WHEN everybody is scored on demand
    status, scored = call(product, "POST", "/_local/score", auth=False)
    # THEN the execution succeeded, scored ada, and her recommendation is her own
    assert status == 200 and scored["status"] == "SUCCEEDED", scored
    assert sum(segment["scored"] for segment in scored["output"]) >= 1
    status, rec = call(product, "GET", "/v1/customers/ada/recommendation")
    assert status == 200 and rec["scored"] is True
    # AND local endpoints are only the ones that exist, and nothing under /_local/ reaches the API
    assert call(product, "POST", "/_local/tick", auth=False)[0] == 404
    assert "/_local/score" not in json.dumps(call(product, "GET", "/v1/openapi.json", auth=False)[1])


def test_serve_fires_the_template_schedules_and_pumps_streams_in_the_background():
    # GIVEN the template with a test-only tick function (every minute) and scoring every simulated hour
    tpl = copy.deepcopy(load_template())
    tpl["Resources"]["TickFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": "tests/data/functions/",
            "Handler": "flaky.lambda_handler",
            "Events": {
                "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)", "Input": '{"key": "timer"}'}}
            },
        },
    }
    params = {"ScoreSchedule": "rate(1 hour)"}
    with LocalProduct(port=0, speed=SPEED, api_key=API_KEY, template=tpl, parameters=params, score_at_start=False) as p:
        runtime = p.runtime
        sfn = runtime.session.client("stepfunctions")
        # WHEN simulated hours pass
        # THEN the timer is invoked with its input, again and again
        eventually(lambda: runtime.invocations.get("TickFunction", 0) >= 3)
        # AND the nightly scoring (here hourly) gets executions of the ScoreAll state machine, which succeed
        arn = runtime.dep.physical["ScoreAllStateMachine"]

        def succeeded() -> list[dict[str, Any]]:
            runs = sfn.list_executions(stateMachineArn=arn)["executions"]
            return [r for r in runs if r["name"].startswith("Nightly-") and r["status"] == "SUCCEEDED"]

        eventually(succeeded)
        # WHEN an event lands in the events table without an API call (as a function would write it)
        event = {"event_id": "e1", "customer_id": "grace", "type": "session", "timestamp": p.clock.now().isoformat()}
        assert call(p, "POST", "/v1/events", {"events": [event]})[0] == 200
        before = runtime.invocations.get("ArchiveFunction", 0)
        ddb = runtime.session.client("dynamodb")
        table = runtime.dep.physical["EventsTable"]
        (stored,) = [i for i in ddb.scan(TableName=table)["Items"] if i["sk"]["S"].startswith("e#")]
        copy_of = stored | {"sk": {"S": "e#direct"}, "event_id": {"S": "direct"}}
        ddb.put_item(TableName=table, Item=copy_of)
        # THEN the background loop delivers it to the archive function
        eventually(lambda: runtime.invocations.get("ArchiveFunction", 0) > before)
    assert p.triggers.fired["TickFunction.Tick"] >= 3


def test_serve_stops_everything_when_it_ends():
    # GIVEN a running server
    before = set(threading.enumerate())
    with LocalProduct(port=0, speed=SPEED, api_key=API_KEY, score_at_start=False) as product:
        url = product.url
        assert call(product, "GET", "/v1/openapi.json", auth=False)[0] == 200
    # WHEN it has ended
    # THEN the port is closed, the clock stopped, and no thread of its own is left
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/v1/openapi.json", timeout=5)
    assert product.clock.closed
    ours = ("kairos-http", "kairos-triggers", "kairos-wall-clock")
    left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith(ours)]
    assert left == []


def test_serve_local_clock_answers_the_simulated_now_and_speed(product):
    # GIVEN a server whose clock started at 03:00 today at an hour per real second
    # WHEN a client asks for the local clock (no key: /_local/ is local-only)
    status, clock = call(product, "GET", "/_local/clock", auth=False)
    # THEN it answers the simulated now in UTC (hours ahead of the real time), the speed and where both started
    assert status == 200
    now, started = datetime.fromisoformat(clock["now"]), datetime.fromisoformat(clock["started"])
    assert now.utcoffset() == timedelta(0) and now >= started == product.clock.started
    assert abs(now - product.clock.now()) < timedelta(hours=1)
    assert clock["speed"] == SPEED and isinstance(clock["advancing"], bool)
    assert datetime.fromisoformat(clock["real_now"]) >= datetime.fromisoformat(clock["real_started"])
    # AND the next time something is due (the journey timer, every minute) is at most a minute ahead
    assert now <= datetime.fromisoformat(clock["next_due"]) <= now + timedelta(minutes=1)


def test_serve_sends_at_the_planned_simulated_time_when_handling_takes_real_seconds(monkeypatch):
    # GIVEN a server at an hour per real second, at 09:00, where each journey step takes a real second
    # (at that speed an hour, if the clock went on while the work it had made due was handled)
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    with LocalProduct(port=0, speed=SPEED, api_key=API_KEY, start=start, score_at_start=False) as p:
        invoke = p.runtime.invoke

        def slow_invoke(logical_id: str, event: dict[str, Any]) -> Any:
            if logical_id == "AdvanceFunction":
                time.sleep(1.0)
            return invoke(logical_id, event)

        monkeypatch.setattr(p.runtime, "invoke", slow_invoke)
        customers = [f"slow-{i}" for i in range(3)]
        for cid in customers:
            profile = {"timezone": "UTC", "contact": {"email": f"{cid}@example.com"}, "consent": {"email": True}}
            profile["attributes"] = {"group": "slow"}
            assert call(p, "PUT", f"/v1/customers/{cid}", profile)[0] == 200
        # WHEN a campaign plans its email for 10:00 in each customer's zone
        campaign = {
            "name": "at ten",
            "audience": {"filters": [{"field": "attributes.group", "op": "eq", "value": "slow"}]},
            "messages": {"email": {"subject": "At ten", "text": "Hello"}},
            "channels": ["email"],
            "starts_at": start.isoformat(),
            "expires_at": (start + timedelta(days=2)).isoformat(),
            "control_share": 0.0,
            "send_time": {"mode": "fixed", "local_time": "10:00"},
        }
        status, created = call(p, "POST", "/v1/campaigns", campaign)
        assert status == 201, created

        def sent() -> list[dict[str, Any]]:
            found = [
                m
                for cid in customers
                for m in call(p, "GET", f"/v1/customers/{cid}/messages")[1]["messages"]
                if m.get("campaign_id") == created["campaign_id"] and m.get("status") == "sent"
            ]
            return found if len(found) == len(customers) else []

        messages = eventually(sent, timeout_s=120)
    # THEN every email went at 10:00 simulated, within a minute, though the three steps took seconds of real time
    ten = start.replace(hour=10)
    for message in messages:
        sent_at = datetime.fromisoformat(message["sent_at"].replace("Z", "+00:00"))
        assert ten <= sent_at < ten + timedelta(minutes=1), message


def test_serve_answers_methods_a_route_does_not_declare_as_api_gateway_does(product):
    for method in ("HEAD", "OPTIONS", "TRACE"):
        req = urllib.request.Request(product.url + "/v1/segments", method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 405, (method, err.value.code)
        assert err.value.headers.get("Content-Type", "").startswith("application/json")
    req = urllib.request.Request(product.url + "/v1/nowhere", method="OPTIONS")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 403
