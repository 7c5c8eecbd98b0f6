"""Cohorts, RFM thresholds and the forecast's period outcomes as SQL over the event archive.

The archive (``events/dt=YYYY-MM-DD/<batch id>.jsonl.gz``, one line per accepted event, ``dt`` its UTC date) holds
everything the customers' aggregates are folded from, so an engine that scans it in parallel answers what
:mod:`kairos.insights.measures` answers from the aggregates, for any number of customers: Athena (Trino) in AWS,
DuckDB locally and in tests. This module only writes the SQL and reads the rows back into the measures' shapes;
engines run it (``kairos.insights.adapters.duckdb_engine``).

Definitions, as the aggregates have them (``kairos.customers.aggregates``):

- a purchase is an event of type ``purchase``; its day is its UTC date, which is the archive's ``dt``;
- a *purchase moment* is a distinct UTC clock hour with a purchase (a 20-line invoice is one moment);
- revenue is the sum of the purchases' ``amount`` (a purchase without one adds nothing);
- *as of* ``now`` means the events with ``timestamp < now``, as ``training`` folds history.

Erased customers need nothing here: an erasure purges the customer's lines from the archive
(``kairos.customers.archive``). Two differences remain with the stored aggregates: they forget purchase days past
``PURCHASE_DAYS`` (800) per customer and the archive does not, and a value on an exact rounding tie (a recency of
0.0025 days) may round the other way in SQL (by 0.001 day or a cent). Only customers with events are seen: one
known from a profile alone counts in the stored forecast's audience but not here.

The SQL is what DuckDB and Trino share; the one difference, parsing an ISO 8601 time, is switched by ``dialect``.
Each common table expression is read once, because Trino inlines them (a second reference scans the archive again).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kairos.insights.measures import FIRST_PURCHASE_MONTH, RfmThresholds, periods_begun

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DIALECTS = ("duckdb", "athena")
QUINTILES = (0.2, 0.4, 0.6, 0.8)
# Athena's price (https://aws.amazon.com/athena/pricing/): $5 per TB scanned, each query billed at least 10 MB,
# rounded up to the megabyte.
ATHENA_USD_PER_TB = 5.0
MB = 1024**2
TB = 1024**4
ATHENA_MIN_BYTES = 10 * MB
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class ArchiveQuery:
    """A query over the archive and what it reads.

    ``columns`` are the record fields it reads (a columnar copy bills only those), ``first_day`` and ``last_day``
    the partitions it needs (inclusive; ``None``: unbounded): its own ``dt`` predicates say the same, so an
    engine that prunes partitions (Athena's partition projection) reads exactly these.
    """

    name: str
    sql: str
    columns: tuple[str, ...]
    first_day: str | None
    last_day: str | None


class ArchiveEngine(Protocol):
    """What runs an :class:`ArchiveQuery`: its ``dialect`` and ``run`` returning ``rows`` (dicts) and
    ``bytes_scanned``."""

    dialect: str

    def run(self, sql: str, *, columns: Sequence[str], first_day: str | None, last_day: str | None) -> Any: ...


def athena_price(bytes_scanned: int) -> float:
    """What Athena charges for a query scanning ``bytes_scanned`` bytes, in US dollars."""
    billed = max(ATHENA_MIN_BYTES, math.ceil(bytes_scanned / MB) * MB)
    return billed / TB * ATHENA_USD_PER_TB


def run_query(engine: ArchiveEngine, query: ArchiveQuery) -> Any:
    """Run ``query`` on ``engine``; the engine's result (``rows``, ``bytes_scanned``)."""
    return engine.run(query.sql, columns=query.columns, first_day=query.first_day, last_day=query.last_day)


# ----------------------------------------------------------------------------------------------
# Shared expressions
# ----------------------------------------------------------------------------------------------


def _check(dialect: str, table: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    if not _TABLE.match(table):
        raise ValueError(f"not a table name: {table!r}")


def epoch_seconds(dialect: str, column: str = '"timestamp"') -> str:
    """Unix seconds (a double, fraction kept) of an ISO 8601 time with an offset, in ``dialect``."""
    if dialect == "duckdb":
        return f"epoch(CAST({column} AS TIMESTAMPTZ))"
    return f"to_unixtime(from_iso8601_timestamp({column}))"


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _seconds(now: datetime) -> str:
    # repr keeps every digit of the double Python compares with; the cast keeps DuckDB from reading a DECIMAL.
    return f"CAST({now.timestamp()!r} AS DOUBLE)"


def _before(now: datetime, dialect: str) -> str:
    """Events with ``timestamp < now``: whole partitions before now's day, and the parsed time on that day."""
    day = _utc(now).date().isoformat()
    return f"dt <= '{day}' AND (dt < '{day}' OR {epoch_seconds(dialect)} < {_seconds(now)})"


def _month(column: str = "dt") -> str:
    """Months since year 0 of a ``YYYY-MM-DD`` string (what ``measures._month_index`` computes)."""
    return f"CAST(substr({column}, 1, 4) AS INTEGER) * 12 + CAST(substr({column}, 6, 2) AS INTEGER) - 1"


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


# ----------------------------------------------------------------------------------------------
# Cohorts
# ----------------------------------------------------------------------------------------------


def cohorts_query(now: datetime, max_periods: int = 24, dialect: str = "duckdb", table: str = "events") -> ArchiveQuery:
    """Customers and revenue per first-purchase month (``cohort``, months since year 0) and ``period``.

    A customer is in period ``k`` of their cohort when they bought in the ``k``-th calendar month after their
    first purchase month (period 0: every customer of the cohort). Rows: ``cohort``, ``period``, ``customers``,
    ``revenue``; read them with :func:`cohort_matrix_from_rows`.
    """
    _check(dialect, table)
    if max_periods < 1:
        raise ValueError("max_periods must be at least 1")
    sql = f"""
WITH months AS (
  SELECT customer_id, {_month()} AS month, SUM(COALESCE(amount, 0)) AS revenue
  FROM {table}
  WHERE "type" = 'purchase' AND {_before(now, dialect)}
  GROUP BY customer_id, {_month()}
),
periods AS (
  SELECT MIN(month) OVER (PARTITION BY customer_id) AS cohort, month, revenue
  FROM months
)
SELECT cohort, month - cohort AS period, COUNT(*) AS customers, SUM(revenue) AS revenue
FROM periods
WHERE month - cohort < {int(max_periods)}
GROUP BY cohort, month - cohort
ORDER BY cohort, period
"""
    return ArchiveQuery("cohorts", sql, ("customer_id", "type", "timestamp", "amount"), None, _day(now))


def cohort_matrix_from_rows(
    rows: Sequence[Mapping[str, Any]], metric: str = "retention", max_periods: int = 24, as_of: date | None = None
) -> dict[str, Any]:
    """The rows of :func:`cohorts_query` as ``measures.cohort_matrix(..., by="first_purchase_month")`` returns.

    ``as_of`` (the query's ``now`` as a UTC date) sets ``reachable``: a cohort's customers whose period ``k`` has
    begun, which every customer of a first-purchase-month cohort shares.
    """
    if metric not in ("retention", "revenue"):
        raise ValueError("metric must be one of retention, revenue")
    cells: dict[int, dict[int, tuple[int, float]]] = {}
    width = 0
    for row in rows:
        period = int(row["period"])
        if period >= max_periods:
            continue
        cells.setdefault(int(row["cohort"]), {})[period] = (int(row["customers"]), float(row["revenue"] or 0.0))
        width = max(width, period + 1)
    span = max(width, 1)
    cohorts = []
    for cohort in sorted(cells):
        per = cells[cohort]
        size = per.get(0, (0, 0.0))[0]
        last, partial = periods_begun(cohort, as_of, max_periods)
        reachable = [size if k <= last else 0 for k in range(span)]
        if metric == "retention":
            values: list[Any] = [per.get(k, (0, 0.0))[0] for k in range(span)]
        else:
            values = [round(per.get(k, (0, 0.0))[1], 2) for k in range(span)]
        entry: dict[str, Any] = {"cohort": _month_name(cohort), "size": size, "values": values, "reachable": reachable}
        if metric == "retention":
            entry["rates"] = [round(v / r, 4) if r else None for v, r in zip(values, reachable, strict=True)]
        entry["partial"] = [k == partial for k in range(span)]
        cohorts.append(entry)
    return {"by": FIRST_PURCHASE_MONTH, "metric": metric, "periods": list(range(span)), "cohorts": cohorts}


# ----------------------------------------------------------------------------------------------
# RFM thresholds
# ----------------------------------------------------------------------------------------------


def _quantile_columns(value: str, rank: str, prefix: str) -> list[str]:
    """The two order statistics around each quintile (``measures.quantile``: linear between them)."""
    out = []
    for q in QUINTILES:
        pos = f"CAST({q!r} AS DOUBLE) * (n - 1)"
        name = f"{prefix}{round(q * 100)}"
        out.append(f"MAX(CASE WHEN {rank} = FLOOR({pos}) THEN {value} END) AS {name}_lo")
        out.append(f"MAX(CASE WHEN {rank} = LEAST(FLOOR({pos}) + 1, n - 1) THEN {value} END) AS {name}_hi")
    return out


def _interpolated(prefix: str) -> list[str]:
    out = []
    for q in QUINTILES:
        pos = f"CAST({q!r} AS DOUBLE) * (n - 1)"
        name = f"{prefix}{round(q * 100)}"
        out.append(f"ROUND({name}_lo + ({name}_hi - {name}_lo) * ({pos} - FLOOR({pos})), 4) AS {name}")
    return out


def rfm_thresholds_query(now: datetime, dialect: str = "duckdb", table: str = "events") -> ArchiveQuery:
    """The RFM quintile cut points as of ``now`` (``measures.rfm_thresholds`` over ``measures.rfm_values``).

    Among customers with a purchase: recency = days since the last purchase (rounded to 0.001), frequency =
    purchase moments, monetary = revenue (rounded to the cent). Exact quantiles from ranks (Trino has only
    approximate percentiles), linear between order statistics as numpy's default. One row: ``n`` and
    ``r20`` ... ``m80``; read it with :func:`rfm_thresholds_from_row`.
    """
    _check(dialect, table)
    secs = _seconds(now)
    picked = ",\n    ".join(
        _quantile_columns("recency", "ri", "r")
        + _quantile_columns("frequency", "fi", "f")
        + _quantile_columns("monetary", "mi", "m")
    )
    final = ", ".join(_interpolated("r") + _interpolated("f") + _interpolated("m"))
    sql = f"""
WITH per_customer AS (
  SELECT customer_id, COUNT(DISTINCT FLOOR(ts / 3600)) AS frequency, MAX(FLOOR(ts)) AS last_s,
    SUM(COALESCE(amount, 0)) AS monetary
  FROM (
    SELECT customer_id, amount, {epoch_seconds(dialect)} AS ts
    FROM {table}
    WHERE "type" = 'purchase' AND dt <= '{_day(now)}'
  ) AS purchases
  WHERE ts < {secs}
  GROUP BY customer_id
),
ranked AS (
  SELECT recency, frequency, monetary,
    ROW_NUMBER() OVER (ORDER BY recency) - 1 AS ri,
    ROW_NUMBER() OVER (ORDER BY frequency) - 1 AS fi,
    ROW_NUMBER() OVER (ORDER BY monetary) - 1 AS mi,
    COUNT(*) OVER () AS n
  FROM (
    SELECT ROUND(GREATEST(CAST(0 AS DOUBLE), ({secs} - last_s) / 86400), 3) AS recency,
      frequency, ROUND(monetary, 2) AS monetary
    FROM per_customer
  ) AS vals
),
picked AS (
  SELECT n,
    {picked}
  FROM ranked
  GROUP BY n
)
SELECT n, {final}
FROM picked
"""
    return ArchiveQuery("rfm", sql, ("customer_id", "type", "timestamp", "amount"), None, _day(now))


def rfm_thresholds_from_row(rows: Sequence[Mapping[str, Any]], now: datetime) -> RfmThresholds:
    """The row of :func:`rfm_thresholds_query` as :class:`RfmThresholds` (no row: no purchaser)."""
    if not rows:
        return RfmThresholds((), (), (), 0, now.isoformat())
    row = rows[0]

    def cuts(prefix: str) -> tuple[float, ...]:
        return tuple(float(row[f"{prefix}{round(q * 100)}"]) for q in QUINTILES)

    return RfmThresholds(cuts("r"), cuts("f"), cuts("m"), int(row["n"]), now.isoformat())


# ----------------------------------------------------------------------------------------------
# Forecast: outcomes of past periods
# ----------------------------------------------------------------------------------------------


def period_outcomes_query(
    periods: Sequence[tuple[date, date]], now: datetime, dialect: str = "duckdb", table: str = "events"
) -> ArchiveQuery:
    """Each period's outcome (``measures.period_outcome``) as of ``now``, all in one scan.

    For ``[start, end)`` (UTC days): ``customers`` = everyone but those whose first purchase came on or after
    ``end``, ``conversions`` = customers with a purchase in the period, ``revenue`` = their purchases' amounts.
    Also ``audience`` (customers with any event) and ``earliest`` (the first purchase day), which
    ``measures.forecast`` needs. That definition reads the whole history up to ``now``, whatever the periods:
    a customer who first bought after a period is known only by the absence of earlier purchases. Read the row
    with :func:`period_outcomes_from_row`.
    """
    _check(dialect, table)
    if not periods:
        raise ValueError("no periods")
    per_customer, totals = [], []
    for i, (start, end) in enumerate(periods):
        if end <= start:
            raise ValueError("a period must end after it starts")
        inside = f"\"type\" = 'purchase' AND dt >= '{start.isoformat()}' AND dt < '{end.isoformat()}'"
        per_customer.append(f"SUM(CASE WHEN {inside} THEN COALESCE(amount, 0) END) AS revenue_{i}")
        per_customer.append(f"MAX(CASE WHEN {inside} THEN 1 ELSE 0 END) AS bought_{i}")
        totals.append(
            f"SUM(CASE WHEN first_day IS NULL OR first_day < '{end.isoformat()}' THEN 1 ELSE 0 END) AS customers_{i}"
        )
        totals.append(f"SUM(bought_{i}) AS conversions_{i}")
        totals.append(f"SUM(revenue_{i}) AS revenue_{i}")
    inner = ",\n    ".join(per_customer)
    outer = ",\n  ".join(totals)
    sql = f"""
WITH per_customer AS (
  SELECT customer_id,
    MIN(CASE WHEN "type" = 'purchase' THEN dt END) AS first_day,
    {inner}
  FROM {table}
  WHERE {_before(now, dialect)}
  GROUP BY customer_id
)
SELECT COUNT(*) AS audience, MIN(first_day) AS earliest,
  {outer}
FROM per_customer
"""
    return ArchiveQuery("forecast", sql, ("customer_id", "type", "timestamp", "amount"), None, _day(now))


def period_outcomes_from_row(rows: Sequence[Mapping[str, Any]], periods: Sequence[tuple[date, date]]) -> dict[str, Any]:
    """The row of :func:`period_outcomes_query`: ``audience``, ``earliest`` (a date or ``None``) and ``outcomes``,
    one ``{"customers", "conversions", "revenue"}`` per period, as ``measures.period_outcome`` gives them."""
    row = rows[0] if rows else {}
    earliest = row.get("earliest")
    outcomes = [
        {
            "customers": int(row.get(f"customers_{i}") or 0),
            "conversions": int(row.get(f"conversions_{i}") or 0),
            "revenue": round(float(row.get(f"revenue_{i}") or 0.0), 2),
        }
        for i in range(len(periods))
    ]
    return {
        "audience": int(row.get("audience") or 0),
        "earliest": date.fromisoformat(str(earliest)) if earliest else None,
        "outcomes": outcomes,
    }


def _day(now: datetime) -> str:
    return _utc(now).date().isoformat()


# ----------------------------------------------------------------------------------------------
# On an engine
# ----------------------------------------------------------------------------------------------


def archive_cohorts(
    engine: ArchiveEngine, now: datetime, metric: str = "retention", max_periods: int = 24, table: str = "events"
) -> tuple[dict[str, Any], Any]:
    """The cohort matrix by first purchase month as of ``now``, and the engine's result (bytes scanned)."""
    result = run_query(engine, cohorts_query(now, max_periods, engine.dialect, table))
    return cohort_matrix_from_rows(result.rows, metric, max_periods, _utc(now).date()), result


def archive_rfm_thresholds(engine: ArchiveEngine, now: datetime, table: str = "events") -> tuple[RfmThresholds, Any]:
    """The RFM quintile cut points as of ``now``, and the engine's result."""
    result = run_query(engine, rfm_thresholds_query(now, engine.dialect, table))
    return rfm_thresholds_from_row(result.rows, now), result


def archive_period_outcomes(
    engine: ArchiveEngine, periods: Sequence[tuple[date, date]], now: datetime, table: str = "events"
) -> tuple[dict[str, Any], Any]:
    """The outcomes of ``periods`` as of ``now`` (:func:`period_outcomes_from_row`), and the engine's result."""
    result = run_query(engine, period_outcomes_query(periods, now, engine.dialect, table))
    return period_outcomes_from_row(result.rows, periods), result


__all__ = [
    "ATHENA_MIN_BYTES",
    "ATHENA_USD_PER_TB",
    "DIALECTS",
    "ArchiveEngine",
    "ArchiveQuery",
    "archive_cohorts",
    "archive_period_outcomes",
    "archive_rfm_thresholds",
    "athena_price",
    "cohort_matrix_from_rows",
    "cohorts_query",
    "epoch_seconds",
    "period_outcomes_from_row",
    "period_outcomes_query",
    "rfm_thresholds_from_row",
    "rfm_thresholds_query",
    "run_query",
]
