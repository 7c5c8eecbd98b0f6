"""Training past one machine: customers sharded over Dask workers, statistics merged, boosters trained where the
rows are.

Every customer belongs to one shard (a stable digest of the id). Each shard is a Dask actor that lives on one
worker for the whole run: it reads the sources keeping only its customers' events (as columns,
``training.columns``), folds them forward snapshot by snapshot with the ingest API's fold, and builds its
customers' training rows with the single-machine code (``training.fit.snapshot_examples``). The model-level
artifacts every feature needs (population and segment priors, the item table) are made of sums over customers,
so each shard returns its partial sums for a snapshot and the client adds them up (``kairos.models.features
.prior_stats``, ``item_stats``, ``merge_counts``) before sending the merged priors and item table back for the
rows. Priors and item table are therefore exactly those of the whole history, and a shard's rows are the rows
the single-machine path builds for those customers; only the draw of the zero-label rows kept differs (each
shard has its own random stream).

The rows never reach the client. A shard's rows of a snapshot become a task result on the shard's worker, and
the boosters are trained with LightGBM's own distributed mode (``tree_learner=data``): one LightGBM machine per
worker process, each binning and histogramming the rows it holds, the histograms summed over the network
LightGBM opens between the machines, so every machine grows the same trees. Three boosters, as
``training.fit.train_model`` trains them on one machine: the calibration booster on the customers not held out
(its rates for the calibration customers are computed where their rows are, and at most ``CALIBRATION_CUSTOMERS``
of them come to the client to fit the calibration), the send-time booster on every row, and the next-product
ranker on the candidate rows (a customer's candidates are one group, and a group never spans two shards). The
client holds the shards' row counts, the merged priors and item table, that calibration sample and the boosters'
text: no training row. (``lightgbm.dask`` does the same through scikit-learn estimators; scikit-learn is not a
dependency of Kairos, and the rows here live in actors rather than in Dask collections.)

Memory per worker is its shards' events, aggregates and training rows, plus the binned rows of the booster
being trained: more workers, less each. Reading: every shard reads every source object and keeps its customers
(the archive is partitioned by day, not by customer), so reading costs grow with the shards while memory does
not.

``python -m training train --cluster local`` starts a ``LocalCluster`` (one worker per free core);
``--cluster tcp://scheduler:8786`` uses a running cluster (see ``training/README.md`` for AWS).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import lightgbm as lgb
import numpy as np

from kairos.core.constants import HOURS_PER_WEEK
from kairos.models.features import PRODUCT_FEATURES, TIME_FEATURES
from kairos.models.features.calibration import Calibration, fit_calibration
from kairos.models.features.products import item_stats, item_table_from_stats, merge_counts
from kairos.models.features.send_time import prior_stats, priors_from_stats
from kairos.models.serving import KairosModel
from kairos.models.timing import stable_unit
from training.fit import (
    CALIBRATION_CUSTOMERS,
    TrainConfig,
    calibration_roles,
    model_metadata,
    peak_mb,
    product_params,
    snapshot_examples,
    snapshot_times,
    time_params,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from distributed import Client, Future

log = logging.getLogger(__name__)

# Calibration customers' inputs come to the client (CALIBRATION_CUSTOMERS at most): the calibration booster's 168
# rates, the prior, the counts before and after the last snapshot, about 5 KB a customer, so at most ~100 MB. Past
# that many active customers a uniform sample is drawn, still far more per history bucket than the grid searches
# need (Online Retail II has ~3,000).

# LightGBM writes the parameters a booster was trained with into its text. The machines' addresses and ports
# change with every run and mean nothing to a loaded booster: they are reset to LightGBM's defaults, so the saved
# file (and the version digested from it, ``training.fit.content_version``) does not depend on them.
_NETWORK_DEFAULTS = {"machines": "", "local_listen_port": "12400", "time_out": "120", "machine_list_filename": ""}
_NETWORK_LINE = re.compile(r"^\[(" + "|".join(_NETWORK_DEFAULTS) + r"): .*\]$", re.MULTILINE)


# The count of a part's rows each booster trains on.
ROWS_OF = {"calibration": "calibration_rows", "time": "time_rows", "product": "product_rows"}


def shard_of(customer_id: str, shards: int) -> int:
    """The shard of a customer: a stable digest of the id, so every worker agrees without talking."""
    return min(shards - 1, int(stable_unit("shard", customer_id) * shards))


def row_counts(rows: dict[str, Any], cal: dict[str, Any] | None) -> dict[str, int]:
    """What the client needs to know of a shard's rows of one snapshot: how many of each kind, and their bytes."""
    held = rows["th"]
    return {
        "time_rows": int(held.size),
        "calibration_rows": int(held.size - held.sum()),  # rows of customers not held out
        "product_rows": int(rows["py"].size) if "py" in rows else 0,
        "held_out_customers": len(cal["counts"]) if cal else 0,
        "bytes": sum(v.nbytes for v in rows.values() if isinstance(v, np.ndarray)),
    }


