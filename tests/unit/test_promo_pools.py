"""Promo code pools: upload, one code per holder, low and empty alerts (logic on the in-memory pools)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.promotions.adapters.alerts import emf_alert
from kairos.promotions.domain import PROMO_POOL_EMPTY, PROMO_POOL_LOW, PoolAlert, PromoCodesIn
from kairos.promotions.pools import holder_key, pool_counts, take_code, upload_codes
from tests.fakes import InMemoryPromoPools

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _pool(codes: list[str], low_water: int | None = None) -> InMemoryPromoPools:
    pools = InMemoryPromoPools()
    upload_codes(pools, "summer", PromoCodesIn(codes=codes, low_water=low_water), NOW)
    return pools


def test_upload_codes_counts_new_and_present_codes_once():
    # GIVEN a pool with two codes, one of them handed out
    pools = _pool(["A1", "B2"])
    take_code(pools, "summer", "j1.ana.e1", NOW)
    # WHEN both come again with a new one, the new one twice
    out = upload_codes(pools, "summer", PromoCodesIn(codes=["A1", "B2", "C3", "C3"], low_water=5), NOW)
    # THEN only the new code is added; duplicates in the body count once
    assert (out.added, out.already_present) == (1, 2)
    assert (out.available, out.taken, out.low_water) == (2, 1, 5)


def test_upload_codes_keeps_the_low_water_mark_when_omitted():
    # GIVEN a pool with a mark
    pools = _pool(["A1"], low_water=10)
    # WHEN codes come without one
    out = upload_codes(pools, "summer", PromoCodesIn(codes=["B2"]), NOW)
    # THEN the mark stays
    assert out.low_water == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"codes": []}, "codes"),
        ({"codes": ["ok", "not ok"]}, "codes.1"),
        ({"codes": ["x" * 65]}, "codes.0"),
        ({"codes": ["A1"], "low_water": -1}, "low_water"),
        ({"codes": ["A1"], "extra": 1}, "extra"),
        ({"codes": ["A"] * 10_001}, "codes"),
    ],
)
def test_promo_codes_in_refuses_bad_bodies_naming_the_field(body, field):
    # GIVEN / WHEN a body breaking a rule  THEN validation names the field
    with pytest.raises(ValidationError) as err:
        PromoCodesIn.model_validate(body)
    assert ".".join(str(p) for p in err.value.errors()[0]["loc"]) == field


def test_take_code_same_holder_gets_the_same_code():
    # GIVEN a pool of two codes
    pools = _pool(["A1", "B2"])
    # WHEN one holder asks twice and another once
    first = take_code(pools, "summer", "j1.ana.e1", NOW)
    again = take_code(pools, "summer", "j1.ana.e1", NOW)
    other = take_code(pools, "summer", "j1.bob.e1", NOW)
    # THEN the first holder keeps its code and the other gets the other one
    assert first == again and {first, other} == {"A1", "B2"}
    assert pool_counts(pools, "summer").taken == 2


def test_take_code_pool_of_five_serves_five_holders_then_none():
    # GIVEN a pool of 5 codes and 8 holders
    pools = _pool([f"C{i}" for i in range(5)])
    alerts: list[PoolAlert] = []
    # WHEN each asks for a code
    got = [take_code(pools, "summer", f"j1.c{i}.e1", NOW, notify=alerts.append) for i in range(8)]
    # THEN 5 distinct codes, then None, and each empty take says so
    assert len(set(got[:5])) == 5 and got[5:] == [None, None, None]
    assert [a.metric for a in alerts] == [PROMO_POOL_EMPTY] * 3


def test_take_code_unknown_pool_is_none_and_alerts_empty():
    # GIVEN no pool  WHEN a code is asked for  THEN None, and the empty alert names the pool
    alerts: list[PoolAlert] = []
    assert take_code(InMemoryPromoPools(), "nope", "j1.ana.e1", NOW, notify=alerts.append) is None
    assert alerts == [PoolAlert(PROMO_POOL_EMPTY, "nope")]


def test_take_code_below_low_water_alerts_once_per_fresh_take():
    # GIVEN 4 codes and a low-water mark of 3
    pools = _pool(["A", "B", "C", "D"], low_water=3)
    alerts: list[PoolAlert] = []
    # WHEN two holders take a code, and the second asks again
    take_code(pools, "summer", "h1", NOW, notify=alerts.append)  # 3 left: not below
    take_code(pools, "summer", "h2", NOW, notify=alerts.append)  # 2 left: below
    take_code(pools, "summer", "h2", NOW, notify=alerts.append)  # the same code: no new alert
    # THEN one alert, with the counts
    assert alerts == [PoolAlert(PROMO_POOL_LOW, "summer", available=2, low_water=3)]


def test_take_code_refuses_an_empty_holder():
    with pytest.raises(InvalidInputError):
        take_code(_pool(["A"]), "summer", "", NOW)


def test_take_code_stores_no_customer_id():
    # GIVEN a holder naming a customer
    pools = _pool(["A"])
    # WHEN it takes a code
    take_code(pools, "summer", "j1.ana-42.e1", NOW)
    # THEN the pools know it only by its digest
    assert list(pools.holders["summer"]) == [holder_key("j1.ana-42.e1")]
    assert "ana-42" not in json.dumps([pools.holders, pools.taken])


def test_take_code_concurrent_holders_each_get_one_distinct_code():
    # GIVEN 100 codes and 120 holders asking from 8 threads, each twice
    pools = _pool([f"K{i}" for i in range(100)])
    holders = [f"j1.c{i}.e1" for i in range(120)] * 2
    # WHEN they all ask at once
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda h: (h, take_code(pools, "summer", h, NOW)), holders))
    # THEN 100 holders hold one code each, none shared, and asking twice changed nothing
    per_holder: dict[str, set[str | None]] = {}
    for h, code in got:
        per_holder.setdefault(h, set()).add(code)
    given = [next(iter(c)) for c in per_holder.values() if c != {None}]
    assert all(len(c) == 1 for c in per_holder.values())
    assert len(given) == len(set(given)) == 100


def test_pool_counts_unknown_pool_is_not_found():
    with pytest.raises(NotFoundError):
        pool_counts(InMemoryPromoPools(), "nope")


def test_emf_alert_publishes_one_metric_with_the_pool_as_a_property(monkeypatch, capsys):
    # GIVEN metrics enabled (tests disable them)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # WHEN a low alert is published
    emf_alert(PoolAlert(PROMO_POOL_LOW, "summer", available=2, low_water=3))
    # THEN one EMF record: the metric in the Kairos namespace, service dimension only, the pool as a property
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert (
        directive["Namespace"] == "Kairos"
        and directive["Dimensions"] == [["service"]]
        and record["service"] == "kairos"
    )
    assert [m["Name"] for m in directive["Metrics"]] == ["PromoPoolLow"]
    assert (record["PromoPoolLow"], record["pool"], record["available"], record["low_water"]) == ([1.0], "summer", 2, 3)
