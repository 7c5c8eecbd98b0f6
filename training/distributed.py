"""Training past one machine: customers sharded over Dask workers, statistics merged, one model.

Every customer belongs to one shard (a stable digest of the id). Each shard is a Dask actor that lives on one
worker for the whole run: it reads the sources keeping only its customers' events (as columns,
``training.columns``), folds them forward snapshot by snapshot with the ingest API's fold, and builds its
customers' training rows. The model-level artifacts every feature needs (population and segment priors, the
item table) are made of sums over customers, so each shard returns its partial sums for a snapshot and the
client adds them up (``kairos.models.features.prior_stats``, ``item_stats``, ``merge_counts``) before sending the
merged priors and item table back for the rows. Priors and item table are therefore exactly those of the
whole history, and a shard's rows are the rows the single-machine path builds for those customers; only the
draw of the zero-label rows kept differs (each shard has its own random stream). The boosters are trained on
the gathered rows (LightGBM on the client); the rows are what sampling (``--customer-sample``) bounds.

Memory per worker is its shard's events and aggregates: more shards, less each. Reading: every shard reads
every source object and keeps its customers (the archive is partitioned by day, not by customer), so reading
costs grow with the shards while memory does not.

``python -m training train --cluster local`` starts a ``LocalCluster`` (one worker per core);
``--cluster tcp://scheduler:8786`` uses a running cluster (see ``training/README.md`` for AWS).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.models.features import PRODUCT_FEATURES
from kairos.models.features.products import item_stats, item_table_from_stats, merge_counts
from kairos.models.features.send_time import prior_stats, priors_from_stats
from kairos.models.timing import stable_unit
from training.fit import (
    Examples,
    TrainConfig,
    resolve_threads,
    snapshot_examples,
    snapshot_times,
    train_model,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from distributed import Client

    from kairos.models.serving import KairosModel

log = logging.getLogger(__name__)


def shard_of(customer_id: str, shards: int) -> int:
    """The shard of a customer: a stable digest of the id, so every worker agrees without talking."""
    return min(shards - 1, int(stable_unit("shard", customer_id) * shards))


class Shard:
    """One shard of customers on one worker: its events, its aggregates over time, its training rows."""

    def __init__(self, sources: Sequence[str], profiles: str | None, shard: int, shards: int, seed: int) -> None:
        from training.history import Folder, History
        from training.io import load_table

        data = load_table(list(sources), profiles, keep=lambda cid: shard_of(cid, shards) == shard)
        self.history = History(data.table, data.profiles)
        self.folder = Folder(self.history)
        self.rejected = data.rejected
        self.rng = np.random.default_rng([seed, shard])

    def summary(self) -> dict[str, Any]:
        h = self.history
        return {
            "events": len(h.table),
            "customers": len(h.customers),
            "rejected": self.rejected,
            "start": h.start,
            "end": h.end,
            "bytes": h.table.nbytes,
        }

    def stats(self, t: datetime, baskets: bool) -> dict[str, Any]:
        """Advance to ``t``; this shard's partial sums of the priors and the item table, and its baskets."""
        aggs = self.folder.advance(t)
        cids = list(self.history.customers)
        known = [aggs[c] for c in cids]
        return {
            "priors": prior_stats(known, [self.history.segment(c) for c in cids]),
            "items": {**item_stats(known, t), "hour_counts": self.history.product_hour_counts(t)},
            "baskets": self.history.baskets(t) if baskets else [],
        }

    def examples(self, t: datetime, priors: Any, items: Any, cfg: TrainConfig, product: bool, last: bool) -> dict:
        """This shard's training rows at ``t`` (the folder is already at ``t``: :meth:`stats` came first)."""
        return snapshot_examples(self.history, self.folder.aggs, t, priors, items, cfg, self.rng, product, last)


def _merged(parts: list[dict[str, Any]], t: datetime) -> tuple[Any, Any]:
    priors = priors_from_stats(merge_counts(p["priors"] for p in parts))
    merged = merge_counts(p["items"] for p in parts)
    hour_counts = merged.pop("hour_counts", {})
    merged.setdefault("buyers", {})
    merged.setdefault("repeaters", {})
    merged.setdefault("recent", {})
    baskets = [b for p in parts for b in p["baskets"]]
    return priors, item_table_from_stats(merged, baskets, t, hour_counts=hour_counts)


