"""Funnel stages over the event archive: customers per stage, conversion from stage to stage, and the time it took.

A customer's stage is named by the events that carry ``properties.stage`` (an inbound message an intent tagged,
or an app's own events). Read in time order, each change of stage is a move ``from -> to`` after some days;
the first stage named is where the customer entered the funnel.

- ``stages``: per stage, the customers whose latest stage it is (``now``) and those who ever reached it
  (``reached``);
- ``moves``: per pair, the customers who moved from one to the other, that as a share of those who reached the
  first (``conversion``), and the days each move took (mean and quartiles; Athena's are approximate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.insights.sql import ArchiveQuery, _before, _check, _day, epoch_seconds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

QUANTILES = (0.25, 0.5, 0.75, 0.9)


def _stage(dialect: str) -> str:
    if dialect == "duckdb":
        return "json_extract_string(properties, '$.stage')"
    return "json_extract_scalar(properties, '$.stage')"


def _quantile(dialect: str, column: str, q: float) -> str:
    if dialect == "duckdb":
        return f"quantile_cont({column}, {q!r})"
    return f"approx_percentile({column}, {q!r})"


def stages_query(now: datetime, dialect: str = "duckdb", table: str = "events") -> ArchiveQuery:
    """Rows of three kinds (``kind``): ``now`` and ``reached`` per ``stage`` with ``customers``; ``move`` per
    ``stage`` (from) and ``to_stage`` with ``customers``, ``mean_days`` and ``p25``...``p90``. Read them with
    :func:`stages_from_rows`."""
    _check(dialect, table)
    quantiles = ", ".join(f"{_quantile(dialect, 'days', q)} AS p{round(q * 100)}" for q in QUANTILES)
    nulls = ", ".join(f"CAST(NULL AS DOUBLE) AS p{round(q * 100)}" for q in QUANTILES)
    sql = f"""
WITH tagged AS (
  SELECT customer_id, {_stage(dialect)} AS stage, {epoch_seconds(dialect)} AS ts
  FROM {table}
  WHERE properties IS NOT NULL AND {_before(now, dialect)}
),
ordered AS (
  SELECT customer_id, stage, ts,
    LAG(stage) OVER (PARTITION BY customer_id ORDER BY ts, stage) AS prev_stage
  FROM tagged
  WHERE stage IS NOT NULL AND stage <> ''
),
changes AS (
  SELECT customer_id, stage, ts FROM ordered WHERE prev_stage IS NULL OR prev_stage <> stage
),
moves AS (
  SELECT customer_id,
    LAG(stage) OVER (PARTITION BY customer_id ORDER BY ts, stage) AS from_stage,
    stage AS to_stage,
    (ts - LAG(ts) OVER (PARTITION BY customer_id ORDER BY ts, stage)) / 86400 AS days
  FROM changes
),
latest AS (
  SELECT customer_id, stage,
    ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY ts DESC, stage DESC) AS rn
  FROM changes
)
SELECT 'now' AS kind, stage, CAST(NULL AS VARCHAR) AS to_stage, COUNT(*) AS customers,
  CAST(NULL AS DOUBLE) AS mean_days, {nulls}
FROM latest WHERE rn = 1 GROUP BY stage
UNION ALL
SELECT 'reached' AS kind, stage, CAST(NULL AS VARCHAR) AS to_stage, COUNT(DISTINCT customer_id) AS customers,
  CAST(NULL AS DOUBLE) AS mean_days, {nulls}
FROM changes GROUP BY stage
UNION ALL
SELECT 'move' AS kind, from_stage AS stage, to_stage, COUNT(DISTINCT customer_id) AS customers,
  AVG(days) AS mean_days, {quantiles}
FROM moves WHERE from_stage IS NOT NULL GROUP BY from_stage, to_stage
"""
    return ArchiveQuery("stages", sql, ("customer_id", "timestamp", "properties"), None, _day(now))


def _days(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def stages_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rows of :func:`stages_query` as the report."""
    now = {r["stage"]: int(r["customers"]) for r in rows if r["kind"] == "now"}
    reached = {r["stage"]: int(r["customers"]) for r in rows if r["kind"] == "reached"}
    stages = [{"stage": s, "now": now.get(s, 0), "reached": reached[s]} for s in sorted(reached)]
    moves = []
    for r in sorted((r for r in rows if r["kind"] == "move"), key=lambda r: (r["stage"], r["to_stage"])):
        customers = int(r["customers"])
        moves.append(
            {
                "from": r["stage"],
                "to": r["to_stage"],
                "customers": customers,
                "conversion": round(customers / reached[r["stage"]], 4) if reached.get(r["stage"]) else None,
                "days": {
                    "mean": _days(r["mean_days"]),
                    **{f"p{round(q * 100)}": _days(r[f"p{round(q * 100)}"]) for q in QUANTILES},
                },
            }
        )
    return {"customers": sum(now.values()), "stages": stages, "moves": moves}
