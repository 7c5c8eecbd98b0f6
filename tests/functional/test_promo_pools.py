"""Promo code pools on the real template's table (moto): bulk uploads, concurrent takes, alerts, the API routes."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from kairos import wiring
from kairos.core.config import Settings
from kairos.promotions.adapters.dynamo import DynamoPromoPools
from kairos.promotions.domain import PROMO_POOL_EMPTY, PROMO_POOL_LOW, PromoCodesIn
from kairos.promotions.pools import holder_key, pool_counts, take_code, upload_codes

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
API_GATEWAY_TIMEOUT_S = 29


@pytest.fixture
def table(runtime):
    return runtime.dep.physical["PromoCodesTable"]


@pytest.fixture
def pools(runtime, table):
    return DynamoPromoPools(table, client=runtime.session.client("dynamodb"))


class OneRequestAtATime:
    """A DynamoDB client whose requests run one at a time.

    DynamoDB applies each request atomically, a transaction's condition checks and writes included; in-process
    moto lets another thread run between a transaction's checks and its writes. Serializing single requests
    keeps DynamoDB's guarantee and still lets takes interleave between their read, query and transaction.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return one_at_a_time


def _upload(pools, pool: str, codes: list[str], low_water: int | None = None):
    return upload_codes(pools, pool, PromoCodesIn(codes=codes, low_water=low_water), NOW)


def _items(runtime, table: str, pool: str, kind: str) -> list[dict]:
    ddb = runtime.session.client("dynamodb")
    out = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        out += [i for i in page["Items"] if i["pk"]["S"].startswith(f"{pool}#") and i["sk"]["S"].startswith(kind)]
    return out


def test_add_codes_10000_codes_well_within_api_gateway_timeout(pools):
    # GIVEN 10,000 new codes
    codes = [f"SUMMER-{i:05d}" for i in range(10_000)]
    # WHEN they are uploaded, then uploaded again
    started = time.monotonic()
    first = _upload(pools, "summer", codes, low_water=100)
    new_s = time.monotonic() - started
    started = time.monotonic()
    again = _upload(pools, "summer", codes)
    again_s = time.monotonic() - started
    print(f"promo upload on moto: 10,000 new codes {new_s:.2f} s, the same 10,000 again {again_s:.2f} s")
    # THEN all are added once, and the second upload adds none
    assert (first.added, first.already_present, first.available, first.low_water) == (10_000, 0, 10_000, 100)
    assert (again.added, again.already_present, again.available) == (0, 10_000, 10_000)
    assert new_s < API_GATEWAY_TIMEOUT_S and again_s < API_GATEWAY_TIMEOUT_S


def test_take_code_1000_concurrent_holders_get_1000_distinct_codes(runtime, table):
    # GIVEN a pool of 1,200 codes and 1,000 holders, each asking twice in a row, from 16 threads at once
    pools = DynamoPromoPools(table, client=OneRequestAtATime(runtime.session.client("dynamodb")))
    _upload(pools, "launch", [f"L{i:04d}" for i in range(1_200)])
    holders = [f"j1.c{i}.e1" for i in range(1_000)]
    asks = [h for h in holders for _ in range(2)]
    # WHEN they all ask
    started = time.monotonic()
    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(lambda h: (h, take_code(pools, "launch", h, NOW)), asks))
    print(f"promo takes on moto: {len(asks)} asks by 1,000 holders from 16 threads {time.monotonic() - started:.2f} s")
    # THEN each holder got one code, both times the same, and no two holders share one
    per_holder: dict[str, set[str | None]] = {}
    for h, code in got:
        per_holder.setdefault(h, set()).add(code)
    assert all(len(codes) == 1 and None not in codes for codes in per_holder.values())
    given = [next(iter(codes)) for codes in per_holder.values()]
    assert len(set(given)) == 1_000
    # AND the table agrees: 1,000 handed out, 200 free, one holder item each, the counts exact
    assert len(_items(runtime, table, "launch", "taken#")) == len(_items(runtime, table, "launch", "holder#")) == 1_000
    assert len(_items(runtime, table, "launch", "free#")) == 200
    counts = pool_counts(pools, "launch")
    assert (counts.available, counts.taken) == (200, 1_000)


def test_take_code_same_holder_twice_gets_the_same_code(pools):
    # GIVEN a pool  WHEN a holder asks twice  THEN the same code, counted once
    _upload(pools, "summer", ["A1", "B2", "C3"])
    assert take_code(pools, "summer", "j1.ana.e1", NOW) == take_code(pools, "summer", "j1.ana.e1", NOW)
    assert pool_counts(pools, "summer").taken == 1