def fit_distributed(
    sources: Sequence[str],
    profiles: str | None,
    end: datetime | None,
    cfg: TrainConfig,
    client: Client,
    shards: int | None = None,
) -> KairosModel:
    """Train a Kairos model with customers sharded over the cluster's workers (see the module's docstring).

    Parameters
    ----------
    sources, profiles
        As for ``training.io.load_table``: every worker must be able to read them (local paths on a local
        cluster, ``s3://`` prefixes on a cluster in AWS).
    end
        Nothing at or after this time is used (default: just after the last event).
    shards
        How many shards (default: two per worker).
    """
    t0 = time.monotonic()
    cfg = resolve_threads(cfg)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    shards = shards or 2 * workers
    actors = [
        client.submit(Shard, list(sources), profiles, k, shards, cfg.seed, actor=True, pure=False)
        for k in range(shards)
    ]
    actors = [a.result() for a in actors]
    summaries = [a.summary().result() for a in actors]
    starts = [s["start"] for s in summaries if s["start"] is not None]
    if not starts:
        raise ValueError("no events")
    start = min(starts)
    end = end or max(s["end"] for s in summaries if s["end"] is not None) + timedelta(seconds=1)
    log.info(
        "%d shards on %d workers: %d events of %d customers, %.0f MB of columns",
        shards,
        workers,
        sum(s["events"] for s in summaries),
        sum(s["customers"] for s in summaries),
        sum(s["bytes"] for s in summaries) / 2**20,
    )
    times = snapshot_times(start, end, cfg)
    if not times:
        raise ValueError(f"history from {start:%Y-%m-%d} to {end:%Y-%m-%d} is too short for one snapshot")
    product_times = set(times[-cfg.product_snapshots :]) if cfg.product_snapshots else set()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("tx", "ty", "tw", "to", "th", "px", "py", "pg")}
    cal_parts: list[dict[str, np.ndarray]] = []
    for k, t in enumerate(times):
        parts = [f.result() for f in [a.stats(t, t in product_times) for a in actors]]
        priors, items = _merged(parts, t)
        last = k == len(times) - 1
        outs = [f.result() for f in [a.examples(t, priors, items, cfg, t in product_times, last) for a in actors]]
        for out in outs:
            for name in ("tx", "ty", "tw", "to", "th"):
                rows[name].append(out[name])
            if "px" in out:
                for name in ("px", "py", "pg"):
                    rows[name].append(out[name])
            if out.get("cal"):
                cal_parts.append(out["cal"])
        log.info("snapshot %s merged from %d shards", t.date(), shards)
    # No held-out customer active at the last snapshot (a tiny history): the model is served uncalibrated.
    cal = (
        {n: np.concatenate([c[n] for c in cal_parts]) for n in ("x", "counts", "moments", "prior")} if cal_parts else {}
    )
    ex = Examples(
        tx=rows["tx"],
        ty=np.concatenate(rows["ty"]),
        tw=np.concatenate(rows["tw"]),
        to=np.concatenate(rows["to"]),
        px=np.concatenate(rows["px"]) if rows["px"] else np.empty((0, len(PRODUCT_FEATURES))),
        py=np.concatenate(rows["py"]) if rows["py"] else np.empty(0),
        pg=np.concatenate(rows["pg"]) if rows["pg"] else np.empty(0, dtype=np.int64),
        times=times,
        held_out=np.concatenate(rows["th"]),
        cal_x=cal.get("x"),
        cal_counts=cal.get("counts"),
        cal_moments=cal.get("moments"),
        cal_prior=cal.get("prior"),
    )
    del rows
    final = [f.result() for f in [a.stats(end, True) for a in actors]]
    priors, items = _merged(final, end)
    customers = sum(s["customers"] for s in summaries)
    engine = f"dask: {shards} shards on {workers} workers"
    return train_model(ex, priors, items, cfg, end, start, customers, t0, engine=engine)


def connect(cluster: str) -> Client:
    """A Dask client: ``local`` starts a LocalCluster with a worker per free core; else a scheduler address."""
    from distributed import Client, LocalCluster

    if not log.isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.WARNING)  # the workers' chatter only with -v
    if cluster == "local":
        from training.fit import default_threads

        workers = max(1, default_threads())
        return Client(LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0"))
    return Client(cluster)
