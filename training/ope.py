"""Off-policy evaluation of send-time policies on the message log: what would another policy have achieved?

Each logged send (one row of :func:`training.io.message_training_rows`) carries the local hour it went out
at, the probability the logging policy gave that hour (its propensity) and whether the customer engaged
within the channel's window. For a candidate policy that would have chosen hour ``a*`` for that send, the
inverse-propensity estimate of its engagement rate is the mean of ``1[a = a*] / p * engaged``; the
self-normalised estimate divides by the sum of the weights instead of the row count, trading a little bias
for much less variance. Intervals are 95% normal intervals (the delta method for the self-normalised one).

Like with like: every policy is compared on the same sends, the first message of each customer's journey
(later steps go only to those who did not answer the first, at hours the waits fixed) from a logging policy
that could have sent at any of its candidate hours (``optimized`` with its ``explore`` share; a fixed hour gives
no other hour any chance). A policy is credited on the sends where its hour is the one that was sent, so a
logging policy that explores (``explore_share`` > 0) is what makes the estimates possible.

Candidate policies:

- ``logged``: the policy that sent the messages (its estimate is its realised rate, a sanity check);
- ``retrained model``: the hour the model being trained would have chosen for the same send, asked as the
  send's own decision was (:func:`model_decisions`: the customer's aggregates folded to the moment it was
  planned, the same candidate hours, quiet hours and decision rule, no exploration), matched on the local hour
  of week, the hour the logged propensity is for;
- ``model best hour``: the hour of day of the best hour the model that planned the send recommended
  (``best_hour_of_week`` of the logged features);
- ``fixed HH:00``: one local hour of day for everybody.

The hour-of-day policies are credited on any candidate day with that day's propensity: a rough comparison;
``retrained model`` is the exact one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kairos.models.serving import KairosModel
    from training.history import History

# A row -> whether the policy would have sent that message at the hour it went (None: the policy has no answer
# for it, and the row does not count in its estimate).
Policy = Callable[[dict[str, Any]], bool | None]

FIXED_HOURS = (9, 12, 19)
EXPLORING = ("optimized", "explore")  # logging policies that gave every candidate hour a chance
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


def candidate_policies(decided: Mapping[str, int] | None = None) -> dict[str, Policy]:
    """The policies of the module's docstring; ``decided`` (message id -> local hour of week, from
    :func:`model_decisions`) adds ``retrained model``."""

    def best_hour(r: dict[str, Any]) -> bool | None:
        best = (r.get("features") or {}).get("best_hour_of_week")
        return None if best is None else int(best) % 24 == _hour(r)

    policies: dict[str, Policy] = {"logged": lambda r: True}
    if decided is not None:
        policies["retrained model"] = lambda r: (
            None if r.get("message_id") not in decided else decided[r["message_id"]] == int(r["hour_of_week"])
        )
    policies["model best hour"] = best_hour
    for h in FIXED_HOURS:
        policies[f"fixed {h:02d}:00"] = lambda r, h=h: _hour(r) == h
    return policies


def comparable(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sends every policy is compared on: each journey's first message to a customer, from a logging policy
    that explored (rows without a campaign, customer or policy, as older logs have, are all kept)."""
    first: dict[tuple[Any, Any], dict[str, Any]] = {}
    out = []
    for r in rows:
        if r.get("policy") is not None and r["policy"] not in EXPLORING:
            continue
        key = (r.get("campaign_id"), r.get("customer_id"))
        if None in key or r.get("sent_at") is None:
            out.append(r)
        elif key not in first or r["sent_at"] < first[key]["sent_at"]:
            first[key] = r
    return out + list(first.values())


def model_decisions(
    model: KairosModel, history: History, rows: Iterable[dict[str, Any]], threads: int = 1
) -> dict[str, int]:
    """Message id -> the local hour of week ``model`` would have chosen for each logged send whose decision logged
    its candidate hours (``features.window``, ``features.quiet``): the customer's aggregates folded to the moment
    the send was planned (each customer's events read once, in time order), scored by ``model`` (one batch per
    planning moment), and :func:`kairos.models.timing.decide` without exploration."""
    import numpy as np

    from kairos.core.timeutil import parse_ts
    from kairos.customers.aggregates import fold_events
    from kairos.models.serving import CustomerInput
    from training.columns import to_us

    by_customer: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
    for r in rows:
        window = (r.get("features") or {}).get("window")
        if window and r.get("customer_id") is not None:
            by_customer[str(r["customer_id"])].append((parse_ts(window[0]), r))
    table = history.table
    index = {cid: i for i, cid in enumerate(table.customer_ids)}
    plans: dict[Any, list[tuple[CustomerInput, dict[str, Any]]]] = defaultdict(list)
    for cid, planned in by_customer.items():
        agg, counted = history.empty_aggregates(cid), set()
        i = index.get(cid)
        pos, end = table.rows(i) if i is not None else (0, 0)
        for start, r in sorted(planned, key=lambda sr: sr[0]):
            hi = pos + int(np.searchsorted(table.ts_us[pos:end], to_us(start), side="left"))
            if hi > pos:
                agg, new = fold_events(agg, table.fold_events(i, pos, hi), counted)
                counted |= new
                pos = hi
            plans[start].append((CustomerInput(cid, agg, history.attributes(cid)), r))
    out: dict[str, int] = {}
    for start, batch in plans.items():
        recs = model.recommend([c for c, _ in batch], start, threads=threads)
        for rec, (_, r) in zip(recs, batch, strict=True):
            hour = _decide_again(rec.to_dict(), r, start)
            if hour is not None:
                out[r["message_id"]] = hour
    return out


def _decide_again(recommendation: dict[str, Any], row: dict[str, Any], start: Any) -> int | None:
    """The hour of week the decision rule picks from ``recommendation`` among the logged send's candidate hours."""
    from datetime import time

    from kairos.core.timeutil import parse_ts
    from kairos.models.timing import QuietHours, decide, decision_inputs

    feats = row["features"]
    scores, window = decision_inputs(recommendation)
    quiet = QuietHours(*(time.fromisoformat(t) for t in feats["quiet"])) if feats.get("quiet") else None
    d = decide(
        mode="optimized",
        now=start,
        tz=row.get("timezone") or "UTC",
        window_end=parse_ts(feats["window"][1]),
        hour_scores=scores,
        quiet=quiet,
        window=window,
    )
    return None if d is None else d.hour_of_week


def estimate(rows: Sequence[dict[str, Any]], name: str, policy: Policy) -> Estimate:
    """IPS and SNIPS estimates of ``policy``'s engagement rate over the logged ``rows``, with 95% intervals."""
    answers = [(r, policy(r)) for r in rows if r.get("propensity") and r["propensity"] > 0]
    usable = [(r, a) for r, a in answers if a is not None]
    n = len(usable)
    if not n:
        return Estimate(name, None, None, None, None, None, None, 0, 0)
    weights, rewards = [], []
    for r, a in usable:
        if name == "logged":
            w = 1.0  # on-policy: every send is the policy's own
        else:
            w = min(1.0 / float(r["propensity"]), MAX_WEIGHT) if a else 0.0
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
    """Every candidate policy's estimates on the comparable logged sends (see the module's docstring)."""
    data = comparable(rows)
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
