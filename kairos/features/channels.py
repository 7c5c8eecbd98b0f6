"""Which channel a customer answers on: a ranking from their engagement by channel, with a prior.

``channel_engagements`` (opens and clicks by channel, kept by the aggregates) are smoothed with one
pseudo-engagement per channel (Laplace), so a customer with no history gets the default order and one
open on push is not yet a certainty. Ties keep the default order (email, push, sms, messenger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kairos.aggregates import CustomerAggregates

CHANNELS = ("email", "push", "sms", "messenger")
PRIOR = 1.0


def channel_scores(agg: CustomerAggregates) -> dict[str, float]:
    """The smoothed share of the customer's engagements on each channel (sums to 1)."""
    counts = {c: float(agg.channel_engagements.get(c, 0)) for c in CHANNELS}
    total = sum(counts.values()) + PRIOR * len(CHANNELS)
    return {c: (counts[c] + PRIOR) / total for c in CHANNELS}


def channel_ranking(agg: CustomerAggregates) -> list[str]:
    """Channels, the one the customer engages on most first."""
    scores = channel_scores(agg)
    return sorted(CHANNELS, key=lambda c: (-scores[c], CHANNELS.index(c)))
