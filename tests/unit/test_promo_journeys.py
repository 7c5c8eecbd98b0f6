"""A journey hands each path one promo code of a pool, shows it in every message of the path, and a cycle
waiting on the code ends when it is redeemed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kairos.promotions.domain import PromoCodesIn
from kairos.promotions.pools import take_code, upload_codes
from tests.fakes import InMemoryPromoPools

CYCLE = {
    "name": "Promo chain",
    "entry": {"event": "cart_abandon"},
    "reentry": {"mode": "every_time"},
    "topic": "offers",
    "start": "offer",
    "nodes": {
        "offer": {
            "type": "cycle",
            "channels": ["email", "sms"],
            "content": {
                "email": {"subject": "Your code", "text": "Use {{ promo.code }} before it expires"},
                "sms": {"text": "Still yours: {{ promo.code }}"},
            },
            "wait_hours": 24,
            "expires_after_hours": 72,
            "promo_pool": "spring",
            "next": "used",
            "on_expiry": "expired",
        },
        "used": {"type": "exit"},
        "expired": {"type": "exit"},
    },
}


@pytest.fixture
def promo_world(world):
    pools = InMemoryPromoPools()
    plain = world.deps

    def deps():
        d = plain()
        d.promo = lambda pool, holder: take_code(pools, pool, holder, world.now)
        return d

    world.deps = deps
    return world, pools


def _texts(world) -> dict[str, list[str]]:
    return {ch: [m.body for m, _, _ in p.sent] for ch, p in world.providers.items() if p.sent}


def test_cycle_gives_a_path_one_code_for_all_its_messages(promo_world):
    world, pools = promo_world
    upload_codes(pools, "spring", PromoCodesIn(codes=["AAA1", "BBB2", "CCC3"]), world.now)
    world.journey(CYCLE)
    # WHEN a cart is abandoned and nobody reacts to the email for a day
    world.event("e1", "c1", "cart_abandon")
    world.advance_clock(25)
    # THEN the email and the SMS carry the same code, and the pool gave exactly one
    assert _texts(world) == {"email": ["Use AAA1 before it expires"], "sms": ["Still yours: AAA1"]}
    assert pools.counts("spring").taken == 1


@pytest.mark.parametrize(
    ("kind", "props"),
    [("promo_redeemed", {"code": "AAA1"}), ("purchase", {"promo_code": "AAA1"})],
)
def test_cycle_ends_when_its_code_is_redeemed(promo_world, kind, props):
    world, pools = promo_world
    upload_codes(pools, "spring", PromoCodesIn(codes=["AAA1"]), world.now)
    jid = world.journey(CYCLE)
    world.event("e1", "c1", "cart_abandon")
    # WHEN the customer uses the code an hour later
    world.now += timedelta(hours=1)
    world.event("r1", "c1", kind, properties=props)
    world.advance_clock(30)
    # THEN no SMS follows the email: the path left through "used"
    assert list(_texts(world)) == ["email"]
    (path,) = world.store.journey_paths(jid)
    assert path["status"] == "done" and path["exit_reason"] in ("exit at used", "exit_on purchase")


def test_someone_elses_code_does_not_end_the_cycle(promo_world):
    world, pools = promo_world
    upload_codes(pools, "spring", PromoCodesIn(codes=["AAA1", "ZZZ9"]), world.now)
    world.journey(CYCLE)
    world.event("e1", "c1", "cart_abandon")
    world.now += timedelta(hours=1)
    world.event("r1", "c1", "promo_redeemed", properties={"code": "ZZZ9"})
    world.advance_clock(25)
    assert list(_texts(world)) == ["email", "sms"]


def test_an_empty_pool_skips_the_message_and_says_why(promo_world, messages):
    world, _ = promo_world
    jid = world.journey(CYCLE)
    world.event("e1", "c1", "cart_abandon")
    # THEN nothing went out, and the log says the pool was empty
    assert _texts(world) == {}
    reasons = {m["reason"] for m in messages.for_campaign(jid)}
    assert "no promo code left in the pool" in reasons
