"""kairos.models.features: one code path, and the pieces it is built of."""

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from kairos.customers.aggregates import PRODUCT_MEMORY, CustomerAggregates, fold_events
from kairos.customers.schemas import Event
from kairos.models.features import (
    PRODUCT_FEATURES,
    TIME_FEATURES,
    ItemTable,
    Priors,
    build_item_table,
    build_priors,
    day_window,
    local_hours_of_week,
    product_candidates,
    time_features,
)
from training.history import Folder, History
from training.io import load_events

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"


@pytest.fixture(scope="module")
def history():
    data = load_events([str(SAMPLE)])
    return History(data.events, data.profiles)


def _fold_in_random_batches(events: list[Event], tz: str, rng: random.Random) -> CustomerAggregates:
    # As the ingest API sees them: arbitrary order, arbitrary batch sizes, counted moments carried over.
    shuffled = list(events)
    rng.shuffle(shuffled)
    agg, counted = CustomerAggregates(timezone=tz), set()
    i = 0
    while i < len(shuffled):
        size = rng.randint(1, 40)
        agg, new = fold_events(agg, shuffled[i : i + size], counted)
        counted |= new
        i += size
    return agg


def test_features_identical_for_training_fold_and_ingest_batches(history):
    # GIVEN customers' events folded in time order in one go (training) ...
    as_of = history.end + timedelta(hours=1)
    trained = Folder(history).advance(as_of)
    cids = [c for c in history.customers if len(trained[c].product_purchases) < PRODUCT_MEMORY]
    # ... and the same events in random batches and random order (ingest)
    rng = random.Random(11)
    served = {c: _fold_in_random_batches(history.customers[c].events, history.timezone(c), rng) for c in cids}
    priors = build_priors([trained[c] for c in cids], [history.segment(c) for c in cids])
    items = build_item_table(
        [trained[c] for c in cids], history.baskets(as_of), as_of, hour_counts=history.product_hour_counts(as_of)
    )
    segments = [history.segment(c) for c in cids]
    # WHEN computing both feature sets from each
    x_train = time_features([trained[c] for c in cids], as_of, priors, segments, items)
    x_serve = time_features([served[c] for c in cids], as_of, priors, segments, items)
    p_train = product_candidates([trained[c] for c in cids], as_of, items)
    p_serve = product_candidates([served[c] for c in cids], as_of, items)
    # THEN the matrices are exactly equal
    assert len(cids) > 50
    assert x_train.shape == (len(cids) * 168, len(TIME_FEATURES))
    assert np.array_equal(x_train, x_serve)
    assert np.array_equal(p_train.items, p_serve.items)
    assert np.array_equal(p_train.offsets, p_serve.offsets)
    assert np.array_equal(p_train.features, p_serve.features)
    assert p_train.features.shape[1] == len(PRODUCT_FEATURES)


def test_day_window_sums_neighbours_within_the_day():
    # GIVEN one count at Monday 00:00, Monday 23:00 and Tuesday 12:00
    x = np.zeros((1, 168))
    x[0, [0, 23, 36]] = 1.0
    # WHEN
    w = day_window(x)[0]
    # THEN each spreads to its neighbours but not across midnight
    assert w[[0, 1, 22, 23, 35, 36, 37]].tolist() == [1, 1, 1, 1, 1, 1, 1]
    assert w[24] == 0 and w.sum() == 7


