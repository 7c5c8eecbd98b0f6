"""Lifecycle predictions at serving time: will the customer buy in the next 90 days, for how much, and when each
consumable product they buy runs out.

A model directory trained with lifecycle predictions holds, beside the send-time and product models::

    lifecycle_purchase.txt  LightGBM (binary) model: whether the customer buys within the horizon
    lifecycle_spend.txt     LightGBM (Tweedie) model: what they spend within the horizon
    lifecycle.json          the probability calibration (isotonic knots), the products' median repurchase
                            intervals and the settings of the next purchase dates

A directory without them (models trained before) loads and serves without a ``lifecycle`` answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from kairos.models.features.lifecycle import LIFECYCLE_FEATURES, lifecycle_features, product_intervals
from kairos.models.features.products import DURABLE_REPEAT_RATE
from kairos.models.features.shared import DAY_S

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.models.features import ItemTable

PURCHASE_MODEL_FILE = "lifecycle_purchase.txt"
SPEND_MODEL_FILE = "lifecycle_spend.txt"
LIFECYCLE_FILE = "lifecycle.json"
# The product's population median interval counts as this many of the customer's own intervals: one observed
# interval moves the estimate a sixth of the way from the median to the customer's own. Chosen on the 2011-09-01
# split of Online Retail II (mean absolute error of the dates of every consumable bought again within 90 days:
# 0.5 -> 33.5 days, 2 -> 29.8, 5 -> 28.6, 10 -> 28.4, the median alone 29.5; training/README.md).
INTERVAL_SHRINK = 5.0
# A product whose date has passed is expected this share of its interval from now (29 days off on average, against
# 36 for "due now" and 32 for the next whole interval after the last purchase, on the same split).
OVERDUE_SHARE = 0.5
# A product not bought again for this many of its intervals has lapsed: it gets no next purchase date.
LAPSED_INTERVALS = 3.0
# The soonest next purchases kept per customer (a wholesale buyer has hundreds of consumables).
MAX_NEXT_PURCHASES = 50


@dataclass
class Isotonic:
    """A non-decreasing map of raw scores to probabilities, linear between knots (fitted by pool adjacent
    violators on held-out customers)."""

    x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    y: list[float] = field(default_factory=lambda: [0.0, 1.0])

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


@dataclass
class LifecycleModel:
    """The two lifecycle boosters with their calibration and the products' repurchase intervals.

    Attributes
    ----------
    purchase_booster
        Binary LightGBM model of a purchase within ``horizon_days``; its raw probability goes through
        ``calibration``.
    spend_booster
        Tweedie LightGBM model of the revenue within ``horizon_days``.
    calibration
        Isotonic map of the purchase booster's probabilities, fitted on customers held out of a first booster.
    intervals
        Product id -> median days between two purchases of it by one customer (the population's).
    default_interval
        The median over every product, for products with too few repeat buyers.
    """

    purchase_booster: lgb.Booster
    spend_booster: lgb.Booster
    calibration: Isotonic
    intervals: dict[str, float]
    default_interval: float
    horizon_days: int = 90
    shrink: float = INTERVAL_SHRINK
    info: dict[str, Any] = field(default_factory=dict)
    lapsed_intervals: float = LAPSED_INTERVALS
    max_next_purchases: int = MAX_NEXT_PURCHASES

    @classmethod
    def load(cls, directory: Path) -> LifecycleModel | None:
        """The lifecycle model of a model directory, or ``None`` when it has none."""
        if not (directory / LIFECYCLE_FILE).exists():
            return None
        meta = json.loads((directory / LIFECYCLE_FILE).read_text())
        model = cls(
            lgb.Booster(model_file=str(directory / PURCHASE_MODEL_FILE)),
            lgb.Booster(model_file=str(directory / SPEND_MODEL_FILE)),
            Isotonic(**meta["calibration"]),
            {k: float(v) for k, v in meta["intervals"].items()},
            float(meta["default_interval"]),
            int(meta.get("horizon_days", 90)),
            float(meta.get("shrink", INTERVAL_SHRINK)),
            meta.get("info", {}),
        )
        if tuple(model.purchase_booster.feature_name()) != LIFECYCLE_FEATURES:
            raise ValueError("lifecycle model features differ from kairos.models.features.lifecycle")
        return model

    def save(self, directory: Path) -> None:
        self.purchase_booster.save_model(str(directory / PURCHASE_MODEL_FILE))
        self.spend_booster.save_model(str(directory / SPEND_MODEL_FILE))
        doc = {
            "calibration": {"x": self.calibration.x, "y": self.calibration.y},
            "intervals": self.intervals,
            "default_interval": self.default_interval,
            "horizon_days": self.horizon_days,
            "shrink": self.shrink,
            "info": self.info,
        }
        (directory / LIFECYCLE_FILE).write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True))

    def purchase_probability(self, x: np.ndarray, threads: int = 0) -> np.ndarray:
        """Calibrated probability of a purchase within the horizon, from :func:`lifecycle_features` rows."""
        return self.calibration.apply(self.purchase_booster.predict(x, num_threads=threads))

    def expected_spend(self, x: np.ndarray, threads: int = 0) -> np.ndarray:
        return np.maximum(self.spend_booster.predict(x, num_threads=threads), 0.0)

    def next_purchases(
        self, agg: CustomerAggregates, as_of: datetime, consumable: Callable[[str], bool]
    ) -> dict[str, float]:
        """Product id -> expected next purchase (unix seconds, never before ``as_of``) of each consumable product
        the customer bought: their last purchase plus their own mean interval shrunk toward the product's median
        (``shrink`` pseudo-intervals), or the median alone after a single purchase; past that date,
        ``OVERDUE_SHARE`` of the interval from ``as_of``. Products not bought for ``lapsed_intervals`` intervals are
        left out; the ``max_next_purchases`` soonest are kept, soonest first."""
        now = as_of.timestamp()
        own = product_intervals(agg)
        out = {}
        for pid, rec in agg.product_purchases.items():
            if rec[1] >= now or not consumable(pid):
                continue
            median = self.intervals.get(pid, self.default_interval)
            days, n = own.get(pid, (median, 0))
            interval = max(1.0, (n * days + self.shrink * median) / (n + self.shrink))
            if now - rec[1] > self.lapsed_intervals * interval * DAY_S:
                continue
            due = rec[1] + interval * DAY_S
            out[pid] = due if due >= now else now + OVERDUE_SHARE * interval * DAY_S
        return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0]))[: self.max_next_purchases])

    def predict(
        self,
        aggs: Sequence[CustomerAggregates],
        as_of: datetime,
        items: ItemTable,
        consumable: Mapping[str, bool] | None = None,
        threads: int = 0,
    ) -> list[dict[str, Any]]:
        """``{"purchase_probability_90d", "expected_spend_90d", "next_purchase_at": {product_id: ISO date}}`` per
        customer.

        Parameters
        ----------
        aggs
            The customers' aggregates.
        as_of
            The scoring time.
        items
            The model's item table: a product the catalogue says nothing of is consumable when its learned
            repeat-purchase rate is (``DURABLE_REPEAT_RATE`` or more).
        consumable
            The catalogue's ``consumable`` flag of products it knows, which wins over the learned rate.
        threads
            LightGBM's ``num_threads``.
        """
        if not aggs:
            return []
        x = lifecycle_features(aggs, as_of)
        probs = self.purchase_probability(x, threads).round(4).tolist()
        spends = self.expected_spend(x, threads).round(2).tolist()
        flags = consumable or {}

        def is_consumable(pid: str) -> bool:
            if pid in flags:
                return bool(flags[pid])
            row = items.index.get(pid)
            return row is not None and bool(items.repeat_rate[row] >= DURABLE_REPEAT_RATE)

        out = []
        for agg, p, s in zip(aggs, probs, spends, strict=True):
            dates = {
                pid: datetime.fromtimestamp(t, UTC).date().isoformat()
                for pid, t in self.next_purchases(agg, as_of, is_consumable).items()
            }
            out.append({"purchase_probability_90d": p, "expected_spend_90d": s, "next_purchase_at": dates})
        return out
