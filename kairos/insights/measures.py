"""What marketers ask first: RFM groups, cohorts and a forecast, computed from the customers' aggregates.

Everything here is a pure function of ``CustomerAggregates`` (and profile attributes), so the API on the
live store, the scoring run and ``python -m training insights`` on an archive give the same answers.

RFM
---
Among customers with at least one purchase: *recency* = days since the last purchase, *frequency* =
purchase moments (an order is one clock hour of purchases), *monetary* = total revenue. Each is scored
1..5 by quintile over all purchasers (5 = most recent, most frequent, highest spend); ties fall in the
same score, so a shop where most customers bought once has many ``F = 1``. The named group comes from
R and F on this grid (M is reported, and may be filtered on, but does not name)::

    R \\ F   1            2                    3                    4           5
    5       new          potential loyalists  potential loyalists  champions   champions
    4       new          potential loyalists  potential loyalists  loyal       champions
    3       hibernating  hibernating          potential loyalists  loyal       loyal
    2       lost         hibernating          at risk              at risk     can't lose
    1       lost         lost                 at risk              can't lose  can't lose

Cohorts
-------
A customer's cohort is the month of their first purchase (``first_purchase_month``) or the value of a
profile attribute (``attributes.<name>``, e.g. the acquisition channel). Period ``k`` is the ``k``-th
calendar month after the customer's first purchase month; ``retention`` counts the cohort's customers
with a purchase in that period (period 0 is the cohort's size), ``revenue`` sums their revenue.

Forecast
--------
For an audience and a future period: the conversions (customers with a purchase) and revenue the same
audience produced in comparable past periods (the same dates in earlier years, and the periods of the same
length just before now), each period's rates applied to the whole audience (customers whose first purchase
came later were not customers then); the minimum, mean and maximum are the pessimistic, neutral and
optimistic cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from kairos.customers.aggregates import CustomerAggregates

DAY_S = 86_400
RFM_GROUPS = (
    "champions",
    "loyal",
    "potential loyalists",
    "new",
    "at risk",
    "can't lose",
    "hibernating",
    "lost",
)
_P, _C, _L, _H, _A, _K = "potential loyalists", "champions", "loyal", "hibernating", "at risk", "can't lose"
# RFM_GRID[r][f] for r, f in 1..5 (index 0 unused).
RFM_GRID: dict[int, tuple[str, ...]] = {
    5: ("new", _P, _P, _C, _C),
    4: ("new", _P, _P, _L, _C),
    3: (_H, _H, _P, _L, _L),
    2: ("lost", _H, _A, _A, _K),
    1: ("lost", "lost", _A, _K, _K),
}
COHORT_METRICS = ("retention", "revenue")
RFM_KIND = "rfm"  # the kind of the scoring runs' RFM documents in the insight store
# What stored answers and run summaries called the RFM group before "segment" was kept for saved audiences:
# read until a scoring run has rewritten them.
_STORED_GROUP_KEY, _STORED_GROUPS_KEY = "segment", "segments"
FIRST_PURCHASE_MONTH = "first_purchase_month"


# ----------------------------------------------------------------------------------------------
# RFM
# ----------------------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ascending values, linear between order statistics (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class RfmThresholds:
    """Quintile cut points (20/40/60/80%) of recency days, frequency and monetary over purchasers."""

    recency_days: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]
    customers: int
    as_of: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "recency_days": list(self.recency_days),
            "frequency": list(self.frequency),
            "monetary": list(self.monetary),
            "customers": self.customers,
            "as_of": self.as_of,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RfmThresholds:
        return cls(
            tuple(float(x) for x in data["recency_days"]),
            tuple(float(x) for x in data["frequency"]),
            tuple(float(x) for x in data["monetary"]),
            int(data["customers"]),
            str(data["as_of"]),
        )


def rfm_values(agg: CustomerAggregates, now: datetime) -> tuple[float, int, float] | None:
    """(recency days, frequency, monetary) of a customer, or ``None`` without a purchase."""
    if agg.purchase_count <= 0 or agg.last_purchase_s is None:
        return None
    recency = max(0.0, (now.timestamp() - agg.last_purchase_s) / DAY_S)
    return round(recency, 3), int(agg.purchase_count), round(float(agg.monetary_total), 2)


def rfm_thresholds(values: Iterable[tuple[float, int, float]], now: datetime) -> RfmThresholds:
    """Quintile cut points of the purchasers' values (:func:`rfm_values`)."""
    vals = list(values)
    qs = (0.2, 0.4, 0.6, 0.8)
    if not vals:
        return RfmThresholds((), (), (), 0, now.isoformat())
    cols = [sorted(v[i] for v in vals) for i in range(3)]
    cuts = [tuple(round(quantile(c, q), 4) for q in qs) for c in cols]
    return RfmThresholds(cuts[0], cuts[1], cuts[2], len(vals), now.isoformat())