class Shard:
    """One shard of customers on one worker: its events, its aggregates over time, its training rows."""

    def __init__(self, sources: Sequence[str], profiles: str | None, shard: int, shards: int, seed: int) -> None:
        from training.history import Folder, History
        from training.io import load_table

        data = load_table(list(sources), profiles, keep=lambda cid: shard_of(cid, shards) == shard)
        self.history = History(data.table, data.profiles)
        self.folder = Folder(self.history)
        self.rejected = data.rejected
        self.shard = shard
        self.rng = np.random.default_rng([seed, shard])
        self.kept: dict[tuple[int, str], dict[str, Any]] = {}

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

    def examples(
        self,
        k: int,
        t: datetime,
        priors: Any,
        items: Any,
        cfg: TrainConfig,
        product: bool,
        calibrating: bool,
        left_out: bool,
    ) -> dict[str, int]:
        """Build this shard's training rows of snapshot ``k`` at ``t`` and keep them for :meth:`take`; their counts.

        The folder is already at ``t`` (:meth:`stats` came first). Rows are kept as ``(k, "rows")`` when there are
        any, the calibration inputs (``calibrating``: the last snapshot; ``left_out``: rows the calibration booster
        does not learn from, :func:`training.fit.calibration_roles`) as ``(k, "calibration")``.
        """
        out = snapshot_examples(
            self.history, self.folder.aggs, t, priors, items, cfg, self.rng, product, calibrating, left_out
        )
        cal = out.pop("cal", None)
        counts = row_counts(out, cal)
        if has_rows(counts):
            self.kept[k, "rows"] = out
        if cal:
            self.kept[k, "calibration"] = {**cal, "shard": self.shard}
        return counts

    def take(self, k: int, part: str) -> dict[str, Any]:
        """Hand over (and forget) what :meth:`examples` kept."""
        return self.kept.pop((k, part))


def has_rows(counts: dict[str, int]) -> bool:
    """Whether a shard's snapshot has rows for any booster (:func:`row_counts`)."""
    return bool(counts["time_rows"] or counts["product_rows"])


@dataclass(frozen=True)
class RowPart:
    """A shard's rows of one snapshot (or its calibration inputs): a task result on the shard's worker."""

    shard: int
    worker: str
    future: Future
    counts: dict[str, int]


# ---- on the workers ----------------------------------------------------------------------------------------


def _take(shard: Any, k: int, part: str) -> dict[str, Any]:
    """On the shard's worker: what the shard kept of snapshot ``k``, made a task result there (the actor is local)."""
    return shard.take(k, part).result()


def _process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _free_port() -> int:
    """A port free now on this worker's host, for its LightGBM machine to listen on."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _dataset(kind: str, parts: list[dict[str, Any]], params: dict[str, Any]) -> lgb.Dataset:
    """This machine's rows of a booster, as ``training.fit`` gives them to LightGBM (chunks, no concatenated copy)."""
    if kind == "product":
        parts = [p for p in parts if p.get("py") is not None and p["py"].size]
        return lgb.Dataset(
            [p["px"] for p in parts],
            label=np.concatenate([p["py"] for p in parts]),
            group=np.concatenate([p["pg"] for p in parts]),
            feature_name=list(PRODUCT_FEATURES),
            free_raw_data=True,
        )
    columns: dict[str, list[np.ndarray]] = {"tx": [], "ty": [], "tw": [], "to": []}
    for p in parts:
        # The calibration booster learns from the customers not held out (``training.fit.calibrate``).
        sel = ~p["th"] if kind == "calibration" else slice(None)
        if p["ty"][sel].size:
            for name, chunks in columns.items():
                chunks.append(p[name][sel])
    return lgb.Dataset(
        columns["tx"],
        label=np.concatenate(columns["ty"]),
        weight=np.concatenate(columns["tw"]),
        init_score=np.concatenate(columns["to"]),
        feature_name=list(TIME_FEATURES),
        free_raw_data=True,
        params=params,
    )