def test_local_hours_of_week_follow_daylight_saving():
    # GIVEN 2011-03-27 00:00 and 01:00 UTC (London goes from GMT to BST at 01:00 UTC, a Sunday)
    hours = np.array([datetime(2011, 3, 27, 0, tzinfo=UTC), datetime(2011, 3, 27, 1, tzinfo=UTC)])
    epoch = np.array([int(h.timestamp()) // 3600 for h in hours])
    # WHEN
    how = local_hours_of_week(epoch, "Europe/London")
    # THEN Sunday 00:00 local, then Sunday 02:00 local
    assert how.tolist() == [6 * 24 + 0, 6 * 24 + 2]


def test_time_features_of_a_new_customer_come_from_priors():
    # GIVEN population and segment priors and a customer without history
    pop = np.zeros(168)
    pop[12] = 10
    seg = np.zeros(168)
    seg[15] = 300
    priors = Priors(pop, pop, {"France": seg})
    empty = CustomerAggregates(timezone="Europe/Paris")
    # WHEN
    x = time_features([empty, empty], datetime(2011, 1, 1, tzinfo=UTC), priors, ["France", None])
    # THEN own counts are zero and the segment prior differs from the population's
    col = {f: i for i, f in enumerate(TIME_FEATURES)}
    assert x.shape == (2 * 168, len(TIME_FEATURES))
    assert (x[:, col["own_how"]] == 0).all()
    france, unknown = x[:168], x[168:]
    assert france[15, col["seg_how_win"]] > unknown[15, col["seg_how_win"]]
    assert unknown[12, col["seg_how_win"]] == pytest.approx(unknown[12, col["pop_how_win"]])


def test_build_item_table_cooccurrence_cosine():
    # GIVEN baskets {a,b}, {a,b}, {a,c} and no customers
    baskets = [["a", "b"], ["a", "b"], ["a", "c"]]
    aggs = [CustomerAggregates(product_purchases={"a": [3, 0, 3], "b": [2, 0, 2], "c": [1, 0, 1]})]
    # WHEN
    table = build_item_table(aggs, baskets, datetime(2011, 1, 1, tzinfo=UTC), neighbors=2)
    # THEN a's neighbours are b (2 / sqrt(3 * 2)) then c (1 / sqrt(3 * 1))
    a = table.index["a"]
    assert [table.product_ids[j] for j in table.neighbors[a]] == ["b", "c"]
    assert table.neighbor_scores[a].tolist() == pytest.approx([2 / np.sqrt(6), 1 / np.sqrt(3)])


def test_item_table_round_trips_through_dict():
    # GIVEN a table
    aggs = [CustomerAggregates(product_purchases={"a": [2, 0, 2], "b": [1, 0, 1]})]
    table = build_item_table(aggs, [["a", "b"]], datetime(2011, 1, 1, tzinfo=UTC), hour_counts={"a": [1.0] * 24})
    # WHEN
    again = ItemTable.from_dict(table.to_dict())
    # THEN
    assert again.product_ids == table.product_ids
    assert np.array_equal(again.neighbors, table.neighbors)
    assert np.allclose(again.hour_dist, table.hour_dist)


def test_product_candidates_drop_durables_bought_recently():
    # GIVEN a durable product (nobody rebuys it) the customer bought 10 days ago, and a consumable
    now = datetime(2011, 6, 1, tzinfo=UTC)
    bought = int((now - timedelta(days=10)).timestamp())
    buyers = [CustomerAggregates(product_purchases={"sofa": [1, 0, 1]}) for _ in range(300)]
    buyers += [CustomerAggregates(product_purchases={"tea": [5, 0, 5]}) for _ in range(50)]
    table = build_item_table(buyers, [], now)
    me = CustomerAggregates(purchase_count=2, product_purchases={"sofa": [1, bought, 1], "tea": [1, bought, 1]})
    # WHEN
    cands = product_candidates([me], now, table)
    names = {table.product_ids[i] for i in cands.items}
    # THEN the consumable stays a candidate and the durable does not
    assert table.durable[table.index["sofa"]]
    assert "tea" in names
    assert "sofa" not in names


def test_batched_product_hours_equal_the_per_customer_mean(history):
    # GIVEN real customers and the default model's item table
    from kairos.models.serving import KairosModel

    model = KairosModel.load(Path(__file__).parents[2] / "models" / "default")
    end = history.end + timedelta(hours=1)
    folded = Folder(history).advance(end)
    aggs = [folded[c] for c in history.customers][:300] + [CustomerAggregates()]
    segments = [None] * len(aggs)
    # WHEN the batch computes the hours at which each customer's products sell
    x = time_features(aggs, end, model.priors, segments, model.items)
    got = x.reshape(len(aggs), 168, len(TIME_FEATURES))[:, :24, TIME_FEATURES.index("prod_hod_win")]
    # THEN it is what one customer at a time gives (the mean of the products' hour distributions)
    for i, a in enumerate(aggs):
        idx = sorted(j for j in (model.items.index.get(p) for p in a.product_purchases) if j is not None)
        want = day_window(model.items.hour_dist[idx].mean(axis=0)[None, :])[0] if idx else np.zeros(24)
        np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12)
    assert np.count_nonzero(got.sum(axis=1)) >= 100  # most customers have known products


def test_co_purchase_counts_the_same_in_dense_and_sparse_form(monkeypatch):
    # GIVEN random baskets, some long (a wholesale order of 60 lines)
    import kairos.models.features.products as products

    rng = np.random.default_rng(5)
    ids = [f"P{i}" for i in range(40)]
    baskets = [list(rng.choice(ids, size=int(rng.integers(1, 8)), replace=False)) for _ in range(300)]
    baskets += [list(rng.choice(ids, size=30, replace=False)) for _ in range(3)]
    index = {p: i for i, p in enumerate(ids)}
    # WHEN neighbours are computed with the dense matrix (in small pair chunks) and with the sparse counts
    monkeypatch.setattr(products, "_PAIRS_AT_ONCE", 50)
    dense_nb, dense_ns = products._cooccurrence_neighbors(baskets, index, 39)
    monkeypatch.setattr(products, "_DENSE_PAIRS", 0)
    sparse_nb, sparse_ns = products._cooccurrence_neighbors(baskets, index, 39)
    # THEN every product has the same co-purchased neighbours with the same scores (float32 against float64;
    # near-ties may be listed in another order)
    assert np.allclose(np.sort(dense_ns, axis=1), np.sort(sparse_ns, axis=1), atol=1e-6)
    for row in range(len(ids)):
        assert set(dense_nb[row][dense_nb[row] >= 0]) == set(sparse_nb[row][sparse_nb[row] >= 0])
    assert (dense_nb >= 0).sum() > 500
