"""Campaigns on the one journey engine, through the real template: the API, the timer and the trigger functions,
and the journey step state machine's real ASL in moto's interpreter, with simulated time.

Providers are the real adapters on moto (SES v2, SNS), wrapped to count calls and to inject throttling,
rejections and a step that dies after the provider accepted.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kairos.core.errors import ProviderError, ProviderThrottled
from kairos.messaging.adapters.messages import DynamoMessageLog
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.conftest import Client
from tests.helpers import DiesAfterAccept

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


class Counting:
    """Wraps a real provider: counts deliveries, and fails the first calls as told."""

    def __init__(self, inner: Any, clock: Any, throttle: int = 0, reject: bool = False) -> None:
        self.inner, self.clock, self.throttle, self.reject = inner, clock, throttle, reject
        self.calls = 0
        self.delivered: list[tuple[str, datetime]] = []

    def send(self, message: Any, message_id: str, tags: dict[str, str]) -> str:
        self.calls += 1
        if self.reject:
            raise ProviderError("rejected: address on the suppression list")
        if self.calls <= self.throttle:
            raise ProviderThrottled("rate exceeded")
        out = self.inner.send(message, message_id, tags)
        self.delivered.append((message_id, self.clock.now()))
        return out


class World:
    def __init__(self, runtime: Any, clock: SimulatedClock, sfn: Any) -> None:
        self.runtime, self.clock, self.sfn = runtime, clock, sfn
        self.client = Client(runtime)
        dep = runtime.dep
        self.log = DynamoMessageLog(
            dep.physical["MessagesTable"], dep.physical["ArchiveBucket"], runtime.session.client("dynamodb")
        )
        self.api = runtime.session.client("stepfunctions")
        self.machine = dep.physical["JourneyStepStateMachine"]
        self.providers: dict[str, Counting] = {}

    def step_deps(self) -> Any:
        """The advance function's dependencies, as its cold start built them."""
        self.runtime.handler("AdvanceFunction")
        module = sys.modules["kairos_fn_AdvanceFunction_app"]
        with self.runtime.environment("AdvanceFunction"):
            return module.deps()

    def wrap_providers(self, **faults: dict[str, Any]) -> dict[str, Counting]:
        deps = self.step_deps()
        wrapped = {ch: Counting(p, self.clock, **faults.get(ch, {})) for ch, p in deps.providers.items()}
        deps.providers.clear()
        deps.providers.update(wrapped)
        self.providers = wrapped
        return wrapped

    def customer(self, cid: str, tz: str = "UTC", consent: tuple[str, ...] = ("email", "push", "sms")) -> None:
        body = {
            "timezone": tz,
            "contact": {"email": f"{cid}@example.com", "phone": "+447700900123", "push_token": f"token-{cid}"},
            "consent": dict.fromkeys(consent, True),
        }
        assert self.client.request("PUT", f"/v1/customers/{cid}", body).status == 200

    def campaign(self, **over: Any) -> str:
        body = {
            "name": "spring",
            "audience": {"filters": []},
            "messages": {
                "email": {"subject": "Hi {{first_name}}", "text": "Try {{next_product}}"},
                "push": {"title": "For you", "body": "Try it"},
                "sms": {"text": "Try it. STOP to opt out"},
            },
            "channels": ["email", "push", "sms"],
            "wait_hours": [24],
            "expires_at": (self.clock.now() + timedelta(days=5)).isoformat(),
            "control_share": 0.0,
            "send_time": {"mode": "immediate"},
            **over,
        }
        resp = self.client.request("POST", "/v1/campaigns", body)
        assert resp.status == 201, resp.body
        return resp.json()["campaign_id"]

    def settle(self) -> None:
        with self.clock.busy():
            self.runtime.pump_streams()
        for ex in self.api.list_executions(stateMachineArn=self.machine)["executions"]:
            assert self.sfn.wait(ex["executionArn"], timeout_s=60)["status"] == "SUCCEEDED", ex

    def tick(self) -> None:
        """One run of the timer (EventBridge runs it every minute): entries, and the steps that are due."""
        with self.clock.busy():
            self.runtime.invoke("TimerFunction", {})
        self.settle()

    def later(self, hours: float, every: float = 1.0) -> None:
        end = self.clock.now() + timedelta(hours=hours)
        while self.clock.now() < end:
            self.clock.advance(min(every, (end - self.clock.now()).total_seconds() / 3600) * 3600)
            self.tick()

    def messages(self, campaign_id: str, cid: str) -> list[dict[str, Any]]:
        # The customer index holds the keys; the record itself is read by id.
        mine = [self.log.get(m["message_id"]) for m in self.log.for_customer(cid)]
        return sorted((m for m in mine if m and m.get("campaign_id") == campaign_id), key=lambda m: m["claimed_at"])

    def event(self, event_id: str, cid: str, type: str, **extra: Any) -> None:  # noqa: A002
        ev = {"event_id": event_id, "customer_id": cid, "type": type, "timestamp": self.clock.now().isoformat()}
        resp = self.client.post_events([{**ev, **extra}])
        assert resp.status == 200 and resp.json()["accepted"] == 1, resp.body
        self.settle()


