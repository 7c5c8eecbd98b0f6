"""Train and evaluate the lifecycle predictions: purchase in the next 90 days, spend, next purchase per product.

Examples come from snapshots, as the send-time model's do: at times ``s`` before the end of the history every
customer with a past is folded to ``s`` (``training.history.Folder``, the ingest API's fold), their features are
:func:`kairos.models.features.lifecycle.lifecycle_features` (what the score function computes), and the labels are
read from the same customer folded to ``s + 90 days``: whether their purchase moments grew, and by how much
their revenue did. Every label window ends at or before ``end``.

The purchase probability is calibrated: a first booster learns from 80% of the customers, an isotonic map of its
probabilities is fitted on the other 20% (pool adjacent violators), and the final booster, trained on everybody,
is served through that map.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from kairos.models.features.lifecycle import LIFECYCLE_FEATURES, lifecycle_features, population_intervals
from kairos.models.lifecycle import Isotonic, LifecycleModel
from kairos.models.timing import stable_unit
from training import progress
from training.history import Folder

if TYPE_CHECKING:
    from kairos.customers.aggregates import CustomerAggregates
    from training.history import History

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LifecycleConfig:
    """Snapshots and boosters of the lifecycle models (chosen on the 2011-09-01 split of Online Retail II)."""

    horizon_days: int = 90
    stride_days: int = 28
    max_snapshots: int = 14
    min_history_days: int = 28
    rounds: int = 200
    learning_rate: float = 0.03
    leaves: int = 15
    min_data_in_leaf: int = 50
    calibration_share: float = 0.2
    threads: int = 0
    seed: int = 7


@dataclass
class LifecycleRows:
    """Training rows: features, the purchase label, the spend label and whose row it is."""

    x: np.ndarray
    bought: np.ndarray
    spend: np.ndarray
    customers: list[str]


def lifecycle_rows(history: History, end: datetime, cfg: LifecycleConfig) -> tuple[LifecycleRows, dict]:
    """Fold the history through every snapshot and its label time; the rows and the aggregates at ``end``."""
    assert history.start is not None
    horizon = timedelta(days=cfg.horizon_days)
    snapshots = []
    t = end - horizon
    while t >= history.start + timedelta(days=cfg.min_history_days) and len(snapshots) < cfg.max_snapshots:
        snapshots.append(t)
        t -= timedelta(days=cfg.stride_days)
    times = sorted(set(snapshots) | {s + horizon for s in snapshots} | {end})
    folder = Folder(history)
    at: dict[datetime, dict[str, CustomerAggregates]] = {}
    for k, t in enumerate(times):
        progress.step("lifecycle rows: folding to %s (%d of %d)", f"{t:%Y-%m-%d}", k + 1, len(times))
        # The fold replaces a customer's aggregates rather than changing them: a copy of the mapping is a snapshot.
        at[t] = dict(folder.advance(t))
    xs, bought, spend, owners = [], [], [], []
    for s in sorted(snapshots):
        before, after = at[s], at[s + horizon]
        cids = [c for c, a in before.items() if a.purchase_count > 0 or a.has_data]
        aggs = [before[c] for c in cids]
        xs.append(lifecycle_features(aggs, s))
        bought.append(np.array([after[c].purchase_count > before[c].purchase_count for c in cids], dtype=float))
        spend.append(np.array([max(0.0, after[c].monetary_total - before[c].monetary_total) for c in cids]))
        owners += cids
    rows = LifecycleRows(
        np.concatenate(xs) if xs else np.empty((0, len(LIFECYCLE_FEATURES))),
        np.concatenate(bought) if bought else np.empty(0),
        np.concatenate(spend) if spend else np.empty(0),
        owners,
    )
    return rows, at[end]


def fit_isotonic(raw: np.ndarray, y: np.ndarray, max_knots: int = 200) -> Isotonic:
    """Isotonic regression of ``y`` on ``raw`` (pool adjacent violators), as knots for linear interpolation."""
    if raw.size == 0:
        return Isotonic()
    order = np.argsort(raw, kind="stable")
    xs, ys = raw[order], y[order].astype(np.float64)
    # Blocks: [sum of y, weight, mean x]; merge while a block's mean is not above the previous one's.
    sums: list[float] = []
    weights: list[float] = []
    centers: list[float] = []
    for xv, yv in zip(xs.tolist(), ys.tolist(), strict=True):
        sums.append(yv)
        weights.append(1.0)
        centers.append(xv)
        while len(sums) > 1 and sums[-2] / weights[-2] >= sums[-1] / weights[-1]:
            s, w, c = sums.pop(), weights.pop(), centers.pop()
            centers[-1] = (centers[-1] * weights[-1] + c * w) / (weights[-1] + w)
            sums[-1] += s
            weights[-1] += w
    kx = np.array(centers)
    ky = np.array(sums) / np.array(weights)
    if kx.size > max_knots:
        keep = np.unique(np.linspace(0, kx.size - 1, max_knots).round().astype(int))
        kx, ky = kx[keep], ky[keep]
    return Isotonic([0.0, *kx.round(6).tolist(), 1.0], [float(ky[0]), *ky.round(6).tolist(), float(ky[-1])])


def _params(cfg: LifecycleConfig, objective: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    if objective == "tweedie":
        params["tweedie_variance_power"] = 1.3
    return params


def _train(x: np.ndarray, y: np.ndarray, cfg: LifecycleConfig, objective: str, what: str) -> lgb.Booster:
    data = lgb.Dataset(x, label=y, feature_name=list(LIFECYCLE_FEATURES), free_raw_data=True)
    callback = progress.lightgbm_callback(what, cfg.rounds)
    return lgb.train(_params(cfg, objective), data, num_boost_round=cfg.rounds, callbacks=[callback])


def fit_lifecycle(history: History, end: datetime, cfg: LifecycleConfig | None = None) -> LifecycleModel | None:
    """Train the lifecycle model on the history before ``end`` (``None`` when it is too short for one snapshot).

    Parameters
    ----------
    history
        Customers' events and profiles.
    end
        Nothing at or after this time is used.
    cfg
        Snapshots and booster settings.
    """
    cfg = cfg or LifecycleConfig()
    if history.start is None:
        return None
    rows, at_end = lifecycle_rows(history, end, cfg)
    if rows.bought.size < 50 or rows.bought.min() == rows.bought.max():
        log.warning("lifecycle: %d rows, too few (or one label only) to train on", rows.bought.size)
        return None
    held = np.array([stable_unit("lifecycle", c) < cfg.calibration_share for c in rows.customers], dtype=bool)
    calibration, report = Isotonic(), {}
    if held.any() and not held.all():
        first = _train(rows.x[~held], rows.bought[~held], cfg, "binary", "lifecycle: purchase model without held-out")
        raw = first.predict(rows.x[held])
        calibration = fit_isotonic(raw, rows.bought[held])
        y = rows.bought[held]
        report = {
            "held_out_rows": int(held.sum()),
            "brier_raw": round(float(np.mean((raw - y) ** 2)), 5),
            "brier_calibrated": round(float(np.mean((calibration.apply(raw) - y) ** 2)), 5),
        }
    purchase = _train(rows.x, rows.bought, cfg, "binary", "lifecycle: purchase model")
    spend = _train(rows.x, rows.spend, cfg, "tweedie", "lifecycle: spend model")
    intervals, overall = population_intervals(list(at_end.values()))
    info = {
        "rows": int(rows.bought.size),
        "purchase_rate": round(float(rows.bought.mean()), 4),
        "calibration_fit": report,
        "products_with_interval": len(intervals),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k != "threads"},
    }
    log.info("lifecycle model: %s", info)
    return LifecycleModel(purchase, spend, calibration, intervals, overall, cfg.horizon_days, info=info)


def lifecycle_version(version: str, lifecycle: LifecycleModel) -> str:
    """``version`` (``kairos-<end date>-<12 hex>``) with the lifecycle models in its digest: a retrain whose lifecycle
    models learned something new is a new version, so every customer is scored again."""
    digest = hashlib.sha256(version.encode())
    for booster in (lifecycle.purchase_booster, lifecycle.spend_booster):
        digest.update(b"\x1e" + booster.model_to_string().encode())
    digest.update(json.dumps([lifecycle.calibration.x, lifecycle.calibration.y, lifecycle.intervals]).encode())
    return f"{version.rsplit('-', 1)[0]}-{digest.hexdigest()[:12]}"
