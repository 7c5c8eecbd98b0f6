"""The Kairos model at serving time: load a model directory, score many customers in one call.

A model directory holds two LightGBM boosters and the model-level artifacts the features need::

    time_model.txt      LightGBM (Poisson) model: engagement rate per (customer, local hour of week)
    product_model.txt   LightGBM lambdarank model over next-product candidates
    priors.json         population and segment hour-of-week priors (kairos.models.features.Priors)
    items.json          product table: popularity, repeat rate, co-purchase neighbours (ItemTable)
    metadata.json       feature lists, training window, library versions, metrics
    lifecycle_*         optional: purchase probability, spend and next purchases (kairos.models.lifecycle)

Both the ``predict`` command of ``training`` and the score Lambda call :meth:`KairosModel.recommend`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from kairos.core.constants import DEFAULT_WINDOW, HOURS_PER_WEEK
from kairos.models.features import (
    PRODUCT_FEATURES,
    TIME_FEATURES,
    ItemTable,
    Priors,
    product_candidates,
    segment_of,
    time_features,
)
from kairos.models.features.calibration import Calibration, best_hours
from kairos.models.features.channels import CHANNELS, ChannelResponse, channel_rankings
from kairos.models.features.shared import ranks_within, top_within
from kairos.models.lifecycle import LifecycleModel

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.models.features import ProductCandidates

TIME_MODEL_FILE = "time_model.txt"
PRODUCT_MODEL_FILE = "product_model.txt"
PRIORS_FILE = "priors.json"
ITEMS_FILE = "items.json"
METADATA_FILE = "metadata.json"

# Customers whose feature rows are built and predicted together. The rows of a batch of thousands never exist at
# once (256 customers' send-time rows are 13 MB, 2,000 customers' 100 MB): the memory is reused from chunk to chunk
# instead of being mapped and faulted in afresh for every batch, which cost more than building the rows. LightGBM
# predicts a row at a time, so the chunks cost it nothing (bench/score.py).
PREDICT_CHUNK = 256

# Confidence levels, from least to most specific.
LEVEL_POPULATION = "population"
LEVEL_SEGMENT = "segment"
LEVEL_PERSONAL = "personal"


@dataclass(frozen=True)
class CustomerInput:
    """One customer to score: id, aggregates, and optional profile attributes (e.g. ``country``)."""

    customer_id: str
    aggregates: CustomerAggregates
    attributes: Mapping[str, Any] | None = None
    channel_sends: Mapping[str, int] | None = None  # messages delivered to the customer, by channel


@dataclass
class Recommendation:
    """What the model says about one customer.

    Attributes
    ----------
    customer_id
        The customer.
    best_hour_of_week
        The decision: the local hour of week (customer's zone, 0 = Monday 00:00) with the most
        probability within one hour of it on the same day (``kairos.models.features.calibration.window_scores``).
    hour_scores
        168 calibrated probabilities summing to 1: how likely each local hour of week is to be one the
        customer engages in. Decisions read them through a window (``kairos.models.timing.decide``).
    next_products
        ``[{"product_id", "score"}]``, best first; scores are ranker scores, comparable only
        within one customer.
    confidence
        ``{"level": "population" | "segment" | "personal", "moments": past engagement moments,
        "best_day_share": share of the week's score on the best hour's day window}``.
    model_version
        The model's version string (``metadata.json``).
    channel_ranking
        Channels, the one the customer is most likely to engage with per send first
        (:func:`kairos.models.features.channels.channel_ranking`: the customer's sends and engagements by channel,
        shrunk toward each channel's response rate learned from the message log).
    send_scores
        168 values the decision rule reads: the model's normalized engagement rates, a ranking of hours
        (sharper than the probabilities, and the better picker of hours on held-out data).
    send_windows
        Per channel, ``[offset, weights]``: the hours after a send its engagements come (learned from the
        message log; one hour either side by default). The value of sending at ``h`` is
        ``sum_k weights[k] * send_scores[h + offset + k]`` on the same local day.
    lifecycle
        ``{"purchase_probability_90d", "expected_spend_90d", "next_purchase_at": {product_id: ISO date}}``
        (:meth:`kairos.models.lifecycle.LifecycleModel.predict`); ``None`` from a model trained without it.
    """

    customer_id: str
    best_hour_of_week: int
    hour_scores: list[float]
    next_products: list[dict[str, Any]]
    confidence: dict[str, Any]
    model_version: str
    channel_ranking: list[str] = field(default_factory=lambda: list(CHANNELS))
    send_scores: list[float] | None = None
    send_windows: dict[str, list[Any]] | None = None
    lifecycle: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "best_hour_of_week": self.best_hour_of_week,
            "hour_scores": self.hour_scores,
            "next_products": self.next_products,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "channel_ranking": self.channel_ranking,
            "send_scores": self.send_scores,
            "send_windows": self.send_windows,
            "lifecycle": self.lifecycle,
        }


@dataclass
class KairosModel:
    """Send-time model and next-product ranker with their priors and item table."""

    time_booster: lgb.Booster
    product_booster: lgb.Booster | None
    priors: Priors
    items: ItemTable
    metadata: dict[str, Any] = field(default_factory=dict)
    lifecycle: LifecycleModel | None = None

    @property
    def version(self) -> str:
        return str(self.metadata.get("model_version", "unversioned"))

    @classmethod
    def load(cls, directory: str | Path) -> KairosModel:
        """Load a model directory written by :meth:`save`.

        Parameters
        ----------
        directory
            Path of the model directory.

        Returns
        -------
        KairosModel

        Raises
        ------
        FileNotFoundError
            When a required file is missing.
        ValueError
            When the boosters' features do not match this code's feature lists.

        Example
        -------
        >>> model = KairosModel.load("models/default")
        """
        d = Path(directory)
        time_booster = lgb.Booster(model_file=str(d / TIME_MODEL_FILE))
        product_path = d / PRODUCT_MODEL_FILE
        product_booster = lgb.Booster(model_file=str(product_path)) if product_path.exists() else None
        priors = Priors.from_dict(json.loads((d / PRIORS_FILE).read_text()))
        items = ItemTable.from_dict(json.loads((d / ITEMS_FILE).read_text()))
        metadata = json.loads((d / METADATA_FILE).read_text()) if (d / METADATA_FILE).exists() else {}
        model = cls(time_booster, product_booster, priors, items, metadata, LifecycleModel.load(d))
        model._check_features()
        return model

    @property
    def calibration(self) -> Calibration:
        """The probability calibration fitted in training (identity for models trained before it existed)."""
        cal = self.__dict__.get("_calibration")
        if cal is None:
            cal = self.__dict__["_calibration"] = Calibration.from_dict(self.metadata.get("calibration"))
        return cal

    @property
    def response(self) -> ChannelResponse:
        """Channel response rates and decision windows learned from the message log (defaults without one)."""
        res = self.__dict__.get("_response")
        if res is None:
            res = self.__dict__["_response"] = ChannelResponse.from_dict(self.metadata.get("response"))
        return res

    def _check_features(self) -> None:
        if tuple(self.time_booster.feature_name()) != TIME_FEATURES:
            raise ValueError("time model features differ from kairos.models.features.TIME_FEATURES")
        if self.product_booster is not None and tuple(self.product_booster.feature_name()) != PRODUCT_FEATURES:
            raise ValueError("product model features differ from kairos.models.features.PRODUCT_FEATURES")

    def save(self, directory: str | Path) -> None:
        """Write the model directory (boosters as LightGBM text, artifacts as JSON)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.time_booster.save_model(str(d / TIME_MODEL_FILE))
        if self.product_booster is not None:
            self.product_booster.save_model(str(d / PRODUCT_MODEL_FILE))
        (d / PRIORS_FILE).write_text(json.dumps(self.priors.to_dict(), separators=(",", ":")))
        (d / ITEMS_FILE).write_text(json.dumps(self.items.to_dict(), separators=(",", ":")))
        (d / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True) + "\n")
        if self.lifecycle is not None:
            self.lifecycle.save(d)

    # ------------------------------------------------------------------------------------------
    # Scoring
    # ------------------------------------------------------------------------------------------

    def segments(self, customers: Sequence[CustomerInput]) -> list[str | None]:
        attribute = self.priors.segment_attribute
        return [segment_of(c.attributes, attribute) for c in customers]

    def hour_rates(
        self, aggs: Sequence[CustomerAggregates], segments: Sequence[str | None], as_of: datetime, threads: int = 0
    ) -> np.ndarray:
        """Predicted engagement rate per local hour of week, shape ``(len(aggs), 168)``: one predict call per
        :data:`PREDICT_CHUNK` customers (``threads``: LightGBM's ``num_threads``; 0 is OpenMP's default, a thread
        per core)."""
        rates = np.empty((len(aggs), HOURS_PER_WEEK))
        for lo in range(0, len(aggs), PREDICT_CHUNK):
            hi = min(lo + PREDICT_CHUNK, len(aggs))
            x = time_features(aggs[lo:hi], as_of, self.priors, segments[lo:hi], self.items)
            rates[lo:hi] = self.time_booster.predict(x, num_threads=threads).reshape(hi - lo, HOURS_PER_WEEK)
        return rates

    def prior_of(self, segments: Sequence[str | None]) -> np.ndarray:
        """Each customer's prior distribution over the 168 hours: their segment's, else the population's."""
        table = {s: self.priors.segment_dist(s) for s in set(segments)}
        return np.stack([table[s] for s in segments])

    def calibrated(
        self,
        rates: np.ndarray,
        aggs: Sequence[CustomerAggregates],
        segments: Sequence[str | None],
        prior: np.ndarray | None = None,
    ) -> np.ndarray:
        """The booster's ``rates`` as calibrated probabilities of each local hour of week, rows summing to 1
        (:class:`kairos.models.features.calibration.Calibration`: blended with the segment prior by history bucket)."""
        if not aggs:
            return rates
        prior = self.prior_of(segments) if prior is None else prior
        return self.calibration.apply(rates, prior, [a.engagement_moments for a in aggs])

    def decision_ranking(
        self,
        rates: np.ndarray,
        aggs: Sequence[CustomerAggregates],
        segments: Sequence[str | None],
        prior: np.ndarray | None = None,
    ) -> np.ndarray:
        """What the decision rule reads (``send_scores``): the booster's normalized ``rates``, blended where history
        is thin with the customer's own hour-of-week counts smoothed by their segment prior
        (:meth:`Calibration.decide`)."""
        if not aggs:
            return rates
        prior = self.prior_of(segments) if prior is None else prior
        counts = np.array([a.how_counts for a in aggs], dtype=np.float64)
        return self.calibration.decide(rates, counts, prior, [a.engagement_moments for a in aggs])

    def rank_products(
        self, aggs: Sequence[CustomerAggregates], as_of: datetime, top_k: int = 10, threads: int = 0
    ) -> list[list[tuple[str, float]]]:
        """Top ``top_k`` products per customer as ``(product_id, score)``, best first: one predict call per
        :data:`PREDICT_CHUNK` customers."""
        ids, scores, bounds = self._top_products(aggs, as_of, top_k, threads)
        pairs = list(zip(ids, scores, strict=True))
        return [pairs[lo:hi] for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]

    def _top_products(
        self, aggs: Sequence[CustomerAggregates], as_of: datetime, top_k: int, threads: int
    ) -> tuple[list[str], list[float], np.ndarray]:
        """Each customer's ``top_k`` candidates, best first, ties by table row (so the ranking does not depend on
        the candidate order): product ids and scores, customer ``i``'s at ``bounds[i]:bounds[i + 1]``."""
        ids: list[str] = []
        scores: list[float] = []
        bounds = [np.zeros(1, dtype=np.int64)]
        for lo in range(0, len(aggs), PREDICT_CHUNK):
            hi = min(lo + PREDICT_CHUNK, len(aggs))
            cands = product_candidates(aggs[lo:hi], as_of, self.items)
            chunk_ids, chunk_scores, chunk_bounds = self._top_of(cands, hi - lo, top_k, threads)
            ids += chunk_ids
            scores += chunk_scores
            bounds.append(chunk_bounds[1:] + len(ids) - len(chunk_ids))
        return ids, scores, np.concatenate(bounds)

    def _top_of(
        self, cands: ProductCandidates, n: int, top_k: int, threads: int
    ) -> tuple[list[str], list[float], np.ndarray]:
        if cands.items.size == 0:
            return [], [], np.zeros(n + 1, dtype=np.int64)
        if self.product_booster is not None:
            scores = self.product_booster.predict(cands.features, num_threads=threads)
        else:
            scores = -cands.features[:, PRODUCT_FEATURES.index("pop_rank")]
        sizes = np.diff(cands.offsets)
        owner = np.repeat(np.arange(n, dtype=np.int64), sizes)
        # A customer's candidates come by table row, so equal scores rank by row.
        kept = np.flatnonzero(top_within(owner, scores, top_k, n))
        owner, scores = owner[kept], scores[kept]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n)))).astype(np.int64)
        at = bounds[:-1][owner] + ranks_within(owner, scores, n)
        rows = np.empty(at.size, dtype=np.int64)
        rows[at] = cands.items[kept]
        best = np.empty(at.size)
        best[at] = scores
        ids = self.items.product_ids
        return [ids[r] for r in rows.tolist()], best.tolist(), bounds

    def recommend(
        self,
        customers: Sequence[CustomerInput],
        as_of: datetime,
        top_k: int = 10,
        threads: int = 0,
        consumable: Mapping[str, bool] | None = None,
    ) -> list[Recommendation]:
        """Best send hour, hour scores, next products and confidence for many customers at once.

        Features for all customers are computed together, in numpy over the whole batch, and each booster is
        called once, so a batch of a thousand customers costs little more than the two ``Booster.predict`` calls
        (``bench/score.py`` measures how much more).

        Parameters
        ----------
        customers
            The customers to score. A customer with empty aggregates gets the segment prior (when
            its segment attribute is known to the model) or the population prior.
        as_of
            The scoring time (aware datetime); recency features are measured from it.
        top_k
            How many products to return per customer.
        threads
            LightGBM's ``num_threads`` for both predict calls; 0 is OpenMP's default, a thread per core.
        consumable
            The catalogue's ``consumable`` flag by product id, for the next purchase dates (products it does not
            name are judged by their learned repeat-purchase rate).

        Returns
        -------
        list of Recommendation
            In the order of ``customers``.

        Example
        -------
        >>> model = KairosModel.load("models/default")
        >>> [rec] = model.recommend([CustomerInput("c1", CustomerAggregates("Europe/London"))], datetime.now(UTC))
        >>> rec.confidence["level"]
        'population'
        """
        if not customers:
            return []
        aggs = [c.aggregates for c in customers]
        segments = self.segments(customers)
        rates = self.hour_rates(aggs, segments, as_of, threads)
        product_ids, product_scores, bounds = self._top_products(aggs, as_of, top_k, threads)
        prior = self.prior_of(segments)
        scores = self.calibrated(rates, aggs, segments, prior)
        ranking = self.decision_ranking(rates, aggs, segments, prior)
        best = best_hours(ranking, DEFAULT_WINDOW)
        days = scores.reshape(len(customers), 7, 24).sum(axis=2)
        best_day_share = days[np.arange(len(customers)), best // 24]
        known_segments = self.priors.segments
        version = self.version
        # One tolist() for the whole batch: per-row conversions cost more than the rest of the loop.
        score_lists = scores.round(9).tolist()
        ranking_lists = ranking.round(7).tolist()
        response = self.response
        windows = {c: [response.window(c)[0], list(response.window(c)[1])] for c in CHANNELS}
        shares = best_day_share.round(4).tolist()
        best_list = best.tolist()
        bounds_list = bounds.tolist()
        channels = channel_rankings(aggs, [c.channel_sends for c in customers], response)
        products = [{"product_id": p, "score": round(s, 6)} for p, s in zip(product_ids, product_scores, strict=True)]
        lifecycle = (
            self.lifecycle.predict(aggs, as_of, self.items, consumable, threads)
            if self.lifecycle is not None
            else [None] * len(customers)
        )
        out = []
        for i, cust in enumerate(customers):
            moments = int(cust.aggregates.engagement_moments)
            if moments > 0:
                level = LEVEL_PERSONAL
            elif segments[i] is not None and segments[i] in known_segments:
                level = LEVEL_SEGMENT
            else:
                level = LEVEL_POPULATION
            out.append(
                Recommendation(
                    customer_id=cust.customer_id,
                    best_hour_of_week=best_list[i],
                    hour_scores=score_lists[i],
                    send_scores=ranking_lists[i],
                    send_windows=windows,
                    next_products=products[bounds_list[i] : bounds_list[i + 1]],
                    confidence={"level": level, "moments": moments, "best_day_share": shares[i]},
                    model_version=version,
                    channel_ranking=channels[i],
                    lifecycle=lifecycle[i],
                )
            )
        return out