def rfm_score(values: tuple[float, int, float], t: RfmThresholds) -> dict[str, Any]:
    """R, F and M scores (1..5) and the named group of one purchaser."""
    recency, frequency, monetary = values
    r = 5 - sum(recency > c for c in t.recency_days)
    f = 1 + sum(frequency > c for c in t.frequency)
    m = 1 + sum(monetary > c for c in t.monetary)
    return {
        "r": r,
        "f": f,
        "m": m,
        "score": f"{r}{f}{m}",
        "group": RFM_GRID[r][f - 1],
        "recency_days": recency,
        "frequency": frequency,
        "monetary": monetary,
        "as_of": t.as_of,
    }


def rfm_group_of(rfm: Mapping[str, Any] | None) -> str | None:
    """The RFM group of a stored answer's ``rfm`` (``None``: the customer had none)."""
    if not rfm:
        return None
    return rfm.get("group", rfm.get(_STORED_GROUP_KEY))


@dataclass
class RfmSummary:
    """Counts, revenue, the R x F grid and movement between groups; partial summaries add up."""

    customers: int = 0
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    grid: dict[str, int] = field(default_factory=dict)  # "r,f" -> customers
    movement: dict[str, dict[str, int]] = field(default_factory=dict)  # previous -> current -> customers

    def add(self, rfm: Mapping[str, Any], previous: str | None) -> None:
        self.customers += 1
        group = self.groups.setdefault(rfm["group"], {"customers": 0, "revenue": 0.0})
        group["customers"] += 1
        group["revenue"] = round(group["revenue"] + float(rfm["monetary"]), 2)
        key = f"{rfm['r']},{rfm['f']}"
        self.grid[key] = self.grid.get(key, 0) + 1
        moved = self.movement.setdefault(previous or "none", {})
        moved[rfm["group"]] = moved.get(rfm["group"], 0) + 1

    def merge(self, other: RfmSummary) -> RfmSummary:
        out = RfmSummary.from_dict(self.to_dict())
        out.customers += other.customers
        for name, s in other.groups.items():
            mine = out.groups.setdefault(name, {"customers": 0, "revenue": 0.0})
            mine["customers"] += s["customers"]
            mine["revenue"] = round(mine["revenue"] + s["revenue"], 2)
        for k, n in other.grid.items():
            out.grid[k] = out.grid.get(k, 0) + n
        for prev, to in other.movement.items():
            row = out.movement.setdefault(prev, {})
            for group, n in to.items():
                row[group] = row.get(group, 0) + n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "grid": dict(self.grid),
            "movement": {k: dict(v) for k, v in self.movement.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RfmSummary:
        groups = data.get("groups") or data.get(_STORED_GROUPS_KEY) or {}
        return cls(
            int(data.get("customers", 0)),
            {k: {"customers": int(v["customers"]), "revenue": float(v["revenue"])} for k, v in groups.items()},
            {k: int(v) for k, v in (data.get("grid") or {}).items()},
            {k: {s: int(n) for s, n in v.items()} for k, v in (data.get("movement") or {}).items()},
        )

    def view(self) -> dict[str, Any]:
        """The API's answer: every named group (zeros included) with its share, the grid and movement."""
        total_revenue = sum(s["revenue"] for s in self.groups.values())
        groups = []
        for name in RFM_GROUPS:
            s = self.groups.get(name, {"customers": 0, "revenue": 0.0})
            groups.append(
                {
                    "group": name,
                    "customers": int(s["customers"]),
                    "share": round(s["customers"] / self.customers, 4) if self.customers else 0.0,
                    "revenue": round(s["revenue"], 2),
                    "revenue_share": round(s["revenue"] / total_revenue, 4) if total_revenue else 0.0,
                }
            )
        grid = [
            {"r": r, "f": f, "group": RFM_GRID[r][f - 1], "customers": self.grid.get(f"{r},{f}", 0)}
            for r in range(5, 0, -1)
            for f in range(1, 6)
        ]
        return {"customers": self.customers, "groups": groups, "grid": grid, "movement": self.movement}


def rfm_of_customers(
    aggs: Mapping[str, CustomerAggregates], now: datetime, previous: Mapping[str, str] | None = None
) -> tuple[RfmThresholds, dict[str, dict[str, Any]], RfmSummary]:
    """RFM of a set of customers in one go (the CLI, and small stores): thresholds, scores and summary."""
    values = {cid: v for cid, a in aggs.items() if (v := rfm_values(a, now)) is not None}
    thresholds = rfm_thresholds(values.values(), now)
    scores = {cid: rfm_score(v, thresholds) for cid, v in values.items()}
    summary = RfmSummary()
    for cid, s in scores.items():
        summary.add(s, (previous or {}).get(cid))
    return thresholds, scores, summary


# ----------------------------------------------------------------------------------------------
# Cohorts
# ----------------------------------------------------------------------------------------------


def _month_index(day: str) -> int:
    return int(day[:4]) * 12 + int(day[5:7]) - 1


def periods_begun(first_month: int, as_of: date | None, max_periods: int) -> tuple[int, int | None]:
    """The last period (months since ``first_month``, a month index) with data as of ``as_of``, and that period
    again when it is only partly over (``None`` when it is complete).

    ``as_of`` counts the days before it: on the first of a month the new month holds no day yet, so its period has
    not begun (it would read 0%), and the month before is complete.
    """
    if as_of is None:
        return max_periods - 1, None
    last_day = as_of - timedelta(days=1)
    last = last_day.year * 12 + last_day.month - 1 - first_month
    partial = last if (last_day + timedelta(days=1)).day != 1 else None
    return min(last, max_periods - 1), (partial if partial is not None and 0 <= partial < max_periods else None)


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohort_key(agg: CustomerAggregates, attributes: Mapping[str, Any] | None, by: str) -> str | None:
    """The cohort of a customer with purchases, by first purchase month or by a profile attribute."""
    if not agg.purchase_days:
        return None
    if by == FIRST_PURCHASE_MONTH:
        return min(agg.purchase_days)[:7]
    name = by.removeprefix("attributes.")
    value = (attributes or {}).get(name)
    return "(none)" if value is None or value == "" else str(value)


def cohort_matrix(
    customers: Iterable[tuple[CustomerAggregates, Mapping[str, Any] | None]],
    by: str = FIRST_PURCHASE_MONTH,
    metric: str = "retention",
    max_periods: int = 24,
    as_of: date | None = None,
) -> dict[str, Any]:
    """The cohort x period matrix (see the module's docstring).

    With ``as_of``, ``reachable[k]`` counts the cohort's customers whose period ``k`` has begun by then, and
    retention ``rates`` divide by it (a customer who joined last month cannot have come back in month 3).

    Returns
    -------
    dict
        ``by``, ``metric``, ``periods`` (0..n-1, months since the first purchase) and ``cohorts``: one row per
        cohort, sorted, with ``cohort``, ``size``, ``values`` (customers or revenue per period) and ``rates``
        (values divided by the size, retention only).
    """
    if metric not in COHORT_METRICS:
        raise ValueError(f"metric must be one of {', '.join(COHORT_METRICS)}")
    rows: dict[str, dict[str, Any]] = {}
    width = 0
    for agg, attributes in customers:
        key = cohort_key(agg, attributes, by)
        if key is None:
            continue
        row = rows.setdefault(key, {"size": 0, "values": [0.0] * max_periods, "reachable": [0] * max_periods})
        row["size"] += 1
        first = _month_index(min(agg.purchase_days))
        last, partial = periods_begun(first, as_of, max_periods)
        for k in range(max(last, -1) + 1):
            row["reachable"][k] += 1
        if partial is not None:
            row.setdefault("partial", set()).add(partial)
        per_period: dict[int, float] = {}
        for day, (moments, revenue) in agg.purchase_days.items():
            k = _month_index(day) - first
            if 0 <= k < max_periods and (moments > 0 or revenue):
                per_period[k] = per_period.get(k, 0.0) + float(revenue)
        for k, revenue in per_period.items():
            row["values"][k] += 1.0 if metric == "retention" else revenue
            width = max(width, k + 1)
    cohorts = []
    for key in sorted(rows):
        row = rows[key]
        values = row["values"][: max(width, 1)]
        values = [int(v) for v in values] if metric == "retention" else [round(v, 2) for v in values]
        reachable = row["reachable"][: len(values)]
        entry: dict[str, Any] = {"cohort": key, "size": row["size"], "values": values, "reachable": reachable}
        if metric == "retention":
            entry["rates"] = [round(v / r, 4) if r else None for v, r in zip(values, reachable, strict=True)]
        entry["partial"] = [k in row.get("partial", ()) for k in range(len(values))]
        cohorts.append(entry)
    return {"by": by, "metric": metric, "periods": list(range(max(width, 1))), "cohorts": cohorts}


# ----------------------------------------------------------------------------------------------
# Forecast
# ----------------------------------------------------------------------------------------------


def comparable_periods(
    start: date, end: date, today: date, years: int = 3, previous: int = 3, earliest: date | None = None
) -> list[dict[str, Any]]:
    """Past periods comparable with ``[start, end)``: the same dates in earlier years and the periods of the
    same length just before ``today``; with ``earliest`` (the first purchase known), only those ending after it
    (a year before the shop's data began would count as zero sales)."""
    length = (end - start).days
    out = []
    for y in range(1, years + 1):
        if start.year - y < date.min.year:
            break  # the calendar has no year before 1: no such period
        try:
            s = start.replace(year=start.year - y)
        except ValueError:  # 29 February
            s = start.replace(year=start.year - y, day=28)
        if s + timedelta(days=length) <= today:
            kind = f"{y} year{'s' if y > 1 else ''} before"
            out.append({"kind": kind, "start": s, "end": s + timedelta(days=length)})
    for k in range(1, previous + 1):
        e = today - timedelta(days=length * (k - 1))
        out.append({"kind": f"previous period {k}", "start": e - timedelta(days=length), "end": e})
    if earliest is not None:
        out = split_by_history(out, earliest)[0]
    return out


def split_by_history(
    periods: Sequence[dict[str, Any]], earliest: date | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The comparable periods the data stands behind, and those left out with the reason.

    A period needs a period's worth of purchases before it: in one that ends before the first purchase nobody was
    a customer, and in one the data begins in (or just before) every customer was new and bought by definition,
    which would forecast a conversion rate near 100%.
    """
    if earliest is None:
        return list(periods), []
    kept, left = [], []
    for p in periods:
        if p["end"] <= earliest:
            reason = "ends before the first purchase in the data"
        elif p["start"] < earliest + (p["end"] - p["start"]):
            reason = "the data begins less than a period before it: its customers were new and bought by definition"
        else:
            kept.append(p)
            continue
        left.append({"kind": p["kind"], "start": p["start"].isoformat(), "end": p["end"].isoformat(), "reason": reason})
    return kept, left


def period_outcome(aggs: Iterable[CustomerAggregates], start: date, end: date) -> dict[str, Any]:
    """How many of the customers bought in ``[start, end)`` (UTC days), and their revenue.

    ``customers`` counts those who could have: everyone but customers whose first purchase came after the
    period (they were not customers yet).
    """
    lo, hi = start.isoformat(), end.isoformat()
    customers = converted = 0
    revenue = 0.0
    for agg in aggs:
        if agg.purchase_days and min(agg.purchase_days) >= hi:
            continue
        customers += 1
        spent = [v for d, v in agg.purchase_days.items() if lo <= d < hi and (v[0] > 0 or v[1])]
        if spent:
            converted += 1
            revenue += sum(float(v[1]) for v in spent)
    return {"customers": customers, "conversions": converted, "revenue": round(revenue, 2)}


def forecast(
    aggs: Sequence[CustomerAggregates],
    start: date,
    end: date,
    now: datetime,
    past_campaigns: Sequence[Mapping[str, Any]] = (),
    years: int = 3,
    previous: int = 3,
    audience: int | None = None,
) -> dict[str, Any]:
    """Pessimistic, neutral and optimistic conversions and revenue of an audience over ``[start, end)``.

    Parameters
    ----------
    aggs
        The audience's aggregates, as of ``now``.
    start, end
        The period to forecast (UTC days, ``end`` excluded).
    past_campaigns
        Results of finished campaigns to similar audiences: ``{"campaign_id", "customers", "conversions",
        "revenue"}``; their conversion rate and revenue per customer, scaled to this audience, count as
        comparable periods too.
    audience
        The audience's size when ``aggs`` are a sample of it (the rates of the sample, applied to it).

    Returns
    -------
    dict
        ``audience``, ``pessimistic`` / ``neutral`` / ``optimistic`` (conversions, conversion rate,
        revenue) and ``periods``: every comparable period with its own outcome.
    """
    if end <= start:
        raise ValueError("end must be after start")
    days = [min(a.purchase_days) for a in aggs if a.purchase_days]
    earliest = date.fromisoformat(min(days)) if days else None
    kept, left_out = split_by_history(
        comparable_periods(start, end, now.astimezone(UTC).date(), years, previous), earliest
    )
    observed = [(p, period_outcome(aggs, p["start"], p["end"])) for p in kept]
    n = len(aggs) if audience is None else audience
    return forecast_from_outcomes(n, observed, start, end, past_campaigns, left_out)


def forecast_from_outcomes(
    audience: int,
    observed: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    start: date,
    end: date,
    past_campaigns: Sequence[Mapping[str, Any]] = (),
    left_out: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """:func:`forecast` from the comparable periods' outcomes, however they were counted (the aggregates, or
    the archive's ``kairos.insights.sql.period_outcomes_query``).

    Parameters
    ----------
    audience
        Customers in the audience now.
    observed
        ``(period, outcome)``: a period of :func:`comparable_periods` and its :func:`period_outcome`.
    start, end, past_campaigns
        As for :func:`forecast`.
    left_out
        Comparable periods the data does not stand behind, with the reason (:func:`split_by_history`).
    """
    periods = []
    n = audience
    for p, outcome in observed:
        eligible = outcome["customers"]
        scale = n / eligible if eligible else 0.0
        # Customers who were not customers yet could not buy then: the period's rates, applied to everybody.
        periods.append(
            {
                "kind": p["kind"],
                "start": p["start"].isoformat(),
                "end": p["end"].isoformat(),
                "customers": eligible,
                "observed_conversions": outcome["conversions"],
                "observed_revenue": outcome["revenue"],
                "conversions": round(outcome["conversions"] * scale, 1),
                "revenue": round(outcome["revenue"] * scale, 2),
            }
        )
    for c in past_campaigns:
        size = int(c.get("customers") or 0)
        if size <= 0:
            continue
        rate = float(c.get("conversions") or 0) / size
        per_customer = float(c.get("revenue") or 0.0) / size
        periods.append(
            {
                "kind": f"campaign {c['campaign_id']}",
                "customers": n,
                "conversions": round(rate * n),
                "revenue": round(per_customer * n, 2),
                "scaled_from": size,
            }
        )

    def case(pick: Any) -> dict[str, Any]:
        if not periods:
            return {"conversions": None, "conversion_rate": None, "revenue": None}
        conv = pick([p["conversions"] for p in periods])
        return {
            "conversions": round(conv, 1),
            "conversion_rate": round(conv / n, 4) if n else None,
            "revenue": round(pick([p["revenue"] for p in periods]), 2),
        }

    return {
        "audience": n,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "pessimistic": case(min),
        "neutral": case(lambda xs: sum(xs) / len(xs)),
        "optimistic": case(max),
        "periods": periods,
        "left_out": list(left_out),
    }


__all__ = [
    "COHORT_METRICS",
    "FIRST_PURCHASE_MONTH",
    "RFM_GRID",
    "RFM_KIND",
    "RFM_GROUPS",
    "RfmSummary",
    "RfmThresholds",
    "cohort_matrix",
    "comparable_periods",
    "forecast",
    "forecast_from_outcomes",
    "period_outcome",
    "quantile",
    "rfm_group_of",
    "rfm_of_customers",
    "rfm_score",
    "rfm_thresholds",
    "rfm_values",
]