@contextmanager
def _stdout_to_stderr(client_process: str) -> Iterator[None]:
    """Outside the client's process, the process's stdout goes to stderr meanwhile.

    LightGBM's network prints its progress (binding, connecting, retrying) whatever the verbosity: its log level
    is per thread, and its listener thread starts at Info. A local cluster's workers share the client's stdout,
    which is the command's (``evaluate`` prints Markdown there).
    """
    if _process_id() == client_process:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _train_machine(
    kind: str,
    parts: list[dict[str, Any]],
    params: dict[str, Any],
    rounds: int,
    network: dict[str, Any],
    first: bool,
    client_process: str,
) -> str | None:
    """On one worker of each process: this machine's share of a data-parallel booster; the first returns its text.

    Every machine ends with the same trees; only their parameter lines (its own port) differ.
    """
    t0 = time.monotonic()
    with _stdout_to_stderr(client_process):
        booster = lgb.train({**params, **network}, _dataset(kind, parts, params), num_boost_round=rounds)
        if network:
            booster.free_network()
    machines = network.get("num_machines", 1)
    log.info("%s booster: %d machine(s), %.1f s (peak %.0f MB)", kind, machines, time.monotonic() - t0, peak_mb())
    return booster.model_to_string() if first else None


def _calibration_inputs(model: str, cal: dict[str, Any], keep: int, seed: int) -> dict[str, np.ndarray]:
    """On the shard's worker: the calibration booster's rates for ``keep`` of the shard's calibration customers.

    ``keep`` below their number draws a uniform sample (a stable one: the shard's own seed).
    """
    n = len(cal["counts"])
    sel = np.arange(n)
    if keep < n:
        sel = np.sort(np.random.default_rng([seed, cal["shard"]]).choice(n, keep, replace=False))
    x = cal["x"].reshape(n, HOURS_PER_WEEK, -1)[sel].reshape(sel.size * HOURS_PER_WEEK, -1)
    return {
        "rates": lgb.Booster(model_str=model).predict(x).reshape(-1, HOURS_PER_WEEK),
        "prior": cal["prior"][sel],
        "counts": cal["counts"][sel],
        "moments": cal["moments"][sel],
        "past": x[:, TIME_FEATURES.index("own_how")].reshape(-1, HOURS_PER_WEEK),
    }


# ---- on the client -----------------------------------------------------------------------------------------


def portable_model(text: str) -> lgb.Booster:
    """The booster of a machine's text, with the network's addresses and ports reset to LightGBM's defaults."""
    return lgb.Booster(model_str=_NETWORK_LINE.sub(lambda m: f"[{m[1]}: {_NETWORK_DEFAULTS[m[1]]}]", text))


def quotas(counts: Sequence[int], total: int) -> list[int]:
    """``counts`` scaled down to sum to at most ``total`` (largest remainders), each at most its count."""
    have = sum(counts)
    if have <= total:
        return list(counts)
    exact = [c * total / have for c in counts]
    out = [int(e) for e in exact]
    for i in sorted(range(len(counts)), key=lambda i: out[i] - exact[i])[: total - sum(out)]:
        out[i] += 1
    return out


