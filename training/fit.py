"""Train the send-time model and the next-product ranker from a customer history.

Training examples come from snapshots: at times ``t`` before the end of the history, each customer's
aggregates are folded from the events before ``t`` (``training.history.Folder``), features are
computed with ``kairos.models.features`` exactly as the score function does, and labels are what the
customer did during ``[t, t + horizon)``. Every label window ends at or before ``end``, so nothing
after ``end`` is ever seen (in ``evaluate``, ``end`` is the cut-off).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

import kairos
from kairos.core.constants import HOURS_PER_WEEK
from kairos.models.features import (
    PRODUCT_FEATURES,
    TIME_FEATURES,
    build_item_table,
    build_priors,
    product_candidates,
    time_features,
)
from kairos.models.features.calibration import Calibration, fit_calibration
from kairos.models.serving import KairosModel
from kairos.models.timing import stable_unit
from training import progress
from training.history import Folder

if TYPE_CHECKING:
    from collections.abc import Sequence

    from training.history import History

log = logging.getLogger(__name__)
# Customers whose send-time features are computed together (168 rows each).
FEATURE_BATCH = 256
# At most this many customers' full rows at the last snapshot are kept to fit the calibration on.
CALIBRATION_CUSTOMERS = 20_000


@dataclass
class TrainConfig:
    """How training examples are sampled and the boosters trained.

    Defaults were chosen on the 2011-09-01 split of Online Retail II and checked, unchanged, on the
    2010-09-01 holdout (see ``training/README.md``).
    """

    horizon_days: int = 92
    stride_days: int = 28
    max_snapshots: int = 14
    min_history_days: int = 28
    product_snapshots: int = 4
    negative_rate: float = 0.25
    time_rounds: int = 250
    time_learning_rate: float = 0.05
    time_leaves: int = 31
    time_min_data_in_leaf: int = 200
    time_feature_fraction: float = 0.8
    product_rounds: int = 150
    product_learning_rate: float = 0.05
    product_leaves: int = 31
    threads: int = 0  # LightGBM threads; 0: the cores other work leaves free (:func:`default_threads`)
    seed: int = 7
    # Share of the customers active after the last snapshot that the calibration and the decision blend are fitted
    # on (at most CALIBRATION_CUSTOMERS), with a first booster that never saw that snapshot's label window.
    calibration_share: float = 1.0
    # Share of customers whose snapshots become training rows (a stable draw per customer); priors and the
    # item table always use everybody. Below 1 for histories too large for one machine's memory.
    customer_sample: float = 1.0
    # A memory budget for the whole run, MB (0: none): the customer sample is lowered to fit the training rows.
    memory_mb: float = 0.0


def _cpu_jiffies() -> tuple[float, float] | None:
    """(busy jiffies of the whole machine, jiffies of this process), or ``None`` off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
        with open("/proc/self/stat") as fh:
            mine = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields[:8]) - idle, float(mine[11]) + float(mine[12])


