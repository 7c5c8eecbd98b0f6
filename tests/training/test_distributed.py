"""Training on a Dask cluster: customers sharded over workers, priors and item table merged exactly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from training.distributed import fit_distributed, shard_of
from training.evaluate import evaluate
from training.fit import TrainConfig, fit
from training.history import History
from training.io import load_table

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
FAST = TrainConfig(time_rounds=30, product_rounds=20, max_snapshots=6, product_snapshots=2, threads=1)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def history():
    data = load_table([str(SAMPLE)])
    return History(data.table, data.profiles)


def test_shards_split_customers_stably():
    ids = [f"c{i}" for i in range(1000)]
    shards = [shard_of(c, 4) for c in ids]
    assert shards == [shard_of(c, 4) for c in ids]
    assert set(shards) == {0, 1, 2, 3} and min(np.bincount(shards)) > 200


def test_the_cluster_builds_the_same_priors_and_item_table_as_one_machine(client, history):
    # GIVEN the same history, trained on one machine and on two workers with three shards
    end = history.end + timedelta(seconds=1)
    single = fit(history, end, FAST)
    sharded = fit_distributed([str(SAMPLE)], None, end, FAST, client, shards=3)
    # THEN the model-level artifacts are those of the whole history, and the snapshots are the same
    assert np.allclose(sharded.priors.population, single.priors.population)
    assert np.allclose(sharded.priors.population_customers, single.priors.population_customers)
    assert sharded.priors.segments.keys() == single.priors.segments.keys()
    assert sharded.items.product_ids == single.items.product_ids
    assert np.array_equal(sharded.items.buyers, single.items.buyers)
    assert np.array_equal(sharded.items.neighbors, single.items.neighbors)
    assert sharded.metadata["snapshots"] == single.metadata["snapshots"]
    assert sharded.metadata["engine"].startswith("dask: 3 shards on 2 workers")
    # AND about as many training rows (only the draw of zero-label rows differs)
    assert (
        abs(sharded.metadata["time_examples"] - single.metadata["time_examples"])
        < 0.05 * single.metadata["time_examples"]
    )


def test_the_cluster_model_is_as_good_as_one_machines(client, history):
    cutoff = history.end - timedelta(days=60)

    def hit(result):
        return result["time"]["methods"]["Kairos"]["hit_within_1h"]["overall"]

    single = evaluate(history, cutoff, 60, FAST)
    sharded = evaluate(
        history, cutoff, 60, FAST, trainer=lambda end: fit_distributed([str(SAMPLE)], None, end, FAST, client, 2)
    )
    assert abs(hit(sharded) - hit(single)) < 0.05
    assert sharded["model_metadata"]["engine"].startswith("dask")