@pytest.fixture
def world(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield World(runtime, clock, sfn)


def test_no_engagement_walks_email_push_sms_a_day_apart(world):
    world.customer("c1")
    cid = world.campaign()
    providers = world.wrap_providers()
    world.tick()
    world.later(24 * 5, every=6)
    msgs = world.messages(cid, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "sent"), ("push", "sent"), ("sms", "sent")]
    sent = [datetime.fromisoformat(m["sent_at"]) for m in msgs]
    assert sent[1] - sent[0] == timedelta(hours=24) and sent[2] - sent[1] == timedelta(hours=24)
    assert {ch: p.calls for ch, p in providers.items()} == {"email": 1, "push": 1, "sms": 1}
    res = world.client.request("GET", f"/v1/campaigns/{cid}/results").json()
    assert {s["channel"]: s["sent"] for s in res["steps"]} == {"email": 1, "push": 1, "sms": 1}
    assert res["status"] == "completed" and res["paths"]["exited"] == {"exit at expired": 1}


def test_an_open_after_the_email_ends_the_campaign_for_that_customer(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers()
    world.tick()
    (email,) = world.messages(cid, "c1")
    world.later(3)
    world.event("o1", "c1", "message_open", channel="email", message_id=email["message_id"])
    world.later(24 * 5, every=12)
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email"]
    assert world.providers["push"].calls == 0 and world.providers["sms"].calls == 0
    res = world.client.request("GET", f"/v1/campaigns/{cid}/results").json()
    assert {s["channel"]: s["opened"] for s in res["steps"]} == {"email": 1}


def test_the_expiry_ends_the_sequence(world):
    world.customer("c1")
    cid = world.campaign(expires_at=(START + timedelta(hours=30)).isoformat())
    world.wrap_providers()
    world.tick()
    world.later(48, every=6)
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email", "push"]
    assert world.providers["sms"].calls == 0


def test_an_unsubscribe_mid_sequence_sends_nothing_more(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers()
    world.tick()
    world.later(2)
    world.event("u1", "c1", "unsubscribe")
    world.later(24 * 5, every=12)
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email"]


def test_throttling_is_retried_with_backoff_and_sends_once(world):
    world.customer("c1")
    cid = world.campaign(channels=["email"], messages={"email": {"subject": "s", "text": "t"}})
    providers = world.wrap_providers(email={"throttle": 3})
    world.tick()
    (msg,) = world.messages(cid, "c1")
    assert msg["status"] == "sent" and msg["attempt"] == 4
    assert providers["email"].calls == 4 and len(providers["email"].delivered) == 1


def test_a_rejection_moves_to_the_next_channel_at_once(world):
    world.customer("c1")
    cid = world.campaign()
    providers = world.wrap_providers(email={"reject": True})
    world.tick()
    msgs = world.messages(cid, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "failed"), ("push", "sent")]
    assert "suppression" in msgs[0]["reason"] and providers["email"].calls == 1
    assert datetime.fromisoformat(msgs[1]["sent_at"]) == START


def test_no_consent_for_a_channel_skips_it_without_calling_the_provider(world):
    world.customer("c1", consent=("email",))
    cid = world.campaign(channels=["email", "sms"])
    providers = world.wrap_providers()
    world.tick()
    world.later(24 * 5, every=12)
    assert [(m["channel"], m["status"]) for m in world.messages(cid, "c1")] == [("email", "sent")]
    assert providers["sms"].calls == 0


def test_a_campaigns_frequency_cap_counts_messages_of_every_campaign(world):
    world.customer("c1")
    cap = {"max_messages": 1, "per_days": 7}
    first = world.campaign(channels=["email"], frequency_cap=cap)
    world.wrap_providers()
    world.tick()
    second = world.campaign(channels=["email", "push"], frequency_cap=cap)
    world.tick()
    assert [(m["channel"], m["status"]) for m in world.messages(first, "c1")] == [("email", "sent")]
    msgs = world.messages(second, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "skipped"), ("push", "sent")]
    assert msgs[0]["reason"].startswith("frequency cap")


