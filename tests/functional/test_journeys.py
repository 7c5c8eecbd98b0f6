"""The journey state machine of the template, run by moto's interpreter with the real schedule and send functions.

Time is simulated (a 24-hour wait takes milliseconds); providers are the real adapters on moto (SES v2, SNS),
wrapped to count calls and to inject throttling and failures.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kairos.adapters.campaigns import DynamoSegmentStore
from kairos.adapters.messages import DynamoMessageLog
from kairos.domain.campaigns import CampaignIn
from kairos.errors import ProviderError, ProviderThrottled
from kairos.logic import campaigns as campaign_logic
from kairos.logic.schedule import journey_name
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.conftest import Client

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


class Counting:
    """Wraps a real provider: counts deliveries, and fails the first calls as told."""

    def __init__(self, inner, throttle: int = 0, reject: bool = False) -> None:
        self.inner = inner
        self.throttle = throttle
        self.reject = reject
        self.calls = 0
        self.delivered: list[tuple[str, datetime]] = []
        self.clock = None

    def send(self, message, message_id, tags):
        self.calls += 1
        if self.reject:
            raise ProviderError("rejected: address on the suppression list")
        if self.calls <= self.throttle:
            raise ProviderThrottled("rate exceeded")
        out = self.inner.send(message, message_id, tags)
        self.delivered.append((message_id, self.clock.now()))
        return out


class World:
    def __init__(self, runtime, clock, sfn) -> None:
        self.runtime = runtime
        self.clock = clock
        self.sfn = sfn
        self.client = Client(runtime)
        dep = runtime.dep
        ddb = runtime.session.client("dynamodb")
        self.campaigns = DynamoSegmentStore(dep.physical["CampaignsTable"], dep.physical["SegmentsTable"], ddb)
        self.log = DynamoMessageLog(dep.physical["MessagesTable"], dep.physical["ArchiveBucket"], ddb)
        self.providers: dict[str, Counting] = {}
        self.pending: list[tuple[datetime, list[dict]]] = []

    def wrap_providers(self, **faults) -> dict[str, Counting]:
        """Replace the send function's providers by counting wrappers around the real ones."""
        self.runtime.handler("SendFunction")
        module = sys.modules["kairos_fn_SendFunction_app"]
        with self.runtime._environment("SendFunction"):
            module.providers.cache_clear()
            real = module.providers()
        wrapped = {ch: Counting(p, **faults.get(ch, {})) for ch, p in real.items()}
        for w in wrapped.values():
            w.clock = self.clock
        module.providers = lambda: wrapped
        self.providers = wrapped
        return wrapped

    def customer(self, cid: str, tz: str = "UTC", consent=("email", "push", "sms")) -> None:
        body = {
            "timezone": tz,
            "contact": {"email": f"{cid}@example.com", "phone": "+447700900123", "push_token": f"token-{cid}"},
            "consent": dict.fromkeys(consent, True),
        }
        assert self.client.request("PUT", f"/v1/customers/{cid}", body).status == 200

    def campaign(self, **over) -> str:
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
            **over,
        }
        doc = campaign_logic.create_campaign(CampaignIn.model_validate(body), self.campaigns, self.clock.now())
        return doc["campaign_id"]

    def journey(self, campaign_id: str, cid: str, channels=("email", "push", "sms"), send_at=None) -> dict:
        send_at = send_at or self.clock.now()
        payload = {
            "campaign_id": campaign_id,
            "customer_id": cid,
            "send_at": send_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "channels": list(channels),
            "step": 0,
            "decision": {
                "send_at": send_at.isoformat(),
                "hour_of_week": 9,
                "probability": 0.8,
                "policy": "optimized",
                "model_version": "test-model",
                "steps": len(channels),
                "features": {"engagement_moments": 3},
            },
        }
        with self.clock.busy():  # the clock may not move before the execution and the customer's timers exist
            arn = self.sfn.start("JourneyStateMachine", payload, name=journey_name(campaign_id, cid))
            for when, events in self.pending:
                self.clock.call_at(when, lambda events=events: self.client.post_events(events))
            self.pending = []
        desc = self.sfn.wait(arn, timeout_s=60)
        assert desc["status"] == "SUCCEEDED", desc
        return json.loads(desc["output"])

    def messages(self, campaign_id: str, cid: str) -> list[dict]:
        out = [self.log.get(f"{campaign_id}.{cid}.{step}") for step in range(4)]
        return [m for m in out if m is not None]

    def at(self, when: datetime, events: list[dict]) -> None:
        """The customer does this at ``when`` (registered when the next journey starts)."""
        self.pending.append((when, events))


