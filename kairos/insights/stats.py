"""Intervals for results against a control group: proportions (Wilson, Newcombe) and means (Welch)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

Z95 = 1.96


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN for an empty sample)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def uplift_interval(hits: int, n: int, base_hits: int, base_n: int) -> tuple[float, float]:
    """95% interval of the difference of two proportions (Newcombe's hybrid score, from Wilson intervals)."""
    if n <= 0 or base_n <= 0:
        return (math.nan, math.nan)
    p1, p2 = hits / n, base_hits / base_n
    l1, u1 = wilson(hits, n)
    l2, u2 = wilson(base_hits, base_n)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def mean_difference_interval(values: Sequence[float], base: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """95% normal (Welch) interval of ``mean(values) - mean(base)``; NaN when a side has fewer than two values."""
    if len(values) < 2 or len(base) < 2:
        return (math.nan, math.nan)

    def mean_var(xs: Sequence[float]) -> tuple[float, float]:
        m = sum(xs) / len(xs)
        return m, sum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    m1, v1 = mean_var(values)
    m2, v2 = mean_var(base)
    half = z * math.sqrt(v1 / len(values) + v2 / len(base))
    return (m1 - m2 - half, m1 - m2 + half)
