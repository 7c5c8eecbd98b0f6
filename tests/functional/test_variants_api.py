"""Content variants through the real template: the promote routes of journeys and campaigns, a promotion reaching
a path already under way (the API, the trigger and timer functions, the journey step machine's real ASL in moto's
interpreter, simulated time), and the timer promoting a winner by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kairos.journeys.adapters.journey_store import DynamoJourneyStore
from kairos.messaging.adapters.messages import DynamoMessageLog
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.functional.journey_stack import JourneyStack

START = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday, 09:00 UTC
A = {"name": "A", "content": {"email": {"subject": "Hello from A", "text": "a"}}}
B = {"name": "B", "content": {"email": {"subject": "Hello from B", "text": "b"}}}


def _journey(delay_hours: float = 2, **node: Any) -> dict[str, Any]:
    return {
        "name": "welcome",
        "entry": {"event": "cart_abandon"},
        "reentry": {"mode": "once"},
        "start": "wait",
        "nodes": {
            "wait": {"type": "delay", "hours": delay_hours, "next": "mail"},
            "mail": {"type": "message", "channel": "email", "variants": [A, B], "next": "done", **node},
            "done": {"type": "exit"},
        },
    }


class Stack(JourneyStack):
    def __init__(self, runtime: Any, clock: SimulatedClock, sfn: Any) -> None:
        super().__init__(runtime, clock, sfn)
        dep, ddb = runtime.dep, runtime.session.client("dynamodb")
        self.store = DynamoJourneyStore(dep.physical["JourneysTable"], dep.physical["JourneyPathsTable"], ddb)
        self.log = DynamoMessageLog(dep.physical["MessagesTable"], dep.physical["ArchiveBucket"], ddb)

    def journey(self, body: dict[str, Any]) -> str:
        return self.start_journey(body)

    def customer(self, cid: str) -> None:
        self.put_customer(
            cid, {"timezone": "UTC", "contact": {"email": f"{cid}@example.com"}, "consent": {"email": True}}
        )

    def sent(self, jid: str) -> list[dict[str, Any]]:
        return [m for m in self.log.for_campaign(jid) if m["status"] == "sent"]


@pytest.fixture
def stack(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield Stack(runtime, clock, sfn)


def test_promote_route_refuses_unknown_journeys_nodes_and_variants(client):
    # GIVEN a journey whose email node has variants A and B
    resp = client.request("POST", "/v1/journeys", _journey())
    assert resp.status == 201, resp.body
    jid = resp.json()["journey_id"]
    # WHEN / THEN an unknown journey or node is 404
    assert client.request("POST", f"/v1/journeys/{'0' * 32}/nodes/mail/promote", {"variant": "B"}).status == 404
    assert client.request("POST", f"/v1/journeys/{jid}/nodes/nope/promote", {"variant": "B"}).status == 404
    # AND an unknown variant, a node without variants, or a body without the field is 400 naming variant
    for node, body in (("mail", {"variant": "C"}), ("wait", {"variant": "A"}), ("mail", {})):
        bad = client.request("POST", f"/v1/journeys/{jid}/nodes/{node}/promote", body)
        assert bad.status == 400 and bad.json()["message"].startswith("variant"), (node, body, bad.body)
    # AND nothing was promoted
    assert client.request("GET", f"/v1/journeys/{jid}").json()["promoted"] == {}


def test_promote_round_trip_reaches_a_path_already_under_way(stack):
    # GIVEN a journey (a delay, then variants A and B) and four customers already waiting in it
    jid = stack.journey(_journey())
    for i in range(4):
        stack.customer(f"c{i}")
        stack.event(f"cart-{i}", f"c{i}", "cart_abandon", amount=1000)
    assert stack.sent(jid) == []
    # WHEN B is promoted through the API
    resp = stack.client.request("POST", f"/v1/journeys/{jid}/nodes/mail/promote", {"variant": "B"})
    # THEN the journey shows it, and every waiting path gets B
    assert resp.status == 200, resp.body
    assert resp.json() == {"journey_id": jid, "node": "mail", "variant": "B", "promoted": {"mail": "B"}}
    assert stack.client.request("GET", f"/v1/journeys/{jid}").json()["promoted"] == {"mail": "B"}
    stack.later(3)
    sent = stack.sent(jid)
    assert len(sent) == 4 and {m["variant"] for m in sent} == {"B"}
    # AND the results show the node per variant, with B promoted
    res = stack.client.request("GET", f"/v1/journeys/{jid}/results").json()
    mail = res["variants_by_node"]["mail"]
    assert mail["promoted"] == "B" and mail["variants"]["B"]["sends"] == 4 and mail["variants"]["A"]["sends"] == 0
    assert set(mail["variants"]["B"]["click_rate"]) == {"value", "low", "high"}
    # AND null ends the promotion
    off = stack.client.request("POST", f"/v1/journeys/{jid}/nodes/mail/promote", {"variant": None})
    assert off.status == 200 and off.json()["variant"] is None and off.json()["promoted"] == {}


def test_campaign_promote_route_and_results_per_variant(stack):
    # GIVEN a campaign with two variants and no messages
    stack.customer("c1")
    body = {
        "name": "spring",
        "audience": {"filters": []},
        "variants": [A, B],
        "channels": ["email"],
        "expires_at": (stack.clock.now() + timedelta(days=2)).isoformat(),
        "control_share": 0.0,
        "send_time": {"mode": "immediate"},
    }
    resp = stack.client.request("POST", "/v1/campaigns", body)
    assert resp.status == 201, resp.body
    cid = resp.json()["campaign_id"]
    # WHEN it launches
    stack.later(0.02)
    # THEN its results show the offer node per variant
    res = stack.client.request("GET", f"/v1/campaigns/{cid}/results")
    assert res.status == 200, res.body
    offer = res.json()["variants_by_node"]["offer"]
    assert sum(v["sends"] for v in offer["variants"].values()) == 1
    # AND a variant is promoted at the offer node; unknown ones are refused
    ok = stack.client.request("POST", f"/v1/campaigns/{cid}/promote", {"variant": "B"})
    assert ok.status == 200 and ok.json()["promoted"] == {"offer": "B"}, ok.body
    bad = stack.client.request("POST", f"/v1/campaigns/{cid}/promote", {"variant": "Z"})
    assert bad.status == 400 and bad.json()["message"].startswith("variant")
    assert stack.client.request("POST", f"/v1/campaigns/{'0' * 32}/promote", {"variant": "B"}).status == 404


def test_timer_promotes_a_clear_winner_by_itself(stack):
    # GIVEN a journey that promotes its click winner by itself after 20 sends each, sending at once
    auto = {"metric": "click", "confidence": 0.95, "min_sends": 20}
    jid = stack.journey(_journey(delay_hours=1, auto_promote=auto))
    n = 0
    while min(sum(m["variant"] == v for m in stack.sent(jid)) for v in "AB") < 20:
        stack.customer(f"c{n:03d}")
        stack.event(f"cart-{n}", f"c{n:03d}", "cart_abandon", amount=1000)
        n += 1
        if n % 10 == 0:
            stack.later(1.1)
    # WHEN every B email is clicked and the timer runs an hour later
    for i, m in enumerate(m for m in stack.sent(jid) if m["variant"] == "B"):
        stack.event(f"click-{i}", m["customer_id"], "message_click", message_id=m["message_id"], channel="email")
    stack.later(1.1)
    # THEN B is promoted on the journey, and the check time is remembered
    doc = stack.store.get_journey(jid)
    assert doc["promoted"] == {"mail": "B"}
    assert doc["variants_checked_at"] >= (START + timedelta(hours=1)).isoformat()[:19]