def default_threads(sample_s: float = 0.3) -> int:
    """LightGBM threads: the cores this process may use minus those other processes keep busy (at least one).

    Two threads on two cores of which one is busy run slower than one thread (they wait on each other), so
    the count follows what is free now: the machine's busy time over ``sample_s``, less this process's own.
    Set ``--threads`` to override.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    first = _cpu_jiffies()
    if first is None or cores <= 1:
        return max(1, cores)
    time.sleep(sample_s)
    second = _cpu_jiffies()
    assert second is not None
    ticks = os.sysconf("SC_CLK_TCK") * sample_s
    others = max(0.0, ((second[0] - first[0]) - (second[1] - first[1])) / ticks)
    return max(1, min(cores, int(cores - others + 0.5)))


def snapshot_times(start: datetime, end: datetime, cfg: TrainConfig) -> list[datetime]:
    """Snapshot times, oldest first: the last label window ends at ``end``, earlier ones every stride."""
    out = []
    t = end - timedelta(days=cfg.horizon_days)
    while t >= start + timedelta(days=cfg.min_history_days) and len(out) < cfg.max_snapshots:
        out.append(t)
        t -= timedelta(days=cfg.stride_days)
    return sorted(out)


def content_version(end: datetime, time_booster: Any, product_booster: Any, cfg: TrainConfig) -> str:
    """``kairos-<end date>-<12 hex>``: a digest of what was learned, so the same data and settings give the
    same version (a retrain that learned nothing new is recognisably the same model) and anything else not."""
    digest = hashlib.sha256()
    # Threads are not a setting of what is learned; the boosters' text (below) records what was. LightGBM's
    # deterministic mode repeats a model for the same thread count: fix --threads for reproducible versions.
    settings = {k: v for k, v in asdict(cfg).items() if k != "threads"}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(end.isoformat().encode())
    for booster in (time_booster, product_booster):
        digest.update(b"\x1e" + (booster.model_to_string().encode() if booster is not None else b"-"))
    return f"kairos-{end:%Y%m%d}-{digest.hexdigest()[:12]}"


def fit(history: History, end: datetime, cfg: TrainConfig | None = None, folder: Folder | None = None) -> KairosModel:
    """Train a Kairos model on the events before ``end``.

    Parameters
    ----------
    history
        Customers' events and profiles.
    end
        Nothing at or after this time is used.
    cfg
        Sampling and booster settings.
    folder
        A fresh ``Folder`` of ``history`` to use; it is left advanced to ``end``.

    Returns
    -------
    KairosModel
        With priors and item table built from all history before ``end`` (what serving uses).

    Raises
    ------
    ValueError
        When the history is too short for a single snapshot.
    """
    cfg = resolve_threads(cfg or TrainConfig())
    t0 = time.monotonic()
    folder = folder or Folder(history)
    if cfg.memory_mb and history.start is not None:
        times = snapshot_times(history.start, end, cfg)
        cfg = replace(cfg, customer_sample=min(cfg.customer_sample, sample_for_budget(history, times, cfg)))
    ex = build_examples(history, end, cfg, folder)
    log.info("examples built in %.1f s (peak memory so far %.0f MB)", time.monotonic() - t0, peak_mb())
    aggs = folder.advance(end)
    progress.step("building the priors and the item table the model serves with (history to %s)", f"{end:%Y-%m-%d}")
    cids = list(history.customers)
    known = [aggs[c] for c in cids]
    priors = build_priors(known, [history.segment(c) for c in cids])
    items = build_item_table(known, history.baskets(end), end, hour_counts=history.product_hour_counts(end))
    assert history.start is not None
    model = train_model(ex, priors, items, cfg, end, history.start, len(history.customers), t0)
    return with_lifecycle(model, history, end, cfg)


def with_lifecycle(model: KairosModel, history: History, end: datetime, cfg: TrainConfig) -> KairosModel:
    """``model`` with the lifecycle predictions trained on the same history (``training.lifecycle``)."""
    from training.lifecycle import LifecycleConfig, fit_lifecycle, lifecycle_version

    model.lifecycle = fit_lifecycle(history, end, LifecycleConfig(threads=cfg.threads, seed=cfg.seed))
    model.metadata["lifecycle"] = model.lifecycle.info if model.lifecycle is not None else None
    if model.lifecycle is not None:
        model.metadata["model_version"] = lifecycle_version(model.version, model.lifecycle)
    return model


def peak_mb() -> float:
    """This process's peak resident memory so far, MB (Linux reports KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resolve_threads(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its thread count chosen (:func:`default_threads`) when it was left at 0."""
    if cfg.threads:
        return cfg
    cfg = replace(cfg, threads=default_threads())
    log.info("LightGBM threads: %d (the cores other work leaves free)", cfg.threads)
    return cfg


def train_model(
    ex: Examples,
    priors: Any,
    items: Any,
    cfg: TrainConfig,
    end: datetime,
    start: datetime,
    customers: int,
    t0: float,
    engine: str = "single machine",
) -> KairosModel:
    """Calibrate and train both boosters on the examples, and assemble the model with its metadata."""
    ty, px, py, pg, times = ex.ty, ex.px, ex.py, ex.pg, ex.times
    t1 = time.monotonic()
    # The rows are binned once (a byte or two a value instead of eight), and the raw rows let go: both
    # boosters train on the binned data, the calibration's on a subset of it.
    progress.step("binning %s send-time rows", f"{len(ty):,}")
    data = time_dataset(ex, cfg)
    ex.tx = []
    log.info("send-time rows binned: %d rows, %.1f s (peak %.0f MB)", len(ty), time.monotonic() - t1, peak_mb())
    t1 = time.monotonic()
    calibration, calibration_report = calibrate(ex, cfg, data)
    log.info("calibration: %s, %.1f s", calibration.to_dict(), time.monotonic() - t1)
    t1 = time.monotonic()
    time_booster = lgb.train(
        time_params(cfg),
        data,
        num_boost_round=cfg.time_rounds,
        callbacks=[progress.lightgbm_callback("training send-time model", cfg.time_rounds)],
    )
    log.info("time model: %d rows, %.1f s", len(ty), time.monotonic() - t1)
    product_booster = None
    if pg.size:
        t1 = time.monotonic()
        product_booster = train_product_booster(px, py, pg, cfg)
        log.info("product model: %d rows, %d groups, %.1f s", len(py), len(pg), time.monotonic() - t1)
    metadata = model_metadata(
        cfg,
        start,
        end,
        times,
        time_booster,
        product_booster,
        calibration,
        calibration_report,
        len(ty),
        len(py),
        customers,
        engine,
        t0,
    )
    return KairosModel(time_booster, product_booster, priors, items, metadata)


