"""Faults on the journey and launch paths: the template's real state machines, run by the local interpreter on
embedded AWS with the real schedule and send functions; providers and stores fail in-process as told.

Time is simulated: retry intervals and 24-hour waits cost nothing, and every instant is exact.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import pytest

from kairos.errors import ProviderOutcomeUnknown, ProviderUnavailable, StoreError
from kairos.logic.schedule import journey_name
from kairos.timeutil import utc_iso
from kairos_local.stepfunctions import LambdaServiceError, SimulatedClock, local_stepfunctions
from tests.functional.test_journeys import START, World

CONTACT = ("@example.com", "+447700900123", "token-")


class Scripted:
    """Wraps a real provider: the first calls raise the scripted errors, later ones deliver."""

    def __init__(self, inner: Any, clock: SimulatedClock, errors: list[Exception]) -> None:
        self.inner = inner
        self.clock = clock
        self.errors = list(errors)
        self.calls = 0
        self.delivered: list[tuple[str, Any]] = []

    def send(self, message, message_id, tags):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        out = self.inner.send(message, message_id, tags)
        self.delivered.append((message_id, self.clock.now()))
        return out


class FailingReads:
    """A customer store whose reads fail as DynamoDB does when it is down; everything else is the real store."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("get_customer", "get_customers", "scan_customers", "message_events"):

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StoreError(f"customers {name} failed: 500")

            return fail
        return getattr(self.inner, name)


@pytest.fixture
def world(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock, seed=7) as sfn:
        yield World(runtime, clock, sfn)


def handler_module(world: World, logical_id: str) -> Any:
    world.runtime.handler(logical_id)
    return sys.modules[f"kairos_fn_{logical_id}_app"]


def script_providers(world: World, monkeypatch, **errors: list[Exception]) -> dict[str, Scripted]:
    """Replace the send function's providers by scripted wrappers around the real ones."""
    module = handler_module(world, "SendFunction")
    with world.runtime._environment("SendFunction"):
        module.providers.cache_clear()
        real = module.providers()
    wrapped = {ch: Scripted(p, world.clock, errors.get(ch, [])) for ch, p in real.items()}
    monkeypatch.setattr(module, "providers", lambda: wrapped)
    return wrapped


def run_journey(world: World, campaign_id: str, customer_id: str, channels: tuple[str, ...]) -> dict[str, Any]:
    """Start the journey at START and return its description once it ended (whatever its status)."""
    payload = {
        "campaign_id": campaign_id,
        "customer_id": customer_id,
        "send_at": utc_iso(START),
        "channels": list(channels),
        "step": 0,
        "decision": {"send_at": utc_iso(START), "hour_of_week": 9, "probability": 0.8, "steps": len(channels)},
    }
    with world.clock.busy():
        arn = world.sfn.start("JourneyStateMachine", payload, name=journey_name(campaign_id, customer_id))
    return world.sfn.wait(arn, timeout_s=90)


def sent_times(world: World, campaign_id: str, customer_id: str) -> list[tuple[str, str, Any]]:
    from datetime import datetime

    return [
        (m["channel"], m["status"], datetime.fromisoformat(m["sent_at"]) if m.get("sent_at") else None)
        for m in world.messages(campaign_id, customer_id)
    ]


def test_journey_send_retries_a_provider_outage_and_the_next_channel_waits_its_turn(world, monkeypatch):
    # GIVEN SES answers one 503 (ProviderUnavailable), then accepts
    world.customer("c1")
    cid = world.campaign(channels=["email", "push"])
    providers = script_providers(world, monkeypatch, email=[ProviderUnavailable("SES: HTTP 503")])
    # WHEN the journey runs
    desc = run_journey(world, cid, "c1", ("email", "push"))
    # THEN the email is sent on a retry, once, and the push waits a day after it instead of going out at once
    assert desc["status"] == "SUCCEEDED", desc
    (email, email_at), (push, push_at) = [(f"{ch}:{st}", at) for ch, st, at in sent_times(world, cid, "c1")]
    assert (email, push) == ("email:sent", "push:sent")
    assert providers["email"].calls == 2 and len(providers["email"].delivered) == 1
    assert world.log.get(f"{cid}.c1.0")["attempt"] == 2
    assert START <= email_at <= START + timedelta(seconds=30)  # one retry interval at most (30 s, full jitter)
    assert timedelta(hours=23, minutes=59) <= push_at - email_at <= timedelta(hours=24, minutes=1)