@pytest.fixture
def world(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield World(runtime, clock, sfn)


def test_no_engagement_walks_email_push_sms_a_day_apart(world):
    world.customer("c1")
    cid = world.campaign()
    providers = world.wrap_providers()
    out = world.journey(cid, "c1")
    msgs = world.messages(cid, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "sent"), ("push", "sent"), ("sms", "sent")]
    sent = [datetime.fromisoformat(m["sent_at"]) for m in msgs]
    assert sent[1] - sent[0] == timedelta(hours=24) and sent[2] - sent[1] == timedelta(hours=24)
    assert out["stop"] is False  # the last check: nothing engaged, the sequence is over
    assert {ch: p.calls for ch, p in providers.items()} == {"email": 1, "push": 1, "sms": 1}
    # what the model saw is in the log, for retraining
    assert msgs[0]["model_version"] == "test-model" and msgs[0]["probability"] == 0.8


def test_open_after_email_stops_the_journey(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers()
    opened = {
        "event_id": "o1",
        "customer_id": "c1",
        "type": "message_open",
        "channel": "email",
        "message_id": f"{cid}.c1.0",
        "timestamp": (START + timedelta(hours=3)).isoformat(),
    }
    world.at(START + timedelta(hours=3, minutes=1), [opened])
    out = world.journey(cid, "c1")
    assert out == {"stop": True, "reason": f"engaged: message_open on {cid}.c1.0", "defer": False} | {
        "send_after": out["send_after"]
    }
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email"]
    assert world.providers["push"].calls == 0 and world.providers["sms"].calls == 0


def test_expiry_ends_the_journey(world):
    world.customer("c1")
    cid = world.campaign(expires_at=(START + timedelta(hours=30)).isoformat())
    world.wrap_providers()
    out = world.journey(cid, "c1")
    assert out["stop"] is True and out["reason"] == "offer expired"
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email", "push"]
    assert world.providers["sms"].calls == 0


def test_unsubscribe_mid_journey_ends_it(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers()
    unsub = {"event_id": "u1", "customer_id": "c1", "type": "unsubscribe", "timestamp": START.isoformat()}
    world.at(START + timedelta(hours=2), [unsub | {"timestamp": (START + timedelta(hours=2)).isoformat()}])
    out = world.journey(cid, "c1")
    assert out["stop"] is True and out["reason"] == "unsubscribed from all"
    assert [m["channel"] for m in world.messages(cid, "c1")] == ["email"]


def test_throttling_is_retried_with_backoff_and_sends_once(world):
    world.customer("c1")
    cid = world.campaign(channels=["email"], messages={"email": {"subject": "s", "text": "t"}})
    providers = world.wrap_providers(email={"throttle": 3})
    world.journey(cid, "c1", channels=["email"])
    (msg,) = world.messages(cid, "c1")
    assert msg["status"] == "sent" and msg["attempt"] == 4
    assert providers["email"].calls == 4 and len(providers["email"].delivered) == 1
    # the retries waited (30 s, then 60, 120 with full jitter): the send happened after the first attempt
    assert providers["email"].delivered[0][1] >= START
    # every attempt's outcome reached the archive
    s3 = world.runtime.session.client("s3")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=world.runtime.dep.physical["ArchiveBucket"], Prefix="messages/")["Contents"]
    ]
    assert len(keys) == 4


def test_permanent_failure_moves_to_the_next_channel_at_once(world):
    world.customer("c1")
    cid = world.campaign()
    providers = world.wrap_providers(email={"reject": True})
    world.journey(cid, "c1")
    msgs = world.messages(cid, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "failed"), ("push", "sent"), ("sms", "sent")]
    assert "suppression" in msgs[0]["reason"]
    assert providers["email"].calls == 1  # not retried: a rejection is final
    # no 24 h wait after a failed step: push went out at the send time
    assert datetime.fromisoformat(msgs[1]["sent_at"]) == START


