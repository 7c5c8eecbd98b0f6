"""Content variants of message and cycle nodes: the split by weight, the log, per-variant results with intervals,
the winner's test, promotion by hand and by itself, and campaigns with variants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.journeys import campaigns, definitions
from kairos.journeys.campaign_domain import CampaignIn
from kairos.journeys.domain import JourneyIn
from kairos.journeys.entry import scan_entries
from kairos.journeys.promotion import promote_variant, promote_winners
from kairos.journeys.results import journey_results
from kairos.journeys.variants import choose_variant, variant_results, winner
from tests.unit.conftest import NOW, campaign_body

A = {"name": "A", "content": {"email": {"subject": "Hello from A", "text": "a"}}}
B = {"name": "B", "weight": 3, "content": {"email": {"subject": "Hello from B", "text": "b"}}}


def _journey(delay_hours: float | None = None, **node: Any) -> dict[str, Any]:
    """Cart abandon -> (a delay) -> one email in variants A and B (weights 1 and 3) -> exit."""
    mail = {"type": "message", "channel": "email", "variants": [A, B], "next": "done", **node}
    nodes: dict[str, Any] = {"mail": mail, "done": {"type": "exit"}}
    start = "mail"
    if delay_hours is not None:
        nodes["wait"] = {"type": "delay", "hours": delay_hours, "next": "mail"}
        start = "wait"
    return {
        "name": "welcome",
        "entry": {"event": "cart_abandon"},
        "reentry": {"mode": "once"},
        "start": start,
        "nodes": nodes,
    }


def _enter(world, add_customer, n: int, prefix: str = "p") -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    for cid in ids:
        add_customer(cid)
        world.event(f"cart-{cid}", cid, "cart_abandon", amount=1000)
    return ids


def _log(world) -> list[dict[str, Any]]:
    return sorted(world.messages.records.values(), key=lambda m: m["message_id"])


def test_choose_variant_splits_about_by_weight_and_is_stable_per_path():
    # GIVEN a message node with A (weight 1) and B (weight 3)
    node = JourneyIn.model_validate(_journey()).nodes["mail"]
    # WHEN 4000 paths draw
    drawn = [choose_variant(node, None, "j1", f"c{i}", "e1", "mail").name for i in range(4000)]
    # THEN about a quarter get A, and a path draws the same variant every time
    assert 0.72 < drawn.count("B") / 4000 < 0.78
    assert all(choose_variant(node, None, "j1", f"c{i}", "e1", "mail").name == drawn[i] for i in range(200))
    # AND a promoted variant takes every path; a name the node does not have is ignored
    assert {choose_variant(node, "A", "j1", f"c{i}", "e1", "mail").name for i in range(200)} == {"A"}
    assert choose_variant(node, "gone", "j1", "c0", "e1", "mail").name == drawn[0]


def test_choose_variant_is_independent_of_a_random_split_draw():
    # GIVEN the draws of a random split and of a variant node with equal shares, for the same paths
    from kairos.models.timing import stable_unit

    node = JourneyIn.model_validate(_journey()).nodes["mail"].model_copy(update={"variants": None})
    equal = JourneyIn.model_validate(_journey(variants=[A, {**B, "weight": 1}])).nodes["mail"]
    assert choose_variant(node, None, "j", "c", "e", "mail") is None  # no variants: nothing to choose
    # WHEN both are drawn for 2000 paths
    split = [stable_unit("journey-variant", "j1", f"c{i}", "e1", "mail") < 0.5 for i in range(2000)]
    content = [choose_variant(equal, None, "j1", f"c{i}", "e1", "mail").name == "A" for i in range(2000)]
    # THEN they agree about half the time (the seeds differ), not always
    agree = sum(s == c for s, c in zip(split, content, strict=True)) / 2000
    assert 0.45 < agree < 0.55


def test_message_node_sends_each_path_its_variant_and_logs_it(world, add_customer):
    # GIVEN an active journey whose email node has variants A and B
    world.journey(_journey())
    # WHEN 80 customers enter
    _enter(world, add_customer, 80)
    # THEN each got one email, of its variant, and the log record and the path's note name the variant
    log = _log(world)
    assert len(log) == 80 and {m["variant"] for m in log} == {"A", "B"}
    assert 0.6 < sum(m["variant"] == "B" for m in log) / 80 < 0.9
    subjects = {mid: rendered.subject for rendered, mid, _ in world.providers["email"].sent}
    assert all(subjects[m["message_id"]] == f"Hello from {m['variant']}" for m in log)
    (path,) = world.paths("p000")
    assert path["messages"][0]["variant"] == next(m["variant"] for m in log if m["customer_id"] == "p000")


def test_journey_results_report_per_variant_sends_opens_clicks_with_intervals(world, add_customer):
    # GIVEN 80 customers emailed in variants A and B
    jid = world.journey(_journey())
    _enter(world, add_customer, 80)
    log = _log(world)
    # WHEN every B email is opened, every third one clicked, and one A customer buys
    b_mails = [m for m in log if m["variant"] == "B"]
    for i, m in enumerate(b_mails):
        world.event(f"open-{i}", m["customer_id"], "message_open", message_id=m["message_id"], channel="email")
        if i % 3 == 0:
            world.event(f"click-{i}", m["customer_id"], "message_click", message_id=m["message_id"], channel="email")
    buyer = next(m["customer_id"] for m in log if m["variant"] == "A")
    world.advance_clock(2)
    world.event("buy-1", buyer, "purchase", amount=4200)
    res = journey_results(jid, world.store, world.messages, world.customers)
    # THEN the node's variants show sends, opens, clicks, conversions and revenue, with 95% intervals
    mail = res["variants_by_node"]["mail"]
    a, b = mail["variants"]["A"], mail["variants"]["B"]
    assert (b["sends"], b["opens"], b["clicks"]) == (len(b_mails), len(b_mails), len(b_mails[::3]))
    assert (a["sends"], a["opens"], a["conversions"], a["revenue"]) == (80 - len(b_mails), 0, 1, 4200.0)
    assert b["open_rate"]["value"] == 1.0 and b["open_rate"]["low"] < 1.0 == b["open_rate"]["high"]
    assert (
        a["click_rate"] == {"value": 0.0, "low": 0.0, "high": a["click_rate"]["high"]} and a["click_rate"]["high"] > 0
    )
    assert a["weight"] == 1.0 and b["weight"] == 3.0
    # AND nobody is promoted; with fewer than 200 sends each, the default test names no winner yet
    assert mail["promoted"] is None and mail["winner"] is None
    assert mail["test"] == {"metric": "click", "confidence": 0.95, "min_sends": 200}


def test_variant_results_count_delivered_messages_only():
    # GIVEN log records of two variants, one failed, one without a variant
    records = [
        {"message_id": "m1", "node": "n", "variant": "A", "status": "sent"},
        {"message_id": "m2", "node": "n", "variant": "A", "status": "unconfirmed"},
        {"message_id": "m3", "node": "n", "variant": "B", "status": "failed"},
        {"message_id": "m4", "node": "n", "status": "sent"},
    ]
    # WHEN they are counted with an open of m1 and a conversion credited to m2
    out = variant_results(records, {"m1": {"opened"}}, {"m2": 12.5})
    # THEN only delivered messages of a variant count
    assert list(out["n"]) == ["A"]
    assert out["n"]["A"]["sends"] == 2 and out["n"]["A"]["opens"] == 1 and out["n"]["A"]["revenue"] == 12.5
    assert out["n"]["A"]["conversion_rate"]["value"] == 0.5


def test_winner_needs_min_sends_and_confidence():
    # GIVEN B clicked three times as often as A, 500 sends each
    clear = {"A": {"sends": 500, "clicks": 20}, "B": {"sends": 500, "clicks": 60}}
    # WHEN / THEN B wins; not before every variant has min_sends
    assert winner(clear, "click", 0.95, 200) == "B"
    assert winner(clear, "click", 0.95, 600) is None
    # AND a small difference wins at a low confidence but not at a high one
    close = {"A": {"sends": 1000, "clicks": 100}, "B": {"sends": 1000, "clicks": 125}}
    assert winner(close, "click", 0.8, 200) == "B"
    assert winner(close, "click", 0.99, 200) is None
    # AND the best must beat every other: B against a close C names no winner
    three = {**clear, "C": {"sends": 500, "clicks": 58}}
    assert winner(three, "click", 0.95, 200) is None
    # AND the metric is read from its own counts; nobody doing it names no winner
    assert winner({"A": {"sends": 300, "opens": 0}, "B": {"sends": 300, "opens": 0}}, "open", 0.95, 200) is None


def test_promoted_variant_takes_all_traffic_including_running_paths(world, add_customer):
    # GIVEN 40 paths waiting two hours before the email node with variants A and B
    jid = world.journey(_journey(delay_hours=2))
    _enter(world, add_customer, 40)
    assert not world.sent()
    # AND a new version of the journey (the paths finish on the version they entered)
    definitions.update_journey(jid, JourneyIn.model_validate(_journey(delay_hours=3)), world.store, world.now)
    # WHEN B is promoted by hand
    view = promote_variant(jid, "mail", "B", world.store)
    world.advance_clock(3)
    # THEN every path, those already under way included, gets B
    assert view == {"journey_id": jid, "node": "mail", "variant": "B", "promoted": {"mail": "B"}}
    assert len(_log(world)) == 40 and {m["variant"] for m in _log(world)} == {"B"}
    # AND null ends the promotion: new paths split by weight again
    assert promote_variant(jid, "mail", None, world.store)["promoted"] == {}
    _enter(world, add_customer, 40, prefix="q")
    world.advance_clock(4)
    assert {m["variant"] for m in _log(world) if m["customer_id"].startswith("q")} == {"A", "B"}


def test_promote_variant_refuses_unknown_journeys_nodes_and_variants(world):
    # GIVEN a journey with a variant node and a node without variants
    jid = world.journey(_journey(delay_hours=1))
    # WHEN / THEN an unknown journey or node is not found; an unknown variant names the field
    with pytest.raises(NotFoundError):
        promote_variant("0" * 32, "mail", "B", world.store)
    with pytest.raises(NotFoundError, match="no node 'nope'"):
        promote_variant(jid, "nope", "B", world.store)
    with pytest.raises(InvalidInputError, match="no variant 'C'") as err:
        promote_variant(jid, "mail", "C", world.store)
    assert err.value.field == "variant"
    with pytest.raises(InvalidInputError, match="no content variants"):
        promote_variant(jid, "wait", "A", world.store)
    assert world.store.get_journey(jid).get("promoted") in (None, {})


def test_promote_winners_promotes_a_clear_winner_at_most_hourly_and_never_over_a_hand_choice(world, add_customer):
    # GIVEN a node that promotes its click winner by itself (20 sends each), and equal weights
    auto = {"metric": "click", "confidence": 0.95, "min_sends": 20}
    jid = world.journey(_journey(variants=[A, {**B, "weight": 1}], auto_promote=auto))
    _enter(world, add_customer, 30)
    # WHEN the timer looks before every variant has 20 sends
    assert promote_winners(world.store, world.messages, world.customers, world.now) == []
    checked = world.store.get_journey(jid)["variants_checked_at"]
    # AND more customers enter and click every B email
    _enter(world, add_customer, 60, prefix="q")
    for i, m in enumerate(m for m in _log(world) if m["variant"] == "B"):
        world.event(f"click-{i}", m["customer_id"], "message_click", message_id=m["message_id"], channel="email")
    counts = [sum(m["variant"] == v for m in _log(world)) for v in "AB"]
    assert min(counts) >= 20
    # THEN within the hour it does not look again; after it, B is promoted once
    later = world.now + timedelta(minutes=30)
    assert promote_winners(world.store, world.messages, world.customers, later) == []
    assert world.store.get_journey(jid)["variants_checked_at"] == checked
    hour = world.now + timedelta(minutes=61)
    assert promote_winners(world.store, world.messages, world.customers, hour) == [
        {"journey_id": jid, "node": "mail", "variant": "B"}
    ]
    assert world.store.get_journey(jid)["promoted"] == {"mail": "B"}
    assert promote_winners(world.store, world.messages, world.customers, hour + timedelta(hours=2)) == []
    # AND a promotion made by hand is never overridden
    assert world.store.set_promoted(jid, "mail", "A", only_if_unset=True) is False
    promote_variant(jid, "mail", "A", world.store)
    assert promote_winners(world.store, world.messages, world.customers, hour + timedelta(hours=4)) == []
    assert world.store.get_journey(jid)["promoted"] == {"mail": "A"}


def test_campaign_with_variants_sends_one_variant_per_customer_and_reports_the_offer_node(world, add_customer):
    # GIVEN 40 customers and a campaign (email, then SMS) with two variants and no messages
    for i in range(40):
        add_customer(
            f"p{i:02d}",
            consent={"email": True, "sms": True},
            contact={"email": f"p{i:02d}@example.com", "phone": "+447700900123"},
        )
    variants = [
        {"name": "plain", "content": {"email": {"subject": "Sale", "text": "t"}, "sms": {"text": "Sale"}}},
        {"name": "bold", "content": {"email": {"subject": "SALE!", "text": "t"}, "sms": {"text": "SALE!"}}},
    ]
    body = campaign_body(
        messages=None,
        variants=variants,
        channels=["email", "sms"],
        wait_hours=[24.0],
        send_time={"mode": "immediate"},
        expires_at=(NOW + timedelta(days=3)).isoformat(),
    )
    cid = campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)[
        "campaign_id"
    ]
    # WHEN the audience enters and the SMS follows a day later
    scan_entries(world.active(), world.entrance(), world.now)
    world.drain()
    world.advance_clock(26)
    # THEN each customer's email and SMS are of the same variant, and both variants went out
    log = _log(world)
    by_customer: dict[str, set[str]] = {}
    for m in log:
        by_customer.setdefault(m["customer_id"], set()).add(m["variant"])
    assert all(len(v) == 1 for v in by_customer.values()) and {m["variant"] for m in log} == {"plain", "bold"}
    assert {m["channel"] for m in log} == {"email", "sms"}
    # AND the campaign's results report the offer node per variant
    res = campaigns.campaign_results(cid, world.store, world.messages, world.customers, world.now)
    offer = res["variants_by_node"]["offer"]
    assert sum(v["sends"] for v in offer["variants"].values()) == len(log)
    # AND a variant is promoted at the offer node; unknown ones are refused
    assert campaigns.promote_campaign_variant(cid, "bold", world.store, world.now)["promoted"] == {"offer": "bold"}
    with pytest.raises(InvalidInputError, match="variant"):
        campaigns.promote_campaign_variant(cid, "loud", world.store, world.now)
    with pytest.raises(NotFoundError):
        campaigns.promote_campaign_variant("0" * 32, "bold", world.store, world.now)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"content": {"email": {"subject": "s", "text": "t"}}}, "give content or variants"),
        ({"variants": None}, "give content or variants"),
        ({"variants": [A]}, "at least 2"),
        ({"variants": [A, {**B, "name": "A"}]}, "variant names must differ"),
        (
            {"variants": [A, {**B, "content": {"sms": {"text": "t"}}}]},
            "variant 'B' has no content for channel(s) email",
        ),
        ({"variants": [A, {**B, "weight": 0}]}, "greater than 0"),
        ({"variants": None, "content": {"email": {"subject": "s", "text": "t"}}, "auto_promote": {}}, "auto_promote"),
        ({"auto_promote": {"confidence": 0.5}}, "confidence"),
        ({"auto_promote": {"min_sends": 5}}, "min_sends"),
    ],
)
def test_variant_node_validation_names_the_problem(change, message):
    # GIVEN a journey whose message node is changed  WHEN it is validated  THEN the error says what is wrong
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        JourneyIn.model_validate(_journey(**change))


def test_campaign_needs_messages_or_variants():
    # GIVEN a campaign body with neither messages nor variants  WHEN it is validated  THEN it is refused
    with pytest.raises(ValidationError, match="give messages or variants"):
        CampaignIn.model_validate(campaign_body(messages=None))
