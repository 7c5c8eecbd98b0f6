"""The deployed product driven as a journey test needs it: the API, the events stream and trigger, the timer and
the journey step machine's real ASL in moto's interpreter, with simulated time (a test helper)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client


def settle(runtime: Any, clock: Any, sfn: Any) -> None:
    """Deliver the streams (archive, trigger) and wait for every step execution to end, each successfully."""
    with clock.busy():
        runtime.pump_streams()
    api = runtime.session.client("stepfunctions")
    for ex in api.list_executions(stateMachineArn=runtime.dep.physical["JourneyStepStateMachine"])["executions"]:
        assert sfn.wait(ex["executionArn"], timeout_s=60)["status"] == "SUCCEEDED", ex


class JourneyStack:
    """Journeys, customers and events through the API; ``settle`` and ``later`` run what AWS would run."""

    def __init__(self, runtime: Any, clock: Any, sfn: Any) -> None:
        self.runtime, self.clock, self.sfn = runtime, clock, sfn
        self.client = Client(runtime)

    def start_journey(self, body: dict[str, Any]) -> str:
        """Create ``body`` and activate it; returns its id."""
        resp = self.client.request("POST", "/v1/journeys", body)
        assert resp.status == 201, resp.body
        jid = resp.json()["journey_id"]
        resp = self.client.request("POST", f"/v1/journeys/{jid}/status", {"status": "active"})
        assert resp.status == 200 and resp.json()["status"] == "active", resp.body
        return jid

    def put_customer(self, cid: str, profile: dict[str, Any]) -> None:
        assert self.client.request("PUT", f"/v1/customers/{cid}", profile).status == 200

    def event(self, event_id: str, cid: str, type: str, **extra: Any) -> None:  # noqa: A002
        ev = {"event_id": event_id, "customer_id": cid, "type": type, "timestamp": self.clock.now().isoformat()}
        resp = self.client.post_events([{**ev, **extra}])
        assert resp.status == 200 and resp.json()["accepted"] == 1, resp.body
        self.settle()

    def settle(self) -> None:
        settle(self.runtime, self.clock, self.sfn)

    def later(self, hours: float) -> None:
        """Let time pass; the timer runs as EventBridge would run it every minute (here: at the end)."""
        self.clock.advance(hours * 3600)
        with self.clock.busy():
            self.runtime.invoke("TimerFunction", {})
        self.settle()
