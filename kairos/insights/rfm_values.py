"""The purchasers' RFM values of part of the customers, in a form shards can merge: what the run's quintile
cut points are computed from when no single invocation can read everybody.

A part keeps its values exactly while they are few (``EXACT_LIMIT``); past that it keeps counts per bin:
recency per tenth of a day, frequency per whole value (a count of purchase moments), monetary per 0.5% step
on a log scale. Cut points from exact values are those :func:`kairos.insights.measures.rfm_thresholds` gives;
from bins they are within a bin of them (0.1 day, 0 purchases, 0.5% of the amount), whatever the number of
customers, and a part's document stays a few tens of KB.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kairos.insights.measures import RfmThresholds, quantile, rfm_thresholds

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

EXACT_LIMIT = 2000
RECENCY_STEP = 0.1
MONETARY_RATIO = 1.005
QUINTILES = (0.2, 0.4, 0.6, 0.8)


def _monetary_bin(value: float) -> int:
    # Sign and log-scale index; 0 and amounts under 0.01 share bin 0.
    if abs(value) < 0.01:
        return 0
    index = 1 + int(math.log(abs(value) / 0.01) / math.log(MONETARY_RATIO))
    return index if value > 0 else -index


def _monetary_value(index: int) -> float:
    if index == 0:
        return 0.0
    # The bin's geometric middle.
    mid = 0.01 * MONETARY_RATIO ** (abs(index) - 0.5)
    return mid if index > 0 else -mid


@dataclass
class RfmValues:
    """Purchasers' (recency days, frequency, monetary) of a part of the customers; mergeable."""

    exact: list[tuple[float, int, float]] | None = field(default_factory=list)
    recency: Counter[int] = field(default_factory=Counter)
    frequency: Counter[int] = field(default_factory=Counter)
    monetary: Counter[int] = field(default_factory=Counter)
    customers: int = 0

    def add(self, values: tuple[float, int, float]) -> None:
        self.customers += 1
        r, f, m = values
        self.recency[round(r / RECENCY_STEP)] += 1
        self.frequency[int(f)] += 1
        self.monetary[_monetary_bin(m)] += 1
        if self.exact is not None:
            self.exact.append(values)
            if len(self.exact) > EXACT_LIMIT:
                self.exact = None

    def merge(self, other: RfmValues) -> RfmValues:
        out = RfmValues(
            exact=None,
            recency=self.recency + other.recency,
            frequency=self.frequency + other.frequency,
            monetary=self.monetary + other.monetary,
            customers=self.customers + other.customers,
        )
        if self.exact is not None and other.exact is not None and len(self.exact) + len(other.exact) <= EXACT_LIMIT:
            out.exact = self.exact + other.exact
        return out

    def thresholds(self, now: datetime) -> RfmThresholds:
        """The quintile cut points: exact from exact values, else from the bins."""
        if self.exact is not None:
            return rfm_thresholds(self.exact, now)
        if not self.customers:
            return RfmThresholds((), (), (), 0, now.isoformat())
        cuts = (
            _binned_cuts(self.recency, self.customers, lambda b: b * RECENCY_STEP),
            _binned_cuts(self.frequency, self.customers, float),
            _binned_cuts(self.monetary, self.customers, _monetary_value),
        )
        return RfmThresholds(cuts[0], cuts[1], cuts[2], self.customers, now.isoformat())

    def to_dict(self) -> dict[str, Any]:
        return {
            "exact": [list(v) for v in self.exact] if self.exact is not None else None,
            "recency": {str(k): v for k, v in self.recency.items()},
            "frequency": {str(k): v for k, v in self.frequency.items()},
            "monetary": {str(k): v for k, v in self.monetary.items()},
            "customers": self.customers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RfmValues:
        exact = data.get("exact")
        return cls(
            exact=[(float(r), int(f), float(m)) for r, f, m in exact] if exact is not None else None,
            recency=Counter({int(k): int(v) for k, v in data["recency"].items()}),
            frequency=Counter({int(k): int(v) for k, v in data["frequency"].items()}),
            monetary=Counter({int(k): int(v) for k, v in data["monetary"].items()}),
            customers=int(data["customers"]),
        )


def _binned_cuts(counts: Counter[int], n: int, value: Any) -> tuple[float, ...]:
    """Quantiles as :func:`quantile` takes them (linear between order statistics), over the bins' values."""
    ordered = sorted(counts.items())

    def order_statistic(i: int) -> float:
        seen = 0
        for b, c in ordered:
            seen += c
            if i < seen:
                return float(value(b))
        return float(value(ordered[-1][0]))

    out = []
    for q in QUINTILES:
        pos = q * (n - 1)
        lo = math.floor(pos)
        a, b = order_statistic(lo), order_statistic(min(lo + 1, n - 1))
        out.append(round(a + (b - a) * (pos - lo), 4))
    return tuple(out)


def merge_all(parts: Iterable[RfmValues]) -> RfmValues:
    out = RfmValues()
    for p in parts:
        out = out.merge(p)
    return out


__all__ = ["EXACT_LIMIT", "RfmValues", "merge_all", "quantile"]