class Machines:
    """LightGBM machines on the cluster: one per worker process (LightGBM's network is one per process).

    Each process trains on one of its workers, which is given the rows of the process's other workers (they
    share the process's memory; with a worker per process nothing moves).
    """

    def __init__(self, client: Client, workers: Iterable[str], threads: int) -> None:
        self.client = client
        by_process: dict[str, list[str]] = defaultdict(list)
        for worker, process in sorted(client.run(_process_id, workers=sorted(set(workers))).items()):
            by_process[process].append(worker)
        self.trainer = {w: ws[0] for ws in by_process.values() for w in ws}
        ncores = client.ncores()
        self.threads = {w: threads or ncores[w] for w in self.trainer}

    def train(self, kind: str, parts: list[RowPart], params: dict[str, Any], rounds: int) -> lgb.Booster | None:
        """A booster over the machines holding rows of ``kind``; ``None`` when there are none."""
        size = ROWS_OF[kind]
        local: dict[str, list[Future]] = defaultdict(list)
        for part in parts:
            if part.counts[size]:
                local[self.trainer[part.worker]].append(part.future)
        trainers = sorted(local)
        if not trainers:
            return None
        network: dict[str, dict[str, Any]] = {w: {} for w in trainers}
        if len(trainers) > 1:
            free = {
                w: self.client.submit(_free_port, workers=[w], allow_other_workers=False, pure=False) for w in trainers
            }
            ports = self.client.gather(free)
            machines = ",".join(f"{urlparse(w).hostname}:{ports[w]}" for w in trainers)
            for w in trainers:
                network[w] = {
                    "tree_learner": "data",
                    "num_machines": len(trainers),
                    "machines": machines,
                    "local_listen_port": ports[w],
                }
        futures = [
            self.client.submit(
                _train_machine,
                kind,
                local[w],
                {**params, "num_threads": self.threads[w]},
                rounds,
                network[w],
                i == 0,
                _process_id(),
                workers=[w],
                allow_other_workers=False,
                pure=False,
            )
            for i, w in enumerate(trainers)
        ]
        text = self.client.gather(futures)[0]
        log.info("%s booster trained on %d LightGBM machine(s)", kind, len(trainers))
        return portable_model(text)


