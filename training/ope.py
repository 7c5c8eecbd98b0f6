"""Off-policy evaluation of send-time policies on the message log: what would another policy have achieved?

Each logged send (one row of :func:`training.io.message_training_rows`) carries the local hour it went out
at, the probability the logging policy gave that hour (its propensity) and whether the customer engaged
within the channel's window. For a candidate policy that would have chosen hour ``a*`` for that send, the
inverse-propensity estimate of its engagement rate is the mean of ``1[a = a*] / p * engaged``; the
self-normalised estimate divides by the sum of the weights instead of the row count, trading a little bias
for much less variance. Intervals are 95% normal intervals (the delta method for the self-normalised one).

Only sends whose propensity was logged are used, and only hours the logging policy could choose are
comparable: a policy is credited on the rows where its hour is the one that was sent, so a logging policy
that explores (``explore_share`` > 0) is what makes the estimates possible.

Candidate policies compare on the hour of day (a policy's hour on the send's own day):

- ``logged``: the policy that sent the messages (its estimate is its realised rate, a sanity check);
- ``model best hour``: the hour the model recommended when the message was planned (``best_hour_of_week``
  of the logged features);
- ``fixed HH:00``: one local hour for everybody.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Policy = Callable[[dict[str, Any]], int | None]  # a row -> the hour of day (0-23) it would send at, or None

FIXED_HOURS = (9, 12, 19)
MAX_WEIGHT = 50.0  # clip: a propensity of 1/500 would let one send decide the estimate


@dataclass(frozen=True)
class Estimate:
    policy: str
    ips: float | None
    ips_low: float | None
    ips_high: float | None
    snips: float | None
    snips_low: float | None
    snips_high: float | None
    matched: int  # logged sends at the policy's hour
    rows: int  # logged sends with a propensity


def _hour(row: dict[str, Any]) -> int:
    return int(row["hour_of_week"]) % 24


def candidate_policies() -> dict[str, Policy]:
    policies: dict[str, Policy] = {
        "logged": _hour,
        "model best hour": lambda r: (
            None
            if (r.get("features") or {}).get("best_hour_of_week") is None
            else int(r["features"]["best_hour_of_week"]) % 24
        ),
    }
    for h in FIXED_HOURS:
        policies[f"fixed {h:02d}:00"] = lambda r, h=h: h
    return policies


def estimate(rows: Sequence[dict[str, Any]], name: str, policy: Policy) -> Estimate:
    """IPS and SNIPS estimates of ``policy``'s engagement rate over the logged ``rows``, with 95% intervals."""
    usable = [r for r in rows if r.get("propensity") and r["propensity"] > 0]
    n = len(usable)
    if not n:
        return Estimate(name, None, None, None, None, None, None, 0, 0)
    weights, rewards = [], []
    for r in usable:
        if name == "logged":
            w = 1.0  # on-policy: every send is the policy's own
        else:
            a = policy(r)
            w = min(1.0 / float(r["propensity"]), MAX_WEIGHT) if a is not None and a == _hour(r) else 0.0
        weights.append(w)
        rewards.append(1.0 if r.get("engaged") else 0.0)
    terms = [w * y for w, y in zip(weights, rewards, strict=True)]
    ips = sum(terms) / n
    var = sum((t - ips) ** 2 for t in terms) / max(1, n - 1)
    half = 1.96 * math.sqrt(var / n)
    matched = sum(1 for w in weights if w > 0)
    total_w = sum(weights)
    if total_w > 0:
        snips = sum(terms) / total_w
        # delta method: Var(sum w(y - snips)) / (sum w)^2
        dev = sum((w * (y - snips)) ** 2 for w, y in zip(weights, rewards, strict=True))
        s_half = 1.96 * math.sqrt(dev) / total_w
        s_low, s_high = max(0.0, snips - s_half), min(1.0, snips + s_half)
    else:
        snips, s_low, s_high = None, None, None
    return Estimate(name, ips, max(0.0, ips - half), ips + half, snips, s_low, s_high, matched, n)


def evaluate_policies(rows: Iterable[dict[str, Any]], policies: dict[str, Policy] | None = None) -> list[Estimate]:
    """Every candidate policy's estimates on the logged sends (see the module's docstring)."""
    data = list(rows)
    return [estimate(data, name, p) for name, p in (policies or candidate_policies()).items()]


def render_table(estimates: Sequence[Estimate]) -> str:
    """A Markdown table of the estimates (engagement rate per send, with 95% intervals)."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [
        "| policy | IPS | 95% interval | SNIPS | 95% interval | sends at its hour |",
        "|---|---|---|---|---|---|",
    ]
    for e in estimates:
        lines.append(
            f"| {e.policy} | {pct(e.ips)} | {pct(e.ips_low)}–{pct(e.ips_high)} | {pct(e.snips)} | "
            f"{pct(e.snips_low)}–{pct(e.snips_high)} | {e.matched} of {e.rows} |"
        )
    return "\n".join(lines)
