"""The response model: engagement per send by channel and local hour of day, learned from the message log.

Input rows are :func:`training.io.message_training_rows`: one per delivered send, with the channel, the
customer's local hour of week at the send, whether the customer engaged within the channel's window,
how many minutes later, and the inverse-propensity weight of the hour the policy chose. Because the
policy sends at hours it already believes in, a raw rate by hour flatters those hours; weighting each
send by ``1 / propensity`` (self-normalised, clipped in the rows) estimates what sending at that hour
would give for everybody.

- ``rate(c)``: self-normalised IPS engagement per send on channel ``c``.
- ``hour_rates(c)[h]``: the same at local hour of day ``h``, shrunk toward ``rate(c)`` with
  ``HOUR_PSEUDO_SENDS`` pseudo-sends, so an hour with a handful of sends says little.
- ``window(c)``: the decision window from the delays between sends and engagements
  (:func:`kairos.models.features.calibration.open_window`).

The result is a :class:`kairos.models.features.channels.ChannelResponse`, saved in the model's metadata and
served in every recommendation (channel ranking, decision windows).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from kairos.models.features.calibration import open_window
from kairos.models.features.channels import ChannelResponse

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kairos.models.serving import KairosModel
    from training.history import History
    from training.ope import Estimate

HOUR_PSEUDO_SENDS = 20.0


def fit_response(rows: Iterable[dict[str, Any]]) -> ChannelResponse:
    """Fit the response model on the labelled message rows (see the module's docstring)."""
    weight: dict[str, float] = defaultdict(float)
    engaged: dict[str, float] = defaultdict(float)
    sends: dict[str, int] = defaultdict(int)
    hour_w: dict[str, list[float]] = defaultdict(lambda: [0.0] * 24)
    hour_e: dict[str, list[float]] = defaultdict(lambda: [0.0] * 24)
    delays: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        c = r["channel"]
        w = float(r.get("weight") or 1.0)
        y = 1.0 if r.get("engaged") else 0.0
        h = int(r["hour_of_week"]) % 24
        sends[c] += 1
        weight[c] += w
        engaged[c] += w * y
        hour_w[c][h] += w
        hour_e[c][h] += w * y
        if y and r.get("minutes_to_engage") is not None:
            delays[c].append(float(r["minutes_to_engage"]) / 60.0)
    rates = {c: engaged[c] / weight[c] for c in weight if weight[c] > 0}
    hour_rates = {}
    for c, rate in rates.items():
        # Shrink each hour toward the channel's rate: pseudo-sends carry a weight of one each.
        hour_rates[c] = [
            (hour_e[c][h] + HOUR_PSEUDO_SENDS * rate) / (hour_w[c][h] + HOUR_PSEUDO_SENDS) for h in range(24)
        ]
    windows = {c: open_window(delays[c]) for c in rates}
    return ChannelResponse(rates=rates, hour_rates=hour_rates, windows=windows, sends=dict(sends))


def learn_from_messages(
    model: KairosModel, rows: Sequence[dict[str, Any]], history: History | None = None
) -> list[Estimate]:
    """Fit the response model on the labelled message rows and record it, and the off-policy estimates, in
    ``model``'s metadata (``response``, ``off_policy``); return the estimates.

    With ``history`` (the events ``model`` was trained on), the estimates include ``retrained model``: the hour
    ``model`` would have chosen for each logged send (:func:`training.ope.model_decisions`). Does nothing to the
    model when there are no rows (a deployment that has not sent yet).
    """
    from training.ope import candidate_policies, comparable, evaluate_policies, model_decisions

    if not rows:
        return []
    decided = model_decisions(model, history, comparable(rows)) if history is not None else None
    estimates = evaluate_policies(rows, candidate_policies(decided))
    model.metadata["response"] = fit_response(rows).to_dict()
    model.metadata["off_policy"] = {"sends": len(rows), "estimates": [asdict(e) for e in estimates]}
    model.__dict__.pop("_response", None)  # the served response is read from the metadata
    return estimates