def model_metadata(
    cfg: TrainConfig,
    start: datetime,
    end: datetime,
    times: list[datetime],
    time_booster: lgb.Booster,
    product_booster: lgb.Booster | None,
    calibration: Calibration,
    calibration_report: dict[str, Any],
    time_examples: int,
    product_examples: int,
    customers: int,
    engine: str,
    t0: float,
) -> dict[str, Any]:
    """What a model says of its training (``metadata.json``), on one machine or a cluster."""
    return {
        "model_version": content_version(end, time_booster, product_booster, cfg),
        "kairos_version": kairos.__version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_window": {"start": start.isoformat(), "end": end.isoformat()},
        "snapshots": [t.isoformat() for t in times],
        "time_features": list(TIME_FEATURES),
        "product_features": list(PRODUCT_FEATURES),
        "time_examples": time_examples,
        "sampling": {
            "customers": cfg.customer_sample,
            "memory_budget_mb": cfg.memory_mb or None,
            "snapshots": len(times),
            "snapshot_stride_days": cfg.stride_days,
            "zero_rows_kept": cfg.negative_rate,
        },
        "calibration": calibration.to_dict(),
        "calibration_fit": calibration_report,
        "product_examples": product_examples,
        "customers": customers,
        "engine": engine,
        "config": asdict(cfg),
        "libraries": {
            "python": platform.python_version(),
            "lightgbm": lgb.__version__,
            "numpy": np.__version__,
        },
        "training_seconds": round(time.monotonic() - t0, 1),
    }


@dataclass
class Examples:
    """Training rows of both models: features, labels, and weights (time) or group sizes (product)."""

    tx: list[np.ndarray] | np.ndarray  # send-time rows, one chunk per snapshot (and shard)
    ty: np.ndarray
    tw: np.ndarray
    to: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pg: np.ndarray
    times: list[datetime]
    # Send-time rows the calibration booster does not learn from (the last label window's snapshots), and the
    # calibration customers at the last snapshot: all 168 rows, what they did next, past moments and priors.
    held_out: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    cal_x: np.ndarray | None = None
    cal_counts: np.ndarray | None = None
    cal_moments: np.ndarray | None = None
    cal_prior: np.ndarray | None = None


def calibration_roles(times: Sequence[datetime], horizon_days: int) -> list[tuple[bool, bool]]:
    """Per snapshot (oldest first): whether its rows are left out of the calibration booster, and whether it gives
    the calibration inputs (the last one).

    The calibration booster must not see the weeks it is judged on: every snapshot whose label window overlaps the
    last one's is left out, so it is judged as the served model is, on a window after everything it learned from
    (judged on customers held out of the same weeks instead, it knew the season those weeks had and preferred its
    own ranking to customers' own hours, which a later window did not bear out). A history too short to leave any
    snapshot in leaves out the last one only.
    """
    last = times[-1]
    left_out = [t + timedelta(days=horizon_days) > last for t in times]
    if all(left_out):
        left_out = [k == len(times) - 1 for k in range(len(times))]
    return [(out, k == len(times) - 1) for k, out in enumerate(left_out)]


def in_sample(cid: str, rate: float) -> bool:
    """Whether a customer's snapshots are training rows at sampling ``rate`` (stable: a digest of the id)."""
    return rate >= 1.0 or stable_unit("sample", cid) < rate


def calibration_customer(cid: str, share: float) -> bool:
    """Whether a customer's full rows at the last snapshot are kept for the calibration (stable: a digest of the id)."""
    return share >= 1.0 or stable_unit("calibration", cid) < share