def test_journey_send_in_progress_is_retried_until_the_other_attempt_records_its_outcome(world, monkeypatch):
    # GIVEN another attempt claimed the email at START and records it sent 90 s later
    world.customer("c1")
    cid = world.campaign(channels=["email", "push"])
    providers = script_providers(world, monkeypatch)
    other = {
        "message_id": f"{cid}.c1.0",
        "campaign_id": cid,
        "customer_id": "c1",
        "channel": "email",
        "step": 0,
        "status": "sending",
        "reason": "",
        "claimed_at": utc_iso(START),
        "expires_at": int((START + timedelta(days=400)).timestamp()),
    }
    assert world.log.claim(dict(other))[0]
    done = START + timedelta(seconds=90)
    finished = {**other, "attempt": 1, "status": "sent", "reason": "ok", "sent_at": utc_iso(START)}
    world.clock.call_at(done, lambda: world.log.finish({**finished, "finished_at": utc_iso(done)}))
    # WHEN the journey reaches the email meanwhile
    desc = run_journey(world, cid, "c1", ("email", "push"))
    # THEN its Send retried SendInProgress until the outcome was there, sent nothing itself, and the push
    # waited its turn after the email
    assert desc["status"] == "SUCCEEDED", desc
    assert providers["email"].calls == 0
    (_, email_status, _), (_, push_status, push_at) = sent_times(world, cid, "c1")
    assert (email_status, push_status) == ("sent", "sent")
    assert push_at >= done + timedelta(hours=24)


def test_journey_unconfirmed_send_counts_as_sent(world, monkeypatch):
    # GIVEN SES takes the email but its answer is lost (the message may have been delivered)
    world.customer("c1")
    cid = world.campaign(channels=["email", "push"])
    providers = script_providers(world, monkeypatch, email=[ProviderOutcomeUnknown("SES: read timeout")])
    # WHEN the journey runs
    desc = run_journey(world, cid, "c1", ("email", "push"))
    # THEN the email is unconfirmed, never sent again, and the push waits for engagement as after a send
    assert desc["status"] == "SUCCEEDED", desc
    (_, email_status, email_at), (_, push_status, push_at) = sent_times(world, cid, "c1")
    assert (email_status, push_status) == ("unconfirmed", "sent")
    assert providers["email"].calls == 1
    assert push_at - email_at == timedelta(hours=24)


def test_journey_send_retries_lambda_service_errors(world, monkeypatch):
    # GIVEN the Lambda service throttles the first invocation of the send function (the handler never runs)
    world.customer("c1")
    cid = world.campaign(channels=["email"], messages={"email": {"subject": "s", "text": "t"}})
    providers = script_providers(world, monkeypatch)
    invoke = world.runtime.invoke
    refused: list[str] = []

    def throttled_once(logical_id, event):
        if logical_id == "SendFunction" and not refused:
            refused.append(event["message_id"])
            raise LambdaServiceError("TooManyRequestsException", "Rate exceeded")
        return invoke(logical_id, event)

    monkeypatch.setattr(world.runtime, "invoke", throttled_once)
    # WHEN the journey runs
    desc = run_journey(world, cid, "c1", ("email",))
    # THEN the task was retried and the email sent once
    assert desc["status"] == "SUCCEEDED", desc
    assert refused == [f"{cid}.c1.0"] and providers["email"].calls == 1
    assert [(ch, st) for ch, st, _ in sent_times(world, cid, "c1")] == [("email", "sent")]


