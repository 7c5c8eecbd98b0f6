"""The run's RFM cut points from parallel, resumable shards: the same as one pass while values are few, within a
bin of it at any size, and a retried invocation counts nobody twice."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from kairos.insights.measures import RFM_KIND, rfm_thresholds
from kairos.insights.rfm_values import RfmValues, merge_all
from kairos.models.rfm_pass import merge_rfm, rfm_pass
from tests.fakes import InMemoryInsightStore

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _values(n: int, seed: int = 1) -> list[tuple[float, int, float]]:
    rng = random.Random(seed)
    return [(round(rng.uniform(0, 400), 3), rng.randint(1, 40), round(rng.lognormvariate(4, 1), 2)) for _ in range(n)]


def _parts(values, k: int) -> list[RfmValues]:
    parts = [RfmValues() for _ in range(k)]
    for i, v in enumerate(values):
        parts[i % k].add(v)
    # as stored and read back
    return [RfmValues.from_dict(json.loads(json.dumps(p.to_dict()))) for p in parts]


def test_merged_parts_give_the_exact_cut_points_while_values_are_few():
    values = _values(900)
    assert merge_all(_parts(values, 4)).thresholds(NOW) == rfm_thresholds(values, NOW)


def test_merged_parts_are_within_a_bin_of_the_exact_cut_points_at_any_size():
    # GIVEN 30,000 purchasers over 8 shards (past the exact limit)
    values = _values(30_000, seed=2)
    parts = _parts(values, 8)
    # WHEN merged
    got, exact = merge_all(parts).thresholds(NOW), rfm_thresholds(values, NOW)
    # THEN recency within 0.1 day, frequency exact, monetary within 0.5%, and each part stays small
    assert got.customers == exact.customers == 30_000
    assert all(abs(a - b) <= 0.1 for a, b in zip(got.recency_days, exact.recency_days, strict=True))
    assert got.frequency == exact.frequency
    assert all(abs(a - b) <= 0.005 * b for a, b in zip(got.monetary, exact.monetary, strict=True))
    assert max(len(json.dumps(p.to_dict())) for p in parts) < 100_000


class _Pages:
    """A customers store of purchasers, scanned in fixed pages per shard."""

    def __init__(self, values) -> None:
        from kairos.customers.aggregates import CustomerAggregates
        from kairos.customers.domain import CustomerRecord

        self.records = []
        for i, (r, f, m) in enumerate(values):
            agg = CustomerAggregates(
                purchase_count=f, monetary_total=m, last_purchase_s=int(NOW.timestamp() - r * 86400)
            )
            self.records.append(CustomerRecord(f"c{i}", exists=True, aggregates=agg))

    def scan_customers(self, shard, total, cursor, page_size):
        mine = [r for i, r in enumerate(self.records) if i % total == shard]
        start = int(cursor or 0)
        nxt = start + page_size
        return mine[start:nxt], (str(nxt) if nxt < len(mine) else None)


def test_a_pass_in_shards_resumed_and_retried_counts_everybody_once():
    # GIVEN 500 purchasers over 3 shards, read 40 at a time, one page per invocation (no time left after it)
    store, insights = _Pages(_values(500, seed=3)), InMemoryInsightStore()
    for shard in range(3):
        cursor = None
        while True:
            out = rfm_pass(store, insights, NOW, shard, 3, cursor, lambda: 0, page_size=40)
            # a retried invocation (the same shard and cursor) rewrites its own part
            again = rfm_pass(store, insights, NOW, shard, 3, cursor, lambda: 0, page_size=40)
            assert again == out
            cursor = out["cursor"]
            if out["done"]:
                break
    # WHEN the parts are merged THEN every purchaser counts once, with the one-pass cut points
    assert merge_rfm(insights, NOW) == 500
    stored = insights.get(RFM_KIND, f"run#{NOW.isoformat()}")
    one_pass = rfm_thresholds(_values(500, seed=3), NOW)
    assert stored["frequency"] == list(one_pass.frequency) and stored["customers"] == 500