def test_a_retried_send_task_sends_once(world):
    world.customer("c1")
    cid = world.campaign(channels=["email"], messages={"email": {"subject": "s", "text": "t"}})
    providers = world.wrap_providers()
    rt = world.runtime
    original = rt.invoke
    lost = type("Lambda.ServiceException", (Exception,), {})
    state = {"n": 0}

    def invoke(logical_id, event):
        result = original(logical_id, event)
        if logical_id == "SendFunction" and state["n"] == 0:
            state["n"] += 1
            raise lost("the response was lost after the provider accepted the message")
        return result

    rt.invoke = invoke
    world.journey(cid, "c1", channels=["email"])
    assert state["n"] == 1
    assert providers["email"].calls == 1
    (msg,) = world.messages(cid, "c1")
    assert msg["status"] == "sent"


def test_send_task_invoked_twice_directly_sends_once(world):
    world.customer("c1")
    cid = world.campaign()
    providers = world.wrap_providers()
    event = {"message_id": f"{cid}.c1.0", "campaign_id": cid, "customer_id": "c1", "channel": "email", "step": 0}
    first = world.runtime.invoke("SendFunction", event)
    second = world.runtime.invoke("SendFunction", event)
    assert first["status"] == "sent" and first["duplicate"] is False
    assert second["status"] == "sent" and second["duplicate"] is True
    assert providers["email"].calls == 1


def test_no_consent_for_a_channel_skips_it_without_calling_the_provider(world):
    world.customer("c1", consent=("email",))
    cid = world.campaign(channels=["email", "sms"])
    providers = world.wrap_providers()
    world.journey(cid, "c1", channels=["email", "sms"])
    msgs = world.messages(cid, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "sent"), ("sms", "skipped")]
    assert msgs[1]["reason"] == "no consent for sms"
    assert providers["sms"].calls == 0


def test_frequency_cap_holds_across_campaigns(world):
    world.customer("c1")
    cap = {"max_messages": 1, "per_days": 7}
    first = world.campaign(channels=["email"], frequency_cap=cap)
    second = world.campaign(channels=["email", "push"], frequency_cap=cap)
    providers = world.wrap_providers()
    world.journey(first, "c1", channels=["email"])
    world.journey(second, "c1", channels=["email", "push"])
    msgs = world.messages(second, "c1")
    assert [(m["channel"], m["status"]) for m in msgs] == [("email", "skipped"), ("push", "sent")]
    assert msgs[0]["reason"].startswith("frequency cap")
    assert providers["email"].calls == 1


def test_quiet_hours_hold_a_later_step_until_morning(world):
    # New York: the email goes at 16:00 local; 6 h later is 22:00, inside 21:00-08:00 quiet hours
    world.customer("c1", tz="America/New_York")
    cid = world.campaign(wait_hours=[6], quiet_hours={"start": "21:00", "end": "08:00"})
    world.wrap_providers()
    send_at = datetime(2026, 3, 2, 16, 0, tzinfo=ZoneInfo("America/New_York"))
    world.journey(cid, "c1", send_at=send_at)
    msgs = world.messages(cid, "c1")
    local = [datetime.fromisoformat(m["sent_at"]).astimezone(ZoneInfo("America/New_York")) for m in msgs]
    assert [m["status"] for m in msgs] == ["sent", "sent", "sent"]
    assert local[0].hour == 16
    assert local[1] == datetime(2026, 3, 3, 8, 0, tzinfo=ZoneInfo("America/New_York"))  # held until 08:00
    assert local[2].hour == 14  # 6 h after the push, outside quiet hours


def test_launch_from_the_api_holds_out_control_and_messages_the_rest(world):
    for i in range(12):
        world.customer(f"c{i}")
    world.wrap_providers()
    body = {
        "name": "launch",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "s", "text": "t"}},
        "channels": ["email"],
        "expires_at": (START + timedelta(days=2)).isoformat(),
        "control_share": 0.4,
        "send_time": {"mode": "immediate"},
    }
    resp = world.client.request("POST", "/v1/campaigns", body)
    assert resp.status == 201, resp.body
    cid = resp.json()["campaign_id"]
    sfn = world.runtime.session.client("stepfunctions")
    (launch,) = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["LaunchStateMachine"])["executions"]
    assert world.sfn.wait(launch["executionArn"], timeout_s=60)["status"] == "SUCCEEDED"
    journeys = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["JourneyStateMachine"])["executions"]
    for j in journeys:
        assert world.sfn.wait(j["executionArn"], timeout_s=60)["status"] == "SUCCEEDED"
    doc = world.campaigns.get_campaign(cid)
    totals = doc["launch"] if "launch" in doc else doc.get("totals") or doc
    sent = {c for c in (f"c{i}" for i in range(12)) if any(m["status"] == "sent" for m in world.messages(cid, c))}
    assert len(journeys) == len(sent) > 0
    control = {f"c{i}" for i in range(12)} - sent
    assert control, "with a 40% control share some of 12 customers are held out"
    assert world.providers["email"].calls == len(sent)
    assert totals is not None