def test_take_code_reuploaded_taken_code_is_never_handed_out_twice(pools, runtime, table):
    # GIVEN a code handed out
    _upload(pools, "summer", ["A1"])
    assert take_code(pools, "summer", "h1", NOW) == "A1"
    # WHEN the shop uploads it again with a new one
    out = _upload(pools, "summer", ["A1", "B2"])
    # THEN it is already present, and only the new one goes out
    assert (out.added, out.already_present, out.available) == (1, 1, 1)
    assert [take_code(pools, "summer", h, NOW) for h in ("h2", "h3")] == ["B2", None]
    # AND a free item left beside its taken item (an upload racing a take) is dropped, never handed out
    ddb = runtime.session.client("dynamodb")
    ddb.put_item(TableName=table, Item={**DynamoPromoPools._free_key("summer", "A1"), "code": {"S": "A1"}})
    assert take_code(pools, "summer", "h4", NOW) is None
    assert _items(runtime, table, "summer", "free#") == []


def test_take_code_pool_of_five_serves_five_of_eight_holders(pools):
    # GIVEN 5 codes and 8 holders
    _upload(pools, "small", [f"S{i}" for i in range(5)])
    # WHEN each asks
    got = [take_code(pools, "small", f"j1.c{i}.e1", NOW) for i in range(8)]
    # THEN 5 distinct codes, then None
    assert sorted(got[:5]) == [f"S{i}" for i in range(5)] and got[5:] == [None] * 3
    assert (pool_counts(pools, "small").available, pool_counts(pools, "small").taken) == (0, 5)


def test_take_code_low_water_and_empty_metrics_are_emitted(runtime, table, pools, monkeypatch, capsys):
    # GIVEN 5 codes with a low-water mark of 3, taken through the journey step's wiring, metrics enabled
    _upload(pools, "small", [f"S{i}" for i in range(5)], low_water=3)
    take = wiring.promo_taker(Settings(promo_table=table))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()
    # WHEN six holders ask
    for i in range(6):
        take("small", f"j1.c{i}.e1")
    # THEN a PromoPoolLow record for each take leaving fewer than 3 (2, 1, 0 left), then a PromoPoolEmpty
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    seen = [(r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], r["pool"], r["available"]) for r in records]
    assert seen == [(PROMO_POOL_LOW, "small", 2), (PROMO_POOL_LOW, "small", 1), (PROMO_POOL_LOW, "small", 0)] + [
        (PROMO_POOL_EMPTY, "small", 0)
    ]
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Kairos" for r in records)


def test_promo_pools_store_holders_only_as_digests(pools, runtime, table):
    # GIVEN a holder naming a customer  WHEN it takes a code  THEN the table holds no customer id
    _upload(pools, "summer", ["A1"])
    take_code(pools, "summer", "j1.ana-42.e1", NOW)
    ddb = runtime.session.client("dynamodb")
    dump = json.dumps(ddb.scan(TableName=table)["Items"])
    assert "ana-42" not in dump and holder_key("j1.ana-42.e1") in dump


def test_promo_pool_api_upload_counts_and_errors(client):
    # WHEN a shop uploads codes through the API
    resp = client.request("PUT", "/v1/promo-pools/summer/codes", {"codes": ["A1", "B2", "A1"], "low_water": 1})
    # THEN it answers what it added and the counts
    assert resp.status == 200, resp.body
    assert resp.json() == {
        "pool": "summer",
        "available": 2,
        "taken": 0,
        "low_water": 1,
        "added": 2,
        "already_present": 0,
    }
    # AND the counts are read back
    resp = client.request("GET", "/v1/promo-pools/summer")
    assert resp.status == 200 and resp.json() == {"pool": "summer", "available": 2, "taken": 0, "low_water": 1}
    # AND a bad code is refused naming its index, an unknown pool is a 404, a bad name a 400
    resp = client.request("PUT", "/v1/promo-pools/summer/codes", {"codes": ["A1", "no spaces"]})
    assert resp.status == 400 and resp.json()["message"].startswith("codes.1")
    assert client.request("GET", "/v1/promo-pools/winter").status == 404
    assert client.request("GET", "/v1/promo-pools/Bad%20Name").status == 400


def test_promo_pool_api_uploads_10000_codes_in_one_request(client):
    # GIVEN 10,000 codes of the longest kind in one body
    codes = [f"{i:06d}".ljust(64, "X") for i in range(10_000)]
    # WHEN they are uploaded through the API
    started = time.monotonic()
    resp = client.request("PUT", "/v1/promo-pools/big/codes", {"codes": codes})
    took = time.monotonic() - started
    print(f"promo upload through the API on moto: 10,000 codes of 64 characters {took:.2f} s")
    # THEN all are added within API Gateway's limit
    assert resp.status == 200, resp.body
    assert resp.json()["added"] == 10_000 and took < API_GATEWAY_TIMEOUT_S
