"""Send-time probabilities and the decision rule, kept apart.

The send-time booster predicts an engagement rate for each of the 168 local hours of the week. Those
rates, normalized, are a ranking more than a distribution: trees trained on many customers are sure
of hours where a customer with two past visits has shown nothing. :class:`Calibration` turns them into
an honest probability distribution over the 168 hours, per history bucket (how many engagement moments
the customer has), with two numbers fitted on data the booster did not learn from:

    p = weight * normalize(rate ** temperature) + (1 - weight) * prior

where ``prior`` is the customer's segment distribution (the population's when the segment is unknown).
``weight = 0`` is the prior itself, so a fitted bucket is never worse than the prior on the data it was
fitted on (a label window after everything the calibrated booster learned from); ``temperature < 1``
flattens an over-confident model.

Where history is thin (under ten moments), the booster's ranking can pick worse hours than the customer's
own counts smoothed with the prior (``normalize(counts + k * prior)``, the hour with the most mass within one
hour). Per bucket, the decision ranking is a blend of the two, ``(1 - s) * normalize(rates) + s * smoothed``,
with ``s`` and ``k`` fitted on the same customers to pick their hours best (:meth:`Calibration.decide`);
``s = 0`` is the booster alone, ``s = 1`` the smoothed count, so a fitted bucket picks at least as well as
either did there.

The decision rule reads those probabilities: the value of sending at hour ``h`` is
``sum_k weights[k] * p[h + offset + k]`` within the same local day (:func:`window_scores`). The default
window is the hour and its two neighbours (an engagement within one hour of the send counts); a channel
whose messages are opened some hours after they arrive gets its window from the message log
(:func:`open_window`), so the best email hour is the one whose next hours the customer is active in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.core.constants import DEFAULT_WINDOW, HOURS_PER_WEEK
from kairos.models.features.shared import normalize

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# Customers by past engagement moments: the calibration and the evaluation tables use the same buckets.
HISTORY_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("0", 0, 0),
    ("1-2", 1, 2),
    ("3-9", 3, 9),
    ("10+", 10, math.inf),
)
BUCKET_NAMES = tuple(b[0] for b in HISTORY_BUCKETS)
TEMPERATURES = (0.4, 0.55, 0.7, 0.85, 1.0, 1.15, 1.3)
WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))
# The decision blend's grid: weight of the smoothed count, and pseudo-moments of the prior in it; and the buckets
# it is fitted for. With ten moments or more the booster has the customer's own hours to learn from, and a
# smoothed count of many moments is a spike that would move the pick off the customer's hour onto a neighbour.
THIN_BUCKETS = ("0", "1-2", "3-9")
# Fewer moments than this in a bucket's window choose no blend (the booster alone): too few to tell picks apart.
MIN_DECISION_MOMENTS = 200
SMOOTHED_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
PSEUDO_MOMENTS = (1.0, 3.0, 10.0, 30.0)
# How many hours after a send an open is still attributed to the send's hour in the learned windows.
MAX_OPEN_DELAY_HOURS = 6


def history_bucket(moments: int) -> str:
    """Name of the history-length bucket of a customer with ``moments`` past engagement moments."""
    for name, lo, hi in HISTORY_BUCKETS:
        if lo <= moments <= hi:
            return name
    raise ValueError(f"negative moment count {moments}")


@dataclass(frozen=True)
class Calibration:
    """Temperature and weight of the model's own distribution, per history bucket.

    The identity (temperature 1, weight 1: the normalized rates) is what a model trained before
    calibration existed gets.
    """

    params: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # bucket -> (weight of the smoothed count in the decision ranking, its prior's pseudo-moments)
    decision: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, bucket: str) -> tuple[float, float]:
        return self.params.get(bucket, (1.0, 1.0))

    def decide(self, rates: np.ndarray, counts: np.ndarray, prior: np.ndarray, moments: Sequence[int]) -> np.ndarray:
        """The decision ranking (``send_scores``), shape ``(n, 168)``, rows summing to 1: the normalized rates,
        blended per bucket with the customer's own hour-of-week ``counts`` smoothed by their ``prior``."""
        ranking = normalize(np.maximum(np.asarray(rates, dtype=np.float64), 0.0) + 1e-12)
        if not self.decision:
            return ranking
        counts = np.asarray(counts, dtype=np.float64)
        prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), ranking.shape)
        buckets = np.array([history_bucket(int(m)) for m in moments])
        for name, (share, pseudo) in self.decision.items():
            sel = buckets == name
            if share > 0 and sel.any():
                smoothed = smoothed_counts(counts[sel], prior[sel], pseudo)
                ranking[sel] = (1.0 - share) * ranking[sel] + share * smoothed
        return ranking

    def apply(self, rates: np.ndarray, prior: np.ndarray, moments: Sequence[int]) -> np.ndarray:
        """Probabilities over the 168 hours, shape ``(n, 168)``, rows summing to 1.

        Parameters
        ----------
        rates
            Predicted engagement rates, shape ``(n, 168)``.
        prior
            Each customer's prior distribution, shape ``(n, 168)`` (or ``(168,)`` for everybody).
        moments
            Each customer's past engagement moments (picks the bucket).
        """
        rates = np.maximum(np.asarray(rates, dtype=np.float64), 1e-12)
        prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), rates.shape)
        out = np.empty_like(rates)
        buckets = np.array([history_bucket(int(m)) for m in moments])
        for name in BUCKET_NAMES:
            sel = buckets == name
            if not sel.any():
                continue
            temperature, weight = self.of(name)
            personal = normalize(rates[sel] ** temperature)
            out[sel] = weight * personal + (1.0 - weight) * prior[sel]
        return normalize(out)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {b: {"temperature": t, "weight": w} for b, (t, w) in sorted(self.params.items())}
        for b, (share, pseudo) in self.decision.items():
            out.setdefault(b, {"temperature": 1.0, "weight": 1.0}).update(smoothed_share=share, pseudo_moments=pseudo)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        data = data or {}
        return cls(
            {b: (float(v["temperature"]), float(v["weight"])) for b, v in data.items()},
            {
                b: (float(v["smoothed_share"]), float(v["pseudo_moments"]))
                for b, v in data.items()
                if "smoothed_share" in v
            },
        )