def calibrate(ex: Examples, cfg: TrainConfig, data: lgb.Dataset) -> tuple[Calibration, dict[str, Any]]:
    """Fit the probability calibration and the decision blend on a window a first booster never saw.

    The first booster learns from the snapshots before the last label window (:func:`calibration_roles`); its
    rates for the customers active after the last snapshot are calibrated against what they did in that window.
    The returned calibration is applied to the final booster (trained on everything), whose rates are at least
    as good, so the fitted weights err on the side of the prior.
    """
    if ex.cal_x is None or not ex.cal_x.size or not ex.held_out.any() or ex.held_out.all():
        return Calibration(), {}
    subset = data.subset(np.flatnonzero(~ex.held_out))
    callback = progress.lightgbm_callback("calibrating: send-time model without the last window", cfg.time_rounds)
    booster = lgb.train(time_params(cfg), subset, num_boost_round=cfg.time_rounds, callbacks=[callback])
    rates = booster.predict(ex.cal_x).reshape(-1, HOURS_PER_WEEK)
    past = ex.cal_x[:, TIME_FEATURES.index("own_how")].reshape(-1, HOURS_PER_WEEK)
    return fit_calibration(rates, ex.cal_prior, ex.cal_counts, ex.cal_moments, past)


def build_examples(history: History, end: datetime, cfg: TrainConfig, folder: Folder) -> Examples:
    """Fold the history to each snapshot time and collect both models' training rows."""
    if history.start is None:
        raise ValueError("no events")
    times = snapshot_times(history.start, end, cfg)
    if not times:
        raise ValueError(
            f"history from {history.start:%Y-%m-%d} to {end:%Y-%m-%d} is too short for a "
            f"{cfg.horizon_days}-day label window after {cfg.min_history_days} days of history"
        )
    rng = np.random.default_rng(cfg.seed)
    tx: list[np.ndarray] = []
    ty: list[np.ndarray] = []
    tw: list[np.ndarray] = []
    to: list[np.ndarray] = []
    th: list[np.ndarray] = []
    cal: dict[str, np.ndarray] = {}
    px: list[np.ndarray] = []
    py: list[np.ndarray] = []
    pg: list[np.ndarray] = []
    product_times = set(times[-cfg.product_snapshots :]) if cfg.product_snapshots else set()
    roles = calibration_roles(times, cfg.horizon_days)
    cids = list(history.customers)
    segments = [history.segment(c) for c in cids]
    for k, t in enumerate(times):
        progress.step("training rows: snapshot %d of %d (%s)", k + 1, len(times), f"{t:%Y-%m-%d}")
        aggs = folder.advance(t)
        known = [aggs[c] for c in cids]
        priors = build_priors(known, segments)
        # Co-purchase neighbours only matter to the product ranker: skip them at time-only snapshots.
        baskets = history.baskets(t) if t in product_times else []
        items = build_item_table(known, baskets, t, hour_counts=history.product_hour_counts(t))
        left_out, calibrating = roles[k]
        part = snapshot_examples(history, aggs, t, priors, items, cfg, rng, t in product_times, calibrating, left_out)
        for name, rows in (("tx", tx), ("ty", ty), ("tw", tw), ("to", to), ("th", th)):
            rows.append(part[name])
        if part.get("cal"):
            cal = part["cal"]  # the last snapshot's (calibration_roles)
        if "px" in part:
            px.append(part["px"])
            py.append(part["py"])
            pg.append(part["pg"])
    return Examples(
        tx=tx,
        ty=np.concatenate(ty),
        tw=np.concatenate(tw),
        to=np.concatenate(to),
        px=np.concatenate(px) if px else np.empty((0, len(PRODUCT_FEATURES))),
        py=np.concatenate(py) if py else np.empty(0),
        pg=np.concatenate(pg) if pg else np.empty(0, dtype=np.int64),
        times=times,
        held_out=np.concatenate(th),
        cal_x=cal.get("x"),
        cal_counts=cal.get("counts"),
        cal_moments=cal.get("moments"),
        cal_prior=cal.get("prior"),
    )


