"""When to send: the customer's best hour in their own time zone, inside the campaign window, outside quiet hours.

Every decision is a pure function of (campaign, customer, scores, now), so a retried schedule makes the same one:
the exploration draw is seeded by a hash of the campaign and customer ids. Each decision carries the
probability with which the policy chose that hour, so retraining can weight logged outcomes by the inverse
propensity and correct for the policy's own bias.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.constants import DEFAULT_WINDOW
from kairos.core.timeutil import zone

if TYPE_CHECKING:
    from collections.abc import Sequence

HORIZON_DAYS = 7


def decision_inputs(
    recommendation: dict[str, Any], channel: str | None = None
) -> tuple[Sequence[float] | None, tuple[int, Sequence[float]]]:
    """What :func:`decide` reads from a recommendation: the hour ranking and the channel's window.

    ``send_scores`` (the model's ranking of hours) when present, else ``hour_scores`` (recommendations
    written before the two were separate); the window of ``channel`` from ``send_windows``, else the default.
    """
    scores = recommendation.get("send_scores") or recommendation.get("hour_scores")
    window = DEFAULT_WINDOW
    learned = (recommendation.get("send_windows") or {}).get(channel) if channel else None
    if learned and len(learned) == 2 and learned[1]:
        window = (int(learned[0]), tuple(float(w) for w in learned[1]))
    return scores, window


def window_value(hour_scores: Sequence[float], hour_of_week: int, window: tuple[int, Sequence[float]]) -> float:
    """The value of sending at ``hour_of_week``: ``sum_k weights[k] * p[h + offset + k]`` on the same local day.

    ``hour_scores`` are the recommendation's probabilities by local hour of week; ``window`` is
    ``(offset, weights)``, the hours after the send an engagement counts for it (a channel's learned
    time-to-open, or the default one hour either side). Matches ``kairos.models.features.calibration.window_scores``.
    """
    offset, weights = window
    day, hour = divmod(hour_of_week, 24)
    total = 0.0
    for k, w in enumerate(weights):
        h = hour + offset + k
        if 0 <= h < 24:
            total += w * float(hour_scores[day * 24 + h])
    return total


@dataclass(frozen=True)
class QuietHours:
    """Local hours when nothing is sent; ``start`` > ``end`` spans midnight (21:00-08:00)."""

    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        t = local.timetz().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


@dataclass(frozen=True)
class Decision:
    """When to send: the instant, its local hour of week, the policy that chose it and the chance it had."""

    send_at: datetime  # UTC
    hour_of_week: int  # local, 0 = Monday 00:00
    probability: float  # probability the policy gave this hour
    policy: str  # optimized | explore | fixed | immediate
    candidates: int


def stable_unit(*parts: str) -> float:
    """A number in [0, 1) fixed by its inputs (control groups, exploration draws)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_global_control(customer_id: str, share: float) -> bool:
    """Whether the customer is in the global control group: a stable share of all customers that no campaign or
    journey messages, so the incremental revenue of everything sent can be measured against them.

    ``share`` is the deployment's ``GlobalControlShare`` (``KAIROS_GLOBAL_CONTROL_SHARE``).
    """
    return share > 0 and stable_unit("global-control", customer_id) < share


def candidate_hours(
    now: datetime, tz: str, window_end: datetime, quiet: QuietHours | None, window_start: datetime | None = None
) -> list[datetime]:
    """Start instants (UTC) of the local clock hours a send may use, earliest first.

    Hours come from the local calendar, so a daylight-saving change gives a 23- or 25-hour day: the
    skipped hour is absent and the repeated hour appears once (its first occurrence).
    """
    start = max(now, window_start or now)
    end = min(window_end, start + timedelta(days=HORIZON_DAYS))
    local_zone = zone(tz)
    local = start.astimezone(local_zone)
    day = local.date()
    out: list[datetime] = []
    seen: set[datetime] = set()
    while True:
        for hour in range(24):
            wall = datetime(day.year, day.month, day.day, hour, tzinfo=local_zone)
            # A wall time in the spring-forward gap does not exist: fold=0 maps it past the gap; skip it.
            instant = wall.astimezone(UTC)
            if instant.astimezone(local_zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                continue
            if instant in seen:
                continue
            seen.add(instant)
            # An hour that has begun may still be used for its remaining minutes: send at `start` then.
            if instant + timedelta(hours=1) <= start or instant >= end:
                continue
            if quiet is not None and quiet.contains(wall):
                continue
            out.append(max(instant, start))
        day += timedelta(days=1)
        if datetime(day.year, day.month, day.day, tzinfo=local_zone) >= end:
            return out


def local_hour_of_week(instant: datetime, tz: str) -> int:
    """The hour of week (0 = Monday 00:00) of ``instant`` on the wall clock of ``tz``."""
    local = instant.astimezone(zone(tz))
    return local.weekday() * 24 + local.hour


def decide(
    *,
    mode: str,
    now: datetime,
    tz: str,
    window_end: datetime,
    hour_scores: Sequence[float] | None,
    quiet: QuietHours | None = None,
    fixed_local: time | None = None,
    explore_share: float = 0.0,
    seed: tuple[str, ...] = (),
    window_start: datetime | None = None,
    window: tuple[int, Sequence[float]] = DEFAULT_WINDOW,
) -> Decision | None:
    """The send time of one customer, or ``None`` when no allowed hour is left in the window.

    Parameters
    ----------
    mode
        ``optimized`` (best scored hour; with ``explore_share`` a uniform random allowed hour instead),
        ``fixed`` (the first ``fixed_local`` time of day), ``immediate`` (now, or when quiet hours end).
    hour_scores
        168 probabilities by local hour of week (``optimized``); an hour's value is read through
        ``window`` (:func:`window_value`).
    seed
        Ids that fix the exploration draw (campaign id, customer id).
    """
    cands = candidate_hours(now, tz, window_end, quiet, window_start)
    if not cands:
        return None
    n = len(cands)
    if mode == "immediate":
        chosen, p, policy = cands[0], 1.0, "immediate"
    elif mode == "fixed":
        if fixed_local is None:
            raise ValueError("fixed mode needs fixed_local")
        at = [c for c in cands if c.astimezone(zone(tz)).hour == fixed_local.hour]
        if not at:
            return None
        chosen = at[0].astimezone(zone(tz)).replace(minute=fixed_local.minute).astimezone(UTC)
        chosen, p, policy = max(chosen, at[0]), 1.0, "fixed"
    elif mode == "optimized":
        if hour_scores is None or len(hour_scores) != 168:
            raise ValueError("optimized mode needs 168 hour scores")
        hows = [local_hour_of_week(c, tz) for c in cands]
        scores = [window_value(hour_scores, h, window) for h in hows]
        # Ties (a lone peak fills three windows equally) go to the hour with the most score of its own.
        best = max(range(n), key=lambda i: (scores[i], float(hour_scores[hows[i]]), -i))
        rng = random.Random(stable_unit("explore", *seed))
        if explore_share > 0 and rng.random() < explore_share:
            idx, policy = rng.randrange(n), "explore"
        else:
            idx, policy = best, "optimized"
        chosen = cands[idx]
        # Propensity of the chosen hour under this policy: exploit mass on the best hour, explore spread evenly.
        p = (1 - explore_share) * (idx == best) + explore_share / n
    else:
        raise ValueError(f"unknown send-time mode {mode!r}")
    return Decision(chosen, local_hour_of_week(chosen, tz), round(p, 6), policy, n)
