"""RFM groups, cohorts and a forecast of an event archive, as JSON, Markdown and a self-contained HTML report.

The numbers come from ``kairos.insights.measures`` applied to the aggregates ``Folder`` folds up to the as-of
time, so they equal what the insights API answers on a live store that received the same events.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kairos.insights.measures import (
    FIRST_PURCHASE_MONTH,
    RFM_GRID,
    RFM_GROUPS,
    cohort_matrix,
    forecast,
    rfm_of_customers,
)
from training import progress
from training.history import Folder

if TYPE_CHECKING:
    from training.history import History

MARKDOWN_COHORTS = 6
MARKDOWN_PERIODS = 6
CASES = ("pessimistic", "neutral", "optimistic")


def compute_insights(
    history: History,
    as_of: datetime,
    by: str = FIRST_PURCHASE_MONTH,
    forecast_start: date | None = None,
    forecast_days: int = 30,
) -> dict[str, Any]:
    """RFM, cohorts (retention and revenue) and a forecast of every customer's aggregates as of a time.

    Parameters
    ----------
    history
        The customers' events and profiles.
    as_of
        Only events before this time count; recency is measured from it (reported in UTC).
    by
        Cohort key: ``first_purchase_month`` or ``attributes.<name>`` (a profile attribute).
    forecast_start
        First UTC day of the forecast period (default: the as-of day).
    forecast_days
        Length of the forecast period in days.

    Returns
    -------
    dict
        JSON-ready: ``as_of``, ``customers`` (with events before ``as_of``), ``rfm`` (``thresholds`` and
        the summary's view: ``customers``, ``groups``, ``grid``, ``movement``), ``cohorts``
        (``retention`` and ``revenue`` matrices) and ``forecast`` (for every customer with a purchase).

    Raises
    ------
    ValueError
        If ``forecast_days`` is not positive.

    Example
    -------
    >>> result = compute_insights(History(events, profiles), datetime(2011, 12, 10, tzinfo=UTC))
    >>> [g["customers"] for g in result["rfm"]["groups"]]
    """
    if forecast_days <= 0:
        raise ValueError("forecast_days must be positive")
    aggs = Folder(history).advance(as_of)
    # Customers whose first event comes later still have empty aggregates: they are not yet customers.
    seen = {cid: agg for cid, agg in aggs.items() if any(agg.event_counts.values())}
    progress.step("insights: RFM groups, cohorts and a forecast of %s customers", f"{len(seen):,}")
    thresholds, _, summary = rfm_of_customers(seen, as_of)
    pairs = [(agg, history.attributes(cid)) for cid, agg in seen.items()]
    # Purchase days, cohorts and forecast periods are UTC days.
    utc = as_of.astimezone(UTC)
    start = forecast_start or utc.date()
    purchasers = [agg for agg in seen.values() if agg.purchase_count > 0]
    return {
        "as_of": utc.isoformat(),
        "customers": len(seen),
        "rfm": {"thresholds": thresholds.to_dict(), **summary.view()},
        "cohorts": {metric: cohort_matrix(pairs, by, metric, as_of=utc.date()) for metric in ("retention", "revenue")},
        "forecast": forecast(purchasers, start, start + timedelta(days=forecast_days), as_of),
    }


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_markdown(result: dict[str, Any]) -> str:
    """A short Markdown summary: RFM groups, the first cohorts' retention and the forecast cases.

    Parameters
    ----------
    result
        A :func:`compute_insights` result.

    Returns
    -------
    str
        Markdown text.
    """
    rfm = result["rfm"]
    lines = [
        f"# Insights as of {result['as_of']}",
        "",
        f"{result['customers']} customers, {rfm['customers']} with a purchase.",
        "",
        "## RFM groups",
        "",
        "| group | customers | share | revenue | revenue share |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {g['group']} | {g['customers']} | {_pct(g['share'])} | {_money(g['revenue'])} | "
        f"{_pct(g['revenue_share'])} |"
        for g in rfm["groups"]
    ]
    retention = result["cohorts"]["retention"]
    periods = retention["periods"][:MARKDOWN_PERIODS]
    shown = retention["cohorts"][:MARKDOWN_COHORTS]
    lines += [
        "",
        f"## Cohort retention by {retention['by']} (first {len(shown)} of {len(retention['cohorts'])} cohorts)",
        "",
        "| cohort | size | " + " | ".join(f"month {k}" for k in periods) + " |",
        "|---|---:|" + "---:|" * len(periods),
    ]
    lines += [
        f"| {c['cohort']} | {c['size']} | " + " | ".join(_pct(r) for r in c["rates"][: len(periods)]) + " |"
        for c in shown
    ]
    fc = result["forecast"]
    lines += [
        "",
        f"## Forecast {fc['start']} to {fc['end']} (excluded), {fc['audience']} customers with a purchase",
        "",
        "| case | conversions | conversion rate | revenue |",
        "|---|---:|---:|---:|",
    ]
    for name in CASES:
        case = fc[name]
        conv = "-" if case["conversions"] is None else f"{case['conversions']:g}"
        lines.append(f"| {name} | {conv} | {_pct(case['conversion_rate'])} | {_money(case['revenue'])} |")
    lines.append(f"\nFrom {len(fc['periods'])} comparable periods.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# HTML report
# ----------------------------------------------------------------------------------------------

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.meta { color: #666; margin-top: 0; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
"""


def _png(fig: Any) -> str:
    """The figure as an ``<img>`` with an embedded base64 PNG (the report needs no other file)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _table(header: list[str], rows: list[list[Any]], names: int = 1) -> str:
    """An HTML table; the first ``names`` columns are left-aligned labels, the others numbers."""

    def cells(tag: str, values: list[Any]) -> str:
        return "".join(f"<{tag}{' class=name' if i < names else ''}>{_esc(v)}</{tag}>" for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{cells("th", header)}</tr>{body}</table></div>'


def _rfm_grid_plot(rfm: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.zeros((5, 5))
    for cell in rfm["grid"]:
        counts[5 - cell["r"], cell["f"] - 1] = cell["customers"]
    fig, ax = plt.subplots(figsize=(8, 6))
    im = ax.imshow(counts, cmap="Blues", vmin=0)
    top = counts.max() or 1.0
    for row, r in enumerate(range(5, 0, -1)):
        for col in range(5):
            colour = "white" if counts[row, col] > 0.6 * top else "black"
            text = f"{RFM_GRID[r][col]}\n{int(counts[row, col])}"
            ax.text(col, row, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(5), [str(f) for f in range(1, 6)])
    ax.set_yticks(range(5), [str(r) for r in range(5, 0, -1)])
    ax.set_xlabel("F: frequency score (5 = most purchase moments)")
    ax.set_ylabel("R: recency score (5 = most recent)")
    ax.set_title("Customers per R x F cell")
    fig.colorbar(im, ax=ax, label="customers")
    return _png(fig)


def _group_plot(rfm: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    groups = rfm["groups"]
    names = [g["group"] for g in groups]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    left.barh(names, [g["customers"] for g in groups], color="#4c72b0")
    left.set_xlabel("customers")
    right.barh(names, [g["revenue"] for g in groups], color="#dd8452")
    right.set_xlabel("revenue")
    left.invert_yaxis()
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Customers and revenue per RFM group")
    return _png(fig)


def _cohort_plot(retention: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    cohorts = retention["cohorts"]
    width = len(retention["periods"])
    rates = np.full((len(cohorts), width), np.nan)
    for i, c in enumerate(cohorts):
        # Months no member of the cohort has reached yet have no rate (None): blank.
        rates[i] = [np.nan if r is None else r for r in c["rates"][:width]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * width + 2.5), max(3.0, 0.32 * len(cohorts) + 1.5)))
    # Period 0 is 100% by definition; capping the colours at the later periods' maximum keeps them readable.
    later = rates[:, 1:]
    top = float(np.nanmax(later)) if later.size and not np.isnan(later).all() else 1.0
    im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=top or 1.0, aspect="auto")
    if rates.size <= 600:
        for i in range(rates.shape[0]):
            for k in range(width):
                if not np.isnan(rates[i, k]):
                    colour = "black" if rates[i, k] > 0.6 * (top or 1.0) else "white"
                    ax.text(k, i, f"{100 * rates[i, k]:.0f}", ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(width), [str(k) for k in retention["periods"]])
    ax.set_yticks(range(len(cohorts)), [f"{c['cohort']} ({c['size']})" for c in cohorts])
    ax.set_xlabel("months since the first purchase")
    ax.set_ylabel(f"cohort ({retention['by']}, customers)")
    ax.set_title("Share of the cohort with a purchase (%)")
    fig.colorbar(im, ax=ax, label="retention")
    return _png(fig)


def _forecast_plot(fc: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = ("#c44e52", "#8c8c8c", "#55a868")
    for ax, key in zip(axes, ("conversions", "revenue"), strict=True):
        values = [fc[c][key] or 0.0 for c in CASES]
        bars = ax.bar(CASES, values, color=colours)
        ax.bar_label(bars, labels=[f"{v:,.1f}" if key == "conversions" else f"{v:,.0f}" for v in values])
        ax.set_title(key)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.15)
    fig.suptitle(f"Forecast {fc['start']} to {fc['end']} (excluded), {fc['audience']} customers")
    return _png(fig)


def _rfm_section(rfm: dict[str, Any]) -> list[str]:
    t = rfm["thresholds"]
    cuts = [
        ["recency (days)", *t["recency_days"]],
        ["frequency (purchase moments)", *t["frequency"]],
        ["monetary", *t["monetary"]],
    ]
    grid = {(c["r"], c["f"]): c["customers"] for c in rfm["grid"]}
    grid_rows = [
        [f"R {r}", *(f"{RFM_GRID[r][f - 1]}: {grid.get((r, f), 0)}" for f in range(1, 6))] for r in range(5, 0, -1)
    ]
    groups = [
        [g["group"], g["customers"], _pct(g["share"]), _money(g["revenue"]), _pct(g["revenue_share"])]
        for g in rfm["groups"]
    ]
    return [
        "<h2>RFM groups</h2>",
        f"<p>{rfm['customers']} customers with a purchase. Recency (days since the last purchase), frequency "
        "(purchase moments: one per clock hour with a purchase) and monetary (total revenue) are each scored "
        "1 to 5 by quintile over these customers; the group is named by R and F.</p>",
        _rfm_grid_plot(rfm),
        _table(["", *(f"F {f}" for f in range(1, 6))], grid_rows, names=6),
        "<h3>Quintile cut points</h3>",
        _table(["score boundary", "20%", "40%", "60%", "80%"], cuts),
        "<h3>Per group</h3>",
        _group_plot(rfm),
        _table(["group", "customers", "share", "revenue", "revenue share"], groups),
    ]


def _cohort_section(cohorts: dict[str, Any]) -> list[str]:
    retention, revenue = cohorts["retention"], cohorts["revenue"]
    months = [f"month {k}" for k in retention["periods"]]

    def rows(matrix: dict[str, Any], fmt: Any, key: str) -> list[list[Any]]:
        out = []
        for c in matrix["cohorts"]:
            values = [fmt(v) if reached else "" for v, reached in zip(c[key], c["reachable"], strict=True)]
            out.append([c["cohort"], c["size"], *values])
        return out

    return [
        "<h2>Cohorts</h2>",
        f"<p>Customers grouped by <code>{_esc(retention['by'])}</code>. Month <i>k</i> is the <i>k</i>-th calendar "
        "month after a customer's first purchase; month 0 holds the whole cohort. Months the as-of date has not "
        "reached are blank.</p>",
        _cohort_plot(retention),
        "<h3>Retention: share of the cohort with a purchase</h3>",
        _table(["cohort", "size", *months], rows(retention, _pct, "rates")),
        "<h3>Retention: customers with a purchase</h3>",
        _table(["cohort", "size", *months], rows(retention, str, "values")),
        "<h3>Revenue</h3>",
        _table(["cohort", "size", *months], rows(revenue, _money, "values")),
    ]


def _forecast_section(fc: dict[str, Any]) -> list[str]:
    cases = [
        [
            name,
            "-" if fc[name]["conversions"] is None else f"{fc[name]['conversions']:g}",
            _pct(fc[name]["conversion_rate"]),
            _money(fc[name]["revenue"]),
        ]
        for name in CASES
    ]
    periods = [
        [p["kind"], p.get("start", ""), p.get("end", ""), p["customers"], p["conversions"], _money(p["revenue"])]
        for p in fc["periods"]
    ]
    return [
        "<h2>Forecast</h2>",
        f"<p>Conversions (customers with a purchase) and revenue of the {fc['audience']} customers with a purchase "
        f"from {fc['start']} to {fc['end']} (excluded). The same customers' outcomes in comparable past periods "
        "(the same dates in earlier years, the periods of the same length just before the as-of date) give the "
        "pessimistic (minimum), neutral (mean) and optimistic (maximum) cases.</p>",
        _forecast_plot(fc),
        _table(["case", "conversions", "conversion rate", "revenue"], cases),
        "<h3>Comparable periods</h3>",
        _table(["period", "start", "end (excluded)", "customers", "conversions", "revenue"], periods, names=3),
    ]


def write_html(result: dict[str, Any], path: str | Path) -> None:
    """Write the report: one HTML file with its plots embedded, readable offline.

    Parameters
    ----------
    result
        A :func:`compute_insights` result.
    path
        The file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Kairos insights as of {_esc(result['as_of'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Kairos insights</h1>",
        f"<p class=meta>As of {_esc(result['as_of'])}: {result['customers']} customers, "
        f"{result['rfm']['customers']} with a purchase. RFM groups: {_esc(', '.join(RFM_GROUPS))}.</p>",
        *_rfm_section(result["rfm"]),
        *_cohort_section(result["cohorts"]),
        *_forecast_section(result["forecast"]),
        "</body></html>",
        "",
    ]
    Path(path).write_text("\n".join(parts), encoding="utf-8")