# What one training row costs until binned (float32 features, label, weight, offset, flags) and what LightGBM,
# the aggregates and the transient feature batches take besides, measured on Online Retail II.
TIME_ROW_BYTES = len(TIME_FEATURES) * 4 + 32
PRODUCT_ROW_BYTES = len(PRODUCT_FEATURES) * 4 + 24
PRODUCT_CANDIDATES = 180
OVERHEAD_MB = 250.0
AGGREGATES_BYTES_PER_CUSTOMER = 45_000


def sample_for_budget(history: History, times: list[datetime], cfg: TrainConfig) -> float:
    """The share of customers whose rows fit ``cfg.memory_mb`` with what is already in memory (at least 1%).

    Rows are counted ahead from the customers active in each snapshot's label window: 168 rows each, zero
    labels kept at ``negative_rate``, plus the ranker's candidates of buyers at the last snapshots.
    """
    window = timedelta(days=cfg.horizon_days)
    product_times = set(times[-cfg.product_snapshots :]) if cfg.product_snapshots else set()
    time_rows = product_rows = 0.0
    for t in times:
        active = len(history.active(t, t + window))
        time_rows += active * (HOURS_PER_WEEK * cfg.negative_rate + 8)
        if t in product_times:
            product_rows += active * PRODUCT_CANDIDATES
    need_mb = (time_rows * TIME_ROW_BYTES + product_rows * PRODUCT_ROW_BYTES) / 2**20
    have_mb = peak_mb() + OVERHEAD_MB + len(history.customers) * AGGREGATES_BYTES_PER_CUSTOMER / 2**20
    share = max(0.01, min(1.0, (cfg.memory_mb - have_mb) / need_mb)) if need_mb else 1.0
    log.info(
        "memory budget %.0f MB: %.0f MB in use and fixed, rows would take %.0f MB: sampling %.0f%% of customers",
        cfg.memory_mb,
        have_mb,
        need_mb,
        100 * share,
    )
    return share


def snapshot_examples(
    history: History,
    aggs: dict,
    t: datetime,
    priors: Any,
    items: Any,
    cfg: TrainConfig,
    rng: np.random.Generator,
    product: bool,
    calibrating: bool,
    left_out: bool = False,
) -> dict[str, Any]:
    """One snapshot's training rows of the customers of ``history`` (all of them, or one shard's).

    Returns ``tx, ty, tw, to`` (send-time rows, labels, weights, offsets), ``th`` (rows the calibration booster
    does not learn from: all of them when ``left_out``), with ``calibrating`` ``cal`` (the customers' full rows
    and what they did next: :func:`calibration_roles`), and with ``product`` the ranker's ``px, py, pg``.
    """
    window_end = t + timedelta(days=cfg.horizon_days)
    active = [c for c in history.active(t, window_end) if in_sample(c, cfg.customer_sample)]
    x, y, w, o, owner = time_examples(history, aggs, active, t, window_end, priors, items, cfg.negative_rate, rng)

    # Rows are kept in float32 until LightGBM bins them: half the memory, and the bins (thresholds halfway
    # between distinct float32 values) put a float64 feature served later on the side its float32 would be.
    out: dict[str, Any] = {
        "tx": x.astype(np.float32),
        "ty": y,
        "tw": w,
        "to": o,
        "th": np.full(owner.size, left_out, dtype=bool),
    }
    if calibrating:
        share = min(cfg.calibration_share, CALIBRATION_CUSTOMERS / max(len(active), 1))
        cal_cids = [c for c in active if calibration_customer(c, share)]
        if cal_cids:
            cal_aggs = [aggs[c] for c in cal_cids]
            cal_segments = [history.segment(c) for c in cal_cids]
            out["cal"] = {
                "x": time_features(cal_aggs, t, priors, cal_segments, items).astype(np.float32),
                "counts": history.window_how_counts(cal_cids, t, window_end),
                "moments": np.array([a.engagement_moments for a in cal_aggs]),
                "prior": np.stack([priors.segment_dist(s) for s in cal_segments]),
            }
    if product:
        px, out["py"], out["pg"] = product_examples(history, aggs, t, window_end, items, cfg.customer_sample)
        out["px"] = px.astype(np.float32)
    log.info("snapshot %s: %d active customers (peak %.0f MB)", t.date(), len(active), peak_mb())
    return out