def smoothed_counts(counts: np.ndarray, prior: np.ndarray, pseudo: float) -> np.ndarray:
    """A customer's hour-of-week counts plus ``pseudo`` moments spread as their prior, normalized."""
    return normalize(np.asarray(counts, dtype=np.float64) + pseudo * np.asarray(prior, dtype=np.float64))


def best_hours_by_day(scores: np.ndarray) -> np.ndarray:
    """(n, 168) scores -> (n, 7) best hour of day for each weekday (first argmax): how a day's hour is picked,
    here and in the evaluation (``training.metrics``)."""
    return scores.reshape(scores.shape[0], 7, 24).argmax(axis=2)


def day_hits(ranking: np.ndarray, counts: np.ndarray) -> float:
    """How many of the moments in ``counts`` (shape ``(n, 168)``) fall within one hour of each day's pick: the
    :func:`best_hours_by_day` of :func:`window_scores` of ``ranking``, as the evaluation scores it."""
    best = best_hours_by_day(window_scores(ranking))
    near = np.abs(np.arange(24)[None, None, :] - best[:, :, None]) <= 1
    return float((np.asarray(counts).reshape(ranking.shape[0], 7, 24) * near).sum())


def fit_decision(
    rates: np.ndarray, past: np.ndarray, prior: np.ndarray, counts: np.ndarray, moments: Sequence[int]
) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Per bucket, the blend of the booster's ranking with the smoothed own counts that picks the held-out
    customers' hours best (``past``: their counts at prediction time; ``counts``: what they did next).

    Returns the blend per bucket and, per bucket, the held-out hit rates of the booster alone, of the smoothed
    count alone (its best ``k``) and of the blend."""
    rates = np.maximum(np.asarray(rates, dtype=np.float64), 0.0) + 1e-12
    past, prior, counts = (np.asarray(a, dtype=np.float64) for a in (past, prior, counts))
    buckets = np.array([history_bucket(int(m)) for m in moments])
    decision: dict[str, tuple[float, float]] = {}
    report: dict[str, Any] = {}
    for name in THIN_BUCKETS:
        sel = buckets == name
        total = float(counts[sel].sum())
        if total < MIN_DECISION_MOMENTS:
            continue
        own = normalize(rates[sel])
        c = counts[sel]
        model_hits = day_hits(own, c)
        best, smoothed_best = (model_hits, 0.0, 0.0), 0.0
        for pseudo in PSEUDO_MOMENTS:
            smoothed = smoothed_counts(past[sel], prior[sel], pseudo)
            smoothed_best = max(smoothed_best, day_hits(smoothed, c))
            for share in SMOOTHED_WEIGHTS[1:]:
                hits = day_hits((1 - share) * own + share * smoothed, c)
                if hits > best[0]:
                    best = (hits, share, pseudo)
        decision[name] = (best[1], best[2])
        report[name] = {
            "smoothed_share": best[1],
            "pseudo_moments": best[2],
            "hit_rate_model": round(model_hits / total, 4),
            "hit_rate_smoothed_count": round(smoothed_best / total, 4),
            "hit_rate_blend": round(best[0] / total, 4),
        }
    return decision, report


def fit_calibration(
    rates: np.ndarray,
    prior: np.ndarray,
    counts: np.ndarray,
    moments: Sequence[int],
    past: np.ndarray | None = None,
) -> tuple[Calibration, dict[str, Any]]:
    """The temperature and weight per bucket that maximise the log-likelihood of ``counts``.

    Parameters
    ----------
    rates
        The booster's rates for held-out customers, shape ``(n, 168)``.
    prior
        Their prior distributions, shape ``(n, 168)``.
    counts
        Their engagement moments per hour of week in the held-out window, shape ``(n, 168)``.
    moments
        Their past engagement moments at prediction time.
    past
        Their hour-of-week counts at prediction time: with them, the decision blend is fitted too
        (:func:`fit_decision`).

    Returns
    -------
    (Calibration, dict)
        The fitted calibration and, per bucket, the held-out mean log-likelihood of the calibrated
        distribution and of the prior, how many moments it was fitted on, and the decision blend's hit rates.
    """
    rates = np.maximum(np.asarray(rates, dtype=np.float64), 1e-12)
    prior = np.asarray(prior, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    buckets = np.array([history_bucket(int(m)) for m in moments])
    params: dict[str, tuple[float, float]] = {}
    report: dict[str, Any] = {}
    for name in BUCKET_NAMES:
        sel = buckets == name
        n = float(counts[sel].sum())
        if n == 0:
            continue
        c, pr = counts[sel], prior[sel]
        log_prior = float((c * np.log(pr)).sum()) / n
        best = (log_prior, 1.0, 0.0)
        for temperature in TEMPERATURES:
            personal = normalize(rates[sel] ** temperature)
            for weight in WEIGHTS[1:]:
                ll = float((c * np.log(weight * personal + (1 - weight) * pr)).sum()) / n
                if ll > best[0]:
                    best = (ll, temperature, weight)
        params[name] = (best[1], best[2])
        report[name] = {
            "temperature": best[1],
            "weight": best[2],
            "log_likelihood": round(best[0], 4),
            "prior_log_likelihood": round(log_prior, 4),
            "moments": int(n),
        }
    decision: dict[str, tuple[float, float]] = {}
    if past is not None:
        decision, picks = fit_decision(rates, past, prior, counts, moments)
        for name, row in picks.items():
            report.setdefault(name, {}).update(row)
    return Calibration(params, decision), report


# ----------------------------------------------------------------------------------------------
# Decision rule
# ----------------------------------------------------------------------------------------------


def window_scores(probs: np.ndarray, window: tuple[int, Sequence[float]] = DEFAULT_WINDOW) -> np.ndarray:
    """Value of sending at each hour: ``sum_k weights[k] * p[h + offset + k]`` within the same local day.

    Parameters
    ----------
    probs
        Shape ``(n, 168)`` (or ``(168,)``): probabilities by local hour of week.
    window
        ``(offset, weights)``: the hours after (or before) the send an engagement counts for it.

    Returns
    -------
    numpy.ndarray
        Same shape as ``probs``; the best send hour is the argmax.
    """
    offset, weights = window
    probs = np.asarray(probs, dtype=np.float64)
    days = probs.reshape(*probs.shape[:-1], 7, 24)
    out = np.zeros_like(days)
    for k, w in enumerate(weights):
        shift = offset + k
        if shift >= 0:
            out[..., : 24 - shift] += w * days[..., shift:]
        else:
            out[..., -shift:] += w * days[..., : 24 + shift]
    return out.reshape(probs.shape)


def open_window(delays_hours: Sequence[float]) -> tuple[int, tuple[float, ...]]:
    """A channel's decision window from the delays (hours) between its sends and the engagements they got.

    ``q(j)`` is the share of engagements ``j`` whole hours after the send (``j < MAX_OPEN_DELAY_HOURS``);
    an engagement within one hour of the customer's active hour counts, so the window is ``q`` spread
    over ``j - 1 .. j + 1``: offsets ``-1 .. MAX_OPEN_DELAY_HOURS``. No delays: :data:`DEFAULT_WINDOW`.
    """
    hours = [int(d) for d in delays_hours if 0 <= d < MAX_OPEN_DELAY_HOURS]
    if not hours:
        return DEFAULT_WINDOW
    q = np.bincount(hours, minlength=MAX_OPEN_DELAY_HOURS) / len(hours)
    weights = np.zeros(MAX_OPEN_DELAY_HOURS + 2)
    for j, share in enumerate(q):
        weights[j : j + 3] += share
    weights *= 3.0 / weights.sum()  # the default window sums to 3: keep scores on one scale
    while weights.size > 3 and weights[-1] < 1e-9:
        weights = weights[:-1]
    return -1, tuple(round(float(w), 6) for w in weights)


def best_hours(probs: np.ndarray, window: tuple[int, Sequence[float]] = DEFAULT_WINDOW) -> np.ndarray:
    """Argmax of :func:`window_scores` per row; ties go to the hour with the most probability of its own
    (a lone peak fills three windows equally), then to the earliest."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1, HOURS_PER_WEEK)
    values = window_scores(probs, window)
    top = values.max(axis=1, keepdims=True)
    tied = values >= top - 1e-12 * np.maximum(top, 1.0)
    return np.where(tied, probs, -1.0).argmax(axis=1)
