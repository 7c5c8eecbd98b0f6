"""The Kairos model at serving time: load a model directory, score many customers in one call.

A model directory holds two LightGBM boosters and the model-level artifacts the features need::

    time_model.txt      LightGBM (Poisson) model: engagement rate per (customer, local hour of week)
    product_model.txt   LightGBM lambdarank model over next-product candidates
    priors.json         population and segment hour-of-week priors (kairos.models.features.Priors)
    items.json          product table: popularity, repeat rate, co-purchase neighbours (ItemTable)
    metadata.json       feature lists, training window, library versions, metrics

Both the ``predict`` command of ``training`` and the score Lambda call :meth:`KairosModel.recommend`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
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
from kairos.models.features.channels import CHANNELS, ChannelResponse, channel_ranking
from kairos.models.features.shared import normalize

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates

TIME_MODEL_FILE = "time_model.txt"
PRODUCT_MODEL_FILE = "product_model.txt"
PRIORS_FILE = "priors.json"
ITEMS_FILE = "items.json"
METADATA_FILE = "metadata.json"

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
        }


@dataclass
class KairosModel:
    """Send-time model and next-product ranker with their priors and item table."""

    time_booster: lgb.Booster
    product_booster: lgb.Booster | None
    priors: Priors
    items: ItemTable
    metadata: dict[str, Any] = field(default_factory=dict)

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
        model = cls(time_booster, product_booster, priors, items, metadata)
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

    # ------------------------------------------------------------------------------------------
    # Scoring
    # ------------------------------------------------------------------------------------------

    def segments(self, customers: Sequence[CustomerInput]) -> list[str | None]:
        attribute = self.priors.segment_attribute
        return [segment_of(c.attributes, attribute) for c in customers]

    def hour_rates(
        self, aggs: Sequence[CustomerAggregates], segments: Sequence[str | None], as_of: datetime
    ) -> np.ndarray:
        """Predicted engagement rate per local hour of week, shape ``(len(aggs), 168)``: one predict call."""
        if not aggs:
            return np.zeros((0, HOURS_PER_WEEK))
        x = time_features(aggs, as_of, self.priors, segments, self.items)
        return self.time_booster.predict(x).reshape(len(aggs), HOURS_PER_WEEK)

    def calibrated(
        self, rates: np.ndarray, aggs: Sequence[CustomerAggregates], segments: Sequence[str | None]
    ) -> np.ndarray:
        """The booster's ``rates`` as calibrated probabilities of each local hour of week, rows summing to 1
        (:class:`kairos.models.features.calibration.Calibration`: blended with the segment prior by history bucket)."""
        if not aggs:
            return rates
        prior = np.stack([self.priors.segment_dist(s) for s in segments])
        return self.calibration.apply(rates, prior, [a.engagement_moments for a in aggs])

    def rank_products(
        self, aggs: Sequence[CustomerAggregates], as_of: datetime, top_k: int = 10
    ) -> list[list[tuple[str, float]]]:
        """Top ``top_k`` products per customer as ``(product_id, score)``, best first: one predict call."""
        return self._ranked(product_candidates(aggs, as_of, self.items), len(aggs), top_k)

    def _ranked(self, cands: Any, n: int, top_k: int) -> list[list[tuple[str, float]]]:
        aggs = range(n)
        if cands.items.size == 0:
            return [[] for _ in aggs]
        if self.product_booster is not None:
            scores = self.product_booster.predict(cands.features)
        else:
            scores = -cands.features[:, PRODUCT_FEATURES.index("pop_rank")]
        out = []
        ids = self.items.product_ids
        for i in range(len(aggs)):
            lo, hi = int(cands.offsets[i]), int(cands.offsets[i + 1])
            s = scores[lo:hi]
            k = min(top_k, hi - lo)
            if k == 0:
                out.append([])
                continue
            top = np.argpartition(-s, k - 1)[:k] if hi - lo > k else np.arange(hi - lo)
            # Ties by table row, so the ranking does not depend on the candidate order.
            top = top[np.lexsort((cands.items[lo:hi][top], -s[top]))]
            out.append([(ids[int(cands.items[lo + j])], float(s[j])) for j in top])
        return out

    def recommend(self, customers: Sequence[CustomerInput], as_of: datetime, top_k: int = 10) -> list[Recommendation]:
        """Best send hour, hour scores, next products and confidence for many customers at once.

        Features for all customers are computed together and each booster is called once, so a
        batch of a thousand customers costs little more than the two ``Booster.predict`` calls.

        Parameters
        ----------
        customers
            The customers to score. A customer with empty aggregates gets the segment prior (when
            its segment attribute is known to the model) or the population prior.
        as_of
            The scoring time (aware datetime); recency features are measured from it.
        top_k
            How many products to return per customer.

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
        # Product candidates are built (Python and numpy) while the send-time booster predicts (native code,
        # without the GIL): the two halves of the work overlap instead of queueing.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(product_candidates, aggs, as_of, self.items)
            rates = self.hour_rates(aggs, segments, as_of)
            cands = pending.result()
        scores = self.calibrated(rates, aggs, segments)
        ranking = _normalize_rows(rates)
        products = self._ranked(cands, len(aggs), top_k)
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
                    next_products=[{"product_id": p, "score": round(s, 6)} for p, s in products[i]],
                    confidence={
                        "level": level,
                        "moments": moments,
                        "best_day_share": shares[i],
                    },
                    model_version=version,
                    channel_ranking=channel_ranking(cust.aggregates, cust.channel_sends, response),
                )
            )
        return out


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    return normalize(np.maximum(x, 0.0) + 1e-12)
