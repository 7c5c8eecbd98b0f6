"""Which channel a customer answers on: engagement per send by channel, learned from the message log.

Each channel has a response rate learned in training from the logged sends (opens and clicks within
the channel's window per delivered send, inverse-propensity weighted: :class:`ChannelResponse`). A
customer's own estimate shrinks their record toward it::

    score(c) = (engagements(c) + PRIOR_SENDS * rate(c)) / (sends(c) + PRIOR_SENDS)

so a customer with no sends gets the channel's rate, one open on push is not yet a certainty, and a
customer who ignores ten emails and opens every push moves push first. Without a message log every
channel's rate is the same (:data:`DEFAULT_RATE`) and the ranking follows the customer's engagements,
ties in the default order (email, push, sms, messenger).

The response model also carries each channel's decision window (:func:`kairos.models.features.calibration.open_window`):
how many hours after a send its engagements come.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.core.constants import DEFAULT_WINDOW

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kairos.customers.aggregates import CustomerAggregates

CHANNELS = ("email", "push", "sms", "messenger")
PRIOR_SENDS = 5.0
DEFAULT_RATE = 0.1


@dataclass(frozen=True)
class ChannelResponse:
    """Per channel: the engagement rate per send, the rate by local hour of day and the decision window."""

    rates: Mapping[str, float] = field(default_factory=dict)
    hour_rates: Mapping[str, list[float]] = field(default_factory=dict)
    windows: Mapping[str, tuple[int, tuple[float, ...]]] = field(default_factory=dict)
    sends: Mapping[str, int] = field(default_factory=dict)

    def rate(self, channel: str) -> float:
        return float(self.rates.get(channel, DEFAULT_RATE))

    def window(self, channel: str) -> tuple[int, tuple[float, ...]]:
        return self.windows.get(channel, DEFAULT_WINDOW)

    def to_dict(self) -> dict[str, Any]:
        return {
            c: {
                "rate": round(self.rate(c), 6),
                "sends": int(self.sends.get(c, 0)),
                "hour_rates": [round(v, 6) for v in self.hour_rates.get(c, [])],
                "window": {"offset": self.window(c)[0], "weights": list(self.window(c)[1])},
            }
            for c in sorted(set(self.rates) | set(self.windows))
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ChannelResponse:
        data = data or {}
        return cls(
            rates={c: float(v["rate"]) for c, v in data.items()},
            hour_rates={c: [float(x) for x in v.get("hour_rates", [])] for c, v in data.items()},
            windows={
                c: (int(v["window"]["offset"]), tuple(float(w) for w in v["window"]["weights"]))
                for c, v in data.items()
                if v.get("window")
            },
            sends={c: int(v.get("sends", 0)) for c, v in data.items()},
        )


def channel_scores(
    agg: CustomerAggregates, sends: Mapping[str, int] | None = None, response: ChannelResponse | None = None
) -> dict[str, float]:
    """Each channel's estimated engagement per send for this customer (see the module's docstring)."""
    response = response or ChannelResponse()
    sends = sends or {}
    out = {}
    for c in CHANNELS:
        engaged = float(agg.channel_engagements.get(c, 0))
        sent = max(float(sends.get(c, 0)), engaged)  # engagements without a logged send (older than the log)
        out[c] = (engaged + PRIOR_SENDS * response.rate(c)) / (sent + PRIOR_SENDS)
    return out


def channel_ranking(
    agg: CustomerAggregates, sends: Mapping[str, int] | None = None, response: ChannelResponse | None = None
) -> list[str]:
    """Channels, the one the customer is most likely to engage with per send first."""
    return channel_rankings([agg], [sends], response)[0]


def channel_rankings(
    aggs: Sequence[CustomerAggregates],
    sends: Sequence[Mapping[str, int] | None],
    response: ChannelResponse | None = None,
) -> list[list[str]]:
    """:func:`channel_ranking` of many customers at once (the scores of :func:`channel_scores`, in numpy);
    equal scores keep the default order."""
    response = response or ChannelResponse()
    engaged = np.array([[float(a.channel_engagements.get(c, 0)) for c in CHANNELS] for a in aggs]).reshape(-1, 4)
    sent = np.array([[float(s.get(c, 0)) if s else 0.0 for c in CHANNELS] for s in sends]).reshape(-1, 4)
    sent = np.maximum(sent, engaged)  # engagements without a logged send (older than the log)
    rates = np.array([response.rate(c) for c in CHANNELS])
    scores = (engaged + PRIOR_SENDS * rates) / (sent + PRIOR_SENDS)
    return [[CHANNELS[j] for j in row] for row in np.argsort(-scores, axis=1, kind="stable").tolist()]