def _calibrate(
    client: Client, machines: Machines, rows: list[RowPart], cal: list[RowPart], cfg: TrainConfig
) -> tuple[Calibration, dict[str, Any], int]:
    """The calibration of ``training.fit.calibrate``, its report, and how many customers it was fitted on."""
    held = sum(p.counts["time_rows"] - p.counts["calibration_rows"] for p in rows)
    kept = sum(p.counts["calibration_rows"] for p in rows)
    if not cal or not held or not kept:
        return Calibration(), {}, 0
    booster = machines.train("calibration", rows, time_params(cfg), cfg.time_rounds)
    assert booster is not None
    model = booster.model_to_string()
    keep = quotas([p.counts["held_out_customers"] for p in cal], CALIBRATION_CUSTOMERS)
    futures = [
        client.submit(
            _calibration_inputs, model, p.future, n, cfg.seed, workers=[p.worker], allow_other_workers=False, pure=False
        )
        for p, n in zip(cal, keep, strict=True)
    ]
    got = client.gather(futures)
    names = ("rates", "prior", "counts", "moments", "past")
    inputs = {name: np.concatenate([g[name] for g in got]) for name in names}
    calibration, report = fit_calibration(
        inputs["rates"], inputs["prior"], inputs["counts"], inputs["moments"], inputs["past"]
    )
    return calibration, report, sum(keep)


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
    cfg
        As for ``training.fit.fit``; ``threads`` are each LightGBM machine's (default: its worker's threads), and
        ``memory_mb`` is not used (no training row is on the client).
    client
        A client of the cluster (:func:`connect`).
    shards
        How many shards (default: two per worker).

    Returns
    -------
    KairosModel
        Saved and loaded like a single-machine one; ``metadata["cluster"]`` says how the rows were spread.

    Raises
    ------
    ValueError
        When there are no events, or the history is too short for a single snapshot.
    """
    t0 = time.monotonic()
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    shards = shards or 2 * workers
    futures = [
        client.submit(Shard, list(sources), profiles, k, shards, cfg.seed, actor=True, pure=False)
        for k in range(shards)
    ]
    actors = [f.result() for f in futures]
    who_has = client.who_has(futures)
    where = [next(iter(who_has[f.key])) for f in futures]
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

    def take(s: int, k: int, part: str) -> Future:
        return client.submit(_take, futures[s], k, part, workers=[where[s]], allow_other_workers=False, pure=False)

    rows: list[RowPart] = []
    cal: list[RowPart] = []
    roles = calibration_roles(times, cfg.horizon_days)
    for k, t in enumerate(times):
        parts = [f.result() for f in [a.stats(t, t in product_times) for a in actors]]
        priors, items = _merged(parts, t)
        del parts
        left_out, calibrating = roles[k]
        counts = [
            f.result()
            for f in [a.examples(k, t, priors, items, cfg, t in product_times, calibrating, left_out) for a in actors]
        ]
        for s, c in enumerate(counts):
            if has_rows(c):
                rows.append(RowPart(s, where[s], take(s, k, "rows"), c))
            if c["held_out_customers"]:
                cal.append(RowPart(s, where[s], take(s, k, "calibration"), c))
        log.info("snapshot %s: %d rows built on %d shards", t.date(), sum(c["time_rows"] for c in counts), shards)
    final = [f.result() for f in [a.stats(end, True) for a in actors]]
    priors, items = _merged(final, end)
    del final

    machines = Machines(client, set(where), cfg.threads)
    cfg = replace(cfg, threads=cfg.threads or min(machines.threads.values()), memory_mb=0.0)
    t1 = time.monotonic()
    calibration, calibration_report, calibration_customers = _calibrate(client, machines, rows, cal, cfg)
    del cal
    log.info("calibration: %s, %.1f s", calibration.to_dict(), time.monotonic() - t1)
    time_booster = machines.train("time", rows, time_params(cfg), cfg.time_rounds)
    if time_booster is None:
        raise ValueError("no send-time training rows")
    product_booster = machines.train("product", rows, product_params(cfg), cfg.product_rounds)

    per_shard = defaultdict(lambda: [0, 0])
    for p in rows:
        per_shard[p.shard][0] += p.counts["time_rows"] + p.counts["product_rows"]
        per_shard[p.shard][1] += p.counts["bytes"]
    largest = max(per_shard.values(), key=lambda v: v[1], default=[0, 0])
    worker_peak = max(client.run(peak_mb).values())
    trainers = len(set(machines.trainer.values()))
    metadata = model_metadata(
        cfg,
        start,
        end,
        times,
        time_booster,
        product_booster,
        calibration,
        calibration_report,
        sum(p.counts["time_rows"] for p in rows),
        sum(p.counts["product_rows"] for p in rows),
        sum(s["customers"] for s in summaries),
        f"dask: {shards} shards on {workers} workers, LightGBM data-parallel on {trainers} machine(s)",
        t0,
    )
    # Not in a single-machine model: where the rows were. The client held none of them.
    metadata["cluster"] = {
        "shards": shards,
        "workers": workers,
        "lightgbm_machines": trainers,
        "rows": sum(v[0] for v in per_shard.values()),
        "rows_mb": round(sum(v[1] for v in per_shard.values()) / 2**20, 1),
        "largest_shard_rows": largest[0],
        "largest_shard_mb": round(largest[1] / 2**20, 1),
        "worker_peak_mb": round(worker_peak),
        "calibration_customers": calibration_customers,
        "calibration_customers_max": CALIBRATION_CUSTOMERS,
    }
    # The lifecycle predictions are trained on one machine (``python -m training train`` without --cluster): a model
    # trained here serves none (``lifecycle: null``).
    metadata["lifecycle"] = None
    return KairosModel(time_booster, product_booster, priors, items, metadata)


def connect(cluster: str, workers: int | None = None) -> Client:
    """A Dask client: ``local`` starts a LocalCluster of ``workers`` processes of one thread (default: one per free
    core, :func:`training.fit.default_threads`); else the client of the scheduler at that address."""
    from distributed import Client, LocalCluster

    if not log.isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.WARNING)  # the workers' chatter only with -v
    if cluster == "local":
        from training.fit import default_threads

        # One thread per worker process: each process is a LightGBM machine, and two threads on two busy cores
        # run slower than one.
        n = workers or max(1, default_threads())
        return Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"))
    return Client(cluster)