def test_every_message_log_record_is_training_data(world, tmp_path, capsys):
    from kairos.adapters.archive import decode_lines
    from training.__main__ import main as training_main
    from training.io import load_events, message_training_rows, read_messages

    world.customer("c1", consent=("email", "push"))  # sms: skipped for consent
    world.customer("c2")
    cid = world.campaign()
    world.wrap_providers(push={"throttle": 1})  # one throttled attempt, then sent
    opened = {
        "event_id": "o2",
        "customer_id": "c2",
        "type": "message_open",
        "channel": "email",
        "message_id": f"{cid}.c2.0",
        "timestamp": (START + timedelta(minutes=30)).isoformat(),
    }
    world.at(START + timedelta(minutes=31), [opened])
    world.journey(cid, "c2")
    world.journey(cid, "c1")
    s3 = world.runtime.session.client("s3")
    bucket = world.runtime.dep.physical["ArchiveBucket"]
    archived = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="messages/"):
        for obj in page["Contents"]:
            archived += decode_lines(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    statuses = sorted(r["status"] for r in archived)
    assert statuses == ["sent", "sent", "sent", "skipped", "throttled"]

    messages = read_messages([f"s3://{bucket}/messages/"], s3_client=s3)
    # every record was read; a message's attempts fold into its last one
    assert {m.message_id for m in messages} == {r["message_id"] for r in archived}
    by_id = {m.message_id: m for m in messages}
    assert by_id[f"{cid}.c1.1"].status == "sent" and by_id[f"{cid}.c1.1"].attempt == 2
    assert by_id[f"{cid}.c1.2"].status == "skipped"
    assert all(m.model_version == "test-model" and m.probability == 0.8 for m in messages)

    world.runtime.pump_streams()  # the events archive, as training reads it
    events = load_events([f"s3://{bucket}/events/"], s3_client=s3).events
    rows = {r["message_id"]: r for r in message_training_rows(messages, events)}
    assert set(rows) == {f"{cid}.c2.0", f"{cid}.c1.0", f"{cid}.c1.1"}  # the sent ones
    assert rows[f"{cid}.c2.0"]["engaged"] is True and rows[f"{cid}.c2.0"]["minutes_to_engage"] == 30.0
    assert rows[f"{cid}.c1.0"]["engaged"] is False
    assert rows[f"{cid}.c2.0"]["weight"] == pytest.approx(1 / 0.8)
    assert rows[f"{cid}.c2.0"]["hour_of_week"] == 9  # Monday 09:00 UTC

    # and the CLI does the same from a local copy of the archive
    local = tmp_path / "archive"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page["Contents"]:
            path = local / obj["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    out = tmp_path / "rows.jsonl"
    assert (
        training_main(
            ["messages", "--messages", str(local / "messages"), "--events", str(local / "events"), "--out", str(out)]
        )
        == 0
    )
    cli_rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["message_id"] for r in cli_rows) == sorted(rows)
    # and it prints the off-policy estimates of the candidate send-time policies on these sends
    printed = capsys.readouterr().out
    assert "| logged |" in printed and "| model best hour |" in printed and "| fixed 12:00 |" in printed


def test_erasure_removes_the_message_log_and_its_archive(world):
    world.customer("c1")
    cid = world.campaign()
    world.wrap_providers(email={"throttle": 1})
    world.journey(cid, "c1")
    assert len(world.messages(cid, "c1")) == 3
    report = world.client.request("DELETE", "/v1/customers/c1").json()
    assert report["messages"] == 3 and report["message_archive_objects"] == 4  # a throttled attempt + 3 sent
    assert world.messages(cid, "c1") == []
    s3 = world.runtime.session.client("s3")
    left = s3.list_objects_v2(Bucket=world.runtime.dep.physical["ArchiveBucket"], Prefix="messages/")
    assert left.get("KeyCount", 0) == 0