def test_quiet_hours_hold_a_later_step_until_morning(world):
    # New York: the email goes at 16:00 local; 6 h later is 22:00, inside 21:00-08:00 quiet hours
    world.clock.advance((datetime(2026, 3, 2, 16, tzinfo=ZoneInfo("America/New_York")) - START).total_seconds())
    world.customer("c1", tz="America/New_York")
    cid = world.campaign(wait_hours=[6], quiet_hours={"start": "21:00", "end": "08:00"})
    world.wrap_providers()
    world.tick()
    world.later(30, every=1)
    local = [
        datetime.fromisoformat(m["sent_at"]).astimezone(ZoneInfo("America/New_York")) for m in world.messages(cid, "c1")
    ]
    assert local[0].hour == 16
    assert local[1] == datetime(2026, 3, 3, 8, 0, tzinfo=ZoneInfo("America/New_York"))  # held until 08:00
    assert local[2].hour == 14  # 6 h after the push


def test_a_segment_campaign_holds_out_control_messages_the_rest_and_follows_up_by_sms(world):
    # GIVEN a saved segment of 50 consenting customers (and 5 outside it)
    for i in range(55):
        world.customer(f"c{i:02d}", consent=("email", "sms"))
        tier = "gold" if i < 50 else "none"
        body = {
            "timezone": "UTC",
            "contact": {"email": f"c{i:02d}@example.com", "phone": "+447700900123"},
            "consent": {"email": True, "sms": True},
            "attributes": {"tier": tier},
        }
        assert world.client.request("PUT", f"/v1/customers/c{i:02d}", body).status == 200
    seg = {"filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]}
    assert world.client.request("PUT", "/v1/segments/gold", seg).status == 200
    world.wrap_providers()
    cid = world.campaign(
        audience={"segment": "gold"},
        channels=["email", "sms"],
        control_share=0.3,
        send_time={"mode": "optimized", "within_hours": 24},
        expires_at=(START + timedelta(days=3)).isoformat(),
        attribution_days=3,
    )
    # WHEN its audience enters and the emails go; a third of the messaged open theirs
    world.tick()
    world.later(20, every=1)
    emails = [m for c in range(50) for m in world.messages(cid, f"c{c:02d}") if m["channel"] == "email"]
    openers = {m["customer_id"] for m in emails[::3]}
    for m in emails[::3]:
        world.event(f"open-{m['customer_id']}", m["customer_id"], "message_open", message_id=m["message_id"])
    # AND a customer of the control group buys
    control = sorted({f"c{c:02d}" for c in range(50)} - {m["customer_id"] for m in emails})
    world.event("buy-1", control[0], "purchase", amount=4200)
    world.later(54, every=2)
    # THEN each treated customer got one email, the SMS follow-up went to those who did not open, once each
    treated = {m["customer_id"] for m in emails}
    texted = [m["customer_id"] for c in range(55) for m in world.messages(cid, f"c{c:02d}") if m["channel"] == "sms"]
    assert len(emails) == len(treated) and 25 <= len(treated) < 50
    assert sorted(texted) == sorted(treated - openers)
    assert not any(world.messages(cid, f"c{c}") for c in range(50, 55))
    res = world.client.request("GET", f"/v1/campaigns/{cid}/results").json()
    steps = {s["channel"]: s for s in res["steps"]}
    assert steps["email"]["sent"] == len(treated) and steps["email"]["opened"] == len(openers)
    assert steps["sms"]["sent"] == len(texted)
    assert res["audience"]["launch_scheduled"] == len(treated) and res["audience"]["launch_outside_audience"] == 5
    assert res["treatment"]["customers"] == len(treated) and res["control"]["customers"] == len(control)
    assert res["control"]["converted"] == 1 and res["control"]["revenue"] == 4200


def test_a_step_killed_after_the_provider_accepted_settles_and_the_follow_up_goes_once(world):
    # GIVEN a campaign whose first step dies after SES accepted the email (an error the ASL does not retry)
    world.customer("c1")
    cid = world.campaign(channels=["email", "sms"])
    providers = world.wrap_providers()
    deps = world.step_deps()
    deps.messages = DiesAfterAccept(deps.messages)
    # WHEN the step runs, fails, and the state machine's Catch recovers the path
    world.tick()
    # THEN the email is settled unconfirmed (counted, archived), the path waits, and the SMS follows once
    (email,) = world.messages(cid, "c1")
    assert email["status"] == "unconfirmed" and providers["email"].calls == 1
    assert email["node"] == "offer" and email["journey_id"] == cid  # the whole record was settled, not the listing
    world.later(26, every=2)
    assert [(m["channel"], m["status"]) for m in world.messages(cid, "c1")] == [
        ("email", "unconfirmed"),
        ("sms", "sent"),
    ]
    assert providers["sms"].calls == 1
    res = world.client.request("GET", f"/v1/campaigns/{cid}/results").json()
    assert {s["channel"]: (s["unconfirmed"], s["sent"]) for s in res["steps"]} == {"email": (1, 0), "sms": (0, 1)}


def test_a_journey_that_would_send_faster_than_hourly_is_refused(world):
    body = {
        "name": "flood",
        "entry": {"event": "cart_abandon"},
        "start": "mail",
        "nodes": {
            "mail": {
                "type": "message",
                "channel": "email",
                "content": {"email": {"subject": "s", "text": "t"}},
                "next": "pause",
            },
            "pause": {"type": "delay", "hours": 0.0001, "next": "mail"},
        },
    }
    resp = world.client.request("POST", "/v1/journeys", body)
    assert resp.status == 400 and resp.json()["message"].startswith("nodes.mail")


def test_the_send_policy_is_read_and_set_through_the_api_and_caps_every_campaign(world):
    # GIVEN the default policy, then one email a day across campaigns
    default = world.client.request("GET", "/v1/policy").json()
    assert default["quiet_hours"]["sms"] == {"start": "21:00", "end": "08:00"}
    policy = {"quiet_hours": {}, "frequency_caps": {"all": {"per_day": 1}}}
    saved = world.client.request("PUT", "/v1/policy", policy).json()
    assert saved["quiet_hours"] == {} and saved["frequency_caps"]["all"]["per_day"] == 1
    assert world.client.request("GET", "/v1/policy").json() == saved
    bad = world.client.request("PUT", "/v1/policy", {"frequency_caps": {"fax": {"per_day": 1}}})
    assert bad.status == 400 and bad.json()["message"].startswith("frequency_caps")
    world.customer("c1")
    world.wrap_providers()
    world.clock.advance(120)  # the advance function reads the policy at most once a minute
    # WHEN two campaigns reach c1 the same day
    first = world.campaign(channels=["email"])
    second = world.campaign(channels=["email"])
    world.tick()
    # THEN one email goes; the other is skipped naming the policy's cap
    outcomes = sorted(m["status"] for cid in (first, second) for m in world.messages(cid, "c1"))
    assert outcomes == ["sent", "skipped"]
    (skipped,) = [m for cid in (first, second) for m in world.messages(cid, "c1") if m["status"] == "skipped"]
    assert "policy: 1" in skipped["reason"]


def test_erasure_removes_the_message_log_and_its_archive(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers(email={"throttle": 1})
    world.tick()
    world.later(24 * 5, every=12)
    assert len(world.messages(cid, "c1")) == 3
    report = world.client.request("DELETE", "/v1/customers/c1").json()
    assert report["messages"] == 3 and report["message_archive_objects"] == 4  # a throttled attempt + 3 sent
    assert world.messages(cid, "c1") == []
    s3 = world.runtime.session.client("s3")
    left = s3.list_objects_v2(Bucket=world.runtime.dep.physical["ArchiveBucket"], Prefix="messages/")
    assert left.get("KeyCount", 0) == 0


def test_message_log_records_carry_what_the_model_saw(world):
    world.customer("c1")
    cid = world.campaign(send_time={"mode": "fixed", "local_time": "12:00"})
    world.wrap_providers()
    world.tick()
    world.later(4)
    (email,) = world.messages(cid, "c1")
    assert email["policy"] == "fixed" and email["hour_of_week"] == 12 and email["probability"] == 1.0
    assert json.loads(json.dumps(email))["timezone"] == "UTC"
