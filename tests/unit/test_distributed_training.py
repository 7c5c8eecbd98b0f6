"""Training on a cluster of worker processes: the boosters train where the rows are, never on the client.

Two LightGBM machines (a LocalCluster of two one-thread processes) on a generated history whose customers come
back at their own hours of the week; compared with the single-machine model on the same history.
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import lightgbm as lgb
import numpy as np
import pytest

from kairos.models.features import PRODUCT_FEATURES
from kairos.models.serving import CustomerInput, KairosModel
from training.__main__ import main
from training.distributed import CALIBRATION_CUSTOMERS, fit_distributed, portable_model, product_params, quotas
from training.fit import TrainConfig, fit, train_product_booster
from training.history import Folder, History
from training.io import load_table

# Every zero-label row kept (``negative_rate=1``): rows cost little more to build, and they outweigh by far what
# the client allocates for itself (Dask's messages, the priors and item table, the boosters' text).
FAST = TrainConfig(
    time_rounds=30, product_rounds=20, max_snapshots=4, product_snapshots=2, negative_rate=1.0, threads=1
)
START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: hour of week = hours since START, mod 168
CUSTOMERS = 240


def write_history(path, customers: int = CUSTOMERS, weeks: int = 60, seed: int = 3) -> dict[str, set[int]]:
    """Purchases of ``customers`` over ``weeks``, 80% of them at one of each customer's two hours of the week;
    returns those hours."""
    rng = np.random.default_rng(seed)
    favourites = {}
    with path.open("w") as fh:
        for i in range(customers):
            cid = f"c{i}"
            hours = [int(h) for h in rng.choice(168, 2, replace=False)]
            products = rng.choice(20, 3, replace=False)
            favourites[cid] = set(hours)
            n = 0
            for week in range(weeks):
                for _ in range(rng.poisson(0.6)):
                    how = hours[rng.integers(2)] if rng.random() < 0.8 else int(rng.integers(168))
                    ts = START + timedelta(weeks=week, hours=how, minutes=int(rng.integers(60)))
                    event = {
                        "customer_id": cid,
                        "event_id": f"e{n}",
                        "type": "purchase",
                        "timestamp": ts.isoformat(),
                        "product_id": f"p{rng.choice(products)}",
                        "quantity": 1,
                        "amount": 5.0,
                    }
                    fh.write(json.dumps(event) + "\n")
                    n += 1
    return favourites


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "events.jsonl"
    favourites = write_history(path)
    data = load_table([str(path)])
    history = History(data.table, data.profiles)
    return path, favourites, history, history.end + timedelta(seconds=1)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    # Worker processes, as `--cluster local` starts them: LightGBM's network is one per process.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def trained(generated, client):
    """The model of one machine, and the cluster's with the client's traced allocations while it trained."""
    path, _, history, end = generated
    single = fit(history, end, FAST)
    tracemalloc.start()
    try:
        sharded = fit_distributed([str(path)], None, end, FAST, client, shards=2)
        _, client_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return single, sharded, client_peak


def _scores(model: KairosModel, history: History, end: datetime) -> tuple[list[int], np.ndarray]:
    aggs = Folder(history).advance(end)
    cids = sorted(history.customers)
    recs = model.recommend([CustomerInput(c, aggs[c], history.attributes(c)) for c in cids], end)
    return [r.best_hour_of_week for r in recs], np.array([r.hour_scores for r in recs])


def test_fit_distributed_trains_on_both_machines_without_rows_on_the_client(trained):
    # GIVEN two shards on two worker processes
    _, sharded, client_peak = trained
    cluster = sharded.metadata["cluster"]
    # THEN both processes trained the boosters, as two LightGBM machines
    assert cluster["lightgbm_machines"] == 2
    assert sharded.metadata["engine"] == "dask: 2 shards on 2 workers, LightGBM data-parallel on 2 machine(s)"
    # AND the client allocated less, at its peak, than half of one shard's rows: it never held them
    assert cluster["rows"] == sharded.metadata["time_examples"] + sharded.metadata["product_examples"]
    assert cluster["largest_shard_rows"] < cluster["rows"]
    assert client_peak < 0.5 * cluster["largest_shard_mb"] * 2**20


def test_fit_distributed_model_loads_and_predicts_like_one_machines(trained, generated, tmp_path):
    # GIVEN the cluster's model saved and loaded as the score function loads it, and the single-machine one
    _, favourites, history, end = generated
    single, sharded, _ = trained
    sharded.save(tmp_path)
    loaded = KairosModel.load(tmp_path)
    assert loaded.version == sharded.version and loaded.metadata["cluster"] == sharded.metadata["cluster"]
    # WHEN both score every customer
    best_single, p_single = _scores(single, history, end)
    best_loaded, p_loaded = _scores(loaded, history, end)
    # THEN the hour probabilities are close (the rows differ only in the draw of zero-label rows kept, the bins in
    # which machine found them) and both find the customers' own hours about as often
    assert 0.5 * np.abs(p_single - p_loaded).sum(axis=1).mean() < 0.02
    hit_single = np.mean([b in favourites[c] for c, b in zip(sorted(history.customers), best_single, strict=True)])
    hit_loaded = np.mean([b in favourites[c] for c, b in zip(sorted(history.customers), best_loaded, strict=True)])
    assert hit_single > 0.8 and abs(hit_single - hit_loaded) < 0.05
    # AND the products are ranked by a booster of the same kind
    assert loaded.product_booster is not None and single.product_booster is not None


def test_fit_distributed_metadata_is_the_single_machines_plus_the_cluster(trained):
    # GIVEN both models of the same history
    single, sharded, _ = trained
    # THEN the cluster's metadata has every field of the single machine's, and where the rows were
    assert set(sharded.metadata) == set(single.metadata) | {"cluster"}
    for key in ("sampling", "config", "training_window", "libraries"):
        assert set(sharded.metadata[key]) == set(single.metadata[key])
    assert sharded.metadata["snapshots"] == single.metadata["snapshots"]
    # AND the calibration was fitted on the same held-out customers' moments (all of them: far fewer than the bound)
    moments = {bucket: fit["moments"] for bucket, fit in single.metadata["calibration_fit"].items()}
    assert {bucket: fit["moments"] for bucket, fit in sharded.metadata["calibration_fit"].items()} == moments
    assert 0 < sharded.metadata["cluster"]["calibration_customers"] < CALIBRATION_CUSTOMERS


def test_train_cluster_local_prints_the_clients_peak_against_a_shards_rows(generated, tmp_path, capsys):
    # GIVEN the CLI on two local worker processes
    path, *_ = generated
    argv = ["train", "--events", str(path), "--out", str(tmp_path / "model"), "--cluster", "local", "--workers", "2"]
    # WHEN it trains
    assert main([*argv, "--time-rounds", "10", "--product-rounds", "5"]) == 0
    # THEN the last line compares the client's peak with one shard's rows, and the model loads
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("client peak RSS: ") and "; largest shard rows: " in last
    assert KairosModel.load(tmp_path / "model").metadata["cluster"]["workers"] == 2


def test_product_params_are_the_single_machine_rankers():
    # GIVEN a ranker trained by the single-machine code on a few groups
    rng = np.random.default_rng(0)
    x = rng.random((400, len(PRODUCT_FEATURES)))
    booster = train_product_booster(x, (rng.random(400) < 0.2).astype(float), np.full(20, 20), FAST)
    # THEN the cluster trains its ranker with the same parameters
    assert {k: v for k, v in booster.params.items() if k != "num_iterations"} == product_params(FAST)


def test_quotas_scale_down_to_the_bound_and_keep_every_customer_below_it():
    assert quotas([3, 5], 10) == [3, 5]
    assert sum(quotas([700, 300, 1], 100)) == 100
    assert quotas([700, 300, 1], 100)[:2] == [70, 30]


def test_portable_model_resets_the_network_addresses_and_ports():
    # GIVEN a booster's text as a machine of a two-machine run writes it
    booster = lgb.train({"verbose": -1}, lgb.Dataset(np.arange(40.0).reshape(20, 2), label=np.arange(20.0)), 1)
    text = booster.model_to_string()
    text = text.replace("[machines: ]", "[machines: 10.0.0.1:40001,10.0.0.2:40002]")
    text = text.replace("[local_listen_port: 12400]", "[local_listen_port: 40001]")
    # WHEN it is made portable
    portable = portable_model(text).model_to_string()
    # THEN it is the single machine's text again, and predicts the same
    assert portable == booster.model_to_string()
    assert np.array_equal(portable_model(text).predict(np.ones((1, 2))), booster.predict(np.ones((1, 2))))