def test_journey_whose_check_keeps_failing_fails_and_counts_on_the_campaign(world, monkeypatch):
    # GIVEN the customers table fails every read of the schedule function
    world.customer("c1")
    cid = world.campaign(channels=["email", "push"])
    providers = script_providers(world, monkeypatch)
    module = handler_module(world, "ScheduleFunction")
    with world.runtime._environment("ScheduleFunction"):
        failing = FailingReads(module.customers())
    monkeypatch.setattr(module, "customers", lambda: failing)
    # WHEN the journey runs (its check is retried, then gives up)
    desc = run_journey(world, cid, "c1", ("email", "push"))
    # THEN the execution fails with the error, nothing is sent, and the campaign counts a journey failure
    assert desc["status"] == "FAILED"
    assert desc["error"] == "StoreError" and "get_customer failed" in desc["cause"]
    assert providers["email"].calls == 0 and world.messages(cid, "c1") == []
    doc = world.campaigns.get_campaign(cid)
    assert int(doc["journey_failures"]) == 1
    assert doc["last_failure"]["kind"] == "journey" and doc["last_failure"]["reason"].startswith("StoreError")
    assert "c1" not in json.dumps(doc["last_failure"])  # no customer on the campaign
    assert doc["status"] != "failed"  # the campaign goes on for everybody else


def test_launch_that_fails_marks_the_campaign_failed_with_the_reason(world, monkeypatch):
    # GIVEN customers to message and a customers table that fails every scan
    for i in range(3):
        world.customer(f"c{i}")
    module = handler_module(world, "ScheduleFunction")
    with world.runtime._environment("ScheduleFunction"):
        failing = FailingReads(module.customers())
    monkeypatch.setattr(module, "customers", lambda: failing)
    body = {
        "name": "doomed",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "s", "text": "t"}},
        "channels": ["email"],
        "expires_at": (START + timedelta(days=2)).isoformat(),
        "send_time": {"mode": "immediate"},
    }
    # WHEN the campaign is created (its launch starts at once) and the launch runs out of retries
    with world.clock.busy():
        resp = world.client.request("POST", "/v1/campaigns", body)
    assert resp.status == 201, resp.body
    cid = resp.json()["campaign_id"]
    sfn = world.runtime.session.client("stepfunctions")
    (launch,) = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["LaunchStateMachine"])["executions"]
    desc = world.sfn.wait(launch["executionArn"], timeout_s=90)
    # THEN the execution failed, and the campaign says so with the reason instead of staying scheduled
    assert desc["status"] == "FAILED" and desc["error"] == "StoreError"
    doc = world.campaigns.get_campaign(cid)
    assert doc["status"] == "failed"
    assert doc["last_failure"]["kind"] == "launch"
    assert doc["last_failure"]["reason"].startswith("StoreError: customers scan_customers failed")
    journeys = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["JourneyStateMachine"])["executions"]
    assert journeys == []


def test_launch_passes_journeys_ids_and_the_decision_only(world, monkeypatch):
    # GIVEN customers with an email, a phone and a push token
    for i in range(4):
        world.customer(f"c{i}")
    script_providers(world, monkeypatch)
    body = {
        "name": "ids-only",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "s", "text": "t"}},
        "channels": ["email"],
        "expires_at": (START + timedelta(days=2)).isoformat(),
        "send_time": {"mode": "immediate"},
        "control_share": 0,  # everyone gets a journey, whatever the campaign id hashes to
    }
    # WHEN the launch starts their journeys
    with world.clock.busy():
        assert world.client.request("POST", "/v1/campaigns", body).status == 201
    sfn = world.runtime.session.client("stepfunctions")
    (launch,) = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["LaunchStateMachine"])["executions"]
    assert world.sfn.wait(launch["executionArn"], timeout_s=90)["status"] == "SUCCEEDED"
    journeys = sfn.list_executions(stateMachineArn=world.runtime.dep.physical["JourneyStateMachine"])["executions"]
    assert len(journeys) == 4
    # THEN every journey's input holds ids, times, channels and the send-time decision, and no contact point
    for j in journeys:
        raw = sfn.describe_execution(executionArn=j["executionArn"])["input"]
        assert not any(c in raw for c in CONTACT), raw
        payload = json.loads(raw)
        assert set(payload) == {"campaign_id", "customer_id", "send_at", "channels", "step", "decision"}
        assert "contact" not in payload["decision"] and "profile" not in payload["decision"]
        world.sfn.wait(j["executionArn"], timeout_s=90)