def time_examples(
    history: History,
    aggs: dict,
    cids: list[str],
    start: datetime,
    end: datetime,
    priors: Any,
    items: Any,
    negative_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (customer, hour of week) for customers active in the window; labels count their moments there.

    Rows with a zero label are kept with probability ``negative_rate`` and weighted by its inverse,
    which keeps the Poisson fit unbiased with a fraction of the rows. The last array is each row's
    position in ``cids``.
    """
    if not cids:
        empty = np.empty(0)
        return np.empty((0, len(TIME_FEATURES))), empty, empty, empty, np.empty(0, dtype=np.int64)
    counts = history.window_how_counts(cids, start, end)
    y = counts.reshape(-1)
    # Offset log(total moments in the window): with it the Poisson fit is a multinomial fit of how
    # the customer's engagement spreads over the week, which is all the send time needs; how much
    # the customer engages overall is not modelled.
    offset = np.repeat(np.log(counts.sum(axis=1)), HOURS_PER_WEEK)
    keep = (y > 0) | (rng.random(y.size) < negative_rate)
    w = np.where(y > 0, 1.0, 1.0 / negative_rate)
    owner = np.repeat(np.arange(len(cids)), HOURS_PER_WEEK)
    # Features a batch of customers at a time, each batch's kept rows copied out: the full matrix of every
    # active customer's 168 rows never exists at once.
    parts = []
    for lo in range(0, len(cids), FEATURE_BATCH):
        batch = cids[lo : lo + FEATURE_BATCH]
        x = time_features([aggs[c] for c in batch], start, priors, [history.segment(c) for c in batch], items)
        parts.append(x[keep[lo * HOURS_PER_WEEK : (lo + len(batch)) * HOURS_PER_WEEK]])
    return np.concatenate(parts), y[keep], w[keep], offset[keep], owner[keep]


def product_examples(
    history: History, aggs: dict, start: datetime, end: datetime, items: Any, sample: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate rows of (sampled) customers who buy a known product in the window; label 1 if bought."""
    buyers = []
    bought = []
    for cid in history.customers:
        if not in_sample(cid, sample):
            continue
        products = history.window_products(cid, start, end)
        if products:
            buyers.append(cid)
            bought.append(set(products))
    if not buyers:
        return np.empty((0, len(PRODUCT_FEATURES))), np.empty(0), np.empty(0, dtype=np.int64)
    cands = product_candidates([aggs[c] for c in buyers], start, items)
    ids = np.asarray(items.product_ids, dtype=object)
    labels = np.array([p in bought[i] for i, p in zip(_owners(cands.offsets), ids[cands.items], strict=True)], float)
    sizes = cands.group_sizes()
    # Groups without a single bought candidate teach the ranker nothing.
    has_pos = np.add.reduceat(labels, cands.offsets[:-1]) > 0 if labels.size else np.zeros(0, bool)
    has_pos &= sizes > 0
    row_keep = np.repeat(has_pos, sizes)
    return cands.features[row_keep], labels[row_keep], sizes[has_pos]


def _owners(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def time_dataset(ex: Examples, cfg: TrainConfig) -> lgb.Dataset:
    """The send-time rows as a binned LightGBM dataset (from the per-snapshot chunks: no concatenated copy)."""
    data = lgb.Dataset(
        [c for c in ex.tx if len(c)] if isinstance(ex.tx, list) else ex.tx,
        label=ex.ty,
        weight=ex.tw,
        init_score=ex.to,
        feature_name=list(TIME_FEATURES),
        free_raw_data=True,
        params=time_params(cfg),
    )
    return data.construct()


def time_params(cfg: TrainConfig) -> dict[str, Any]:
    return {
        "objective": "poisson",
        "learning_rate": cfg.time_learning_rate,
        "num_leaves": cfg.time_leaves,
        "min_data_in_leaf": cfg.time_min_data_in_leaf,
        "feature_fraction": cfg.time_feature_fraction,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }


def product_params(cfg: TrainConfig) -> dict[str, Any]:
    """The product ranker's LightGBM parameters (one machine, and each machine of a cluster)."""
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "lambdarank_truncation_level": 20,
        "learning_rate": cfg.product_learning_rate,
        "num_leaves": cfg.product_leaves,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.9,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }


def train_product_booster(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: TrainConfig) -> lgb.Booster:
    params = product_params(cfg)
    data = lgb.Dataset(x, label=y, group=groups, feature_name=list(PRODUCT_FEATURES), free_raw_data=True)
    callback = progress.lightgbm_callback("training product ranker", cfg.product_rounds)
    return lgb.train(params, data, num_boost_round=cfg.product_rounds, callbacks=[callback])
