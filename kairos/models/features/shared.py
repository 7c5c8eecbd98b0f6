"""What the send-time and next-product features both read: time units, the stand-in for "never", and
turning counts into a distribution.

They live here, below both feature modules, so that :mod:`kairos.models.features.send_time` and
:mod:`kairos.models.features.products` never import each other.
"""

from __future__ import annotations

import numpy as np

HOURS_PER_DAY = 24
DAY_S = 86_400
# Stand-in for "never" in day-valued features; LightGBM also handles NaN, but a large finite number
# keeps the feature monotone ("longer ago") for the trees.
NEVER_DAYS = 9999.0


def normalize(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to sum to 1 along its last axis; a row of zeros stays zeros."""
    total = x.sum(axis=-1, keepdims=True)
    return x / np.where(total > 0, total, 1.0)


__all__ = ["DAY_S", "HOURS_PER_DAY", "NEVER_DAYS", "normalize"]
